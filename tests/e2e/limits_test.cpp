// Limits and maintenance end to end: run_timeout_s and verify_timeout_s stop what runs past
// them, `retry` of a BLOCKED task, `cleanup` leaving running tasks alone, and dispatch fair
// across repos.
#include <catch2/catch.hpp>

#include "single_box.h"

using namespace polyphony;
using namespace polyphony::testing;

namespace {

namespace fs = std::filesystem;

const std::map<std::string, std::string> kRepo{
    {"README.md", "# limits\n"},
    {".polyphony.yaml", "verify: sh verify.sh\n"},
    // A verify that keeps printing (so no stall timeout applies) for as long as slow-verify asks.
    {"verify.sh",
     "set -e\ntest -f done.txt\n"
     "if [ -f slow-verify ]; then while true; do echo verifying; sleep 0.5; done; fi\n"},
};

int commits_with_subject(const fs::path& origin, const std::string& subject) {
  const std::string log = git(origin, {"log", "--format=%s", "main"});
  int n = 0;
  for (size_t pos = 0; (pos = log.find(subject + "\n", pos)) != std::string::npos; pos += subject.size()) ++n;
  return n;
}

// When the task's history first reached `state` (0 when it never did).
int64_t first_time_in(const SingleBox& box, const std::string& id, const std::string& state) {
  auto show = nlohmann::json::parse(box.cli({"show", id, "--json"}).out);
  for (const auto& e : show["events"]) {
    if (e["to"] == state) return e["at_ms"].get<int64_t>();
  }
  return 0;
}

}  // namespace

TEST_CASE("an agent or a verify that runs past its timeout is stopped, and BLOCKED with that reason") {
  struct Case {
    const char* limit;  // the config line
    const char* title;
    const char* body;    // what runs past the limit; it keeps printing, so only the timeout stops it
    const char* reason;  // what the task's reason says
  };
  const Case c = GENERATE(values<Case>({
      {"run_timeout_s: 3", "Endless agent", "```sh\nwhile true; do echo working; sleep 0.5; done\n```\n",
       "ran past 3 s and was stopped"},
      {"verify_timeout_s: 3", "Endless verify", "```sh\necho done > done.txt\ntouch slow-verify\n```\n",
       "verify ran past 3 s and was stopped"},
  }));
  INFO(c.limit);
  SingleBox box(kRepo, std::string("max_attempts: 1\ncontainer:\n  ") + c.limit + "\n");
  const std::string id = box.spawn(c.title, c.body);
  box.serve();
  auto states = box.wait_finished({id}, std::chrono::seconds(120));
  INFO(box.serve_log());
  REQUIRE(states[id] == "BLOCKED");
  auto t = box.task(id);
  CHECK(t["failure_kind"] == "timeout");
  CHECK_THAT(t["reason"].get<std::string>(), Catch::Contains(c.reason));
  CHECK(box.no_containers_left(id));
  CHECK(commits_with_subject(box.origin(), c.title) == 0);
}

TEST_CASE("retry runs a BLOCKED task again with a fresh budget, and it lands once its cause is fixed") {
  // verify needs fixed.txt on the base too: every attempt fails the same way until it is there.
  SingleBox box(
      std::map<std::string, std::string>{{"README.md", "# blocked\n"},
                                         {".polyphony.yaml", "verify: test -f done.txt && test -f fixed.txt\n"}},
      "max_attempts: 2\n");
  const std::string id = box.spawn("Blocked until fixed", "```sh\necho done > done.txt\n```\n");
  box.serve();
  REQUIRE(box.wait_finished({id})[id] == "BLOCKED");
  const int blocked_after = box.task(id)["attempt"];
  CHECK(blocked_after <= 2);
  commit_to_bare(box.origin(), {{"fixed.txt", "yes\n"}}, "Fix the cause");
  auto r = box.cli({"retry", id});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  REQUIRE(states[id] == "LANDED");
  CHECK(box.task(id)["attempt"] == blocked_after + 1);
  CHECK(commits_with_subject(box.origin(), "Blocked until fixed") == 1);
  CHECK_THAT(box.cli({"show", id}).out, Catch::Contains("retry requested by a user"));
  // A task that is not FAILED or BLOCKED is refused, saying why.
  auto again = box.cli({"retry", id});
  CHECK(again.exit_code == 1);
  CHECK_THAT(again.err, Catch::Contains("only FAILED or BLOCKED"));
}

