// Every command of every program answers -h and --help on stdout with exit 0, listing each flag
// it takes; the list of commands and flags comes from the programs' own definitions.
#include <catch2/catch.hpp>

#include "cli/cli.h"
#include "common/process.h"

using namespace polyphony;
using namespace polyphony::cli;

namespace {

ProcessResult run(const std::vector<std::string>& argv) {
  ProcessOptions o;
  o.timeout = std::chrono::seconds(30);
  o.env["POLYPHONY_HOME"] = "/nonexistent/polyphony-home";  // help reads no file
  auto r = run_process(argv, o);
  REQUIRE(r.ok());
  return *r;
}

void check_help(const std::string& program, const CommandLine& line) {
  const auto commands = line.commands();
  REQUIRE(commands.size() >= 1);
  for (const auto& c : commands) {
    for (const std::string help : {"--help", "-h"}) {
      std::vector<std::string> argv{program};
      argv.insert(argv.end(), c.path.begin(), c.path.end());
      argv.push_back(help);
      std::string named = line.program();
      for (const auto& w : c.path) named += " " + w;
      INFO(named << " " << help);
      const auto r = run(argv);
      CHECK(r.exit_code == 0);
      CHECK(r.err.empty());
      CHECK_THAT(r.out, Catch::Contains(named));
      for (const auto& flag : c.flags) CHECK_THAT(r.out, Catch::Contains(flag));
    }
  }
}

// True when `line` defines the command at `path`.
bool defines(const CommandLine& line, const std::vector<std::string>& path) {
  for (const auto& c : line.commands()) {
    if (c.path == path) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("every polyphony command answers --help and -h with each of its flags") {
  const CommandLine line = polyphony_command_line();
  CHECK(line.commands().size() >= 20);  // status, spawn, image build, ...
  // The fleet's commands are among those checked.
  const std::vector<std::vector<std::string>> fleet_commands{{"cleanup"}, {"mcp"}, {"workers", "remove"}};
  for (const auto& path : fleet_commands) {
    INFO(path[0]);
    CHECK(defines(line, path));
  }
  check_help(POLYPHONY_CLI, line);
}

TEST_CASE("polyphony-worker and polyphony-submit answer --help and -h with each of their flags") {
  CHECK(defines(worker_command_line(), {"cleanup"}));
  check_help(POLYPHONY_WORKER_CLI, worker_command_line());
  check_help(POLYPHONY_SUBMIT_CLI, submit_command_line());
}

TEST_CASE("polyphony-runner, which takes a socket and no flags, answers --help and -h") {
  for (const std::string help : {"--help", "-h"}) {
    const auto r = run({POLYPHONY_RUNNER_CLI, help});
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::Contains("usage: polyphony-runner SOCKET"));
  }
}

TEST_CASE("polyphony --help lists every command with its description, from the same definitions") {
  const auto r = run({POLYPHONY_CLI, "--help"});
  CHECK(r.exit_code == 0);
  for (const auto& c : polyphony_command_line().commands()) {
    if (c.path.size() == 1) CHECK_THAT(r.out, Catch::Contains("  " + c.path[0] + " "));
  }
  const auto bare = run({POLYPHONY_CLI});
  CHECK(bare.exit_code == kExitUsage);
  CHECK(bare.out.empty());
  CHECK_THAT(bare.err, Catch::Contains("status"));
  const auto via_help = run({POLYPHONY_CLI, "help", "image", "build"});
  CHECK(via_help.exit_code == 0);
  CHECK_THAT(via_help.out, Catch::Contains("polyphony image build") && Catch::Contains("--agents"));
}
