// Durability end to end: kill -9 of `polyphony serve` mid-task, cancel, retry, polyphony-submit.
#include <catch2/catch.hpp>

#include <regex>

#include "single_box.h"
#include "worker-agent/docker_client.h"

using namespace polyphony;
using namespace polyphony::testing;

namespace {

const std::map<std::string, std::string> kRepo{
    {"README.md", "# durable\n"},
    {".polyphony.yaml", "verify: sh verify.sh\n"},
    // With slow-verify, verify waits for the test's go (kWaitForGo), so a kill meets it in VERIFYING.
    {"verify.sh", std::string("set -e\ntest -f done.txt\nif [ -f slow-verify ]; then\n") + kWaitForGo + "fi\n"},
};

// How many commits on the origin's main carry `subject`.
int commits_with_subject(const SingleBox& box, const std::string& subject) {
  const std::string log = git(box.origin(), {"log", "--format=%s", "main"});
  int n = 0;
  size_t pos = 0;
  while ((pos = log.find(subject + "\n", pos)) != std::string::npos) {
    ++n;
    pos += subject.size();
  }
  return n;
}

std::string agent_script(const std::string& extra) {
  return "```sh\n" + extra + "\necho done > done.txt\n```\n";
}

}  // namespace

TEST_CASE("kill -9 of serve while the agent runs: after restart the task lands exactly once and nothing is orphaned") {
  SingleBox box(kRepo);
  const std::string id = box.spawn("Slow agent task", agent_script(kWaitForGo));
  box.serve();
  const std::string state = crash_and_finish(box, id, "RUNNING");
  INFO(box.serve_log());
  REQUIRE(state == "LANDED");
  CHECK(commits_with_subject(box, "Slow agent task") == 1);
  CHECK(box.task(id)["attempt"] == 2);
  CHECK(box.no_containers_left(id));
  // The warm containers and spares of the killed life were cleared at restart, and those of
  // this life when it stopped: nothing of this worker is left.
  const std::string log = box.serve_log();
  std::smatch m;
  REQUIRE(std::regex_search(log, m, std::regex("worker (\\S+) connecting to")));
  box.stop_serving();
  auto left = make_docker_client(test_docker_host())->list_containers({{"polyphony.worker", m[1].str()}});
  REQUIRE(left.ok());
  CHECK(left->empty());
  const auto spares = box.home() / "workspaces" / "spares";
  CHECK((!std::filesystem::exists(spares) || std::filesystem::is_empty(spares)));
}

TEST_CASE("kill -9 of serve during verify: after restart the task lands exactly once") {
  SingleBox box(kRepo);
  const std::string id = box.spawn("Slow verify task", agent_script("touch slow-verify"));
  box.serve();
  const std::string state = crash_and_finish(box, id, "VERIFYING");
  INFO(box.serve_log());
  REQUIRE(state == "LANDED");
  CHECK(commits_with_subject(box, "Slow verify task") == 1);
  CHECK(box.no_containers_left(id));
}

TEST_CASE("kill -9 of serve while the workspace is provisioned: after restart the task lands exactly once") {
  SingleBox box(kRepo);
  const std::string id = box.spawn("Provisioned task", agent_script(""));
  // Fault injection: the first life lingers there until killed (the release file never comes).
  TempDir gate("polyphony-gate");
  box.serve({{"POLYPHONY_TEST_HOLD_PROVISIONED_UNTIL", (gate.path() / "release").string()}});
  REQUIRE(eventually([&] { return box.serve_log().find("test hold in PROVISIONED starts") != std::string::npos; },
                     std::chrono::seconds(120)));
  REQUIRE(box.wait_state(id, "PROVISIONED"));
  box.kill_serving();
  box.serve();
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  REQUIRE(states[id] == "LANDED");
  CHECK(commits_with_subject(box, "Provisioned task") == 1);
  CHECK(box.task(id)["attempt"] == 2);
  CHECK(box.no_containers_left(id));
}

TEST_CASE("kill -9 of serve with tasks claimed but not dispatched: they all land after restart") {
  SingleBox box(kRepo, "max_concurrency: 1\n");
  // a holds the one slot until the test lets it go, so b stays CLAIMED across the kill.
  const std::string a = box.spawn("First queued", agent_script(std::string(kWaitForGo) + "echo a > a.txt"));
  const std::string b = box.spawn("Second queued", agent_script("echo b > b.txt"));
  box.serve();
  REQUIRE(box.wait_state(a, "RUNNING"));
  REQUIRE(box.wait_state(b, "CLAIMED"));
  box.kill_serving();
  box.serve();
  // Either may take the slot first now; a's next attempt waits for its go again.
  REQUIRE(box.wait_attempt(a, 2, "RUNNING"));
  let_agent_go(box, a);
  auto states = box.wait_finished({a, b});
  INFO(box.serve_log());
  CHECK(states[a] == "LANDED");
  CHECK(states[b] == "LANDED");
  CHECK(commits_with_subject(box, "First queued") == 1);
  CHECK(commits_with_subject(box, "Second queued") == 1);
}

