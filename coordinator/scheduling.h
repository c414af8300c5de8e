// Which claimed tasks to dispatch next: fair across repos, within per-repo limits. Pure.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "coordinator/task.h"

namespace polyphony {

// Orders `claimed` (oldest first within a repo) for dispatch: repeatedly takes the oldest task
// of the repo that has the fewest tasks running (counting those already taken), skipping repos
// at `per_repo_limit` (0: no limit) and tasks not yet due at `now_ms`. Returns at most `slots`.
std::vector<Task> dispatch_order(const std::vector<Task>& claimed, std::map<std::string, int> running_per_repo,
                                 int per_repo_limit, int slots, int64_t now_ms);

}  // namespace polyphony
