// The task views `status`, `show` and `logs` print, as values, for other front ends (the MCP
// server) to give the same answers. They read this machine's POLYPHONY_HOME: the state DB, the
// queue and the log files.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/command_line.h"
#include "common/config.h"
#include "coordinator/state_store.h"
#include "protocol/messages.h"

namespace polyphony::cli {

// What `status --json` prints for the filters in `args` (positional IDs, --state, --repo,
// --limit): the tasks, newest first. Errors name the flag at fault, or the unknown id.
Result<nlohmann::json> status_json(const Args& args, const Config& config);

// What `show ID --json` prints: the task, its body, agent runs and events.
Result<nlohmann::json> show_json(const std::string& id, const Config& config);

// The task's recorded transitions, oldest first (none before the coordinator recorded any).
Result<std::vector<TaskEvent>> task_events(const Config& config, const std::string& id);

// What `logs ID [--attempt N]` prints without --follow: each attempt's streams, a header line
// before each.
Result<std::string> logs_text(const Args& args, const Config& config);

// What `route --explain --json` prints for the task in `args` (TITLE and the task flags).
Result<nlohmann::json> route_explain_json(const Args& args, const Settings& settings);

// The part of `text` from byte `offset` (the last `max_bytes` when offset is negative), cut at
// UTF-8 character boundaries: how the logs view pages. Returns {start, end}.
std::pair<size_t, size_t> log_window(const std::string& text, int64_t offset, int64_t max_bytes);

// The coordinator's answer to a client's ViewQuery, from its host's state as the CLI reads it:
// status and show as `status --json` and `show ID --json`; logs as {"id", "text", "offset",
// "next_offset", "total_bytes"}, a page of what `logs ID` prints; route_explain as `route
// --explain --json` (a local-path repo must be one clients may name: check_client_repo). An
// error is the CLI's, its `where` the flag at fault.
protocol::ViewReply answer_view(const protocol::ViewQuery& query, const Settings& settings);

}  // namespace polyphony::cli
