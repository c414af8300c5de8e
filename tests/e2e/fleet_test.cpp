// A fleet end to end: one coordinator and three worker hosts, each in a network namespace of
// its own (fleet.h): work spreads over the hosts, a dead host's task lands elsewhere, and a
// host cut off past its lease never lands its stale attempt; refused keys, goodbyes, removal
// and cleanup across hosts.
#include <signal.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "fleet.h"

using namespace polyphony;
using namespace polyphony::testing;

namespace {

// An agent that waits until the test lets it go (Fleet::let_go, Fleet::finish), so it is still
// running whenever the test acts on its host.
std::string agent_waiting_for_go(const std::string& name) {
  return std::string("```sh\n") + kWaitForGo + "echo " + name + " > done-" + name + ".txt\n```\n";
}

// The worker ids `polyphony workers --json` lists.
std::set<std::string> listed_workers(const SingleBox& box) {
  auto r = box.cli({"workers", "--json"});
  UNSCOPED_INFO("polyphony workers --json: exit " << r.exit_code << "\n" << r.out << r.err);
  if (r.exit_code != 0) return {"<workers failed: " + r.err + ">"};
  std::set<std::string> ids;
  const auto table = nlohmann::json::parse(r.out);
  for (const auto& w : table["workers"]) ids.insert(w["id"].get<std::string>());
  return ids;
}

size_t count_of(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t pos = 0; (pos = text.find(what, pos)) != std::string::npos; pos += what.size()) ++n;
  return n;
}

// An agent that is done at once.
std::string agent(const std::string& name) {
  return "```sh\necho " + name + " > done-" + name + ".txt\n```\n";
}

// Spawns `n` quick tasks titled `prefix` 0..n-1 and waits until they are all LANDED; returns their ids.
std::vector<std::string> land_tasks(Fleet& f, const std::string& prefix, int n) {
  std::vector<std::string> ids;
  for (int i = 0; i < n; ++i) ids.push_back(f.box.spawn(prefix + std::to_string(i), agent("t" + std::to_string(i))));
  auto states = f.box.wait_finished(ids, std::chrono::seconds(300));
  INFO(f.logs());
  for (const auto& id : ids) REQUIRE(states[id] == "LANDED");
  return ids;
}

}  // namespace

TEST_CASE("twelve tasks spread over three worker hosts in their own namespaces, and each lands once") {
  Fleet f;
  const auto ids = land_tasks(f, "Fleet task ", 12);
  INFO(f.logs());
  std::set<std::string> used;
  for (const auto& id : ids) used.insert(f.box.task(id)["worker"].get<std::string>());
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
  const std::string state = f.finish(id);
  INFO(f.logs());
  REQUIRE(state == "LANDED");
  CHECK(f.box.task(id)["worker"] != first);
  CHECK(f.landings_of("Orphaned by a dead host") == 1);
}

TEST_CASE(
    "a worker host cut off mid-run comes back after its lease expired: its late landing is refused, the task lands "
    "once") {
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
  REQUIRE(f.finish(id) == "LANDED");
  // The cut-off host comes back with its stale attempt: what it sends is refused, it never lands.
  REQUIRE(
      eventually([&] { return f.logs().find("stale lease epoch") != std::string::npos; }, std::chrono::seconds(60)));
  INFO(f.logs());
  CHECK(f.landings_of("Partitioned task") == 1);
  CHECK(f.box.task(id)["worker"] != first);
}

TEST_CASE("a rogue worker key is refused: the coordinator logs it once, the rogue worker says so and never registers") {
  Fleet f;
  const auto home = f.box.home().parent_path() / "rogue";
  auto gen = f.box.cli({"keys", "gen", "--name", "rogue", "--out", (home / "keys").string()});
  REQUIRE(gen.exit_code == 0);
  write_file(home / "config.yaml", "workspace_root: " + (home / "workspaces").string() + "\nworker: {coordinator: \"" +
                                       fleet_endpoint() +
                                       "\", capacity: 1, secret_key_file: keys/rogue.key, "
                                       "coordinator_public_key_file: " +
                                       (f.box.home() / "keys/coordinator.pub").string() + "}\n");
  auto argv = f.net.exec_in(f.net.host(3));
  argv.push_back(POLYPHONY_WORKER_CLI);  // no --id: it makes one and keeps it in its home
  const auto log = home / "rogue.log";
  BackgroundProcess rogue(argv, {{"POLYPHONY_HOME", home.string()}}, log);
  REQUIRE(eventually([&] { return read_file(log).find("refused this worker's CURVE key") != std::string::npos; },
                     std::chrono::seconds(30)));
  REQUIRE(eventually([&] { return f.box.serve_log().find("is not in the allow-list") != std::string::npos; },
                     std::chrono::seconds(30)));
  // It retries every 100 ms or so; the coordinator's line is not repeated for the same key and address.
  const std::string rogue_id = read_file(home / "worker-id").substr(0, read_file(home / "worker-id").find('\n'));
  REQUIRE(eventually([&] { return count_of(read_file(log), "coordinator silent") > 0; }, std::chrono::seconds(30)));
  INFO(f.box.serve_log());
  INFO(read_file(log));
  CHECK(count_of(f.box.serve_log(), "is not in the allow-list") == 1);
  CHECK(f.box.serve_log().find("10.231.7.13") != std::string::npos);  // the address it came from
  CHECK(read_file(log).find("registered with coordinator") == std::string::npos);
  CHECK(read_file(log).find("connected") == std::string::npos);
  CHECK(listed_workers(f.box).count(rogue_id) == 0);
  CHECK(rogue.stop() == 0);
}

