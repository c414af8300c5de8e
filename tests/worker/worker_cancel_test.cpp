// A worker told to cancel an epoch it no longer runs removes that task's containers and
// workspace, and leaves another epoch's run alone.
#include <catch2/catch.hpp>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include <thread>

#include "docker_test_support.h"
#include "protocol/messages.h"
#include "worker-agent/worker.h"
#include "worker-agent/workspaces.h"

using namespace polyphony;
using namespace polyphony::testing;

namespace {

// Receives frames on the test's ROUTER until one decodes to T; returns it.
template <class T>
std::optional<T> receive(zmq::socket_t& router, std::chrono::seconds timeout = std::chrono::seconds(30)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    zmq::pollitem_t items[] = {{router.handle(), 0, ZMQ_POLLIN, 0}};
    zmq::poll(items, 1, std::chrono::milliseconds(50));
    std::vector<zmq::message_t> frames;
    while (zmq::recv_multipart(router, std::back_inserter(frames), zmq::recv_flags::dontwait)) {
      if (frames.size() == 2) {
        auto m = protocol::decode(frames[1].to_string_view());
        if (m.ok() && std::holds_alternative<T>(*m)) return std::get<T>(*m);
      }
      frames.clear();
    }
  }
  return std::nullopt;
}

void send_to(zmq::socket_t& router, const std::string& id, const protocol::Message& m) {
  const std::string body = protocol::encode(m);
  std::array<zmq::const_buffer, 2> frames{zmq::buffer(id), zmq::buffer(body)};
  zmq::send_multipart(router, frames);
}

}  // namespace

TEST_CASE("a cancel for a task the worker no longer runs removes its containers and workspace") {
  auto docker = docker_for_tests();
  require_worker_image(*docker);
  ContainerJanitor janitor(*docker);
  TempDir dir;
  auto workspaces = make_git_workspaces(dir / "workspaces", {}, -1, -1);
  zmq::context_t ctx;
  zmq::socket_t router(ctx, zmq::socket_type::router);
  router.set(zmq::sockopt::linger, 0);
  router.bind("inproc://cancel-test");

  WorkerOptions options;
  options.worker_id = "cancel-test-" + janitor.run_id();
  options.coordinator_endpoint = "inproc://cancel-test";
  options.workspace_root = (dir / "workspaces").string();
  WorkerAgent worker(ctx, options, *docker, *workspaces);
  std::atomic<bool> stop{false};
  std::thread loop([&] { worker.run(stop); });
  struct Join {
    std::atomic<bool>& stop;
    std::thread& t;
    ~Join() {
      stop = true;
      if (t.joinable()) t.join();
    }
  } join{stop, loop};

  auto hello = receive<protocol::Hello>(router);
  REQUIRE(hello);
  CHECK(hello->free_disk_bytes > 0);
  // Leftovers of an attempt of task t-stale (epoch 7) that the worker does not run any more,
  // and of an unrelated task that must survive.
  auto leftover = [&](const std::string& task) {
    ContainerSpec s = janitor.spec({"sleep", "300"});
    s.labels["polyphony.worker"] = options.worker_id;
    s.labels["polyphony.task"] = task;
    auto id = docker->create_container(s);
    REQUIRE(id.ok());
    write_file(dir / "workspaces/tasks" / task / "file.txt", "work\n");
    return *id;
  };
  leftover("t-stale");
  leftover("t-other");
  send_to(router, options.worker_id, protocol::Cancel{"t-stale", 7, "stale lease: epoch 7 was superseded by 9"});
  auto containers_of = [&](const std::string& task) {
    auto list = docker->list_containers({{"polyphony.worker", options.worker_id}, {"polyphony.task", task}});
    REQUIRE(list.ok());
    return list->size();
  };
  REQUIRE(eventually([&] { return containers_of("t-stale") == 0; }));
  REQUIRE(eventually([&] { return !std::filesystem::exists(dir / "workspaces/tasks/t-stale"); }));
  CHECK(containers_of("t-other") == 1);
  CHECK(std::filesystem::exists(dir / "workspaces/tasks/t-other/file.txt"));
}
