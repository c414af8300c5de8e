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
  status [ID] [--json]           tasks: id, state, agent, branch, worker, age
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
  workers [--json]               the coordinator's workers: state, heartbeat age, load, labels, tasks
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
      {"route", cmd_route}, {"config", cmd_config}, {"keys", cmd_keys}, {"workers", cmd_workers}};
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

int report(const Error& e) {
  std::cerr << "polyphony: " << e.to_string() << "\n";
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

std::string age(int64_t then_ms, int64_t now_ms) {
  int64_t s = std::max<int64_t>(0, (now_ms - then_ms) / 1000);
  if (s < 120) return std::to_string(s) + "s";
  if (s < 7200) return std::to_string(s / 60) + "m";
  if (s < 172800) return std::to_string(s / 3600) + "h";
  return std::to_string(s / 86400) + "d";
}

}  // namespace polyphony::cli
