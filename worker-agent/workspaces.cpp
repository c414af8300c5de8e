// The real Workspaces: one reference mirror per origin under <root>/mirrors (mirror.h), per task
// a clone under <root>/tasks/<id> (task_clones.h), landed from a scratch repository (landing.h),
// and spares under <root>/spares (spares.h). This file only wires them.
#include "worker-agent/workspaces.h"

#include <algorithm>

#include "common/ids.h"
#include "git/mirror.h"
#include "worker-agent/clone_owner.h"
#include "worker-agent/landing.h"
#include "worker-agent/spares.h"
#include "worker-agent/task_clones.h"

namespace polyphony {

namespace fs = std::filesystem;

// The defaults of a manager that keeps no spares and cannot push a branch alone.

Result<Spare> Workspaces::make_spare(const std::string& repo_url, const std::string& /*base_branch*/) {
  return make_error("usage", "this workspace manager keeps no spares", repo_url);
}

Result<Workspace> Workspaces::provision_from(const WorkspaceRequest& request, const Spare& spare) {
  (void)discard_spare(spare);
  return provision(request);
}

Status Workspaces::discard_spare(const Spare& spare) {
  std::error_code ec;
  fs::remove_all(spare.dir, ec);
  return {};
}

Result<int> Workspaces::clear_spares() {
  return 0;
}

CommitIdentity Workspaces::commit_identity() const {
  return {};
}

Result<bool> Workspaces::changes_base(const Workspace&) {
  return true;
}

Result<LandResult> Workspaces::push_branch(const Workspace& ws) {
  return make_error("usage", "this workspace manager cannot push a branch alone", ws.task_id);
}

namespace {

class GitWorkspaces final : public Workspaces {
 public:
  // libgit2 is set up by its first use (GitRepo): its TLS set-up alone is about 3 MB of memory
  // that an idle worker never needs.
  GitWorkspaces(fs::path root, CommitIdentity identity, int owner_uid, int owner_gid)
      : root_(fs::absolute(root).lexically_normal()),
        mirrors_(root_ / "mirrors"),
        clones_(root_ / "tasks", mirrors_, std::move(identity), detail::CloneOwner(owner_uid, owner_gid)),
        landing_(clones_),
        spares_(root_, clones_, mirrors_) {}

  Result<Workspace> provision(const WorkspaceRequest& request) override { return clones_.provision(request); }
  Result<Workspace> open(const std::string& task_id) override { return clones_.open(task_id); }
  Result<std::unique_ptr<BundleImport>> import_branch(const Workspace& ws, size_t max_bytes) override {
    return clones_.import_branch(ws, max_bytes);
  }
  Result<std::string> pin_import(const Workspace& ws, BundleImport& import) override {
    return clones_.pin_import(ws, import);
  }
  Status write_pinned_bundle(const Workspace& ws, const fs::path& path) override {
    return clones_.write_pinned_bundle(ws, path);
  }
  Result<fs::path> make_review_clone(const Workspace& ws) override { return clones_.make_review_clone(ws); }
  CommitIdentity commit_identity() const override { return clones_.identity(); }
  Result<std::optional<std::string>> commit_all(const Workspace& ws, const std::string& message) override {
    return clones_.commit_all(ws, message);
  }
  Result<std::string> head_commit(const Workspace& ws) override { return clones_.head_commit(ws); }
  Result<int> commits_ahead(const Workspace& ws) override { return clones_.commits_ahead(ws); }
  Result<std::optional<std::string>> read_at_base(const Workspace& ws, const std::string& path) override {
    return clones_.read_at_base(ws, path);
  }
  Result<std::optional<std::string>> landed_earlier(const Workspace& ws) override { return clones_.landed_earlier(ws); }
  Result<std::string> head_tree(const Workspace& ws) override { return clones_.head_tree(ws); }
  Result<bool> changes_base(const Workspace& ws) override { return clones_.changes_base(ws); }
  Result<std::optional<std::string>> rebase_onto_origin(Workspace& ws) override {
    return clones_.rebase_onto_origin(ws);
  }
  Result<LandResult> land(const Workspace& ws) override { return landing_.land(ws); }
  Result<LandResult> push_branch(const Workspace& ws) override { return landing_.push_branch(ws); }
  Result<Spare> make_spare(const std::string& repo_url, const std::string& base_branch) override {
    return spares_.make_spare(repo_url, base_branch);
  }
  Result<Workspace> provision_from(const WorkspaceRequest& request, const Spare& spare) override {
    return spares_.provision_from(request, spare);
  }
  Status discard_spare(const Spare& spare) override { return spares_.discard_spare(spare); }
  Result<int> clear_spares() override { return spares_.clear_spares(); }
  Status remove(const std::string& task_id) override;
  Result<std::vector<std::string>> list() override;

 private:
  fs::path tasks_dir() const { return clones_.tasks_dir(); }

  fs::path root_;
  detail::MirrorStore mirrors_;
  detail::TaskClones clones_;
  detail::Landing landing_;
  detail::SparePool spares_;
};

Status GitWorkspaces::remove(const std::string& task_id) {
  POLY_TRY(check_task_id(task_id));
  std::error_code ec;
  fs::remove_all(tasks_dir() / task_id, ec);
  if (ec) {
    return make_error("io", "cannot delete " + (tasks_dir() / task_id).string() + ": " + ec.message(), task_id);
  }
  return ok_status();
}

Result<std::vector<std::string>> GitWorkspaces::list() {
  std::vector<std::string> ids;
  std::error_code ec;
  if (!fs::exists(tasks_dir(), ec)) return ids;
  for (fs::directory_iterator it(tasks_dir(), ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (it->is_directory() && is_valid_task_id(name)) ids.push_back(name);
  }
  if (ec) return make_error("io", "cannot list " + tasks_dir().string() + ": " + ec.message());
  std::sort(ids.begin(), ids.end());
  return ids;
}

}  // namespace

std::unique_ptr<Workspaces> make_git_workspaces(const fs::path& root, CommitIdentity identity, int owner_uid,
                                                int owner_gid) {
  return std::make_unique<GitWorkspaces>(root, std::move(identity), owner_uid, owner_gid);
}

}  // namespace polyphony
