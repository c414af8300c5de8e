// Reading and cross-checking the CURVE settings of config.yaml.
#include "common/config_security.h"

#include "common/endpoint_policy.h"

namespace polyphony::detail {

namespace fs = std::filesystem;

namespace {

Status read_path(const YamlReader& y, const YAML::Node& map, const char* key, const std::string& section,
                 const fs::path& home, fs::path& out, std::map<std::string, std::string>& where) {
  const YAML::Node n = map[key];
  if (!n.IsDefined() || n.IsNull()) return {};
  auto text = y.as_string(n, section + "." + key);
  if (!text.ok()) return text.error();
  if (text->empty()) return {};
  out = resolve_path(*text, home);
  where[key] = y.where(n);
  return {};
}

Status read_keys(const YamlReader& y, const YAML::Node& map, const char* key, const std::string& section,
                 std::vector<std::string>& out, std::map<std::string, std::string>& where) {
  const YAML::Node n = map[key];
  if (!n.IsDefined() || n.IsNull()) return {};
  auto keys = y.as_string_list(n, section + "." + key);
  if (!keys.ok()) return keys.error();
  for (size_t i = 0; i < keys->size(); ++i) {
    if (!is_z85_key((*keys)[i])) {
      return y.error(n[i], section + "." + key + "[" + std::to_string(i) +
                               "] is not a CURVE public key (40 Z85 characters, as in a .pub file from "
                               "`polyphony keys gen`)");
    }
  }
  out = *keys;
  where[key] = y.where(n);
  return {};
}

Status read_insecure(const YamlReader& y, const YAML::Node& map, const std::string& section, bool& out,
                     std::map<std::string, std::string>& where) {
  const YAML::Node n = map["insecure"];
  if (!n.IsDefined() || n.IsNull()) return {};
  auto v = y.as_bool(n, section + ".insecure");
  if (!v.ok()) return v.error();
  out = *v;
  where["insecure"] = y.where(n);
  return {};
}

}  // namespace

Status read_coordinator_security(const YamlReader& y, const YAML::Node& node, const fs::path& home,
                                 CoordinatorSecurity& s) {
  const std::string c = "coordinator";
  POLY_TRY(read_path(y, node, "secret_key_file", c, home, s.secret_key_file, s.where));
  POLY_TRY(read_path(y, node, "public_key_file", c, home, s.public_key_file, s.where));
  POLY_TRY(read_path(y, node, "allowed_workers_dir", c, home, s.allowed_workers_dir, s.where));
  POLY_TRY(read_keys(y, node, "allowed_worker_keys", c, s.allowed_worker_keys, s.where));
  POLY_TRY(read_path(y, node, "allowed_clients_dir", c, home, s.allowed_clients_dir, s.where));
  POLY_TRY(read_keys(y, node, "allowed_client_keys", c, s.allowed_client_keys, s.where));
  POLY_TRY(read_insecure(y, node, c, s.insecure, s.where));
  if (!s.curve() && !s.public_key_file.empty()) {
    return y.error(node["public_key_file"], "coordinator.public_key_file needs coordinator.secret_key_file too");
  }
  return {};
}

Status read_worker_security(const YamlReader& y, const YAML::Node& node, const fs::path& home, WorkerSecurity& s) {
  const std::string w = "worker";
  POLY_TRY(read_path(y, node, "secret_key_file", w, home, s.secret_key_file, s.where));
  POLY_TRY(read_path(y, node, "public_key_file", w, home, s.public_key_file, s.where));
  POLY_TRY(read_path(y, node, "coordinator_public_key_file", w, home, s.coordinator_public_key_file, s.where));
  const YAML::Node k = node["coordinator_public_key"];
  if (k.IsDefined() && !k.IsNull()) {
    auto text = y.as_string(k, "worker.coordinator_public_key");
    if (!text.ok()) return text.error();
    if (!is_z85_key(*text)) {
      return y.error(k,
                     "worker.coordinator_public_key is not a CURVE public key (40 Z85 characters, the "
                     "content of the coordinator's .pub file)");
    }
    s.coordinator_public_key = *text;
    s.where["coordinator_public_key"] = y.where(k);
  }
  POLY_TRY(read_insecure(y, node, w, s.insecure, s.where));
  const bool has_server_key = !s.coordinator_public_key.empty() || !s.coordinator_public_key_file.empty();
  if (!s.coordinator_public_key.empty() && !s.coordinator_public_key_file.empty()) {
    return y.error(node["coordinator_public_key_file"],
                   "give worker.coordinator_public_key or worker.coordinator_public_key_file, not both");
  }
  if (s.curve() && !has_server_key) {
    return y.error(node["secret_key_file"],
                   "worker.secret_key_file needs the coordinator's key too: set "
                   "worker.coordinator_public_key_file (its .pub file)");
  }
  if (!s.curve() && has_server_key) {
    return y.error(node[s.coordinator_public_key.empty() ? "coordinator_public_key_file" : "coordinator_public_key"],
                   "the coordinator's key needs worker.secret_key_file too (this worker's own key)");
  }
  return {};
}

Status check_coordinator_transport(const YamlReader& y, const YAML::Node& node, const Config& c) {
  const CoordinatorSecurity& s = c.coordinator_security;
  struct Endpoint {
    const char* key;
    const std::string& value;
    const char* allow_dir;
    const char* allow_keys;
    bool allowed;
  };
  const Endpoint endpoints[] = {
      {"worker_endpoint", c.worker_endpoint, "allowed_workers_dir", "allowed_worker_keys",
       !s.allowed_workers_dir.empty() || !s.allowed_worker_keys.empty()},
      {"client_endpoint", c.client_endpoint, "allowed_clients_dir", "allowed_client_keys",
       !s.allowed_clients_dir.empty() || !s.allowed_client_keys.empty()},
  };
  for (const auto& e : endpoints) {
    if (e.value.empty() || !crosses_host(e.value)) continue;
    const YAML::Node at = node[e.key];
    if (!s.curve()) {
      POLY_TRY(check_plain_endpoint(e.value, s.insecure, "coordinator.secret_key_file", "coordinator.insecure",
                                    y.where(at)));
    } else if (!e.allowed) {
      return y.error(at, "coordinator." + std::string(e.key) +
                             " uses CURVE but no key is allowed on it: set coordinator." + e.allow_dir +
                             " (a directory of .pub files) or coordinator." + e.allow_keys);
    }
  }
  return {};
}

}  // namespace polyphony::detail
