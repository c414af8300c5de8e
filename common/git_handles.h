// RAII owners for libgit2 handles, one-time library setup, and libgit2 errors as Result errors.
#pragma once

#include <git2.h>

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"

namespace polyphony::detail {

// Initialises libgit2 once per process and turns off its owner validation: workspaces are
// owned by the container user while this code runs as root.
void ensure_libgit2();

template <class T, void (*Free)(T*)>
struct GitFree {
  void operator()(T* p) const { Free(p); }
};

template <class T, void (*Free)(T*)>
using GitHandle = std::unique_ptr<T, GitFree<T, Free>>;

using Repository = GitHandle<git_repository, git_repository_free>;
using Reference = GitHandle<git_reference, git_reference_free>;
using Commit = GitHandle<git_commit, git_commit_free>;
using Tree = GitHandle<git_tree, git_tree_free>;
using TreeEntry = GitHandle<git_tree_entry, git_tree_entry_free>;
using Blob = GitHandle<git_blob, git_blob_free>;
using Index = GitHandle<git_index, git_index_free>;
using Signature = GitHandle<git_signature, git_signature_free>;
using Remote = GitHandle<git_remote, git_remote_free>;
using BranchIterator = GitHandle<git_branch_iterator, git_branch_iterator_free>;
using ReferenceIterator = GitHandle<git_reference_iterator, git_reference_iterator_free>;
using Revwalk = GitHandle<git_revwalk, git_revwalk_free>;
using ConflictIterator = GitHandle<git_index_conflict_iterator, git_index_conflict_iterator_free>;
using Odb = GitHandle<git_odb, git_odb_free>;
using OdbObject = GitHandle<git_odb_object, git_odb_object_free>;
using Refdb = GitHandle<git_refdb, git_refdb_free>;
using Packbuilder = GitHandle<git_packbuilder, git_packbuilder_free>;

// Error "git": "<action> failed: <git_error_last()->message>", where = the repository path.
Error libgit2_error(std::string_view action, const std::filesystem::path& repo);

std::string oid_hex(const git_oid& oid);

// Parses a full hex object id; error "git" naming `repo` when it is not one.
Result<git_oid> parse_oid(const std::string& hex, const std::filesystem::path& repo);

}  // namespace polyphony::detail
