// The Docker Engine client against a real engine and the polyphony-worker image.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "docker_test_support.h"

namespace fs = std::filesystem;
using namespace polyphony;
using namespace polyphony::testing;

namespace {

struct Logs {
  std::string out;
  std::string err;
  int chunks = 0;
};

Logs collect_logs(DockerClient& docker, const std::string& id, bool follow = false) {
  Logs logs;
  auto status = docker.stream_logs(id, follow, [&](int stream, std::string_view data) {
    (stream == 2 ? logs.err : logs.out).append(data);
    ++logs.chunks;
    return true;
  });
  INFO((status.ok() ? std::string() : status.error().to_string()));
  REQUIRE(status.ok());
  return logs;
}

std::string create_and_start(DockerClient& docker, const ContainerSpec& spec) {
  auto id = docker.create_container(spec);
  INFO((id.ok() ? std::string() : id.error().to_string()));
  REQUIRE(id.ok());
  auto started = docker.start_container(*id);
  INFO((started.ok() ? std::string() : started.error().to_string()));
  REQUIRE(started.ok());
  return *id;
}

int wait_for_exit(DockerClient& docker, const std::string& id) {
  auto code = docker.wait_container(id, std::chrono::seconds(60));
  INFO((code.ok() ? std::string() : code.error().to_string()));
  REQUIRE(code.ok());
  return *code;
}

// Runs the spec to completion; returns its id and exit code.
std::pair<std::string, int> run_to_exit(DockerClient& docker, const ContainerSpec& spec) {
  std::string id = create_and_start(docker, spec);
  return {id, wait_for_exit(docker, id)};
}

std::vector<std::string> sh(const std::string& script) {
  return {"sh", "-c", script};
}

struct Fixture {
  std::unique_ptr<DockerClient> docker = docker_for_tests();
  ContainerJanitor janitor{*docker};
  Fixture() { require_worker_image(*docker); }
};

}  // namespace

TEST_CASE("the engine answers a ping") {
  auto docker = docker_for_tests();
  CHECK(docker->ping().ok());
  CHECK(docker->endpoint().rfind("unix://", 0) == 0);
}

TEST_CASE("an unreachable socket gives docker_unreachable with a hint") {
  TempDir dir;
  auto docker = make_docker_client("unix://" + (dir / "no-docker.sock").string());
  auto ping = docker->ping();
  REQUIRE_FALSE(ping.ok());
  CHECK(ping.error().code == "docker_unreachable");
  CHECK_THAT(ping.error().message, Catch::Contains("no socket at"));
  CHECK_THAT(ping.error().message, Catch::Contains("scripts/ensure-docker.sh"));
}

TEST_CASE("a tcp docker host is refused as unsupported") {
  auto resolved = resolve_docker_host("tcp://127.0.0.1:2375");
  REQUIRE_FALSE(resolved.ok());
  CHECK(resolved.error().code == "docker_unreachable");
  CHECK_THAT(resolved.error().message, Catch::Contains("only unix sockets are supported"));

  auto client = make_docker_client("tcp://127.0.0.1:2375");
  auto ping = client->ping();
  REQUIRE_FALSE(ping.ok());
  CHECK_THAT(ping.error().message, Catch::Contains("only unix sockets are supported"));
}

TEST_CASE("resolve_docker_host keeps a configured socket and refuses a missing one") {
  std::string host = test_docker_host();
  REQUIRE_FALSE(host.empty());
  auto kept = resolve_docker_host(host);
  REQUIRE(kept.ok());
  CHECK(*kept == host);

  std::string plain = host.substr(std::string("unix://").size());
  auto from_path = resolve_docker_host(plain);
  REQUIRE(from_path.ok());
  CHECK(*from_path == host);

  auto missing = resolve_docker_host("unix:///nonexistent/polyphony/docker.sock");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == "docker_unreachable");
  CHECK_THAT(missing.error().message, Catch::Contains("/nonexistent/polyphony/docker.sock"));
}

