// The warm pool against a real engine, real libgit2 workspaces and real bare repositories; its
// timing against fakes and a clock moved by hand.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <filesystem>

#include "docker_test_support.h"
#include "fake_clock.h"
#include "fakes/fake_docker_client.h"
#include "fakes/fake_workspaces.h"
#include "test_support.h"
#include "worker-agent/container_pool.h"

namespace fs = std::filesystem;
using namespace polyphony;
using namespace polyphony::testing;

namespace {

struct PoolFixture {
  TempDir tmp{"polyphony-pool"};
  fs::path origin = tmp / "origin.git";
  fs::path other = tmp / "other.git";
  std::unique_ptr<DockerClient> docker = docker_for_tests();
  ContainerJanitor janitor{*docker};
  std::string worker_id = "pool-test-" + janitor.run_id();
  std::unique_ptr<Workspaces> workspaces;

  PoolFixture() {
    require_worker_image(*docker);
    make_bare_repo(origin, {{"README.md", "hello\n"}, {"src/app.txt", "v1\n"}});
    make_bare_repo(other, {{"OTHER.md", "other\n"}});
    workspaces = make_git_workspaces(tmp / "root", {}, 1000, 1000);
  }

  ~PoolFixture() {
    // Whatever a failing case left: this worker's containers, warm or taken.
    auto left = docker->list_containers({{"polyphony.worker", worker_id}});
    if (left.ok()) {
      for (const auto& c : *left) (void)docker->remove_container(c.id);
    }
  }

  WarmKey key(const fs::path& repo) const {
    WarmKey k;
    k.image = kWorkerImage;
    k.user = "1000:1000";
    k.network_mode = "none";
    k.repo_url = repo.string();
    k.base_branch = "main";
    auto runner = find_runner();
    REQUIRE(runner.ok());
    k.runner = runner->string();
    return k;
  }

  size_t warm_containers() const {
    auto list = docker->list_containers({{"polyphony.worker", worker_id}, {"polyphony.role", "warm"}});
    REQUIRE(list.ok());
    return list->size();
  }

  std::string in_container(const std::string& id, const std::vector<std::string>& cmd) {
    std::string out;
    auto code = docker->exec(id, {cmd, {}, "1000:1000", "/workspace"}, [&](int, std::string_view d) {
      out.append(d);
      return true;
    });
    INFO((code.ok() ? std::string() : code.error().to_string()));
    REQUIRE(code.ok());
    INFO(out);
    REQUIRE(*code == 0);
    return out;
  }
};

ino_t inode_of(const fs::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_ino;
}

}  // namespace

TEST_CASE("a warm container's task sees its own clone and meta directory, at the base as it is now") {
  PoolFixture f;
  ContainerPool pool(*f.docker, *f.workspaces, {f.worker_id, 1, 1});
  CHECK_FALSE(pool.take(f.key(f.origin)));  // nothing yet: asks for one
  REQUIRE(pool.settle(std::chrono::seconds(60)));
  REQUIRE(pool.ready(f.key(f.origin)) == 1);
  CHECK(pool.ready(f.key(f.other)) == 0);

  // The origin moves after the spare was made: the task still starts from the newest base.
  const std::string head = commit_to_bare(f.origin, {{"src/app.txt", "v2\n"}, {"NEW.md", "new\n"}}, "move on");
  auto slot = pool.take(f.key(f.origin));
  REQUIRE(slot);
  const ino_t repo_inode = inode_of(slot->spare.dir / "repo");
  auto ws = f.workspaces->provision_from({"t-warm", f.origin.string(), "main", "polyphony/t-warm"}, slot->spare);
  INFO((ws.ok() ? std::string() : ws.error().to_string()));
  REQUIRE(ws.ok());
  CHECK(ws->base_commit == head);
  CHECK(inode_of(ws->repo_dir) == repo_inode);
  write_file(ws->task_dir / "meta" / "task.md", "the task\n");

  CHECK(f.in_container(slot->container_id, {"cat", "src/app.txt", "NEW.md", "/polyphony/task.md"}) ==
        "v2\nnew\nthe task\n");
  CHECK(f.in_container(slot->container_id, {"git", "rev-parse", "--abbrev-ref", "HEAD"}) == "polyphony/t-warm\n");
  f.in_container(slot->container_id, {"sh", "-c", "echo made > made.txt"});
  CHECK(read_file(ws->repo_dir / "made.txt") == "made\n");
  // The meta directory is read-only inside.
  std::string out;
  auto denied = f.docker->exec(slot->container_id, {{"sh", "-c", "echo x > /polyphony/x"}, {}, "1000:1000", ""},
                               [&](int, std::string_view d) {
                                 out.append(d);
                                 return true;
                               });
  REQUIRE(denied.ok());
  CHECK(*denied != 0);

  // The replacement the take asked for comes, and dispose removes the taken one.
  REQUIRE(pool.settle(std::chrono::seconds(60)));
  CHECK(pool.ready(f.key(f.origin)) == 1);
  pool.dispose(slot->container_id);
  REQUIRE(pool.settle(std::chrono::seconds(60)));
  auto gone = f.docker->list_containers({{"polyphony.worker", f.worker_id}});
  REQUIRE(gone.ok());
  for (const auto& c : *gone) CHECK(c.id != slot->container_id);
}

