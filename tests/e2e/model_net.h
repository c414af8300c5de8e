// A network namespace with no route out, holding stand-in model APIs (tests/fake_model) that the
// real agent CLIs in task containers reach over its loopback, and nothing else.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "test_support.h"

namespace polyphony::testing {

class ModelNet {
 public:
  // Starts the holder: a container from polyphony-worker:latest with the engine's networking
  // disabled (only loopback). REQUIREs an engine and the image.
  ModelNet();
  ~ModelNet();
  ModelNet(const ModelNet&) = delete;
  ModelNet& operator=(const ModelNet&) = delete;

  // Starts a stand-in in the namespace playing `script` (JSON); returns the port it listens
  // on at 127.0.0.1 there.
  int serve(const std::string& name, const nlohmann::json& script);
  // Every request stand-in `name` received, oldest first.
  std::vector<nlohmann::json> requests(const std::string& name) const;

  // The image with the agent CLIs: polyphony-worker:latest, or $POLYPHONY_TEST_AGENT_IMAGE (a
  // development build of it).
  static std::string image();

  // The network mode that puts a task container in the namespace: "container:<holder id>".
  std::string network_mode() const { return "container:" + holder_; }

 private:
  TempDir dir_;
  std::string holder_;
  std::vector<std::unique_ptr<BackgroundProcess>> servers_;
};

}  // namespace polyphony::testing
