// A fleet end to end: one coordinator and three worker hosts, each in a network namespace of
// its own (fleet.h): work spreads over the hosts, a dead host's task lands elsewhere, and a
// host cut off past its lease never lands its stale attempt.
#include <catch2/catch.hpp>
#include <set>

#include "fleet.h"

using namespace polyphony;
using namespace polyphony::testing;

namespace {

// An agent that waits (two minutes at most) until the test writes /polyphony/go, the task's
// meta directory on whichever host runs it (let_go).
std::string agent_waiting_for_go(const std::string& name) {
  return "```sh\ni=0; while [ ! -e /polyphony/go ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done\n"
         "echo " + name + " > done-" + name + ".txt\n```\n";
}

// Lets the agent of task `id` go on, on every host that has (or gets) a workspace for it.
void let_go(const Fleet& f, const std::string& id) {
  for (int i = 1; i <= 3; ++i) {
    const auto meta = f.worker_home(i) / "workspaces" / "tasks" / id / "meta";
    if (std::filesystem::exists(meta)) write_file(meta / "go", "");
  }
}

std::string agent(const std::string& name, int sleep_s) {
  return "```sh\nsleep " + std::to_string(sleep_s) + "\necho " + name + " > done-" + name + ".txt\n```\n";
}

}  // namespace

TEST_CASE("twelve tasks spread over three worker hosts in their own namespaces, and each lands once") {
  Fleet f;
  std::vector<std::string> ids;
  for (int i = 0; i < 12; ++i) ids.push_back(f.box.spawn("Fleet task " + std::to_string(i), agent("t" + std::to_string(i), 1)));
  auto states = f.box.wait_finished(ids, std::chrono::seconds(300));
  INFO(f.logs());
  std::set<std::string> used;
  for (const auto& id : ids) {
    CHECK(states[id] == "LANDED");
    used.insert(f.box.task(id)["worker"].get<std::string>());
  }
  CHECK(used == std::set<std::string>{f.worker_id(1), f.worker_id(2), f.worker_id(3)});
  for (int i = 0; i < 12; ++i) CHECK(f.landings_of("Fleet task " + std::to_string(i)) == 1);
  // Each host worked in its own workspace root.
  for (int i = 1; i <= 3; ++i) CHECK(std::filesystem::exists(f.worker_home(i) / "workspaces/mirrors"));
}

TEST_CASE("a worker host killed mid-run: its task lands on another host, once") {
  Fleet f;
  // The agent waits for the test, so the host dies with the attempt still running.
  const std::string id = f.box.spawn("Orphaned by a dead host", agent_waiting_for_go("dead"));
  REQUIRE(f.box.wait_state(id, "RUNNING"));
  const std::string first = f.box.task(id)["worker"];
  const int victim = first.back() - '0';
  f.workers[victim]->kill9();
  std::map<std::string, std::string> states;
  REQUIRE(eventually(
      [&] {
        let_go(f, id);
        states = f.box.wait_finished({id}, std::chrono::seconds(1));
        return states[id] == "LANDED" || states[id] == "FAILED" || states[id] == "BLOCKED";
      },
      std::chrono::seconds(180)));
  INFO(f.logs());
  REQUIRE(states[id] == "LANDED");
  CHECK(f.box.task(id)["worker"] != first);
  CHECK(f.landings_of("Orphaned by a dead host") == 1);
}

TEST_CASE("a worker host cut off mid-run comes back after its lease expired: its late landing is refused, the task lands once") {
  Fleet f;
  // The agent waits for the test: the cut-off host's attempt is still running when it comes back.
  const std::string id = f.box.spawn("Partitioned task", agent_waiting_for_go("cut"));
  REQUIRE(f.box.wait_state(id, "RUNNING"));
  const std::string first = f.box.task(id)["worker"];
  const int cut = first.back() - '0';
  f.net.set_link(cut, false);
  // The lease expires (2 s without heartbeats) and another host gets the task.
  REQUIRE(eventually([&] { return f.box.task(id)["worker"] != first && f.box.task(id)["attempt"] == 2; },
                     std::chrono::seconds(60)));
  f.net.set_link(cut, true);
  std::map<std::string, std::string> states;
  REQUIRE(eventually(
      [&] {
        let_go(f, id);
        states = f.box.wait_finished({id}, std::chrono::seconds(1));
        return states[id] == "LANDED" || states[id] == "FAILED" || states[id] == "BLOCKED";
      },
      std::chrono::seconds(180)));
  REQUIRE(states[id] == "LANDED");
  // The cut-off host comes back with its stale attempt: what it sends is refused, it never lands.
  REQUIRE(eventually([&] { return f.logs().find("stale lease epoch") != std::string::npos; },
                     std::chrono::seconds(60)));
  INFO(f.logs());
  CHECK(f.landings_of("Partitioned task") == 1);
  CHECK(f.box.task(id)["worker"] != first);
}