TEST_CASE("image_exists tells a present image from an absent one") {
  Fixture f;
  auto present = f.docker->image_exists(kWorkerImage);
  REQUIRE(present.ok());
  CHECK(*present);
  auto absent = f.docker->image_exists("polyphony-no-such-image:" + random_suffix());
  REQUIRE(absent.ok());
  CHECK_FALSE(*absent);
}

TEST_CASE("wait returns the container's exit code") {
  Fixture f;
  CHECK(run_to_exit(*f.docker, f.janitor.spec(sh("exit 0"))).second == 0);
  CHECK(run_to_exit(*f.docker, f.janitor.spec(sh("exit 7"))).second == 7);
}

TEST_CASE("logs are demultiplexed into stdout and stderr") {
  Fixture f;
  auto [id, code] =
      run_to_exit(*f.docker, f.janitor.spec(sh("echo to-out; echo to-err >&2; head -c 200000 /dev/zero | tr '\\0' x")));
  REQUIRE(code == 0);
  Logs logs = collect_logs(*f.docker, id);
  CHECK(logs.out == "to-out\n" + std::string(200000, 'x'));
  CHECK(logs.err == "to-err\n");
}

TEST_CASE("following logs returns once the container has stopped") {
  Fixture f;
  std::string id = create_and_start(*f.docker, f.janitor.spec(sh("echo first; sleep 1; echo second >&2")));
  Logs logs = collect_logs(*f.docker, id, /*follow=*/true);
  CHECK(logs.out == "first\n");
  CHECK(logs.err == "second\n");
  CHECK(wait_for_exit(*f.docker, id) == 0);
}

TEST_CASE("stream_logs stops reading when on_chunk returns false") {
  Fixture f;
  auto [id, code] = run_to_exit(*f.docker, f.janitor.spec(sh("seq 1 100000")));
  REQUIRE(code == 0);
  int calls = 0;
  auto status = f.docker->stream_logs(id, false, [&](int, std::string_view) {
    ++calls;
    return false;
  });
  CHECK(status.ok());
  CHECK(calls == 1);
}

TEST_CASE("a read-only bind mount cannot be written and a read-write one can") {
  Fixture f;
  TempDir ro_dir, rw_dir;
  ContainerSpec spec = f.janitor.spec(sh("touch /ro/x; echo ro=$?; touch /rw/y; echo rw=$?"));
  spec.user = "0:0";
  spec.mounts = {{ro_dir.path().string(), "/ro", true}, {rw_dir.path().string(), "/rw", false}};
  auto [id, code] = run_to_exit(*f.docker, spec);
  REQUIRE(code == 0);
  Logs logs = collect_logs(*f.docker, id);
  CHECK_THAT(logs.out, Catch::Contains("ro=1") && Catch::Contains("rw=0"));
  CHECK_THAT(logs.err, Catch::Contains("Read-only file system"));
  CHECK_FALSE(fs::exists(ro_dir / "x"));
  CHECK(fs::exists(rw_dir / "y"));
}

TEST_CASE("a container runs as the user it is given, and as agent by default") {
  Fixture f;
  ContainerSpec given = f.janitor.spec(sh("id -u; id -g"));
  given.user = "1234:5678";
  auto [id, code] = run_to_exit(*f.docker, given);
  REQUIRE(code == 0);
  CHECK(collect_logs(*f.docker, id).out == "1234\n5678\n");

  auto [default_id, default_code] = run_to_exit(*f.docker, f.janitor.spec(sh("id -un; id -u; pwd; echo $HOME")));
  REQUIRE(default_code == 0);
  CHECK(collect_logs(*f.docker, default_id).out == "agent\n1000\n/workspace\n/home/agent\n");
}

