// Which claimed tasks to dispatch next: fair across repos, within per-repo limits.
#include "coordinator/scheduling.h"

#include <deque>

namespace polyphony {

std::vector<Task> dispatch_order(const std::vector<Task>& claimed, std::map<std::string, int> running,
                                 int per_repo_limit, int slots, int64_t now_ms) {
  std::map<std::string, std::deque<const Task*>> queues;
  for (const auto& t : claimed) {
    if (t.next_attempt_at_ms <= now_ms) queues[t.request.repo].push_back(&t);
  }
  std::vector<Task> out;
  while (static_cast<int>(out.size()) < slots) {
    const std::string* best = nullptr;
    for (const auto& [repo, queue] : queues) {
      if (queue.empty()) continue;
      const int n = running[repo];
      if (per_repo_limit > 0 && n >= per_repo_limit) continue;
      if (best == nullptr || n < running[*best] ||
          (n == running[*best] &&
           queue.front()->request.created_at_ms < queues[*best].front()->request.created_at_ms)) {
        best = &repo;
      }
    }
    if (best == nullptr) break;
    out.push_back(*queues[*best].front());
    queues[*best].pop_front();
    ++running[*best];
  }
  return out;
}

}  // namespace polyphony
