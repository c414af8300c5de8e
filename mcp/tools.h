// Polyphony's tools for the MCP server: spawn, status, show, logs, wait, cancel, retry,
// route_explain and team. They talk to a running coordinator through its client endpoint as the
// CLI does, and give the CLI's answers (the `--json` shapes) and its error messages.
#pragma once

#include <vector>

#include "cli/client_connection.h"
#include "cli/task_views.h"
#include "mcp/server.h"

namespace polyphony::mcp {

struct ToolOptions {
  // The coordinator's client endpoint and, for a tcp:// one, the CURVE keys.
  cli::ClientTarget target;
  // True when the coordinator keeps its state in this machine's POLYPHONY_HOME (the default
  // endpoint): status, show, logs and route_explain then read it as the CLI does. Otherwise
  // they ask the coordinator for the same views over its client endpoint (a view_query).
  bool local = true;
};

// The most bytes of log text one `logs` call returns (its max_bytes may ask for less).
inline constexpr int64_t kMaxLogBytes = protocol::kMaxViewLogBytes;
// The most tasks one `team` call spawns.
inline constexpr int kMaxTeamTasks = 20;

std::vector<Tool> polyphony_tools(const ToolOptions& options);

// The `logs` tool's paging (cli/task_views.h).
using cli::log_window;

}  // namespace polyphony::mcp