TEST_CASE("env, working dir, memory limit and network mode reach the container") {
  Fixture f;
  ContainerSpec spec = f.janitor.spec(
      sh("echo $GREETING; pwd; ls /sys/class/net; "
         "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes"));
  spec.env = {"GREETING=hello world"};
  spec.working_dir = "/tmp";
  spec.memory_bytes = 256LL * 1024 * 1024;
  spec.nano_cpus = 500000000;
  auto [id, code] = run_to_exit(*f.docker, spec);
  REQUIRE(code == 0);
  CHECK(collect_logs(*f.docker, id).out == "hello world\n/tmp\nlo\n268435456\n");
}

TEST_CASE("labels are set and list_containers filters by label") {
  Fixture f;
  ContainerSpec a = f.janitor.spec({"true"});
  a.name = "polyphony-test-" + f.janitor.run_id() + "-a";
  a.labels["polyphony.task"] = "task-a";
  ContainerSpec b = f.janitor.spec({"true"});
  b.labels["polyphony.task"] = "task-b";
  auto id_a = f.docker->create_container(a);
  auto id_b = f.docker->create_container(b);
  REQUIRE(id_a.ok());
  REQUIRE(id_b.ok());

  auto only_a = f.docker->list_containers({{"polyphony.test.run", f.janitor.run_id()}, {"polyphony.task", "task-a"}});
  REQUIRE(only_a.ok());
  REQUIRE(only_a->size() == 1);
  CHECK(only_a->front().id == *id_a);
  CHECK(only_a->front().name == a.name);
  CHECK(only_a->front().image == kWorkerImage);
  CHECK(only_a->front().state == "created");
  CHECK(only_a->front().labels.at("polyphony.task") == "task-a");
  CHECK(only_a->front().labels.at("polyphony.test") == "1");

  auto both = f.docker->list_containers({{"polyphony.test.run", f.janitor.run_id()}, {"polyphony.task", ""}});
  REQUIRE(both.ok());
  CHECK(both->size() == 2);
  auto none = f.docker->list_containers({{"polyphony.test.run", f.janitor.run_id()}, {"polyphony.task", "task-c"}});
  REQUIRE(none.ok());
  CHECK(none->empty());
}

TEST_CASE("a wait that times out returns code timeout and a forced remove cleans up") {
  Fixture f;
  std::string id = create_and_start(*f.docker, f.janitor.spec({"sleep", "60"}));
  auto waited = f.docker->wait_container(id, std::chrono::milliseconds(300));
  REQUIRE_FALSE(waited.ok());
  CHECK(waited.error().code == "timeout");
  CHECK_THAT(waited.error().message, Catch::Contains("still running"));

  REQUIRE(f.docker->remove_container(id).ok());
  auto left = f.docker->list_containers(f.janitor.labels());
  REQUIRE(left.ok());
  CHECK(left->empty());
  auto gone = f.docker->wait_container(id, std::chrono::seconds(5));
  REQUIRE_FALSE(gone.ok());
  CHECK(gone.error().code == "not_found");
}

TEST_CASE("stop_container stops a running container") {
  Fixture f;
  std::string id = create_and_start(*f.docker, f.janitor.spec({"sleep", "60"}));
  REQUIRE(f.docker->stop_container(id, 1).ok());
  CHECK(wait_for_exit(*f.docker, id) != 0);
  CHECK(f.docker->stop_container(id, 1).ok());  // already stopped: fine
}

TEST_CASE("removing an absent container is not an error") {
  auto docker = docker_for_tests();
  CHECK(docker->remove_container("polyphony-no-such-container-" + random_suffix()).ok());
}

