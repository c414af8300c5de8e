// Spares: workspaces made ahead of their task, <root>/spares/<name>/{repo,meta} (see Spare in
// workspaces.h), renamed into <root>/tasks/<id> when the task comes.
#pragma once

#include <filesystem>
#include <string>

#include "common/result.h"
#include "git/mirror.h"
#include "worker-agent/task_clones.h"
#include "worker-agent/workspaces.h"

namespace polyphony::detail {

// The spares of one worker; each method's contract is that of the Workspaces method of the
// same name (workspaces.h). Only a directory right under <root>/spares is ever renamed or
// deleted as a spare.
class SparePool {
 public:
  SparePool(std::filesystem::path root, const TaskClones& clones, const MirrorStore& mirrors)
      : root_(std::move(root)), clones_(clones), mirrors_(mirrors) {}

  std::filesystem::path spares_dir() const { return root_ / "spares"; }

  // True for a directory right under spares_dir() whose name does not start with '.'.
  bool is_spare_dir(const std::filesystem::path& dir) const;

  Result<Spare> make_spare(const std::string& repo_url, const std::string& base_branch) const;
  Result<Workspace> provision_from(const WorkspaceRequest& request, const Spare& spare) const;
  Status discard_spare(const Spare& spare) const;
  Result<int> clear_spares() const;

 private:
  Result<std::filesystem::path> reserve_spare_dir(const std::filesystem::path& mirror) const;
  Status build_spare(const Spare& spare, const Origin& origin, const BranchSnapshot& branches,
                     const git_oid& base) const;
  Status check_spare(const WorkspaceRequest& request, const Spare& spare, const std::filesystem::path& mirror) const;
  Result<Workspace> place_spare(const WorkspaceRequest& request, const Spare& spare) const;
  Status refresh_spare(Workspace& ws, const std::string& requested_base) const;

  std::filesystem::path root_;
  const TaskClones& clones_;
  const MirrorStore& mirrors_;
};

}  // namespace polyphony::detail
