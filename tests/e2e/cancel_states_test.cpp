// Cancel in each state of an attempt, end to end with real containers: while the workspace is
// provisioned, while verify runs, while the reviewer works, and after the land grant. The hold
// hooks (POLYPHONY_TEST_HOLD_<STATE>_UNTIL) put the attempt in a state; nothing waits on a timer.
#include <catch2/catch.hpp>

#include "single_box.h"

using namespace polyphony;
using namespace polyphony::testing;

namespace {

namespace fs = std::filesystem;

const std::map<std::string, std::string> kRepo{
    {"README.md", "# cancel\n"},
    {".polyphony.yaml", "verify: sh verify.sh\n"},
    // A verify that never ends for a tree with slow-verify in it (cancel must stop it).
    {"verify.sh", "set -e\ntest -f done.txt\nif [ -f slow-verify ]; then echo verify-started; sleep 300; fi\n"},
};

std::string agent_script(const std::string& extra) {
  return "```sh\n" + extra + "\necho done > done.txt\n```\n";
}

int commits_with_subject(const SingleBox& box, const std::string& subject) {
  const std::string log = git(box.origin(), {"log", "--format=%s", "main"});
  int n = 0;
  for (size_t pos = 0; (pos = log.find(subject + "\n", pos)) != std::string::npos; pos += subject.size()) ++n;
  return n;
}

// Waits until the worker's log says the attempt of `id` is held in `state`.
bool held_in(const SingleBox& box, const std::string& id, const std::string& state) {
  return eventually(
      [&] { return box.serve_log().find("task " + id + ": test hold in " + state + " starts") != std::string::npos; },
      std::chrono::seconds(120));
}

// The history's last transition.
std::string last_event_to(const SingleBox& box, const std::string& id) {
  auto show = nlohmann::json::parse(box.cli({"show", id, "--json"}).out);
  return show["events"].empty() ? "" : show["events"].back()["to"].get<std::string>();
}

// Cancels `id` and checks that it ended CANCELLED with nothing left: no container, no
// workspace, nothing on the origin.
void cancel_and_check_nothing_left(const SingleBox& box, const std::string& id, const std::string& subject) {
  auto r = box.cli({"cancel", id});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.err, Catch::Contains("is CANCELLED"));
  REQUIRE(box.wait_state(id, "CANCELLED", std::chrono::seconds(30)));
  INFO(box.serve_log());
  CHECK(box.no_containers_left(id, std::chrono::seconds(30)));
  CHECK(eventually([&] { return !fs::exists(box.home() / "workspaces" / "tasks" / id); }, std::chrono::seconds(30)));
  CHECK(commits_with_subject(box, subject) == 0);
  CHECK(last_event_to(box, id) == "CANCELLED");
  auto t = box.task(id);
  CHECK(t["failure_kind"] == "cancelled");
}

}  // namespace

TEST_CASE("cancel while the workspace is provisioned: CANCELLED, the agent never runs, nothing is left") {
  SingleBox box(kRepo);
  TempDir gate("polyphony-gate");
  const std::string id = box.spawn("Cancelled when provisioned", agent_script(""));
  box.serve({{"POLYPHONY_TEST_HOLD_PROVISIONED_UNTIL", (gate.path() / "never").string()}});
  REQUIRE(held_in(box, id, "PROVISIONED"));
  CHECK(box.task(id)["state"] == "PROVISIONED");
  cancel_and_check_nothing_left(box, id, "Cancelled when provisioned");
  CHECK_THAT(box.cli({"logs", id}).out, !Catch::Contains("running sh"));  // the agent never started
}

TEST_CASE("cancel while verify runs: its container is stopped, CANCELLED, nothing lands") {
  SingleBox box(kRepo);
  const std::string id = box.spawn("Cancelled in verify", agent_script("touch slow-verify"));
  box.serve();
  REQUIRE(box.wait_state(id, "VERIFYING"));
  // verify.sh says so once it runs; it then sleeps five minutes, so the cancel meets it.
  REQUIRE(eventually(
      [&] {
        return box.cli({"logs", id}).out.find("verify-started") != std::string::npos;
      },
      std::chrono::seconds(60)));
  cancel_and_check_nothing_left(box, id, "Cancelled in verify");
}

