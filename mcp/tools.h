// Polyphony's tools for the MCP server: spawn, status, show, logs, wait, cancel, retry,
// route_explain and team. They talk to a running coordinator through its client endpoint as the
// CLI does, and give the CLI's answers (the `--json` shapes) and its error messages.
#pragma once

#include <vector>

#include "cli/client_connection.h"
#include "mcp/server.h"

namespace polyphony::mcp {

struct ToolOptions {
  // The coordinator's client endpoint and, for a tcp:// one, the CURVE keys.
  cli::ClientTarget target;
  // True when the coordinator keeps its state in this machine's POLYPHONY_HOME (the default
  // endpoint): status, show and logs then read it as the CLI does. A remote coordinator answers
  // status for given ids only; show, logs and route_explain need its home.
  bool local = true;
};

// The most bytes of log text one `logs` call returns (its max_bytes may ask for less).
inline constexpr int64_t kMaxLogBytes = 256 * 1024;
// The most tasks one `team` call spawns.
inline constexpr int kMaxTeamTasks = 20;

std::vector<Tool> polyphony_tools(const ToolOptions& options);

// The part of `text` from byte `offset` (the last `max_bytes` when offset is negative), cut at
// UTF-8 character boundaries: the `logs` tool's paging. Returns {start, end}.
std::pair<size_t, size_t> log_window(const std::string& text, int64_t offset, int64_t max_bytes);

}  // namespace polyphony::mcp