TEST_CASE("engine errors carry what was tried and the engine's own message") {
  Fixture f;
  ContainerSpec no_image = f.janitor.spec({"true"});
  no_image.image = "polyphony-no-such-image:" + random_suffix();
  auto missing_image = f.docker->create_container(no_image);
  REQUIRE_FALSE(missing_image.ok());
  CHECK(missing_image.error().code == "not_found");
  CHECK_THAT(missing_image.error().message,
             Catch::Contains("create a container from image") && Catch::Contains("polyphony image build"));
  CHECK(missing_image.error().where == f.docker->endpoint());

  ContainerSpec bad_name = f.janitor.spec({"true"});
  bad_name.name = "not a valid name!";
  auto refused = f.docker->create_container(bad_name);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code == "docker");
  CHECK_THAT(refused.error().message, Catch::Contains("Invalid container name"));

  auto no_container = f.docker->start_container("polyphony-no-such-container-" + random_suffix());
  REQUIRE_FALSE(no_container.ok());
  CHECK(no_container.error().code == "not_found");
  CHECK_THAT(no_container.error().message, Catch::Contains("No such container"));
}

TEST_CASE("importing a file that is not a tarball fails with the engine's message") {
  auto docker = docker_for_tests();
  TempDir dir;
  write_file(dir / "broken.tar", std::string(3000, 'z'));
  std::string tag = "polyphony-test-broken:" + random_suffix();
  auto imported = docker->import_image(dir / "broken.tar", tag, {"LABEL polyphony.test=1"});
  REQUIRE_FALSE(imported.ok());
  CHECK(imported.error().code == "docker");
  CHECK_THAT(imported.error().message, Catch::Contains("import"));
  auto exists = docker->image_exists(tag);
  REQUIRE(exists.ok());
  CHECK_FALSE(*exists);
}

TEST_CASE("one client can be used from several threads at once") {
  Fixture f;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10; ++i) {
        if (!f.docker->ping().ok()) ++failures;
        if (!f.docker->list_containers(f.janitor.labels()).ok()) ++failures;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(failures == 0);
}

TEST_CASE("worker image builds and is idempotent") {
  Fixture f;
  ImageBuildOptions options;
  options.tag = "polyphony-worker:test-" + random_suffix();
  // Without the agent CLIs, so that the forced rebuild below re-tars a small rootfs; the
  // image_builder tests cover the agents.
  options.agents = std::vector<AgentPin>{};
  auto first = build_worker_image(*f.docker, options);
  INFO((first.ok() ? std::string() : first.error().to_string()));
  REQUIRE(first.ok());
  CHECK(*first);
  auto second = build_worker_image(*f.docker, options);
  REQUIRE(second.ok());
  CHECK_FALSE(*second);

  auto labels = f.docker->image_labels(options.tag);
  REQUIRE(labels.ok());
  CHECK(labels->at("polyphony.image.version") == image_version({}));

  options.force = true;
  auto forced = build_worker_image(*f.docker, options);
  REQUIRE(forced.ok());
  CHECK(*forced);
  CHECK(f.docker->remove_image(options.tag).ok());
  auto exists = f.docker->image_exists(options.tag);
  REQUIRE(exists.ok());
  CHECK_FALSE(*exists);
}

TEST_CASE("exec runs argv in a running container with its own env, user and directory") {
  Fixture f;
  std::string id = create_and_start(*f.docker, f.janitor.spec({"sleep", "infinity"}));
  Logs logs;
  auto sink = [&](int stream, std::string_view data) {
    (stream == 2 ? logs.err : logs.out).append(data);
    return true;
  };
  ExecSpec spec{{"sh", "-c", "echo \"$GREETING $(id -u) $(pwd)\"; echo oops >&2; exit 5"},
                {"GREETING=hello"},
                "1000:1000",
                "/tmp"};
  auto code = f.docker->exec(id, spec, sink);
  INFO((code.ok() ? std::string() : code.error().to_string()));
  REQUIRE(code.ok());
  CHECK(*code == 5);
  CHECK(logs.out == "hello 1000 /tmp\n");
  CHECK(logs.err == "oops\n");

  // Large output arrives whole and in order.
  logs = {};
  code = f.docker->exec(id, {{"sh", "-c", "head -c 300000 /dev/zero | tr '\\0' y"}, {}, "", ""}, sink);
  REQUIRE(code.ok());
  CHECK(*code == 0);
  CHECK(logs.out == std::string(300000, 'y'));

  // A program that is not there: the engine's 126/127, the way a shell says it.
  code = f.docker->exec(id, {{"no-such-program-here"}, {}, "", ""}, sink);
  REQUIRE(code.ok());
  CHECK((*code == 126 || *code == 127));
}