TEST_CASE("a full pool makes room for another repo by removing its oldest warm container") {
  PoolFixture f;
  ContainerPool pool(*f.docker, *f.workspaces, {f.worker_id, 1, 1});
  (void)pool.take(f.key(f.origin));
  REQUIRE(pool.settle(std::chrono::seconds(60)));
  REQUIRE(pool.ready(f.key(f.origin)) == 1);
  CHECK(f.warm_containers() == 1);
  CHECK_FALSE(pool.take(f.key(f.other)));
  REQUIRE(pool.settle(std::chrono::seconds(60)));
  CHECK(pool.ready(f.key(f.origin)) == 0);
  CHECK(pool.ready(f.key(f.other)) == 1);
  CHECK(f.warm_containers() == 1);
  // Only the other repo's spare is left on disk.
  size_t spares = 0;
  if (fs::exists(f.tmp / "root" / "spares")) {
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(f.tmp / "root" / "spares")) ++spares;
  }
  CHECK(spares == 1);
}

TEST_CASE("a pool removes its warm containers and spares when it is destroyed") {
  PoolFixture f;
  {
    ContainerPool pool(*f.docker, *f.workspaces, {f.worker_id, 2, 2});
    (void)pool.take(f.key(f.origin));
    (void)pool.take(f.key(f.other));
    REQUIRE(pool.settle(std::chrono::seconds(60)));
    CHECK(f.warm_containers() == 2);
  }
  CHECK(f.warm_containers() == 0);
  bool no_spares = !fs::exists(f.tmp / "root" / "spares") || fs::is_empty(f.tmp / "root" / "spares");
  CHECK(no_spares);
}

TEST_CASE("a repo that cannot be provisioned stops being warmed after a few failures") {
  PoolFixture f;
  ContainerPool pool(*f.docker, *f.workspaces, {f.worker_id, 2, 1});
  const WarmKey missing = f.key(f.tmp / "no-such-repo.git");
  for (int i = 0; i < 6; ++i) {
    CHECK_FALSE(pool.take(missing));
    REQUIRE(pool.settle(std::chrono::seconds(30)));
  }
  CHECK(pool.ready(missing) == 0);
  CHECK(f.warm_containers() == 0);
  // Other repos are warmed as before: a miss warms up to the pool's size.
  (void)pool.take(f.key(f.origin));
  REQUIRE(pool.settle(std::chrono::seconds(60)));
  CHECK(pool.ready(f.key(f.origin)) == 2);
}

TEST_CASE("a taken warm container is found by its task's name once renamed") {
  PoolFixture f;
  ContainerPool pool(*f.docker, *f.workspaces, {f.worker_id, 1, 1});
  (void)pool.take(f.key(f.origin));
  REQUIRE(pool.settle(std::chrono::seconds(60)));
  auto slot = pool.take(f.key(f.origin));
  REQUIRE(slot);
  const std::string task = "t-named-" + f.janitor.run_id();
  REQUIRE(f.docker->rename_container(slot->container_id, task_container_name(task, 3)).ok());
  auto found = task_containers(*f.docker, task, f.worker_id);
  REQUIRE(found.ok());
  REQUIRE(found->size() == 1);
  CHECK(found->front().id == slot->container_id);
  // A task whose id is a prefix of this one's is not confused with it.
  auto prefix = task_containers(*f.docker, "t-named", f.worker_id);
  REQUIRE(prefix.ok());
  CHECK(prefix->empty());
  pool.dispose(slot->container_id);
  (void)f.workspaces->discard_spare(slot->spare);
  REQUIRE(pool.settle(std::chrono::seconds(60)));
}

TEST_CASE("a pool's background work waits for a quiet moment, and no longer than its longest delay") {
  // Timing only: the fakes stand in for the engine and git, and the clock moves by hand.
  TempDir tmp{"pf-pool"};
  FakeDockerClient docker;
  FakeWorkspaces workspaces{tmp / "w"};
  FakeClock clock;
  WarmKey key;
  key.image = kWorkerImage;
  key.user = "1000:1000";
  key.repo_url = "/repos/origin.git";
  key.base_branch = "main";
  key.runner = "/fake/polyphony-runner";
  using std::chrono::milliseconds;
  {
    // Every take() starts the quiet period again: the refill waits for 600 ms after the last.
    ContainerPool pool(docker, workspaces, {"w1", 1, 1, milliseconds(600), std::chrono::seconds(60)}, clock);
    CHECK_FALSE(pool.take(key));
    clock.advance(300);
    CHECK_FALSE(pool.take(key));
    clock.advance(400);
    // 700 ms after the first take, 400 after the last: not yet.
    CHECK_FALSE(pool.settle(milliseconds(0)));
    CHECK(workspaces.count("make_spare") == 0);
    clock.advance(200);
    REQUIRE(pool.settle(std::chrono::seconds(30)));
    CHECK(pool.ready(key) == 1);
    CHECK(workspaces.count("make_spare") == 1);

    // A disposal waits for quiet too.
    const std::string taken = pool.take(key)->container_id;
    pool.dispose(taken);
    CHECK_FALSE(pool.settle(milliseconds(0)));
    CHECK(docker.calls_of("remove_container").empty());
    clock.advance(600);
    REQUIRE(pool.settle(std::chrono::seconds(30)));
    auto removed = docker.calls_of("remove_container");
    REQUIRE(removed.size() == 1);
    CHECK(removed[0].target == taken);
  }
  {
    // Quiet never comes in time (30 s): after its longest delay (1 s) the refill goes ahead.
    ContainerPool pool(docker, workspaces, {"w1", 1, 1, std::chrono::seconds(30), std::chrono::seconds(1)}, clock);
    key.repo_url = "/repos/other.git";
    CHECK_FALSE(pool.take(key));
    clock.advance(300);
    CHECK_FALSE(pool.settle(milliseconds(0)));
    clock.advance(700);
    REQUIRE(pool.settle(std::chrono::seconds(30)));
    CHECK(pool.ready(key) == 1);
  }
}
