// Helpers for tests against the real Docker engine: the client, the worker image, and a
// guard that removes every container a test created (found by its labels).
#pragma once

#include <catch2/catch.hpp>

#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <string>

#include "test_support.h"
#include "worker-agent/docker_client.h"
#include "worker-agent/image_builder.h"

namespace polyphony::testing {

inline constexpr const char* kWorkerImage = "polyphony-worker:latest";

// A client for the test engine; fails the test (with what to do) when there is none.
inline std::unique_ptr<DockerClient> docker_for_tests() {
  std::string host = test_docker_host();
  INFO("no Docker engine found: run `export DOCKER_HOST=$(scripts/ensure-docker.sh)`");
  REQUIRE_FALSE(host.empty());
  auto docker = make_docker_client(host);
  auto ping = docker->ping();
  INFO((ping.ok() ? std::string() : ping.error().to_string()));
  REQUIRE(ping.ok());
  return docker;
}

// Builds polyphony-worker:latest once per test process when it is missing or outdated.
inline void require_worker_image(DockerClient& docker) {
  static bool ready = false;
  if (ready) return;
  ImageBuildOptions options;
  options.progress = [](const std::string& line) { std::cerr << "image build: " << line << "\n"; };
  auto built = build_worker_image(docker, options);
  INFO((built.ok() ? std::string() : built.error().to_string()));
  REQUIRE(built.ok());
  ready = true;
}

inline std::string random_suffix() {
  std::random_device rd;
  std::mt19937_64 rng(rd());
  return std::to_string(rng() % 1000000000);
}

// Labels every container of one test case polyphony.test=1 plus a per-case run id, and
// force-removes all containers carrying them when the case ends, pass or fail.
class ContainerJanitor {
 public:
  explicit ContainerJanitor(DockerClient& docker) : docker_(docker), run_(random_suffix()) {}
  ~ContainerJanitor() {
    auto found = docker_.list_containers(labels());
    if (!found.ok()) {
      std::cerr << "cleanup: " << found.error().to_string() << "\n";
      return;
    }
    for (const auto& c : *found) {
      auto removed = docker_.remove_container(c.id);
      if (!removed.ok()) std::cerr << "cleanup: " << removed.error().to_string() << "\n";
    }
  }
  ContainerJanitor(const ContainerJanitor&) = delete;
  ContainerJanitor& operator=(const ContainerJanitor&) = delete;

  std::map<std::string, std::string> labels() const { return {{"polyphony.test", "1"}, {"polyphony.test.run", run_}}; }
  const std::string& run_id() const { return run_; }

  // A spec for the worker image, without network, carrying this janitor's labels.
  ContainerSpec spec(std::vector<std::string> cmd) const {
    ContainerSpec s;
    s.image = kWorkerImage;
    s.cmd = std::move(cmd);
    s.labels = labels();
    s.network_mode = "none";
    return s;
  }

 private:
  DockerClient& docker_;
  std::string run_;
};

}  // namespace polyphony::testing
