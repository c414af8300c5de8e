// The JSON shapes of the API: the same as `polyphony status --json`, `show --json` and
// `workers --json`, with every string redacted (common/log.h) before it leaves.
#pragma once

#include <nlohmann/json.hpp>
#include <vector>

#include "coordinator/state_store.h"
#include "coordinator/task.h"
#include "protocol/messages.h"

namespace polyphony::dashboard {

// "2026-12-02T22:43:54Z"; "" for 0.
std::string iso_utc(int64_t ms);

nlohmann::json task_json(const Task& task);
nlohmann::json runs_json(const std::vector<AgentRun>& runs);
// One transition (or note, from == to) of a task's history; with its seq, the stream's cursor.
nlohmann::json event_json(const TaskEvent& event);
nlohmann::json worker_json(const protocol::WorkerStatus& worker, int64_t now_ms);

}  // namespace polyphony::dashboard
