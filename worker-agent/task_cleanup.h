// Removing what finished tasks left on a worker host: their workspaces and containers. Used by
// the worker when the coordinator asks (`polyphony cleanup`) and by `polyphony-worker cleanup`.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "worker-agent/docker_client.h"
#include "worker-agent/workspaces.h"

namespace polyphony {

struct CleanupCount {
  int workspaces = 0;  // removed (or that would be, dry run)
  int containers = 0;
  std::vector<std::string> errors;  // what could not be removed, and why
};

// Removes every task workspace, and every task container labelled with `worker_id`, of the
// tasks not in `keep` (those a current attempt or an unacknowledged result holds). Spare
// workspaces and warm containers no task took stay: the container pool owns them. A killed
// attempt's leftovers count as finished. `dry_run`: counts, removes nothing.
CleanupCount clean_up_finished_tasks(DockerClient& docker, Workspaces& workspaces, const std::string& worker_id,
                                     const std::set<std::string>& keep, bool dry_run);

}  // namespace polyphony
