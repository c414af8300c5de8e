// Landing a task's pinned branch on its origin: pushed from a scratch repository this process
// makes (never from the clone the agent had), the base only fast-forwarded, and what landed
// taught to the mirror so the next task on the repo fetches nothing.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>

#include "common/result.h"
#include "git/git_repo.h"
#include "worker-agent/task_clones.h"
#include "worker-agent/workspaces.h"

namespace polyphony::detail {

// Every this many landings into a mirror, its refs and those of a local origin are packed: each
// landing adds a task branch to both.
inline constexpr int kPackRefsEvery = 16;

class Landing {
 public:
  explicit Landing(const TaskClones& clones) : clones_(clones) {}

  // Workspaces::land (workspaces.h): the task branch and a fast-forward of the base, by the
  // cheapest path the origin allows: a working clone's own git (working_clone.h), an in-process
  // landing into a plain local bare origin, one atomic push, or a push of the branch and then
  // of the base. The mirror's lock is held from the push until the mirror has learned it.
  Result<LandResult> land(const Workspace& ws) const;

  // Workspaces::push_branch (workspaces.h): the task branch alone, replacing an earlier push.
  Result<LandResult> push_branch(const Workspace& ws) const;

 private:
  using LandFn = std::function<Result<LandResult>(const std::filesystem::path&, const git_oid&)>;
  Result<LandResult> in_scratch_repo(const Workspace& ws, const LandFn& fn) const;
  Status learn_landing(const Workspace& ws, const std::filesystem::path& land_dir, const git_oid& head,
                       bool base_moved) const;
  void pack_refs_after_landings(const Workspace& ws) const;
  std::optional<Status> land_in_process(const Workspace& ws, const std::filesystem::path& land_dir,
                                        const git_oid& head) const;
  Result<LandResult> push_and_land(const Workspace& ws, const std::filesystem::path& land_dir,
                                   const git_oid& head) const;
  Result<LandResult> land_on(const Workspace& ws, GitRepo& repo, const git_oid& head, const git_oid& origin_base) const;

  const TaskClones& clones_;
};

}  // namespace polyphony::detail