TEST_CASE("cancel stops a running task: its container goes away and nothing lands") {
  SingleBox box(kRepo);
  // sleep 60: it never ends by itself; the cancel ends it.
  const std::string id = box.spawn("Long task", agent_script("sleep 60"));
  box.serve();
  REQUIRE(box.wait_state(id, "RUNNING"));
  auto r = box.cli({"cancel", id});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  REQUIRE(box.wait_state(id, "CANCELLED", std::chrono::seconds(20)));
  CHECK(box.no_containers_left(id, std::chrono::seconds(30)));
  CHECK(commits_with_subject(box, "Long task") == 0);
  auto again = box.cli({"cancel", id});
  CHECK(again.exit_code == 0);  // what was asked already holds: still CANCELLED
  CHECK_THAT(again.err, Catch::Contains("is CANCELLED"));
  CHECK(box.task(id)["state"] == "CANCELLED");
}

TEST_CASE("retry runs a FAILED task again once its cause is fixed") {
  SingleBox box(kRepo);
  // The agent fails (a FAILED task: not retried by itself) until the repo has fixed.txt.
  const std::string id =
      box.spawn("Needs a retry",
                "```sh\n[ -f fixed.txt ] || { echo 'fixed.txt is missing' >&2; exit 1; }\necho done > done.txt\n```\n");
  box.serve();
  REQUIRE(box.wait_finished({id})[id] == "FAILED");
  commit_to_bare(box.origin(), {{"fixed.txt", "yes\n"}}, "Fix the cause");
  auto r = box.cli({"retry", id});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  CHECK(states[id] == "LANDED");
  CHECK(box.task(id)["attempt"] == 2);
  auto show = box.cli({"show", id});
  CHECK_THAT(show.out, Catch::Contains("retry requested by a user"));
}

TEST_CASE("polyphony-submit --wait submits through the client endpoint and exits 0 only when the task LANDED") {
  SingleBox box(kRepo);
  box.serve();
  auto ok = box.run(POLYPHONY_SUBMIT_CLI, {"Submitted task", "--repo", box.origin().string(), "--agent", "scripted",
                                           "--body", agent_script(""), "--wait", "--json"});
  INFO(ok.err);
  REQUIRE(ok.exit_code == 0);
  auto j = nlohmann::json::parse(ok.out);
  CHECK(j["state"] == "LANDED");
  CHECK(commits_with_subject(box, "Submitted task") == 1);

  auto failing = box.run(POLYPHONY_SUBMIT_CLI, {"Fails verify", "--repo", box.origin().string(), "--agent", "scripted",
                                                "--body", "```sh\ngit rm -q done.txt\n```\n", "--wait"});
  CHECK(failing.exit_code == 1);
  CHECK_THAT(failing.err, Catch::Contains("BLOCKED"));

  auto refused = box.run(POLYPHONY_SUBMIT_CLI, {"", "--repo", box.origin().string()});
  CHECK(refused.exit_code == 2);
  CHECK_THAT(refused.err, Catch::Contains("TITLE") && Catch::Contains("empty"));
  auto unknown = box.run(POLYPHONY_SUBMIT_CLI, {"t", "--repo", "/nonexistent/repo"});
  CHECK(unknown.exit_code == 2);
  CHECK_THAT(unknown.err, Catch::Contains("--repo"));
}

TEST_CASE("three tasks editing neighbouring lines of one file all land, one after another") {
  SingleBox box(std::map<std::string, std::string>{{"lines.txt", "one\ntwo\nthree\n"},
                                                   {".polyphony.yaml", "verify: test $(wc -l < lines.txt) -eq 3\n"}});
  const std::string a = box.spawn("Edit line one", "```sh\nsed -i '1s/.*/ONE/' lines.txt\n```\n");
  const std::string b = box.spawn("Edit line two", "```sh\nsed -i '2s/.*/TWO/' lines.txt\n```\n");
  const std::string c = box.spawn("Edit line three", "```sh\nsed -i '3s/.*/THREE/' lines.txt\n```\n");
  box.serve();
  auto states = box.wait_finished({a, b, c}, std::chrono::seconds(300));
  INFO(box.serve_log());
  CHECK(states[a] == "LANDED");
  CHECK(states[b] == "LANDED");
  CHECK(states[c] == "LANDED");
  CHECK(git(box.origin(), {"show", "main:lines.txt"}) == "ONE\nTWO\nTHREE\n");
  for (const auto& subject : {"Edit line one", "Edit line two", "Edit line three"}) {
    CHECK(commits_with_subject(box, subject) == 1);
  }
}

TEST_CASE("a silent agent is stopped by the stall timeout, retried, and BLOCKED when attempts run out") {
  SingleBox box(kRepo, "max_attempts: 2\ncontainer:\n  network: none\n  stall_timeout_s: 2\n");
  // sleep 60: silent and never done by itself; only the stall timeout ends it.
  const std::string id = box.spawn("Silent agent", "```sh\nsleep 60\n```\n");
  box.serve();
  auto states = box.wait_finished({id}, std::chrono::seconds(120));
  INFO(box.serve_log());
  REQUIRE(states[id] == "BLOCKED");
  auto t = box.task(id);
  CHECK(t["attempt"] == 2);
  CHECK_THAT(t["reason"].get<std::string>(),
             Catch::Contains("gave up after 2 attempts") && Catch::Contains("stall timeout"));
  CHECK(box.no_containers_left(id));
  auto show = nlohmann::json::parse(box.cli({"show", id, "--json"}).out);
  int failed = 0;
  for (const auto& e : show["events"]) failed += e["to"] == "FAILED";
  CHECK(failed == 2);
}
