// A libgit2 repository with the handful of operations workspaces need; every failure becomes
// an Error "git" naming the repository path.
#pragma once

#include <git2.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/git_handles.h"
#include "common/result.h"
#include "git/commit_identity.h"

namespace polyphony::detail {

struct BranchHead {
  std::string name;  // without refs/heads/
  git_oid commit;
};

// The local branches of a repository (for a mirror: the origin's branches) and the branch its
// HEAD names (empty when HEAD is detached or missing).
struct BranchSnapshot {
  std::string default_branch;
  std::vector<BranchHead> branches;

  const BranchHead* find(const std::string& name) const;
  std::string names() const;  // "a, b, c" or "(none)"
  // What a task's clone tracks of the origin: `base` and the default branch, as
  // `git clone --single-branch` does. Every other branch (every landed task's) stays out, so a
  // clone's refs do not grow with the origin's history.
  BranchSnapshot tracked_with(const std::string& base) const;
};

struct MergeOutcome {
  std::optional<git_oid> commit;       // the resulting commit, when it applied cleanly
  std::vector<std::string> conflicts;  // conflicting paths otherwise
};

// Writes <git_dir>/objects/info/alternates listing `object_dirs`, one a line.
Status write_alternates(const std::filesystem::path& git_dir, const std::vector<std::filesystem::path>& object_dirs);

// True when `branch` is a valid name for refs/heads/<branch>.
bool is_valid_branch_name(const std::string& branch);

class GitRepo {
 public:
  // Opens exactly `path` (a work tree or a bare repository), without searching parents.
  static Result<GitRepo> open(const std::filesystem::path& path);

  // Creates a repository at `dir` (bare, or a work tree with .git) with HEAD on the unborn
  // refs/heads/<branch>, whose objects/info/alternates lists `object_dirs`, so it borrows
  // every object from them and copies none.
  static Result<GitRepo> init_borrowing(const std::filesystem::path& dir,
                                        const std::vector<std::filesystem::path>& object_dirs,
                                        const std::string& branch, bool bare = false);

  const std::filesystem::path& path() const { return path_; }
  bool is_bare() const;

  Result<BranchSnapshot> branches() const;
  // The branch HEAD names (without refs/heads/), or "" when HEAD names none.
  std::string head_branch() const;

  // Adds remote `name` (url, standard fetch refspec) and refs/remotes/<name>/* for every
  // branch of `origin` (plus <name>/HEAD), packed, without fetching anything.
  Status add_remote(const std::string& name, const std::string& url, const BranchSnapshot& origin);

  // Moves every loose ref into packed-refs, as `git pack-refs --all` does: a repository that
  // gains a branch per landed task would otherwise cost every reader of its branches a file per
  // branch it ever had.
  Status pack_refs();

  // Makes refs/remotes/<name>/* exactly the branches of `origin` (plus <name>/HEAD): moves
  // those that moved, creates the new ones, deletes those `origin` no longer has.
  Status set_remote_refs(const std::string& name, const BranchSnapshot& origin);

  // Takes into the index the ctime, uid and gid of every work tree file whose size, mtime and
  // inode still match its entry: after a chown of the checked-out tree (which changes every
  // file's ctime and owner), so that git need not read all the files again to know them clean.
  // Call it only when nothing but ownership changed since the checkout. `only`: just these
  // paths (relative to the work tree) rather than every entry.
  Status restat_index_after_chown(const std::vector<std::string>* only = nullptr);

  // Makes the work tree and index exactly `commit`'s tree, writing only the files that differ
  // (files changed in the work tree are overwritten, untracked and ignored files deleted), then
  // points refs/heads/<branch> at `commit` (created or moved) and HEAD at the branch. Returns
  // the paths it wrote or deleted, relative to the work tree.
  Result<std::vector<std::string>> reset_to_new_branch(const std::string& branch, const git_oid& commit);

  // Points refs/heads/<branch> at `commit` and force-checks-out HEAD (already on it). `move`:
  // the branch may exist already and is moved. Returns the paths the checkout wrote or
  // deleted, relative to the work tree.
  Result<std::vector<std::string>> create_branch_and_checkout(const std::string& branch, const git_oid& commit,
                                                              bool move = false);

