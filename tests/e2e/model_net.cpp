// A network namespace with no route out, holding stand-in model APIs: see model_net.h.
#include "model_net.h"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>

#include "worker-agent/docker_client.h"

namespace polyphony::testing {

namespace fs = std::filesystem;

ModelNet::ModelNet() : dir_("polyphony-model-net") {
  const std::string host = test_docker_host();
  REQUIRE_FALSE(host.empty());
  auto docker = make_docker_client(host);
  ContainerSpec cs;
  cs.image = image();
  cs.cmd = {"sleep", "infinity"};
  cs.network_mode = "none";
  cs.labels = {{"polyphony.test", "model-net"}};
  auto id = docker->create_container(cs);
  INFO((id.ok() ? "" : id.error().to_string()));
  REQUIRE(id.ok());
  holder_ = *id;
  auto started = docker->start_container(holder_);
  INFO((started.ok() ? "" : started.error().to_string()));
  REQUIRE(started.ok());
}

std::string ModelNet::image() {
  const char* dev = std::getenv("POLYPHONY_TEST_AGENT_IMAGE");
  return dev != nullptr && *dev != '\0' ? dev : "polyphony-worker:latest";
}

ModelNet::~ModelNet() {
  servers_.clear();  // each stops (SIGTERM) as it goes
  if (auto host = test_docker_host(); !host.empty() && !holder_.empty()) {
    (void)make_docker_client(host)->remove_container(holder_);
  }
}

int ModelNet::serve(const std::string& name, const nlohmann::json& script) {
  const std::string host = test_docker_host();
  auto pid = make_docker_client(host)->container_pid(holder_);
  REQUIRE(pid.ok());
  REQUIRE(*pid > 0);
  const fs::path script_file = dir_ / (name + ".script.json");
  const fs::path port_file = dir_ / (name + ".port");
  write_file(script_file, script.dump(2));
  // nsenter joins the holder's network namespace only, then execs the stand-in: it listens on
  // that namespace's loopback, which nothing outside the namespace can reach, and nothing in it
  // can reach out of.
  servers_.push_back(std::make_unique<BackgroundProcess>(
      std::vector<std::string>{"/usr/bin/nsenter", "--net=/proc/" + std::to_string(*pid) + "/ns/net",
                               FAKE_MODEL_API_PROGRAM, "--listen", "127.0.0.1:0", "--port-file", port_file.string(),
                               "--script", script_file.string(), "--log", (dir_ / (name + ".requests.jsonl")).string()},
      std::map<std::string, std::string>{}, dir_ / (name + ".log")));
  REQUIRE(eventually([&] { return fs::exists(port_file); }, std::chrono::seconds(10)));
  return std::stoi(read_file(port_file));
}

std::vector<nlohmann::json> ModelNet::requests(const std::string& name) const {
  std::vector<nlohmann::json> out;
  std::ifstream in(dir_ / (name + ".requests.jsonl"));
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  }
  return out;
}

}  // namespace polyphony::testing