TEST_CASE("a worker stopped with SIGTERM says goodbye: it leaves the table at once and its running task is requeued") {
  Fleet f;
  const std::string id = f.box.spawn("Left by a stopping host", agent_waiting_for_go("bye"));
  REQUIRE(f.box.wait_state(id, "RUNNING"));
  const std::string first = f.box.task(id)["worker"];
  const int leaving = first.back() - '0';
  REQUIRE(listed_workers(f.box).count(first) == 1);
  REQUIRE(::kill(f.workers[leaving]->pid(), SIGTERM) == 0);
  REQUIRE(eventually([&] { return listed_workers(f.box).count(first) == 0; }, std::chrono::seconds(30)));
  const std::string state = f.finish(id);
  INFO(f.logs());
  REQUIRE(state == "LANDED");
  CHECK(f.box.task(id)["worker"] != first);
  CHECK(f.landings_of("Left by a stopping host") == 1);
  // Requeued by the goodbye, not by the silence that follows a crash.
  CHECK(f.box.serve_log().find("worker " + first + " left (stopping)") != std::string::npos);
  CHECK(f.box.serve_log().find("worker " + first + " stopped (stopping)") != std::string::npos);
  CHECK(f.box.serve_log().find("worker " + first + " lost") == std::string::npos);
  CHECK(f.workers[leaving]->stop() == 0);
}

TEST_CASE(
    "a worker killed with kill -9 is lost within 3 heartbeat intervals by default, and workers remove takes it off the "
    "table") {
  Fleet f(3, "", true, fleet_repo(), "");  // the default liveness
  const std::string id = f.box.spawn("Orphaned by a killed host", agent_waiting_for_go("killed"));
  REQUIRE(f.box.wait_state(id, "RUNNING"));
  const std::string first = f.box.task(id)["worker"];
  const int victim = first.back() - '0';
  f.workers[victim]->kill9();
  const std::regex lost_line("worker " + first + " lost \\((\\d+) ms after it was last heard");
  std::string log;  // what m points into
  std::smatch m;
  REQUIRE(eventually(
      [&] {
        log = f.box.serve_log();
        return std::regex_search(log, m, lost_line);
      },
      std::chrono::seconds(60)));
  INFO(f.logs());
  // Measured by the coordinator between the last message it heard and the loss: 3 intervals of 200 ms.
  CHECK(std::stoll(m[1].str()) <= 3 * 200);
  REQUIRE(f.finish(id) == "LANDED");
  CHECK(f.landings_of("Orphaned by a killed host") == 1);
  // No line about the dead peer repeats more than once a second.
  CHECK(count_of(f.box.serve_log(), "cannot send a heartbeat to peer \"" + first + "\"") <= 1);

  // A lost worker holds nothing: removed without --force. An unknown one is an error naming it.
  CHECK(listed_workers(f.box).count(first) == 1);
  auto removed = f.box.cli({"workers", "remove", first});
  INFO(removed.err);
  CHECK(removed.exit_code == 0);
  CHECK(listed_workers(f.box).count(first) == 0);
  auto again = f.box.cli({"workers", "remove", first});
  CHECK(again.exit_code == 1);
  CHECK(again.err.find("no worker " + first) != std::string::npos);
}

TEST_CASE("workers remove refuses a worker that holds a task unless --force, which requeues the task") {
  Fleet f;
  const std::string id = f.box.spawn("Held by a removed host", agent_waiting_for_go("held"));
  REQUIRE(f.box.wait_state(id, "RUNNING"));
  const std::string first = f.box.task(id)["worker"];
  auto refused = f.box.cli({"workers", "remove", first});
  CHECK(refused.exit_code == 1);
  CHECK(refused.err.find("--force") != std::string::npos);
  CHECK(refused.err.find(id) != std::string::npos);
  CHECK(listed_workers(f.box).count(first) == 1);
  auto forced = f.box.cli({"workers", "remove", first, "--force"});
  INFO(forced.err);
  CHECK(forced.exit_code == 0);
  CHECK(forced.err.find("requeued 1 task(s)") != std::string::npos);
  const std::string state = f.finish(id);
  INFO(f.logs());
  REQUIRE(state == "LANDED");
  CHECK(f.box.task(id)["attempt"] == 2);
  CHECK(f.landings_of("Held by a removed host") == 1);
}

TEST_CASE("polyphony cleanup on the coordinator empties each worker's workspaces/tasks and reports per worker") {
  Fleet f;
  land_tasks(f, "Cleaned task ", 3);
  INFO(f.logs());
  auto tasks_of = [&](int i) {
    size_t n = 0;
    const auto dir = f.worker_home(i) / "workspaces/tasks";
    if (std::filesystem::exists(dir)) {
      for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++n;
    }
    return n;
  };
  size_t before = 0;
  for (int i = 1; i <= 3; ++i) before += tasks_of(i);
  REQUIRE(before > 0);
  auto dry = f.box.cli({"cleanup", "--dry-run"});
  INFO(dry.out << dry.err);
  REQUIRE(dry.exit_code == 0);
  size_t still = 0;
  for (int i = 1; i <= 3; ++i) still += tasks_of(i);
  CHECK(still == before);
  auto r = f.box.cli({"cleanup"});
  INFO(r.out << r.err);
  REQUIRE(r.exit_code == 0);
  for (int i = 1; i <= 3; ++i) {
    CHECK(r.out.find(f.worker_id(i) + ": removed ") != std::string::npos);
    CHECK(tasks_of(i) == 0);
  }
  CHECK(r.out.find("workspace(s)") != std::string::npos);
}
