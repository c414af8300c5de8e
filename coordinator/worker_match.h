// Which worker may take a task, and which of those should: label requirements and load. Pure.
//
// The rule: a task label of the form "needs:X" requires the worker to carry the label X
// exactly ("needs:gpu" -> "gpu", "needs:arch=arm64" -> "arch=arm64"). Every requirement must
// be met; other task labels ("bug", "frontend", ...) are for routing and ask nothing of the
// worker. "needs:" with nothing after it asks for nothing.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace polyphony {

inline constexpr std::string_view kNeedsPrefix = "needs:";

// The worker labels `task_labels` require, in their order, without duplicates.
std::vector<std::string> required_labels(const std::vector<std::string>& task_labels);

// The requirements of `task_labels` missing from `worker_labels` (empty: the worker qualifies).
std::vector<std::string> unmet_requirements(const std::vector<std::string>& task_labels,
                                            const std::vector<std::string>& worker_labels);

// A registered worker as dispatch sees it.
struct WorkerCandidate {
  std::string id;
  int capacity = 1;
  int load = 0;  // attempts it holds now
  std::vector<std::string> labels;
  bool live = true;  // heard from within its liveness budget
  bool image_present = true;
};

// The index of the candidate to dispatch a task with `task_labels` to, or nullopt when none
// qualifies. Qualifies: live, image present, load below capacity, requirements met. Among
// those, the least loaded relative to capacity wins; ties go to fewer running, then to the
// smaller id, so equal workers fill evenly and the choice is reproducible.
std::optional<size_t> choose_worker(const std::vector<WorkerCandidate>& candidates,
                                    const std::vector<std::string>& task_labels);

}  // namespace polyphony
