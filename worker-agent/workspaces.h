// Per-task git workspaces: a reference mirror per repo, and per task a clone that borrows
// its objects (git clone --reference semantics) on its own branch.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "git/commit_identity.h"
#include "worker-agent/bundle_import.h"

namespace polyphony {

struct WorkspaceRequest {
  std::string task_id;      // also the directory name under <root>/tasks
  std::string repo_url;     // local path (absolute) or URL of the origin
  std::string base_branch;  // e.g. "main"; empty: the origin's default branch (HEAD)
  std::string branch;       // new branch to create, e.g. "polyphony/ab12cd34-fix-auth-bug"
};

struct Workspace {
  std::string task_id;
  std::filesystem::path task_dir;    // <root>/tasks/<task_id>
  std::filesystem::path repo_dir;    // <task_dir>/repo: the clone, mounted at /workspace
  std::filesystem::path mirror_dir;  // <root>/mirrors/<name>.git: the reference mirror
  std::string repo_url;
  std::string base_branch;  // resolved (never empty)
  std::string base_commit;  // commit the branch started from
  std::string branch;
};

struct LandResult {
  std::string branch_commit;  // head of the task branch that was pushed
  std::string merged_commit;  // new head of the base branch on the origin
  bool fast_forward = false;
  std::string note;  // when merged_commit is empty after land(): why the base did not move
};

// A workspace made ahead of time for a task that has not arrived yet (a warm worker keeps one
// per repo it served last, and may start a container on it before any task comes):
// <root>/spares/<name>/ holding repo/ (a clone borrowing from the mirror, checked out at the
// base branch's head as of when it was made) and meta/ (empty). Its repo/ and meta/ directories
// are the very inodes a task's container will mount: provisioning from a spare renames the spare
// directory into place and never replaces repo/ or meta/ by other directories.
struct Spare {
  std::filesystem::path dir;         // <root>/spares/<name>
  std::filesystem::path mirror_dir;  // the mirror repo/ borrows from (mounted read-only too)
  std::string repo_url;
  std::string base_branch;  // as requested ("" : the origin's default branch)
};

class Workspaces {
 public:
  virtual ~Workspaces() = default;

  // Makes a spare for repo_url at base_branch (fetching or first creating the mirror), owned by
  // uid/gid like a provisioned task. Errors as provision's. The default keeps no spares: "usage".
  virtual Result<Spare> make_spare(const std::string& repo_url, const std::string& base_branch);

  // Provisions the task from `spare` (made by make_spare for the same repo_url and base_branch):
  // renames spare.dir to <root>/tasks/<id>, fetches the mirror, brings repo/ to the base branch's
  // current head and creates and checks out the task branch there. The same Workspace as
  // provision(request) results; only faster, since the files are mostly in place. On error the
  // spare is removed. Error "usage" when the spare does not fit the request. The default
  // discards the spare and provisions.
  virtual Result<Workspace> provision_from(const WorkspaceRequest& request, const Spare& spare);

  // Deletes a spare that will not be used. Absent is not an error.
  virtual Status discard_spare(const Spare& spare);

  // Deletes every spare under this manager's root, returning how many. A spare is known only
  // to the process that made it (its Spare value), so those found at start are stale: a
  // restarted worker calls this once, before it makes spares or starts containers on them (and
  // removes any container an earlier run started on one). Spares never show in list() and
  // remove() never touches them. The default has none: 0.
  virtual Result<int> clear_spares();

  // Fetches (or first creates) the repo's mirror, then makes <root>/tasks/<id>/repo: a clone
  // whose objects/info/alternates points at the mirror, the origin remote set to repo_url,
  // remote-tracking refs copied from the mirror, and `branch` created at the base branch
  // head and checked out. Errors: "git" (message names the repo), "not_found" (repo path
  // does not exist / is not a git repo / base branch missing), "exists" (workspace exists).
  virtual Result<Workspace> provision(const WorkspaceRequest& request) = 0;

  // Re-opens an existing workspace (after a worker restart).
  virtual Result<Workspace> open(const std::string& task_id) = 0;

  // The task's branch is pinned in a repository of the worker's own, <task_dir>/pinned.git (bare,
  // borrowing the mirror's objects, its config written by this process): what head_commit,
  // commits_ahead, head_tree, rebase_onto_origin, land and push_branch work from. The clone the
  // agent had is never opened by this process once a container has run on it; its branch
  // reaches the pin only as data, a bundle written inside the container (import_branch).

  // Starts taking in a bundle of the branch (what `git bundle create - ^<base> refs/heads/<branch>`
  // writes in the container), at most `max_bytes` of it. Errors: "git", "io".
  virtual Result<std::unique_ptr<BundleImport>> import_branch(const Workspace& ws, size_t max_bytes) = 0;

