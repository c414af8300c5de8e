// The worker's own allow-list and limits: a RunSpec outside the allow-list is refused naming
// the field, a file the agent wrote is read without trusting it, and a task container is
// locked down (no capabilities, no-new-privileges, a process limit, a read-only root).
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "docker_test_support.h"
#include "worker-agent/container_pool.h"
#include "worker-agent/lockdown.h"

using namespace polyphony;
using namespace polyphony::testing;
namespace fs = std::filesystem;

namespace {

protocol::RunSpec spec_with(const std::string& image, const std::string& network,
                            const std::vector<std::string>& mounts = {}) {
  protocol::RunSpec s;
  s.image = image;
  s.network_mode = network;
  for (const auto& m : mounts) s.agent.mounts.push_back({m, "/home/agent/x", true});
  return s;
}

}  // namespace

TEST_CASE("a RunSpec outside the worker's allow-list is refused with a reason naming the field") {
  TempDir dir;
  write_file(dir / "identities/claude/config", "x\n");
  fs::create_symlink("/etc", dir / "identities/escape");
  AllowList allowed{{"polyphony-worker:latest"}, {"none"}, {dir / "identities"}};
  struct Case {
    protocol::RunSpec spec;
    std::string field;  // "" : allowed
  };
  const std::vector<Case> cases = {
      {spec_with("polyphony-worker:latest", "none"), ""},
      {spec_with("polyphony-worker:latest", "none", {(dir / "identities/claude").string()}), ""},
      {spec_with("polyphony-worker:latest", "none", {(dir / "identities").string()}), ""},
      {spec_with("evil/miner:latest", "none"), "image: evil/miner:latest"},
      {spec_with("polyphony-worker:latest", "host"), "network_mode: host"},
      {spec_with("polyphony-worker:latest", "container:other"), "network_mode: container:other"},
      {spec_with("polyphony-worker:latest", "none", {"/etc"}), "agent.mounts[0].host_path: /etc"},
      {spec_with("polyphony-worker:latest", "none", {(dir / "identities/../identities-not").string()}),
       "agent.mounts[0].host_path"},
      // A symlink inside an allowed root that leads out of it.
      {spec_with("polyphony-worker:latest", "none", {(dir / "identities/escape").string()}),
       "agent.mounts[0].host_path"},
      {spec_with("polyphony-worker:latest", "none", {(dir / "identities/claude").string(), "/var/run/docker.sock"}),
       "agent.mounts[1].host_path: /var/run/docker.sock"},
  };
  for (const auto& c : cases) {
    INFO(c.spec.image << " " << c.spec.network_mode << " "
                      << (c.spec.agent.mounts.empty() ? "" : c.spec.agent.mounts.back().host_path));
    auto refused = refusal(c.spec, allowed);
    if (c.field.empty()) {
      CHECK_FALSE(refused);
    } else {
      REQUIRE(refused);
      CHECK_THAT(*refused, Catch::StartsWith(c.field));
    }
  }
  auto reviewer = spec_with("polyphony-worker:latest", "none");
  reviewer.reviewer.mounts.push_back({"/root/.ssh", "/home/agent/.ssh", true});
  REQUIRE(refusal(reviewer, allowed));
  CHECK_THAT(*refusal(reviewer, allowed), Catch::StartsWith("reviewer.mounts[0].host_path: /root/.ssh"));
  CHECK(refusal(spec_with("polyphony-worker:latest", "none"), AllowList{}));  // an empty list allows nothing
}

