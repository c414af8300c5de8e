// Label requirements and least-loaded choice of a worker.
#include "coordinator/worker_match.h"

#include <algorithm>
#include <tuple>

namespace polyphony {

std::vector<std::string> required_labels(const std::vector<std::string>& task_labels) {
  std::vector<std::string> out;
  for (const auto& l : task_labels) {
    if (l.size() <= kNeedsPrefix.size() || l.compare(0, kNeedsPrefix.size(), kNeedsPrefix) != 0) continue;
    std::string need = l.substr(kNeedsPrefix.size());
    if (std::find(out.begin(), out.end(), need) == out.end()) out.push_back(std::move(need));
  }
  return out;
}

std::vector<std::string> unmet_requirements(const std::vector<std::string>& task_labels,
                                            const std::vector<std::string>& worker_labels) {
  std::vector<std::string> unmet;
  for (auto& need : required_labels(task_labels)) {
    if (std::find(worker_labels.begin(), worker_labels.end(), need) == worker_labels.end()) {
      unmet.push_back(std::move(need));
    }
  }
  return unmet;
}

std::optional<size_t> choose_worker(const std::vector<WorkerCandidate>& candidates,
                                    const std::vector<std::string>& task_labels) {
  std::optional<size_t> best;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const WorkerCandidate& w = candidates[i];
    if (!w.live || !w.image_present || w.capacity < 1 || w.load >= w.capacity) continue;
    if (!unmet_requirements(task_labels, w.labels).empty()) continue;
    if (!best) {
      best = i;
      continue;
    }
    const WorkerCandidate& b = candidates[*best];
    // w.load / w.capacity < b.load / b.capacity, without division.
    const long long lhs = static_cast<long long>(w.load) * b.capacity;
    const long long rhs = static_cast<long long>(b.load) * w.capacity;
    if (std::tie(lhs, w.load, w.id) < std::tie(rhs, b.load, b.id)) best = i;
  }
  return best;
}

}  // namespace polyphony
