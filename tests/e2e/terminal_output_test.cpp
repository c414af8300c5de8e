// What `polyphony status` and `polyphony config show` print, run as a user runs them: on a
// terminal (a real pseudo-terminal of a given width) and into a pipe.
#include <catch2/catch.hpp>

#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fcntl.h>

#include <regex>
#include <sstream>

#include "coordinator/state_store.h"
#include "single_box.h"

using namespace polyphony;
using namespace polyphony::testing;
using nlohmann::json;

namespace {

const std::map<std::string, std::string> kOneFile{{"README.md", "x\n"}};
const std::string kLongReason =
    "verify failed: `make test` exited with status 2 (tests/login_test.cpp:41 expected a redirect to /home, "
    "got a 500 from the session middleware) and the same tree failed before, so the task gave up";

struct TerminalRun {
  int exit_code = -1;
  std::string out;  // what the program wrote to the terminal, "\r\n" made "\n"
};

// Runs argv on a new pseudo-terminal `columns` wide with exactly `env`; stderr goes nowhere.
TerminalRun run_on_terminal(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                            unsigned short columns) {
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> cargv, cenv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  for (const auto& e : env_strings) cenv.push_back(const_cast<char*>(e.c_str()));
  cargv.push_back(nullptr);
  cenv.push_back(nullptr);
  winsize ws{};
  ws.ws_row = 40;
  ws.ws_col = columns;
  int master = -1;
  const pid_t pid = forkpty(&master, nullptr, nullptr, &ws);
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const int null = open("/dev/null", O_WRONLY);
    dup2(null, STDERR_FILENO);
    execve(cargv[0], cargv.data(), cenv.data());
    _exit(127);
  }
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  char buf[4096];
  while (true) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{master, POLLIN, 0};
    const int ready = left.count() > 0 ? poll(&p, 1, static_cast<int>(left.count())) : 0;
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) {
      kill(pid, SIGKILL);
      break;
    }
    const ssize_t n = read(master, buf, sizeof buf);
    if (n <= 0) break;  // EIO: the program closed the terminal
    out.append(buf, static_cast<size_t>(n));
  }
  int status = 0;
  waitpid(pid, &status, 0);
  close(master);
  out = std::regex_replace(out, std::regex("\r\n"), "\n");
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::map<std::string, std::string> terminal_env(const SingleBox& box) {
  const char* path = std::getenv("PATH");
  const char* home = std::getenv("HOME");
  return {{"PATH", path ? path : "/usr/bin:/bin"},
          {"HOME", home ? home : "/root"},
          {"POLYPHONY_HOME", box.home().string()},
          {"POLYPHONY_LOG_LEVEL", "warn"},
          {"TERM", "xterm-256color"}};
}

// Columns a line takes: escape sequences take none, a UTF-8 code point one.
size_t columns_of(const std::string& line) {
  const std::string plain = std::regex_replace(line, std::regex("\x1b\\[[0-9;]*m"), "");
  size_t n = 0;
  for (unsigned char c : plain) n += (c & 0xC0) != 0x80;
  return n;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// A task put straight into the state DB, walked along the lifecycle to `final`.
void seed(const SingleBox& box, const std::string& id, const std::string& repo, TaskState final, int64_t created_ms,
          const std::string& reason = "") {
  auto store = StateStore::open(box.home() / "state.db");
  REQUIRE(store.ok());
  TaskRequest r;
  r.id = id;
  r.title = "Task " + id;
  r.repo = repo;
  REQUIRE(*store->add(r, created_ms));
  using S = TaskState;
  std::vector<S> path{S::kDiscovered, S::kClaimed, S::kRouted};
  if (final == S::kLanded || final == S::kRunning) path.insert(path.end(), {S::kProvisioned, S::kRunning});
  if (final == S::kLanded) path.insert(path.end(), {S::kVerifying, S::kLanded});
  if (final == S::kFailed || final == S::kBlocked) path.push_back(S::kFailed);
  if (final == S::kBlocked) path.push_back(S::kBlocked);
  for (size_t i = 1; i < path.size(); ++i) {
    TransitionUpdate u;
    if (path[i] == S::kRouted) {
      u.agent = "scripted";
      u.worker = "local-worker-with-a-long-name";
      u.branch = "polyphony/" + id + "-a-branch-named-after-a-rather-long-task-title";
      u.attempt = 1;
    }
    if (i + 1 == path.size()) u.reason = reason;
    REQUIRE(store->transition(id, path[i - 1], path[i], u, created_ms + static_cast<int64_t>(i)).ok());
  }
}

std::vector<std::string> ids_of(const json& tasks) {
  std::vector<std::string> ids;
  for (const auto& t : tasks) ids.push_back(t["id"]);
  return ids;
}

// Three tasks on the box's origin and one on another repo, oldest first.
void seed_four(const SingleBox& box) {
  const int64_t now = now_ms();
  seed(box, "aaaa0001", box.origin().string(), TaskState::kLanded, now - 4 * 3600000);
  seed(box, "aaaa0002", box.origin().string(), TaskState::kBlocked, now - 3 * 60000, kLongReason);
  seed(box, "aaaa0003", "/srv/git/other.git", TaskState::kLanded, now - 2 * 60000);
  seed(box, "aaaa0004", box.origin().string(), TaskState::kRunning, now - 12000);
}

}  // namespace