TEST_CASE("exec returns once its process ends, even when a child it left holds the output open") {
  Fixture f;
  std::string id = create_and_start(*f.docker, f.janitor.spec({"sleep", "infinity"}));
  const auto start = std::chrono::steady_clock::now();
  auto code = f.docker->exec(id, {{"sh", "-c", "sleep 60 & echo started"}, {}, "1000:1000", ""},
                             [](int, std::string_view) { return true; });
  REQUIRE(code.ok());
  CHECK(*code == 0);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(30));
  // kill(-1) as the same user reaches the leftover but not the holder, PID 1.
  auto swept = f.docker->exec(id, {{"sh", "-c", "kill -KILL -1; exit 0"}, {}, "1000:1000", ""},
                              [](int, std::string_view) { return true; });
  REQUIRE(swept.ok());
  std::string left;
  auto listed = f.docker->exec(id, {{"sh", "-c", "for p in /proc/[0-9]*; do cat $p/comm; done"}, {}, "1000:1000", ""},
                               [&](int, std::string_view data) {
                                 left.append(data);
                                 return true;
                               });
  REQUIRE(listed.ok());
  CHECK(left.find("sleep") != std::string::npos);          // the holder
  CHECK(std::count(left.begin(), left.end(), '\n') <= 3);  // holder, this shell, cat
}

TEST_CASE("exec in a stopped or absent container fails with the engine's reason") {
  Fixture f;
  auto [id, exit_code] = run_to_exit(*f.docker, f.janitor.spec(sh("exit 0")));
  REQUIRE(exit_code == 0);
  auto code = f.docker->exec(id, {{"true"}, {}, "", ""}, [](int, std::string_view) { return true; });
  REQUIRE_FALSE(code.ok());
  CHECK(code.error().code == "docker");
  CHECK(code.error().message.find("not running") != std::string::npos);
  code = f.docker->exec("polyphony-no-such-container-" + random_suffix(), {{"true"}, {}, "", ""},
                        [](int, std::string_view) { return true; });
  REQUIRE_FALSE(code.ok());
  CHECK(code.error().code == "not_found");
}

TEST_CASE("a stop ends an exec that is still running") {
  Fixture f;
  std::string id = create_and_start(*f.docker, f.janitor.spec({"sleep", "infinity"}));
  // The stop comes once the exec is running (its first output is in).
  std::atomic<bool> started{false};
  std::thread stopper([&] {
    started.wait(false);
    (void)f.docker->stop_container(id, 0);
  });
  const auto start = std::chrono::steady_clock::now();
  auto code =
      f.docker->exec(id, {{"sh", "-c", "echo started; exec sleep 120"}, {}, "", ""}, [&](int, std::string_view) {
        started = true;
        started.notify_all();
        return true;
      });
  started = true;  // a run that printed nothing must not leave the stopper waiting
  started.notify_all();
  stopper.join();
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(60));
  if (code.ok()) CHECK(*code != 0);
}

TEST_CASE("rename_container renames, and list_containers reports the name") {
  Fixture f;
  std::string id = create_and_start(*f.docker, f.janitor.spec({"sleep", "infinity"}));
  const std::string name = "polyphony.test-" + random_suffix() + ".e1";
  auto renamed = f.docker->rename_container(id, name);
  INFO((renamed.ok() ? std::string() : renamed.error().to_string()));
  REQUIRE(renamed.ok());
  auto list = f.docker->list_containers(f.janitor.labels());
  REQUIRE(list.ok());
  REQUIRE(list->size() == 1);
  CHECK(list->front().name == name);
  CHECK_FALSE(f.docker->rename_container("polyphony-no-such-container-" + random_suffix(), name + "x").ok());
}