TEST_CASE("cancel while the reviewer works: the reviewer's container is stopped, CANCELLED, nothing lands") {
  SingleBox box(kRepo);
  write_file(box.home() / "agents.yaml",
             "agents:\n"
             "  scripted:\n    command: [polyphony-scripted-agent, \"{task_file}\"]\n    tier: cheap\n"
             "  reviewer:\n    command: [sh, -c, \"echo review-started; sleep 300\"]\n    tier: strong\n");
  write_file(box.home() / "routing.yaml",
             "rules:\n  - match: {task_type: reviewed}\n    agent: scripted\n    plan: review\n"
             "default:\n  agent: scripted\n");
  const std::string id = box.spawn_routed("Cancelled in review", agent_script(""), {"--type", "reviewed"});
  box.serve();
  REQUIRE(eventually(
      [&] {
        return box.cli({"logs", id}).out.find("review-started") != std::string::npos;
      },
      std::chrono::seconds(120)));
  CHECK(box.task(id)["state"] == "VERIFYING");
  cancel_and_check_nothing_left(box, id, "Cancelled in review");
}

TEST_CASE("cancel after the land grant is refused with the reason, and the task lands once and says so") {
  SingleBox box(kRepo);
  TempDir gate("polyphony-gate");
  const fs::path release = gate.path() / "release";
  const std::string id = box.spawn("Cancelled too late", agent_script(""));
  box.serve({{"POLYPHONY_TEST_HOLD_LANDING_UNTIL", release.string()}});
  REQUIRE(held_in(box, id, "LANDING"));  // the coordinator granted the landing slot
  auto r = box.cli({"cancel", id});
  INFO(r.err);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.err, Catch::Contains("landing") && Catch::Contains("can no longer be cancelled"));
  CHECK(box.task(id)["state"] == "VERIFYING");
  write_file(release, "");
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  REQUIRE(states[id] == "LANDED");
  CHECK(commits_with_subject(box, "Cancelled too late") == 1);
  CHECK(last_event_to(box, id) == "LANDED");
  CHECK(git(box.origin(), {"rev-parse", "main"}).substr(0, 40) == box.task(id)["merged_commit"].get<std::string>());
  CHECK(box.no_containers_left(id));
  // Once it landed, a cancel says what it is.
  auto after = box.cli({"cancel", id});
  CHECK(after.exit_code == 1);
  CHECK_THAT(after.err, Catch::Contains("already LANDED"));
}

TEST_CASE("cancel while waiting in the merge queue: CANCELLED, it never lands, and the one ahead still lands") {
  SingleBox box(kRepo);
  TempDir gate("polyphony-gate");
  const fs::path release = gate.path() / "release";
  const std::string first = box.spawn("Lands first", agent_script("echo 1 > first.txt"));
  const std::string second = box.spawn("Waits in line", agent_script("echo 2 > second.txt"));
  box.serve({{"POLYPHONY_TEST_HOLD_LANDING_UNTIL", release.string()}});
  // One of them holds the repo's landing slot; the other waits behind it in VERIFYING.
  REQUIRE(eventually([&] { return box.serve_log().find("waits to land behind task") != std::string::npos; },
                     std::chrono::seconds(120)));
  const std::string log = box.serve_log();
  const bool first_waits = log.find("task " + first + " waits to land") != std::string::npos;
  const std::string waiting = first_waits ? first : second;
  const std::string holder = first_waits ? second : first;
  auto r = box.cli({"cancel", waiting});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  REQUIRE(box.wait_state(waiting, "CANCELLED", std::chrono::seconds(30)));
  write_file(release, "");
  auto states = box.wait_finished({first, second});
  INFO(box.serve_log());
  CHECK(states[holder] == "LANDED");
  CHECK(states[waiting] == "CANCELLED");
  CHECK(commits_with_subject(box, first_waits ? "Lands first" : "Waits in line") == 0);
  CHECK(commits_with_subject(box, first_waits ? "Waits in line" : "Lands first") == 1);
  CHECK(box.no_containers_left(waiting));
}