TEST_CASE("status on a terminal fits its width, keeps task ids whole, wraps the reason and colours the states") {
  SingleBox box(kOneFile);
  seed_four(box);
  for (unsigned short width : {80, 100}) {
    auto r = run_on_terminal({POLYPHONY_CLI, "status"}, terminal_env(box), width);
    INFO(r.out);
    REQUIRE(r.exit_code == 0);
    for (const auto& line : lines_of(r.out)) CHECK(columns_of(line) <= width);
    for (const char* id : {"aaaa0001", "aaaa0002", "aaaa0003", "aaaa0004"}) CHECK(r.out.find(id) != std::string::npos);
    CHECK(r.out.find("\x1b[32mLANDED\x1b[0m") != std::string::npos);
    CHECK(r.out.find("\x1b[31mBLOCKED\x1b[0m") != std::string::npos);
    CHECK(r.out.find("\x1b[33mRUNNING\x1b[0m") != std::string::npos);
    std::stringstream words(kLongReason);
    for (std::string word; words >> word;) CHECK(r.out.find(word) != std::string::npos);  // wrapped, nothing cut
    CHECK(std::regex_search(r.out, std::regex("  \\d+s ago")));                           // aaaa0004, made 12 s before
    CHECK(r.out.find("3m ago") != std::string::npos);
    CHECK(r.out.find("4h ago") != std::string::npos);
  }
}

TEST_CASE("NO_COLOR or TERM=dumb turn the colours off on a terminal") {
  SingleBox box(kOneFile);
  seed_four(box);
  auto env = terminal_env(box);
  env["NO_COLOR"] = "1";
  auto no_color = run_on_terminal({POLYPHONY_CLI, "status"}, env, 80);
  REQUIRE(no_color.exit_code == 0);
  CHECK(no_color.out.find("LANDED") != std::string::npos);
  CHECK(no_color.out.find('\x1b') == std::string::npos);
  env.erase("NO_COLOR");
  env["TERM"] = "dumb";
  auto dumb = run_on_terminal({POLYPHONY_CLI, "status"}, env, 80);
  REQUIRE(dumb.exit_code == 0);
  CHECK(dumb.out.find("LANDED") != std::string::npos);
  CHECK(dumb.out.find('\x1b') == std::string::npos);
}

TEST_CASE("piped, status has no escape byte, cuts nothing and keeps one line a task, newest first") {
  SingleBox box(kOneFile);
  seed_four(box);
  box.set_env("COLUMNS", "40");  // a terminal's width; a pipe has none
  auto r = box.cli({"status"});
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find('\x1b') == std::string::npos);
  const auto lines = lines_of(r.out);
  REQUIRE(lines.size() == 5);
  CHECK(lines[0].rfind("ID ", 0) == 0);
  CHECK(lines[1].rfind("aaaa0004 ", 0) == 0);
  CHECK(lines[4].rfind("aaaa0001 ", 0) == 0);
  CHECK(lines[3].find(kLongReason) != std::string::npos);
  CHECK(lines[3].find("polyphony/aaaa0002-a-branch-named-after-a-rather-long-task-title") != std::string::npos);
}

