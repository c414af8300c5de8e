// A standalone polyphony-worker on loopback TCP: the same protocol as the embedded worker.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "single_box.h"

using namespace polyphony;
using namespace polyphony::testing;

namespace {

// A TCP port on 127.0.0.1 that was free a moment ago.
int free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  socklen_t len = sizeof(addr);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

const std::map<std::string, std::string> kRepo{
    {"README.md", "# remote\n"},
    {".polyphony.yaml", "verify: test -f done.txt\n"},
};

std::string config_for(int port) {
  const std::string endpoint = "tcp://127.0.0.1:" + std::to_string(port);
  return "coordinator: {embedded_worker: false, worker_endpoint: \"" + endpoint + "\"}\n"
         "worker: {coordinator: \"" + endpoint + "\", capacity: 2}\n";
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
  const std::string id = box.spawn("Interrupted remote task", "```sh\nsleep 4\necho done > done.txt\n```\n");
  REQUIRE(box.wait_state(id, "RUNNING"));
  worker->kill9();
  worker = start_worker(box, "remote-2", 2);
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  INFO(read_file(box.home() / "worker-2.log"));
  REQUIRE(states[id] == "LANDED");
  CHECK(box.task(id)["attempt"] == 2);
  const std::string log = git(box.origin(), {"log", "--format=%s", "main"});
  CHECK(log.find("Interrupted remote task") == log.rfind("Interrupted remote task"));
  CHECK(box.containers_of(id) == 0);
}

TEST_CASE("kill -9 of a standalone worker in each state of an attempt: the task lands exactly once, nothing orphaned") {
  const std::string state = GENERATE(as<std::string>{}, "CLAIMED", "PROVISIONED", "RUNNING", "VERIFYING");
  INFO("killed in " << state);
  const int port = free_loopback_port();
  SingleBox box(kRepo, config_for(port));
  box.serve();
  // The held states last a few seconds in the first worker only (fault injection), so the kill
  // lands in them; the agent itself is quick.
  const std::map<std::string, std::string> hold{{"POLYPHONY_TEST_HOLD_" + state + "_MS", "8000"}};
  auto worker = start_worker(box, "remote-k", 1, hold);
  std::string id;
  if (state == "CLAIMED") {
    worker->kill9();  // the task arrives while its only worker is dead
    id = box.spawn("Killed in " + state, "```sh\necho done > done.txt\n```\n");
    REQUIRE(box.wait_state(id, "CLAIMED"));
  } else {
    id = box.spawn("Killed in " + state, "```sh\necho done > done.txt\n```\n");
    REQUIRE(box.wait_state(id, state));
    worker->kill9();
  }
  worker = start_worker(box, "remote-k", 2);
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  INFO(read_file(box.home() / "worker-2.log"));
  REQUIRE(states[id] == "LANDED");
  const std::string log = git(box.origin(), {"log", "--format=%s", "main"});
  CHECK(log.find("Killed in " + state) != std::string::npos);
  CHECK(log.find("Killed in " + state) == log.rfind("Killed in " + state));
  CHECK(box.containers_of(id) == 0);
  CHECK(worker->stop() == 0);
}
