// A standalone polyphony-worker on loopback TCP: the same protocol as the embedded worker.
#include <catch2/catch.hpp>

#include "single_box.h"

using namespace polyphony;
using namespace polyphony::testing;

namespace {

const std::map<std::string, std::string> kRepo{
    {"README.md", "# remote\n"},
    {".polyphony.yaml", "verify: test -f done.txt\n"},
};

std::string config_for(int port) {
  const std::string endpoint = "tcp://127.0.0.1:" + std::to_string(port);
  return "coordinator: {embedded_worker: false, worker_endpoint: \"" + endpoint +
         "\", insecure: true}\n"
         "worker: {coordinator: \"" +
         endpoint + "\", capacity: 2, insecure: true}\n";
}

std::unique_ptr<BackgroundProcess> start_worker(const SingleBox& box, const std::string& id, int n,
                                                std::map<std::string, std::string> env = {}) {
  env["POLYPHONY_HOME"] = box.home().string();
  return std::make_unique<BackgroundProcess>(std::vector<std::string>{POLYPHONY_WORKER_CLI, "--id", id}, env,
                                             box.home() / ("worker-" + std::to_string(n) + ".log"));
}

}  // namespace

TEST_CASE("a standalone polyphony-worker over TCP runs a task to LANDED") {
  const int port = free_loopback_port();
  SingleBox box(kRepo, config_for(port));
  box.serve();
  auto worker = start_worker(box, "remote-1", 1);
  const std::string id = box.spawn("Remote task", "```sh\necho done > done.txt\n```\n");
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  INFO(read_file(box.home() / "worker-1.log"));
  REQUIRE(states[id] == "LANDED");
  CHECK(box.task(id)["worker"] == "remote-1");
  CHECK(git(box.origin(), {"show", "main:done.txt"}) == "done\n");
  CHECK(worker->stop() == 0);
}

TEST_CASE("kill -9 of a standalone worker mid-run: the task is retried when it comes back, and lands once") {
  const int port = free_loopback_port();
  SingleBox box(kRepo, config_for(port));
  box.serve();
  auto worker = start_worker(box, "remote-2", 1);
  const std::string id =
      box.spawn("Interrupted remote task", std::string("```sh\n") + kWaitForGo + "echo done > done.txt\n```\n");
  REQUIRE(box.wait_state(id, "RUNNING"));
  worker->kill9();
  worker = start_worker(box, "remote-2", 2);
  REQUIRE(box.wait_attempt(id, 2, "RUNNING"));
  let_agent_go(box, id);
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  INFO(read_file(box.home() / "worker-2.log"));
  REQUIRE(states[id] == "LANDED");
  CHECK(box.task(id)["attempt"] == 2);
  const std::string log = git(box.origin(), {"log", "--format=%s", "main"});
  CHECK(log.find("Interrupted remote task") == log.rfind("Interrupted remote task"));
  CHECK(box.no_containers_left(id));
}

TEST_CASE("kill -9 of a standalone worker in each state of an attempt: the task lands exactly once, nothing orphaned") {
  const std::string state = GENERATE(as<std::string>{}, "CLAIMED", "PROVISIONED", "RUNNING", "VERIFYING");
  INFO("killed in " << state);
  const int port = free_loopback_port();
  SingleBox box(kRepo, config_for(port));
  box.serve();
  // The first worker holds the attempt in the state until it is killed (fault injection; the
  // release file never comes); in RUNNING the agent waits for the test's go instead.
  TempDir gate("polyphony-gate");
  const std::map<std::string, std::string> hold{
      {"POLYPHONY_TEST_HOLD_" + state + "_UNTIL", (gate.path() / "release").string()}};
  const bool running = state == "RUNNING";
  const std::string body = std::string("```sh\n") + (running ? kWaitForGo : "") + "echo done > done.txt\n```\n";
  auto worker = start_worker(box, "remote-k", 1, hold);
  std::string id;
  if (state == "CLAIMED") {
    worker->kill9();  // the task arrives while its only worker is dead
    id = box.spawn("Killed in " + state, body);
    REQUIRE(box.wait_state(id, "CLAIMED"));
  } else {
    id = box.spawn("Killed in " + state, body);
    REQUIRE(box.wait_state(id, state));
    worker->kill9();
  }
  worker = start_worker(box, "remote-k", 2);
  if (running) {
    REQUIRE(box.wait_attempt(id, 2, "RUNNING"));
    let_agent_go(box, id);
  }
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  INFO(read_file(box.home() / "worker-2.log"));
  REQUIRE(states[id] == "LANDED");
  const std::string log = git(box.origin(), {"log", "--format=%s", "main"});
  CHECK(log.find("Killed in " + state) != std::string::npos);
  CHECK(log.find("Killed in " + state) == log.rfind("Killed in " + state));
  CHECK(box.no_containers_left(id));
  CHECK(worker->stop() == 0);
}

