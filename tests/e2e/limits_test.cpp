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

// Agent script lines that wait (two minutes at most) until the test writes /polyphony/go.
constexpr const char* kWaitForGo =
    "i=0; while [ ! -e /polyphony/go ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done\n";

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

TEST_CASE("an agent that runs past run_timeout_s is stopped, and BLOCKED with that reason when attempts run out") {
  SingleBox box(kRepo, "max_attempts: 1\ncontainer:\n  run_timeout_s: 3\n");
  // It keeps printing, so only the run timeout can stop it.
  const std::string id = box.spawn("Endless agent", "```sh\nwhile true; do echo working; sleep 0.5; done\n```\n");
  box.serve();
  auto states = box.wait_finished({id}, std::chrono::seconds(120));
  INFO(box.serve_log());
  REQUIRE(states[id] == "BLOCKED");
  auto t = box.task(id);
  CHECK(t["failure_kind"] == "timeout");
  CHECK_THAT(t["reason"].get<std::string>(), Catch::Contains("ran past 3 s and was stopped"));
  CHECK(box.no_containers_left(id));
  CHECK(commits_with_subject(box.origin(), "Endless agent") == 0);
}

TEST_CASE("a verify that runs past verify_timeout_s is stopped, and BLOCKED with that reason when attempts run out") {
  SingleBox box(kRepo, "max_attempts: 1\ncontainer:\n  verify_timeout_s: 3\n");
  const std::string id = box.spawn("Endless verify", "```sh\necho done > done.txt\ntouch slow-verify\n```\n");
  box.serve();
  auto states = box.wait_finished({id}, std::chrono::seconds(120));
  INFO(box.serve_log());
  REQUIRE(states[id] == "BLOCKED");
  auto t = box.task(id);
  CHECK(t["failure_kind"] == "timeout");
  CHECK_THAT(t["reason"].get<std::string>(), Catch::Contains("verify ran past 3 s and was stopped"));
  CHECK(box.no_containers_left(id));
  CHECK(commits_with_subject(box.origin(), "Endless verify") == 0);
}

TEST_CASE("retry runs a BLOCKED task again with a fresh budget, and it lands once its cause is fixed") {
  // verify needs fixed.txt on the base too: every attempt fails the same way until it is there.
  SingleBox box(std::map<std::string, std::string>{
                    {"README.md", "# blocked\n"},
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
  const std::string running = box.spawn("Still running", std::string("```sh\n") + kWaitForGo +
                                                            "echo done > done.txt\necho more > more.txt\n```\n");
  box.serve();
  REQUIRE(box.wait_state(done, "LANDED"));
  REQUIRE(box.wait_state(running, "RUNNING"));
  const fs::path tasks = box.home() / "workspaces" / "tasks";
  REQUIRE(eventually([&] { return fs::exists(tasks / running / "meta" / "task.md") && box.containers_of(running) > 0; }));
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
  write_file(tasks / running / "meta" / "go", "");
  auto states = box.wait_finished({running});
  INFO(box.serve_log());
  CHECK(states[running] == "LANDED");
  CHECK(git(box.origin(), {"show", "main:more.txt"}) == "more\n");
}

TEST_CASE("dispatch is fair across repos: a repo's one task does not wait behind another repo's queue") {
  // Two slots, three tasks on the box's origin queued first, one on a second repo queued last:
  // the second repo's task takes the second slot, before the first repo's second task.
  SingleBox box(kRepo, "max_concurrency: 2\n");
  TempDir other_dir("polyphony-fair");
  const fs::path other = other_dir.path() / "other.git";
  make_bare_repo(other, kRepo);
  std::vector<std::string> busy;
  for (int i = 1; i <= 3; ++i) {
    busy.push_back(box.spawn("Busy repo task " + std::to_string(i),
                             "```sh\necho done > done.txt\necho " + std::to_string(i) + " > busy-" +
                                 std::to_string(i) + ".txt\n```\n"));
  }
  auto r = box.cli({"spawn", "Quiet repo task", "--repo", other.string(), "--agent", "scripted", "--body",
                    "```sh\necho done > done.txt\n```\n"});
  REQUIRE(r.exit_code == 0);
  const std::string quiet = trim(r.out);
  box.serve();
  std::vector<std::string> all = busy;
  all.push_back(quiet);
  auto states = box.wait_finished(all, std::chrono::seconds(300));
  INFO(box.serve_log());
  for (const auto& id : all) REQUIRE(states[id] == "LANDED");
  const int64_t quiet_at = first_time_in(box, quiet, "PROVISIONED");
  const int64_t second_busy_at = first_time_in(box, busy[1], "PROVISIONED");
  REQUIRE(quiet_at > 0);
  REQUIRE(second_busy_at > 0);
  CHECK(quiet_at < second_busy_at);
  CHECK(first_time_in(box, busy[0], "PROVISIONED") < second_busy_at);
  CHECK(git(other, {"show", "main:done.txt"}) == "done\n");
}
