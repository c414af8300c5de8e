// The task lifecycle: states, the allowed transitions between them, and their names.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace polyphony {

enum class TaskState {
  kDiscovered,
  kClaimed,
  kRouted,
  kProvisioned,
  kRunning,
  kVerifying,
  kLanded,
  kFailed,
  kBlocked,
  kCancelled,
};

// "DISCOVERED", "CLAIMED", ...
std::string_view to_string(TaskState state);
std::optional<TaskState> parse_task_state(std::string_view name);

// Every state, in lifecycle order.
const std::vector<TaskState>& all_task_states();

// DISCOVERED -> CLAIMED -> ROUTED -> PROVISIONED -> RUNNING -> VERIFYING -> LANDED;
// ROUTED, PROVISIONED, RUNNING or VERIFYING -> FAILED (the attempt ended badly: infrastructure
// errors can strike before the agent runs); FAILED -> CLAIMED (retry) or BLOCKED;
// VERIFYING -> RUNNING (a reviewer sent the work back); BLOCKED -> CLAIMED (manual retry);
// any live state -> CANCELLED.
bool can_transition(TaskState from, TaskState to);

// LANDED, FAILED (when not retried), BLOCKED, CANCELLED: no worker is working on it.
bool is_finished(TaskState state);

// A state in which a worker holds (or is about to hold) the task.
bool is_active(TaskState state);

// Every state for which is_active() holds, in lifecycle order.
const std::vector<TaskState>& active_task_states();

}  // namespace polyphony
