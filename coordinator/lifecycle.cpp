// The task lifecycle: states and the allowed transitions between them.
#include "coordinator/lifecycle.h"

#include <array>
#include <utility>

namespace polyphony {

namespace {

constexpr std::array<std::pair<TaskState, std::string_view>, 10> kNames{{
    {TaskState::kDiscovered, "DISCOVERED"},
    {TaskState::kClaimed, "CLAIMED"},
    {TaskState::kRouted, "ROUTED"},
    {TaskState::kProvisioned, "PROVISIONED"},
    {TaskState::kRunning, "RUNNING"},
    {TaskState::kVerifying, "VERIFYING"},
    {TaskState::kLanded, "LANDED"},
    {TaskState::kFailed, "FAILED"},
    {TaskState::kBlocked, "BLOCKED"},
    {TaskState::kCancelled, "CANCELLED"},
}};

}  // namespace

std::string_view to_string(TaskState state) {
  for (const auto& [s, name] : kNames) {
    if (s == state) return name;
  }
  return "UNKNOWN";
}

std::optional<TaskState> parse_task_state(std::string_view name) {
  for (const auto& [s, n] : kNames) {
    if (n == name) return s;
  }
  return std::nullopt;
}

const std::vector<TaskState>& all_task_states() {
  static const std::vector<TaskState> states = [] {
    std::vector<TaskState> v;
    for (const auto& [s, n] : kNames) v.push_back(s);
    return v;
  }();
  return states;
}

bool can_transition(TaskState from, TaskState to) {
  using S = TaskState;
  if (to == S::kCancelled) return !is_finished(from) || from == S::kFailed;
  switch (from) {
    case S::kDiscovered:
      return to == S::kClaimed;
    case S::kClaimed:
      return to == S::kRouted;
    case S::kRouted:
      return to == S::kProvisioned || to == S::kFailed;
    case S::kProvisioned:
      return to == S::kRunning || to == S::kFailed;
    case S::kRunning:
      return to == S::kVerifying || to == S::kFailed;
    // VERIFYING -> RUNNING: a reviewer requested changes and the implementer works again.
    case S::kVerifying:
      return to == S::kLanded || to == S::kFailed || to == S::kRunning;
    case S::kFailed:
      return to == S::kClaimed || to == S::kBlocked;
    case S::kBlocked:
      return to == S::kClaimed;
    case S::kLanded:
    case S::kCancelled:
      return false;
  }
  return false;
}

bool is_finished(TaskState state) {
  return state == TaskState::kLanded || state == TaskState::kFailed || state == TaskState::kBlocked ||
         state == TaskState::kCancelled;
}

bool is_active(TaskState state) {
  return state == TaskState::kRouted || state == TaskState::kProvisioned || state == TaskState::kRunning ||
         state == TaskState::kVerifying;
}

}  // namespace polyphony

namespace polyphony {

const std::vector<TaskState>& active_task_states() {
  static const std::vector<TaskState> states = [] {
    std::vector<TaskState> v;
    for (TaskState s : all_task_states()) {
      if (is_active(s)) v.push_back(s);
    }
    return v;
  }();
  return states;
}

}  // namespace polyphony
