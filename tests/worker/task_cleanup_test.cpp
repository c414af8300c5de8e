// Cleaning up after finished tasks on a worker host, with a fake engine and fake workspaces; and
// the worker id kept in its home.
#include "worker-agent/task_cleanup.h"

#include <catch2/catch.hpp>

#include "fakes/fake_docker_client.h"
#include "fakes/fake_workspaces.h"
#include "test_support.h"
#include "worker-agent/worker.h"

using namespace polyphony;
using namespace polyphony::testing;

namespace {

std::string container(FakeDockerClient& docker, const std::string& name, std::map<std::string, std::string> labels) {
  ContainerSpec spec;
  spec.name = name;
  spec.image = "polyphony-worker:latest";
  spec.labels = std::move(labels);
  auto id = docker.create_container(spec);
  REQUIRE(id.ok());
  return *id;
}

}  // namespace

TEST_CASE("cleanup removes the workspaces and containers of tasks no attempt holds, and nothing else") {
  TempDir dir;
  FakeWorkspaces workspaces(dir.path());
  FakeDockerClient docker;
  for (const std::string task : {"done", "killed", "running"}) {
    std::filesystem::create_directories(dir.path() / "tasks" / task);
  }
  container(docker, "", {{"polyphony.task", "done"}, {"polyphony.worker", "w1"}});
  container(docker, "polyphony.killed.e4", {{"polyphony.role", "warm"}, {"polyphony.worker", "w1"}});
  container(docker, "", {{"polyphony.task", "running"}, {"polyphony.worker", "w1"}});
  container(docker, "", {{"polyphony.role", "warm"}, {"polyphony.worker", "w1"}});     // no task took it
  container(docker, "", {{"polyphony.task", "done"}, {"polyphony.worker", "other"}});  // another worker's
  struct Case {
    bool dry_run;
    int workspaces, containers;
    size_t left_workspaces, left_containers;
  };
  for (const Case c : {Case{true, 2, 2, 3, 5}, Case{false, 2, 2, 1, 3}}) {
    INFO((c.dry_run ? "dry run" : "for real"));
    const CleanupCount n = clean_up_finished_tasks(docker, workspaces, "w1", {"running"}, c.dry_run);
    CHECK(n.errors.empty());
    CHECK(n.workspaces == c.workspaces);
    CHECK(n.containers == c.containers);
    CHECK(workspaces.list()->size() == c.left_workspaces);
    CHECK(docker.list_containers({})->size() == c.left_containers);
  }
  CHECK(*workspaces.list() == std::vector<std::string>{"running"});
}

TEST_CASE("a worker's id is made on its first start and read back after") {
  TempDir dir;
  auto first = persisted_worker_id(dir.path());
  REQUIRE(first.ok());
  CHECK(protocol::is_valid_peer_id(*first));
  CHECK(read_file(dir.path() / "worker-id") == *first + "\n");
  auto again = persisted_worker_id(dir.path());
  REQUIRE(again.ok());
  CHECK(*again == *first);
  write_file(dir.path() / "worker-id", "not an id!\n");
  auto bad = persisted_worker_id(dir.path());
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().where == (dir.path() / "worker-id").string());
}