TEST_CASE("status --state and --limit filter the tasks, in the table and in --json") {
  SingleBox box(kOneFile);
  seed_four(box);
  auto newest_landed = box.cli({"status", "--state", "landed", "--limit", "1"});
  REQUIRE(newest_landed.exit_code == 0);
  const auto lines = lines_of(newest_landed.out);
  REQUIRE(lines.size() == 2);
  CHECK(lines[1].rfind("aaaa0003 ", 0) == 0);
  auto json_of = [&](const std::vector<std::string>& args) {
    std::vector<std::string> argv{"status", "--json"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = box.cli(argv);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    return ids_of(json::parse(r.out));
  };
  using Ids = std::vector<std::string>;
  CHECK(json_of({"--state", "LANDED"}) == Ids{"aaaa0003", "aaaa0001"});
  CHECK(json_of({"--state", "Landed", "--limit", "1"}) == Ids{"aaaa0003"});
  CHECK(json_of({"--state", "blocked,running"}) == Ids{"aaaa0004", "aaaa0002"});
  CHECK(json_of({"--state", "blocked", "--state", "landed"}) == Ids{"aaaa0003", "aaaa0002", "aaaa0001"});
  CHECK(json_of({"--repo", box.origin().string()}) == Ids{"aaaa0004", "aaaa0002", "aaaa0001"});
  CHECK(json_of({"--repo", "/srv/git/other.git", "--state", "landed"}) == Ids{"aaaa0003"});
  CHECK(json_of({"--state", "cancelled"}).empty());
  CHECK(json_of({"--limit", "2"}) == Ids{"aaaa0004", "aaaa0003"});
}

TEST_CASE("status refuses an unknown --state or a --limit that is not a positive number, naming the flag") {
  SingleBox box(kOneFile);
  seed_four(box);
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<Case> cases{
      {{"status", "--state", "done"}, "--state: unknown state 'done' (valid states: DISCOVERED, CLAIMED, ROUTED"},
      {{"status", "--state", "landed,nope"}, "--state: unknown state 'nope'"},
      {{"status", "--json", "--state", "LANDED", "--state", "x"}, "BLOCKED, CANCELLED)"},
      {{"status", "--limit", "0"}, "--limit: expected a positive whole number (the most tasks to show), got '0'"},
      {{"status", "--limit", "-3"}, "--limit"},
      {{"status", "--limit", "ten"}, "--limit"},
      {{"status", "--limit", "5x"}, "--limit"},
      {{"status", "--limit"}, "--limit needs a value"},
      {{"status", "--repo", ""}, "--repo"},
  };
  for (const auto& c : cases) {
    auto r = box.cli(c.args);
    INFO(r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.out.empty());
    CHECK_THAT(r.err, Catch::Contains(c.says));
  }
  auto help = box.cli({"status", "--help"});
  CHECK(help.exit_code == 0);
  CHECK_THAT(help.out, Catch::Contains("newest first") && Catch::Contains("--state") && Catch::Contains("--limit"));
}

TEST_CASE("status --json keeps the epoch milliseconds and adds ISO 8601 UTC times") {
  SingleBox box(kOneFile);
  seed_four(box);
  const json tasks = box.status();
  REQUIRE(tasks.size() == 4);
  const std::regex iso("\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ");
  for (const auto& t : tasks) {
    CHECK(t["created_at_ms"].get<int64_t>() > 0);
    CHECK(t["updated_at_ms"].get<int64_t>() >= t["created_at_ms"].get<int64_t>());
    CHECK(std::regex_match(t["created_at"].get<std::string>(), iso));
    CHECK(std::regex_match(t["updated_at"].get<std::string>(), iso));
  }
  auto show = json::parse(box.cli({"show", "aaaa0002", "--json"}).out);
  REQUIRE(!show["events"].empty());
  CHECK(std::regex_match(show["events"][0]["at"].get<std::string>(), iso));
}

TEST_CASE("config show names the file and line of each value set there and default for the rest, and never a secret") {
  SingleBox box(kOneFile);
  write_file(box.home() / "config.yaml", "poll_interval_ms: 100\n\nmax_concurrency: 7\n");
  const std::string from_env = "env-secret-5a1f9c3e7b";
  const std::string literal = "sk-literal-0f3a9d8c7b6e5d4c";
  const std::string agent_token = "ghp_0123456789abcdefABCDEF0123456789abcd";
  write_file(box.home() / "identities.yaml",
             "identities:\n"
             "  anthropic:\n"
             "    env:\n"
             "      ANTHROPIC_API_KEY: {from_env: POLYPHONY_TEST_SECRET}\n"
             "      EXTRA_KEY: {value: " +
                 literal +
                 "}\n"
                 "  openai: {}\n  moonshot: {}\n");
  std::string agents = read_file(box.home() / "agents.yaml");
  agents = std::regex_replace(agents, std::regex("DISABLE_TELEMETRY: \"1\""),
                              "DISABLE_TELEMETRY: \"1\"\n      GITHUB_TOKEN: " + agent_token);
  write_file(box.home() / "agents.yaml", agents);
  box.set_env("POLYPHONY_TEST_SECRET", from_env);
  REQUIRE(box.cli({"config", "check"}).exit_code == 0);

  auto r = box.cli({"config", "show"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  INFO(r.out);
  CHECK(std::regex_search(r.out, std::regex("\nmax_concurrency +7 +config\\.yaml:3\n")));
  CHECK(std::regex_search(r.out, std::regex("\nreview_rounds +2 +default\n")));
  CHECK(std::regex_search(r.out, std::regex("\ncontainer\\.image +polyphony-worker:latest +default\n")));
  CHECK(std::regex_search(r.out, std::regex("identities\\.anthropic\\.env\\.ANTHROPIC_API_KEY +from_env "
                                            "POLYPHONY_TEST_SECRET \\(set\\) +identities\\.yaml:4\n")));
  CHECK(std::regex_search(r.out, std::regex("\ndefault\\.agent +codex +routing\\.yaml:\\d+\n")));
  CHECK(r.out.find('\x1b') == std::string::npos);
  for (const auto& secret : {from_env, literal, agent_token}) CHECK(r.out.find(secret) == std::string::npos);

  auto j = box.cli({"config", "show", "--json"});
  REQUIRE(j.exit_code == 0);
  for (const auto& secret : {from_env, literal, agent_token}) CHECK(j.out.find(secret) == std::string::npos);
  std::map<std::string, json> by_key;
  const json shown = json::parse(j.out);
  for (const auto& v : shown["values"]) by_key[v["key"].get<std::string>()] = v;
  CHECK(by_key["max_concurrency"]["value"] == 7);
  CHECK(by_key["max_concurrency"]["line"] == 3);
  CHECK(by_key["max_concurrency"]["source"] == (box.home() / "config.yaml").string() + ":3");
  CHECK(by_key["review_rounds"]["source"] == "default");
  CHECK(by_key["review_rounds"]["line"].is_null());
  CHECK(by_key["identities.anthropic.env.ANTHROPIC_API_KEY"]["value"] ==
        json{{"from_env", "POLYPHONY_TEST_SECRET"}, {"set", true}});
  CHECK(by_key["identities.anthropic.env.EXTRA_KEY"]["value"] == json{{"value", "<redacted>"}});
  CHECK(by_key["agents.claude.env.GITHUB_TOKEN"]["value"] == "<redacted>");
  CHECK(by_key["agents.claude.env.DISABLE_TELEMETRY"]["value"] == "1");
}

TEST_CASE("config show on a terminal fits its width and keeps every key and source whole") {
  SingleBox box(kOneFile);
  auto r = run_on_terminal({POLYPHONY_CLI, "config", "show"}, terminal_env(box), 90);
  INFO(r.out);
  REQUIRE(r.exit_code == 0);
  for (const auto& line : lines_of(r.out)) {
    if (line.find(box.home().string()) != std::string::npos) continue;  // the file headings name their path
    CHECK(columns_of(line) <= 90);
  }
  CHECK(std::regex_search(r.out, std::regex("agents\\.codex\\.command +\\[codex, exec,")));
  CHECK(r.out.find("\x1b[2mdefault\x1b[0m") != std::string::npos);
}
