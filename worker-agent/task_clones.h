// A task's clone and its pinned branch: <tasks>/<id>/repo (the clone the container mounts,
// borrowing the mirror's objects), workspace.json (root's), pinned.git (the branch as this
// process took it in) and review-repo (a reviewer's fresh clone). Provision, reopen, pin, rebase.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "git/git_repo.h"
#include "git/mirror.h"
#include "worker-agent/bundle_import.h"
#include "worker-agent/clone_owner.h"
#include "worker-agent/workspaces.h"

namespace polyphony::detail {

// <task_dir>/pinned.git.
std::filesystem::path pinned_dir(const Workspace& ws);

// Writes <task_dir>/workspace.json (atomically: a temporary file renamed over it), which open()
// reads back. Errors: "io".
Status write_metadata(const Workspace& ws);

// Checks out `target` (checkout arguments: "-B <branch> <commit>" or "--detach <commit>") in a
// clone this process has just made, with the git CLI, hooks off. Never in a clone a container
// has seen: git would run what its config and hooks name. Errors: "git".
Status checkout_new_clone(const std::filesystem::path& repo_dir, const std::vector<std::string>& target);

// The pinned repository, what it pins and what that started from.
struct PinnedBranch {
  GitRepo repo;  // <task_dir>/pinned.git
  git_oid head;  // the pinned commit, or the base commit while nothing is pinned
  git_oid base;  // the workspace's base_commit
};

// The clones of one worker, under `tasks_dir`; each method's contract is that of the
// Workspaces method of the same name (workspaces.h), for a workspace under tasks_dir.
class TaskClones {
 public:
  TaskClones(std::filesystem::path tasks_dir, const MirrorStore& mirrors, CommitIdentity identity, CloneOwner owner)
      : tasks_dir_(std::move(tasks_dir)), mirrors_(mirrors), identity_(std::move(identity)), owner_(owner) {}

  const std::filesystem::path& tasks_dir() const { return tasks_dir_; }
  const CommitIdentity& identity() const { return identity_; }
  const CloneOwner& owner() const { return owner_; }

  // ok when the request's task id and branch names are valid and the task has no workspace yet.
  // Errors: "usage" (naming what is invalid), "exists".
  Status check_request(const WorkspaceRequest& request) const;

  Result<Workspace> provision(const WorkspaceRequest& request) const;
  Result<Workspace> open(const std::string& task_id) const;

  // <task_dir>/pinned.git, made (bare, borrowing the mirror's objects) when it is missing; refused
  // ("io") when it is not a directory of this process's user.
  Result<GitRepo> pinned_repo(const Workspace& ws) const;
  // pinned_repo with its head and the task's base: what every reader of the pin starts from.
  Result<PinnedBranch> pinned_branch(const Workspace& ws) const;

  Result<std::unique_ptr<BundleImport>> import_branch(const Workspace& ws, size_t max_bytes) const;
  Result<std::string> pin_import(const Workspace& ws, BundleImport& import) const;
  Status write_pinned_bundle(const Workspace& ws, const std::filesystem::path& path) const;
  Result<std::filesystem::path> make_review_clone(const Workspace& ws) const;
  Result<std::optional<std::string>> commit_all(const Workspace& ws, const std::string& message) const;
  Result<std::string> head_commit(const Workspace& ws) const;
  Result<int> commits_ahead(const Workspace& ws) const;
  Result<std::optional<std::string>> read_at_base(const Workspace& ws, const std::string& path) const;
  Result<std::optional<std::string>> landed_earlier(const Workspace& ws) const;
  Result<std::string> head_tree(const Workspace& ws) const;
  Result<bool> changes_base(const Workspace& ws) const;
  Result<std::optional<std::string>> rebase_onto_origin(Workspace& ws) const;

 private:
  Status build_clone(const Workspace& ws, const BranchSnapshot& origin_branches, const git_oid& base) const;
  // The origin's base for a rebase of `ws`, with its objects in the mirror.
  Result<BranchHead> base_now(const Origin& origin, const Workspace& ws) const;

  std::filesystem::path tasks_dir_;
  const MirrorStore& mirrors_;
  CommitIdentity identity_;
  CloneOwner owner_;
};

}  // namespace polyphony::detail