TEST_CASE(
    "over CURVE an allowed polyphony-worker lands a task, an unknown key never registers, "
    "and polyphony workers lists the fleet") {
  const int port = free_loopback_port();
  const std::string endpoint = "tcp://127.0.0.1:" + std::to_string(port);
  SingleBox box(kRepo, "coordinator: {embedded_worker: false, worker_endpoint: \"" + endpoint +
                           "\", secret_key_file: keys/coordinator.key, allowed_workers_dir: keys/workers}\n"
                           "worker: {coordinator: \"" +
                           endpoint + "\", capacity: 2}\n");
  const auto keys = box.home() / "keys";
  for (const auto& [name, dir] : std::vector<std::pair<std::string, std::filesystem::path>>{
           {"coordinator", keys}, {"worker1", box.home() / "w1"}, {"stranger", box.home() / "w2"}}) {
    auto gen = box.cli({"keys", "gen", "--name", name, "--out", dir.string()});
    INFO(gen.err);
    REQUIRE(gen.exit_code == 0);
  }
  std::filesystem::create_directories(keys / "workers");
  std::filesystem::copy_file(box.home() / "w1/worker1.pub", keys / "workers/worker1.pub");
  box.serve();
  auto start = [&](const std::string& id, const std::string& key, int n) {
    return std::make_unique<BackgroundProcess>(
        std::vector<std::string>{POLYPHONY_WORKER_CLI, "--id", id, "--secret-key", key, "--coordinator-key",
                                 (keys / "coordinator.pub").string()},
        std::map<std::string, std::string>{{"POLYPHONY_HOME", box.home().string()}},
        box.home() / ("worker-" + std::to_string(n) + ".log"));
  };
  auto stranger = start("stranger-1", (box.home() / "w2/stranger.key").string(), 2);
  auto worker = start("curve-1", (box.home() / "w1/worker1.key").string(), 1);
  const std::string id = box.spawn("Curve task", "```sh\necho done > done.txt\n```\n");
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  INFO(read_file(box.home() / "worker-1.log"));
  REQUIRE(states[id] == "LANDED");
  CHECK(box.task(id)["worker"] == "curve-1");
  CHECK(box.serve_log().find("is not in the allow-list") != std::string::npos);

  auto listed = box.cli({"workers", "--json"});
  REQUIRE(listed.exit_code == 0);
  const auto table = nlohmann::json::parse(listed.out);
  REQUIRE(table["workers"].size() == 1);
  CHECK(table["workers"][0]["id"] == "curve-1");
  CHECK(table["workers"][0]["key"] == "worker1");
  CHECK(table["workers"][0]["state"] == "ready");
  CHECK(table["workers"][0]["capacity"] == 2);
  auto text = box.cli({"workers"});
  CHECK(text.out.find("curve-1") != std::string::npos);
  CHECK(worker->stop() == 0);
  CHECK(stranger->stop() == 0);
}

TEST_CASE("polyphony-worker refuses plain TCP to a non-loopback coordinator, naming the setting") {
  SingleBox box(kRepo, "");
  auto r = box.run(POLYPHONY_WORKER_CLI, {"--coordinator", "tcp://10.1.2.3:7701"});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("--coordinator") != std::string::npos);
  CHECK(r.err.find("secret_key_file") != std::string::npos);
}

TEST_CASE("polyphony workers without a running coordinator says so at once") {
  SingleBox box(kRepo, "");
  auto r = box.cli({"workers"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("no coordinator listens here") != std::string::npos);
}
