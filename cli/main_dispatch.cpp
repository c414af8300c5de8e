// `polyphony <command>`: finds the subcommand and runs it.
#include <iostream>
#include <map>

#include "cli/cli.h"
#include "common/data_dir.h"
#include "common/log.h"

namespace polyphony::cli {

namespace {

constexpr const char* kUsage = R"(usage: polyphony <command> [options]

Commands:
  init [--force]                 create ~/.polyphony (POLYPHONY_HOME) with commented config files
  serve                          run the coordinator with an embedded local worker
  spawn TITLE --repo R [...]     queue a task; prints its id
        [--body TEXT | --body-file F] [--type T] [--risk R] [--label L]... [--agent A] [--base BRANCH]
        [--land-to REMOTE]       R a working clone: land on its remote REMOTE instead of in it
  status [ID] [--json]           tasks, newest first: id, state, agent, branch, worker, age
         [--state S]... [--repo R] [--limit N]
                                 only tasks in state S (any case; failed,blocked for two), on repo R;
                                 the N newest (`polyphony status --help` says more)
  show ID [--json]               one task with its whole history
  logs ID [--attempt N] [-f]     the agent's and verify's output; -f follows it live
  cancel ID                      stop a task (its container is stopped, nothing lands)
  retry ID                       run a FAILED or BLOCKED task again
  cleanup [--dry-run]            remove workspaces and containers of finished tasks
  image build [--force] [--agents all|none|claude,codex]
                                 build the worker image polyphony-worker:latest with the agent
                                 CLIs pinned in docker/agents.lock (default: all of them)
  route --explain TITLE --repo R [--json] [task flags as for spawn]
                                 score a task against a local repo and show its routing; runs nothing
  config check                   report unknown agents, shadowed rules and other problems with file:line
  config show [--json]           the configuration in effect, each value with its file:line or "default"
  workers [--json]               the coordinator's workers: state, heartbeat age, load, labels, tasks
  doctor [--json]                check this host: Docker engine, image and its agent CLIs, identities,
                                 network, disk, clocks; one line each, exit 1 on a problem
  keys gen --name N [--out DIR]  make a CURVE key pair (N.key secret, N.pub public) for a fleet
  version                        print the version and where its data files (docker/) are
)";

}  // namespace

int polyphony_main(const std::vector<std::string>& args) {
  init_logging("info");
  if (args.empty() || args[0] == "help" || args[0] == "--help" || args[0] == "-h") {
    (args.empty() ? std::cerr : std::cout) << kUsage;
    return args.empty() ? kExitUsage : kExitOk;
  }
  static const std::map<std::string, int (*)(const std::vector<std::string>&)> commands{
      {"init", cmd_init},   {"serve", cmd_serve}, {"spawn", cmd_spawn},     {"status", cmd_status},
      {"show", cmd_show},   {"logs", cmd_logs},   {"cleanup", cmd_cleanup}, {"image", cmd_image}, {"cancel", cmd_cancel}, {"retry", cmd_retry},
      {"route", cmd_route}, {"config", cmd_config}, {"keys", cmd_keys}, {"workers", cmd_workers},
      {"doctor", cmd_doctor}};
  if (args[0] == "version" || args[0] == "--version") {
    auto data = data_dir();  // image build's docker/ files: under the install prefix, else the source tree
    std::cout << "polyphony " << POLYPHONY_VERSION << "\n"
              << "data: " << (data ? data->string() : data.error().message) << "\n";
    return kExitOk;
  }
  auto it = commands.find(args[0]);
  if (it == commands.end()) {
    std::cerr << "polyphony: unknown command '" << args[0] << "'\n\n" << kUsage;
    return kExitUsage;
  }
  try {
    return it->second(std::vector<std::string>(args.begin() + 1, args.end()));
  } catch (const std::exception& e) {
    std::cerr << "polyphony: internal error: " << e.what() << "\n";
    return kExitFailed;
  }
}

namespace {
std::string g_program_name = "polyphony";
}  // namespace

void set_program_name(const std::string& name) { g_program_name = name; }

const std::string& program_name() { return g_program_name; }

int report(const Error& e) {
  std::cerr << g_program_name << ": " << e.to_string() << "\n";
  return (e.code == "usage" || e.code == "config") ? kExitUsage : kExitFailed;
}

std::optional<Settings> load_or_report() {
  auto s = load_settings(polyphony_home());
  if (!s.ok()) {
    report(s.error());
    return std::nullopt;
  }
  return *s;
}

}  // namespace polyphony::cli
