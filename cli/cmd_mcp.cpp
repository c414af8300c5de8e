// `polyphony mcp`: the Model Context Protocol server (mcp/) on stdin and stdout.
#include <iostream>

#include "cli/cli.h"
#include "cli/client_connection.h"
#include "coordinator/coordinator.h"
#include "mcp/server.h"
#include "mcp/tools.h"

namespace polyphony::cli {

namespace {

constexpr const char* kMcpFooter =
    R"(Speaks MCP (JSON-RPC 2.0, one message a line) on stdin and stdout; diagnostics go to stderr.
Register it with an agent, e.g. `claude mcp add polyphony -- polyphony mcp`, or in Codex's
config.toml: [mcp_servers.polyphony] command = "polyphony", args = ["mcp"] (README: "Polyphony
as a tool for agents"). Tools: spawn, status, show, logs, wait, cancel, retry, route_explain, team.
)";

int mcp(const Args& args) {
  const std::string local = local_client_endpoint(polyphony_home());
  mcp::ToolOptions options;
  options.target.endpoint = args.get("coordinator", local);
  options.local = options.target.endpoint == local;
  auto keys = client_keys(args, options.target.endpoint);
  if (!keys.ok()) return report(keys.error());
  options.target.keys = *keys;
  mcp::Server server("polyphony", POLYPHONY_VERSION, mcp::polyphony_tools(options));
  mcp::serve_stdio(server, std::cin, std::cout);
  return kExitOk;
}

}  // namespace

void add_mcp(Command& polyphony) {
  Command command = polyphony.add("mcp", "serve Polyphony's tools to agents over MCP (stdio)", mcp);
  command
      .option("--coordinator", "ENDPOINT",
              "e.g. tcp://host:7702 (default: this machine's coordinator, ipc://$POLYPHONY_HOME/coordinator.sock)")
      .footer(kMcpFooter);
  add_client_security_flags(command);
}

}  // namespace polyphony::cli
