// A task as the coordinator knows it: what was asked, and where it stands.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "coordinator/lifecycle.h"

namespace polyphony {

// What was asked: the fields a work source provides.
struct TaskRequest {
  std::string id;
  std::string title;
  std::string body;
  std::string repo;         // a repos: name from config.yaml, a local path, or a URL
  std::string base_branch;  // empty: the repo's configured or default branch
  std::string task_type;    // "bugfix", "feature", "docs", ...
  std::string risk;         // "low", "medium", "high"
  std::vector<std::string> labels;
  std::string agent;  // explicit agent (overrides routing); empty: route
  std::string source = "queue";
  int64_t created_at_ms = 0;
};

// A task and its current standing.
struct Task {
  TaskRequest request;
  TaskState state = TaskState::kDiscovered;
  int attempt = 0;    // attempts started so far
  std::string agent;  // agent of the current/last attempt
  std::string branch;
  std::string worker;  // worker holding the current attempt
  int64_t epoch = 0;   // lease epoch of the current attempt
  std::string reason;  // why it failed/blocked/was cancelled
  std::string failure_kind;
  std::string commit;         // task branch head after the last attempt
  std::string merged_commit;  // base branch head after landing
  int64_t updated_at_ms = 0;
  int64_t next_attempt_at_ms = 0;
  int budget_start = 0;                   // attempts before the last manual retry; max_attempts counts from here
  int score = -1;                         // complexity total 0-10 from the claim; -1: not scored
  std::string plan;                       // "solo", "review", "strong" (empty before routing)
  std::string reviewer;                   // the review plan's reviewer
  std::vector<std::string> failed_trees;  // trees whose verify failed: the same tree is not tried again
};

// A task LANDED with nothing pushed when the base already held its change (its branch, rebased
// onto the base, changed nothing): its reason starts with this, its merged_commit is that base
// commit and its commit is empty.
inline constexpr std::string_view kAlreadyInBase = "already in base";

inline std::string already_in_base_reason(const std::string& base_commit) {
  return std::string(kAlreadyInBase) + ": " + base_commit.substr(0, 12) +
         " on the base branch already holds this change; nothing was pushed";
}

// The base commit that already held the task's change when it LANDED with nothing pushed; else empty.
inline std::string already_in_base(const Task& t) {
  const bool held = t.state == TaskState::kLanded && t.commit.empty() && t.reason.rfind(kAlreadyInBase, 0) == 0;
  return held ? t.merged_commit : std::string();
}

struct TaskEvent {
  std::string task_id;
  std::string from;
  std::string to;
  int attempt = 0;
  std::string worker;
  std::string reason;
  int64_t at_ms = 0;
  int64_t seq = 0;  // its place in the DB's order of all events (events_after)
  // The failure kind (protocol::FailureKind's name) of the attempt this event failed: set on
  // the event that entered FAILED, or CANCELLED an attempt ("cancelled"); empty otherwise.
  std::string failure_kind;
};

}  // namespace polyphony
