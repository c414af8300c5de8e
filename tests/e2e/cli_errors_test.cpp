// Bad input to the CLI: every error names the place that is wrong, and nothing is queued.
#include <catch2/catch.hpp>

#include "single_box.h"

using namespace polyphony;
using namespace polyphony::testing;

namespace {
const std::map<std::string, std::string> kOneFile{{"README.md", "x\n"}};
}  // namespace

TEST_CASE("spawn refuses bad input, naming the flag, and queues nothing") {
  SingleBox box(kOneFile);
  TempDir plain;
  write_file(plain / "big.md", std::string(2 << 20, 'x'));
  struct Case {
    std::vector<std::string> args;
    std::string where;
  };
  const std::vector<Case> cases{
      {{"spawn", "t", "--repo", "/nonexistent/repo"}, "--repo"},
      {{"spawn", "t", "--repo", plain.path().string()}, "not a git repository"},
      {{"spawn", "t", "--repo", box.origin().string(), "--agent", "gpt-99"}, "--agent"},
      {{"spawn", "", "--repo", box.origin().string()}, "title is empty"},
      {{"spawn", std::string(100000, 'a'), "--repo", box.origin().string()},
       "TITLE"},  // argv caps one argument at 128 KiB
      {{"spawn", "bad \xff utf8", "--repo", box.origin().string()}, "UTF-8"},
      {{"spawn", "t", "--repo", box.origin().string(), "--colour", "red"}, "--colour"},
      {{"spawn", "t", "--repo"}, "--repo needs a value"},
      {{"spawn", "t"}, "--repo: a repo is required"},
      {{"spawn", "t", "--repo", box.origin().string(), "--base", "a..b"}, "--base"},
      {{"spawn", "t", "--repo", box.origin().string(), "--body-file", "/nonexistent"}, "--body-file"},
      {{"spawn", "t", "--repo", box.origin().string(), "--agent", "scripted", "--body-file",
        (plain / "big.md").string()},
       "--body-file: the body is larger than 1 MiB"},
  };
  for (const auto& c : cases) {
    auto r = box.cli(c.args);
    INFO(r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.out.empty());
    CHECK_THAT(r.err, Catch::Contains(c.where));
  }
  CHECK(box.status().empty());
}