TEST_CASE("a file the agent wrote is read only when it is a small regular file") {
  TempDir dir;
  write_file(dir / "ok.md", "approve\n");
  auto ok = read_untrusted_file(dir / "ok.md", 1024);
  REQUIRE(ok.ok());
  CHECK(*ok == "approve\n");

  fs::create_symlink("/etc/shadow", dir / "shadow.md");
  fs::create_symlink("/dev/zero", dir / "zero.md");
  REQUIRE(::mkfifo((dir / "fifo.md").c_str(), 0600) == 0);
  {
    std::ofstream big(dir / "big.md");
    big << std::string(2048, 'x');
  }
  struct Case {
    std::string name;
    std::string why;
  };
  for (const auto& c : std::vector<Case>{{"shadow.md", "symbolic link"},
                                         {"zero.md", "symbolic link"},
                                         {"fifo.md", "a FIFO"},
                                         {"big.md", "2048 bytes, more than the 1 KiB allowed"}}) {
    INFO(c.name);
    auto r = read_untrusted_file(dir / c.name, 1024);  // a FIFO with no writer must not block
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == "untrusted_file");
    CHECK_THAT(r.error().message, Catch::Contains(c.why));
  }
  auto missing = read_untrusted_file(dir / "none.md", 1024);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == "not_found");
  auto device = read_untrusted_file("/dev/zero", 1024);
  REQUIRE_FALSE(device.ok());
  CHECK_THAT(device.error().message, Catch::Contains("character device"));
}

TEST_CASE("disk usage counts a tree's blocks without following symlinks out of it") {
  TempDir dir;
  fs::create_directories(dir / "tree/sub");
  { std::ofstream f(dir / "tree/a.bin"); }
  {
    std::ofstream f(dir / "tree/sub/b.bin", std::ios::binary);
    f << std::string(1 << 20, 'x');
  }
  fs::create_symlink("/usr", dir / "tree/usr");
  const int64_t used = disk_usage(dir / "tree");
  CHECK(used >= (1 << 20));
  CHECK(used < (4 << 20));
  CHECK(human_bytes(10LL << 30) == "10 GiB");
  CHECK(human_bytes(64 << 20) == "64 MiB");
  CHECK(human_bytes(1000) == "1000 bytes");
}

TEST_CASE("a task container has no capabilities, no-new-privileges, a process limit and a read-only root") {
  auto docker = docker_for_tests();
  require_worker_image(*docker);
  ContainerJanitor janitor(*docker);
  TempDir dir;
  fs::create_directories(dir / "repo");
  fs::create_directories(dir / "meta");
  fs::create_directories(dir / "mirror");
  REQUIRE(::chown((dir / "repo").c_str(), 1000, 1000) == 0);
  WarmKey key;
  key.image = kWorkerImage;
  key.user = "1000:1000";
  key.network_mode = "none";
  key.limits.pids_limit = 40;
  key.limits.workspace_limit_bytes = 8 << 20;
  ContainerSpec cs = task_container_spec(key, dir / "repo", dir / "meta", dir / "mirror", janitor.labels());
  auto id = docker->create_container(cs);
  REQUIRE(id.ok());
  REQUIRE(docker->start_container(*id).ok());
  std::string out;
  const std::string script =
      "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):' /proc/self/status; "
      "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max; "
      "touch /etc/written 2>/dev/null && echo root-writable; "
      "touch /tmp/t && echo tmp-writable; touch $HOME/h && echo home-writable; stat -c 'home %u' $HOME; "
      "printf '#!/bin/sh\\necho ran-from-tmp\\n' > /tmp/x.sh && chmod +x /tmp/x.sh && /tmp/x.sh; "
      "touch /workspace/w && echo workspace-writable; "
      "dd if=/dev/zero of=/workspace/big bs=1M count=64 2>/dev/null; stat -c 'big %s' /workspace/big";
  auto code = docker->exec(*id, ExecSpec{{"sh", "-c", script}, {}, "", ""}, [&](int, std::string_view d) {
    out.append(d);
    return true;
  });
  REQUIRE(code.ok());
  INFO(out);
  for (const char* cap : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}) {
    CHECK_THAT(out, Catch::Contains(std::string(cap) + ":\t0000000000000000"));
  }
  CHECK_THAT(out, Catch::Contains("NoNewPrivs:\t1"));
  CHECK_THAT(out, Catch::Contains("\n40\n"));
  CHECK_THAT(out, !Catch::Contains("root-writable"));
  CHECK_THAT(out, Catch::Contains("tmp-writable") && Catch::Contains("home-writable") &&
                      Catch::Contains("workspace-writable") && Catch::Contains("home 1000") &&
                      Catch::Contains("ran-from-tmp"));
  // No file grows past the workspace limit (the fsize ulimit): the watchdog fails the task.
  CHECK_THAT(out, Catch::Contains("big " + std::to_string(8 << 20)));
}