  // Ends `import` and pins the branch at the commit the bundle carries as refs/heads/<branch>,
  // returning its id. Errors: "bad_bundle" (the agent's doing), "git".
  virtual Result<std::string> pin_import(const Workspace& ws, BundleImport& import) = 0;

  // Writes a bundle of the pinned commit (its objects that the base lacks, the ref
  // refs/heads/<branch>) to `path`, for the container to take in after a rebase here. Errors: "git".
  virtual Status write_pinned_bundle(const Workspace& ws, const std::filesystem::path& path) = 0;

  // A fresh clone of the pinned commit for a reviewer, <task_dir>/review-repo (made anew, its
  // config this process's, the branch's own objects copied in, the rest borrowed from the
  // mirror; owned like the task's clone): nothing of the implementer's .git comes with it.
  // Returns its path. Errors: "git", "io".
  virtual Result<std::filesystem::path> make_review_clone(const Workspace& ws) = 0;

  // Who the worker's own commits (leftovers committed for the agent, rebased commits) are by.
  // The default: CommitIdentity{}.
  virtual CommitIdentity commit_identity() const;

  // For tests and trusted trees only, never a tree an agent had: commits every change left in
  // the work tree as this process (new, modified, deleted files; .gitignore respected) and pins
  // the branch there. Returns the new commit id, or nullopt when the tree was clean.
  virtual Result<std::optional<std::string>> commit_all(const Workspace& ws, const std::string& message) = 0;

  // The pinned commit (the base commit while nothing is pinned).
  virtual Result<std::string> head_commit(const Workspace& ws) = 0;

  // Number of commits on the branch that are not on base_commit.
  virtual Result<int> commits_ahead(const Workspace& ws) = 0;

  // Content of `path` in base_commit (used for .polyphony.yaml, so an agent cannot rewrite
  // its own verify command). nullopt when the file does not exist there.
  virtual Result<std::optional<std::string>> read_at_base(const Workspace& ws, const std::string& path) = 0;

  // An earlier attempt of this task that landed but whose result was lost (a crash between the
  // push and the report): when the origin, as of the last mirror sync, has the task branch and
  // its head is already contained in the base branch, the base branch's head; else nullopt.
  virtual Result<std::optional<std::string>> landed_earlier(const Workspace& ws) = 0;

  // The tree id of the pinned commit (what verify saw).
  virtual Result<std::string> head_tree(const Workspace& ws) = 0;

  // Whether the pinned commit's tree differs from base_commit's: false when the branch, as it
  // sits on the base now, changes nothing (the base already holds its change, e.g. another task
  // landed the same one). The default: true.
  virtual Result<bool> changes_base(const Workspace& ws);

  // Brings the pinned branch up to the origin's base branch as it is now: when the base moved
  // past ws.base_commit, the branch's own commits are replayed onto it in pinned.git (a rebase
  // in memory; the clone is not touched: write_pinned_bundle carries the result to it), the pin
  // moves there, and ws.base_commit becomes the new base, which is returned; nullopt when the
  // branch already sits on the origin's base (when that base is the pinned commit itself,
  // another task having landed the very same commit, ws.base_commit becomes it). Errors: "conflict" (a commit does not
  // apply; the message names the paths; nothing was changed), "git".
  virtual Result<std::optional<std::string>> rebase_onto_origin(Workspace& ws) = 0;

  // Pushes the pinned commit to the origin's task branch, then fast-forwards the base branch to
  // it (whatever the clone's refs say by then). Errors:
  // "base_moved" (the origin's base is not an ancestor of the branch: rebase first; the base
  // is unchanged), "push_rejected" (the base moved during landing), "git".
  virtual Result<LandResult> land(const Workspace& ws) = 0;

  // Pushes only the task branch to the origin (replacing an earlier attempt's), leaving the base
  // branch alone: GitHub mode, where a pull request lands it. merged_commit stays empty.
  // Errors: "push_rejected", "git". The default cannot: "usage".
  virtual Result<LandResult> push_branch(const Workspace& ws);

  // Deletes the task's directory. Absent is not an error.
  virtual Status remove(const std::string& task_id) = 0;

  // Task ids that have a workspace directory.
  virtual Result<std::vector<std::string>> list() = 0;
};

// The real implementation (libgit2, with the git CLI where libgit2 falls short).
// `owner_uid`/`owner_gid` >= 0: the task directory is chowned to them after provisioning so
// that a non-root container user can write it.
std::unique_ptr<Workspaces> make_git_workspaces(const std::filesystem::path& root, CommitIdentity identity = {},
                                                int owner_uid = -1, int owner_gid = -1);

}  // namespace polyphony