TEST_CASE("a malformed config file is reported with file and line") {
  SingleBox box(kOneFile);
  write_file(box.home() / "routing.yaml", "rules:\n  - match: {risk: high}\n    agnet: claude\n");
  auto r = box.cli({"status"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("routing.yaml:3:5") && Catch::Contains("unknown key 'agnet'"));
}

TEST_CASE("init refuses to overwrite existing files unless forced") {
  SingleBox box(kOneFile);
  auto again = box.cli({"init"});
  CHECK(again.exit_code == 2);
  CHECK_THAT(again.err, Catch::Contains("refusing to overwrite") && Catch::Contains("--force"));
  auto forced = box.cli({"init", "--force"});
  CHECK(forced.exit_code == 0);
  CHECK_THAT(forced.err, Catch::Contains("Docker engine") && Catch::Contains("worker image"));
}

TEST_CASE("serve names the command that builds a missing image") {
  SingleBox box(kOneFile);
  write_file(box.home() / "config.yaml", "container:\n  image: polyphony-no-such-image:latest\n");
  auto r = box.cli({"serve"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("polyphony image build"));
}

TEST_CASE("image build refuses an unknown agent in --agents, naming the flag and the pinned ones") {
  SingleBox box(kOneFile);
  for (const std::string spec : {"kimi", "claude,kimi", ""}) {
    auto r = box.cli({"image", "build", "--agents", spec});
    INFO(r.err);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("--agents"));
    CHECK_THAT(r.err, Catch::Contains(spec.empty() ? "needs all, none, or agent names"
                                                   : "docker/agents.lock pins: claude, codex"));
  }
}

TEST_CASE("no Docker engine is a clear error") {
  SingleBox box(kOneFile);
  write_file(box.home() / "config.yaml", "docker_host: unix:///nonexistent/docker.sock\n");
  auto r = box.cli({"serve"});
  CHECK(r.exit_code != 0);
  CHECK_THAT(r.err, Catch::Contains("/nonexistent/docker.sock"));
}

TEST_CASE(
    "a second polyphony serve on the same home is refused with the first one's pid, and the first keeps serving") {
  SingleBox box(
      std::map<std::string, std::string>{{"README.md", "# one serve\n"}, {".polyphony.yaml", "verify: true\n"}});
  box.serve();
  REQUIRE(eventually([&] { return box.serve_log().find("serving") != std::string::npos; }));
  auto second = box.cli({"serve"});
  CHECK(second.exit_code != 0);
  CHECK_THAT(second.err, Catch::Contains("another polyphony serve (pid ") && Catch::Contains("is serving this home"));
  const std::string id = box.spawn("Still served", "```sh\necho yes > yes.txt\n```\n");
  CHECK(box.wait_finished({id})[id] == "LANDED");
}

TEST_CASE("spawn refuses at once a task whose agent's credentials are not set, naming the variables and file:line") {
  SingleBox box(std::map<std::string, std::string>{{"README.md", "# creds\n"}});
  write_file(box.home() / "routing.yaml", "default:\n  agent: codex\n");
  box.set_env("OPENAI_API_KEY", "");
  auto r = box.cli({"spawn", "Needs codex", "--repo", box.origin().string()});
  CHECK(r.exit_code != 0);
  CHECK_THAT(r.err, Catch::Contains("agent codex") && Catch::Contains("OPENAI_API_KEY") &&
                        Catch::Contains("identities.yaml:"));
  CHECK(box.status().empty());
  box.set_env("OPENAI_API_KEY", "sk-test-0123456789");
  CHECK(box.cli({"spawn", "Needs codex", "--repo", box.origin().string()}).exit_code == 0);
}

TEST_CASE(
    "with serve running, cancel and retry report whether serve applied them: a refusal exits non-zero with its "
    "reason") {
  SingleBox box(
      std::map<std::string, std::string>{{"README.md", "# control\n"}, {".polyphony.yaml", "verify: true\n"}});
  const std::string id = box.spawn("Lands", "```sh\necho yes > yes.txt\n```\n");
  box.serve();
  REQUIRE(box.wait_finished({id})[id] == "LANDED");
  auto cancel = box.cli({"cancel", id});
  CHECK(cancel.exit_code == 1);
  CHECK_THAT(cancel.err, Catch::Contains("cancel refused") && Catch::Contains("already LANDED"));
  auto retry = box.cli({"retry", id});
  CHECK(retry.exit_code == 1);
  CHECK_THAT(retry.err, Catch::Contains("only FAILED or BLOCKED tasks can be retried"));
  box.stop_serving();
  auto queued = box.cli({"cancel", id});
  CHECK(queued.exit_code == 0);
  CHECK_THAT(queued.err, Catch::Contains("is queued"));
}

TEST_CASE("logs --attempt naming an attempt the task has not had is a usage error naming the flag") {
  SingleBox box(std::map<std::string, std::string>{{"README.md", "# logs\n"}});
  const std::string id = box.spawn("Queued", "```sh\necho x > x.txt\n```\n");
  auto r = box.cli({"logs", id, "--attempt", "9"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("--attempt") && Catch::Contains("--attempt takes 1 to 1"));
  CHECK(box.cli({"logs", id, "--attempt", "1"}).exit_code == 0);
}

TEST_CASE("config check says when there is no home, and which files are missing or empty and so the defaults") {
  SingleBox box(std::map<std::string, std::string>{{"README.md", "# config\n"}});
  write_file(box.home() / "config.yaml", "");
  std::filesystem::remove(box.home() / "routing.yaml");
  auto r = box.cli({"config", "check"});
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("config.yaml: empty: the built-in defaults are used") &&
                        Catch::Contains("routing.yaml: missing") && Catch::Contains("(2 of them the defaults)"));
  ProcessOptions o;
  o.env["POLYPHONY_HOME"] = (box.home() / "absent").string();
  o.timeout = std::chrono::seconds(30);
  auto none = run_process({POLYPHONY_CLI, "config", "check"}, o);
  REQUIRE(none.ok());
  CHECK(none->exit_code == 2);
  CHECK_THAT(none->out, Catch::Contains("absent: no such directory"));
}

TEST_CASE("config check and doctor refuse a key file that is missing, readable by others, or not the secret's half") {
  SingleBox box(std::map<std::string, std::string>{{"README.md", "# keys\n"}});
  const auto home = box.home();
  REQUIRE(box.cli({"keys", "gen", "--name", "coordinator", "--out", (home / "keys").string()}).exit_code == 0);
  REQUIRE(box.cli({"keys", "gen", "--name", "other", "--out", (home / "keys").string()}).exit_code == 0);
  std::filesystem::create_directories(home / "keys" / "workers");
  std::filesystem::copy_file(home / "keys" / "other.pub", home / "keys" / "workers" / "w1.pub");
  const std::string base =
      "coordinator:\n  worker_endpoint: tcp://127.0.0.1:7799\n"
      "  allowed_workers_dir: keys/workers\n";
  auto check = [&](const std::string& keys) {
    write_file(home / "config.yaml", base + keys);
    return box.cli({"config", "check"});
  };
  auto fine = check("  secret_key_file: keys/coordinator.key\n  public_key_file: keys/coordinator.pub\n");
  CHECK(fine.exit_code == 0);
  auto missing = check("  secret_key_file: keys/absent.key\n");
  CHECK(missing.exit_code == 2);
  CHECK_THAT(missing.out, Catch::Contains("config.yaml:4") && Catch::Contains("cannot read the key file") &&
                              Catch::Contains("absent.key"));
  auto mismatched = check("  secret_key_file: keys/coordinator.key\n  public_key_file: keys/other.pub\n");
  CHECK(mismatched.exit_code == 2);
  CHECK_THAT(mismatched.out, Catch::Contains("other.pub is not the public half of"));
  std::filesystem::permissions(home / "keys" / "coordinator.key", std::filesystem::perms::others_read,
                               std::filesystem::perm_options::add);
  auto open = check("  secret_key_file: keys/coordinator.key\n");
  CHECK(open.exit_code == 2);
  CHECK_THAT(open.out, Catch::Contains("readable by group or others") && Catch::Contains("chmod 600"));
  // The location is said once: as the error's place, not again inside its message.
  const std::string line = open.out.substr(0, open.out.find('\n'));
  CHECK(line.find("config.yaml:4") == line.rfind("config.yaml:4"));
  auto doctor = box.cli({"doctor", "--json"});
  CHECK(doctor.exit_code != 0);
  CHECK_THAT(doctor.out, Catch::Contains("\"keys\"") && Catch::Contains("readable by group or others"));
}
