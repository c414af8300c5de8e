// The CURVE keys of config.yaml's `coordinator:` and `worker:` sections (used by config.cpp).
#pragma once

#include <filesystem>

#include "common/config.h"
#include "common/yaml_reader.h"

namespace polyphony::detail {

// Reads the security keys of the `coordinator:` map (paths resolved against `home`).
Status read_coordinator_security(const YamlReader& y, const YAML::Node& node, const std::filesystem::path& home,
                                 CoordinatorSecurity& out);
Status read_worker_security(const YamlReader& y, const YAML::Node& node, const std::filesystem::path& home,
                            WorkerSecurity& out);

// The coordinator's endpoints against its keys: tcp:// needs CURVE (or insecure loopback), and
// CURVE needs someone to allow. `node` is the `coordinator:` map, for file:line.
Status check_coordinator_transport(const YamlReader& y, const YAML::Node& node, const Config& c);

}  // namespace polyphony::detail