  // Replays the commits reachable from `head` but not from `base`, oldest first, onto `onto`
  // (a rebase in memory: work tree and refs untouched). Each keeps its author and message; the
  // committer is `identity`; merge commits are replayed against their first parent. On success
  // the new head, which no ref points at yet; else the paths of the first conflict.
  Result<MergeOutcome> replay(const git_oid& base, const git_oid& head, const git_oid& onto,
                              const CommitIdentity& identity);

  // The tree id of `commit`.
  Result<git_oid> tree_of(const git_oid& commit) const;

  Result<git_oid> resolve(const std::string& refname) const;

  // Stages the whole work tree (adds, changes, deletions; .gitignore respected) and commits
  // it on refs/heads/<branch>, which HEAD must name. nullopt when the tree did not change.
  Result<std::optional<git_oid>> commit_work_tree(const std::string& branch, const CommitIdentity& identity,
                                                  const std::string& message);

  // Commits reachable from `head` that are not reachable from `base`.
  Result<int> count_ahead(const git_oid& head, const git_oid& base) const;

  // True when `ancestor` is `descendant` or one of its ancestors.
  Result<bool> is_ancestor(const git_oid& ancestor, const git_oid& descendant) const;

  // Copies the objects reachable from `head` but not from `known` (commits, trees and blobs)
  // into `objects_dir`, the objects directory of another repository that has `known`. As git's
  // receive-pack does (transfer.unpackLimit): up to kLooseObjectLimit objects are written loose,
  // more as one pack (its readers pick it up as they would one a fetch wrote). A pack a landing
  // (every landing writes into the origin and the mirror) is one more index for every later
  // object lookup in both, and in every clone borrowing from the mirror, to search.
  static constexpr size_t kLooseObjectLimit = 100;
  Status copy_objects_to(const git_oid& head, const git_oid& known, const std::filesystem::path& objects_dir) const;

  // Writes a v2 git bundle to `path` (created anew, not following a symlink, mode 0644): `ref`
  // at `head`, with the objects reachable from it but not from `known` (its one prerequisite),
  // as one pack, what `git bundle create path ^known ref` writes, without a git process.
  Status write_bundle(const git_oid& head, const git_oid& known, const std::string& ref,
                      const std::filesystem::path& path) const;

  // Why a push into this repository must go through `git receive-pack` (it is not bare, has a
  // receive hook, core.hooksPath, or a receive.*, transfer.fsckObjects or core.sharedRepository
  // setting); "" when taking a landing in-process (take_landing) does exactly what
  // receive-pack would.
  Result<std::string> needs_receive_pack() const;

  // Lands `head` (whose objects `source` has) here in-process: writes the objects this
  // repository lacks (copy_objects_to), points `branch_ref` at `head`, then, with `base_ref` locked
  // (as git locks it), moves it to `head` if it is still an ancestor of it. Error
  // "push_rejected" when the base moved (it is not an ancestor, or `source` does not know it):
  // the base is unchanged then, the branch may have been pushed.
  Status take_landing(const GitRepo& source, const git_oid& head, const std::string& base_ref,
                      const std::string& branch_ref);

  // Points `refname` at `target`, creating or moving it.
  Status set_ref(const std::string& refname, const git_oid& target, const std::string& why);

  // Content of `file` in `commit`; nullopt when there is no such path.
  Result<std::optional<std::string>> read_file_at(const git_oid& commit, const std::string& file) const;

 private:
  GitRepo(Repository repo, std::filesystem::path path) : repo_(std::move(repo)), path_(std::move(path)) {}

  Result<Commit> lookup_commit(const git_oid& oid) const;
  Result<Signature> signature(const CommitIdentity& identity) const;
  Status check_head_on(const std::string& branch) const;
  Result<git_oid> stage_work_tree();
  Result<std::vector<std::string>> conflict_paths(git_index* index) const;

  Repository repo_;
  std::filesystem::path path_;
};

}  // namespace polyphony::detail