TEST_CASE("cleanup removes what finished tasks left and leaves a running task's container and workspace alone") {
  SingleBox box(kRepo);
  const std::string done = box.spawn("Finished first", "```sh\necho done > done.txt\n```\n");
  const std::string running = box.spawn(
      "Still running", std::string("```sh\n") + kWaitForGo + "echo done > done.txt\necho more > more.txt\n```\n");
  box.serve();
  REQUIRE(box.wait_state(done, "LANDED"));
  REQUIRE(box.wait_state(running, "RUNNING"));
  const fs::path tasks = box.home() / "workspaces" / "tasks";
  REQUIRE(
      eventually([&] { return fs::exists(tasks / running / "meta" / "task.md") && box.containers_of(running) > 0; }));
  REQUIRE(fs::exists(tasks / done));

  auto cleanup = box.cli({"cleanup"});
  INFO(cleanup.err);
  CHECK(cleanup.exit_code == 0);
  CHECK_FALSE(fs::exists(tasks / done));
  CHECK_THAT(cleanup.err, !Catch::Contains(running));
  CHECK(fs::exists(tasks / running / "meta" / "task.md"));
  CHECK(box.containers_of(running) > 0);
  CHECK(box.task(running)["state"] == "RUNNING");

  // The running task goes on as if nothing happened.
  let_agent_go(box, running);
  auto states = box.wait_finished({running});
  INFO(box.serve_log());
  CHECK(states[running] == "LANDED");
  CHECK(git(box.origin(), {"show", "main:more.txt"}) == "more\n");
}

TEST_CASE("dispatch is fair across repos: a repo's one task does not wait behind another repo's queue") {
  // Two slots, both taken by the busy repo's first tasks (their agents wait for the test). Then
  // two more busy-repo tasks are queued, and one on a quiet repo after them. When a slot frees,
  // the quiet repo's task takes it, though the busy repo's are older.
  SingleBox box(kRepo, "max_concurrency: 2\n");
  TempDir other_dir("polyphony-fair");
  const fs::path other = other_dir.path() / "other.git";
  make_bare_repo(other, kRepo);
  auto busy_task = [&](int i) {
    return box.spawn("Busy repo task " + std::to_string(i), std::string("```sh\n") + kWaitForGo +
                                                                "echo done > done.txt\necho " + std::to_string(i) +
                                                                " > busy-" + std::to_string(i) + ".txt\n```\n");
  };
  std::vector<std::string> busy{busy_task(1), busy_task(2)};
  box.serve();
  REQUIRE(box.wait_state(busy[0], "RUNNING"));
  REQUIRE(box.wait_state(busy[1], "RUNNING"));
  busy.push_back(busy_task(3));
  busy.push_back(busy_task(4));
  auto r = box.cli({"spawn", "Quiet repo task", "--repo", other.string(), "--agent", "scripted", "--body",
                    std::string("```sh\n") + kWaitForGo + "echo done > done.txt\n```\n"});
  REQUIRE(r.exit_code == 0);
  const std::string quiet = trim(r.out);
  for (const auto& id : {busy[2], busy[3], quiet}) REQUIRE(box.wait_state(id, "CLAIMED"));
  // One slot frees: busy 1 finishes.
  const fs::path tasks = box.home() / "workspaces" / "tasks";
  let_agent_go(box, busy[0]);
  REQUIRE(box.wait_state(quiet, "RUNNING"));
  CHECK(box.task(busy[2])["state"] == "CLAIMED");
  CHECK(box.task(busy[3])["state"] == "CLAIMED");
  // Then every agent may finish, as each starts.
  std::vector<std::string> all = busy;
  all.push_back(quiet);
  std::map<std::string, std::string> states;
  REQUIRE(eventually(
      [&] {
        for (const auto& id : all) {
          if (fs::exists(tasks / id / "meta" / "task.md")) write_file(tasks / id / "meta" / "go", "");
        }
        states = box.wait_finished(all, std::chrono::seconds(1));
        for (const auto& id : all) {
          if (states[id] != "LANDED" && states[id] != "FAILED" && states[id] != "BLOCKED") return false;
        }
        return true;
      },
      std::chrono::seconds(300)));
  INFO(box.serve_log());
  for (const auto& id : all) CHECK(states[id] == "LANDED");
  CHECK(first_time_in(box, quiet, "PROVISIONED") < first_time_in(box, busy[2], "PROVISIONED"));
  CHECK(git(other, {"show", "main:done.txt"}) == "done\n");
}
