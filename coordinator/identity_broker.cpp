// The identity broker: named credential bundles become read-only mounts, env values and the
// files copied into each agent run's own config directory.
#include "coordinator/identity_broker.h"

#include <nlohmann/json.hpp>

#include <cctype>
#include <fstream>
#include <optional>
#include <sstream>
#include <vector>

#include "common/log.h"

namespace polyphony {

namespace {

// The value, or nullopt for an optional one that is not there.
Result<std::optional<std::string>> env_value(const IdentityEnv& e, const std::string& where) {
  if (!e.from_env.empty()) {
    const char* v = std::getenv(e.from_env.c_str());
    if ((v == nullptr || *v == '\0') && e.optional) return std::optional<std::string>();  // empty is no credential
    if (v == nullptr) {
      return make_error("identity",
                        "env " + e.name + " comes from the host variable " + e.from_env +
                            ", which is not set; export it before starting the coordinator",
                        where);
    }
    return std::optional<std::string>(std::string(v));
  }
  if (!e.from_file.empty()) {
    auto path = resolve_path(e.from_file, "/");
    std::ifstream in(path);
    if (!in && e.optional) return std::optional<std::string>();
    if (!in)
      return make_error("identity", "env " + e.name + " comes from " + path.string() + ", which cannot be read", where);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string v = ss.str();
    while (!v.empty() && (v.back() == '\n' || v.back() == '\r' || v.back() == ' ')) v.pop_back();
    return std::optional<std::string>(v);
  }
  return std::optional<std::string>(e.value);
}

constexpr size_t kMaxIdentityFileBytes = 1 << 20;

// Registers the secrets inside a credential file (JSON string values under keys that name a
// token, key or secret), so a CLI that prints one has it redacted like an env value.
void register_file_secrets(const std::string& content) {
  auto doc = nlohmann::json::parse(content, nullptr, false);
  if (doc.is_discarded()) return;
  std::vector<std::pair<std::string, const nlohmann::json*>> pending{{"", &doc}};
  while (!pending.empty()) {
    auto [key, node] = pending.back();
    pending.pop_back();
    if (node->is_structured()) {
      for (auto it = node->begin(); it != node->end(); ++it) {
        pending.emplace_back(node->is_object() ? it.key() : key, &*it);
      }
    } else if (node->is_string()) {
      std::string k = key;
      for (auto& c : k) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      const auto& v = node->get_ref<const std::string&>();
      const bool named = k.find("token") != k.npos || k.find("key") != k.npos || k.find("secret") != k.npos;
      if (named && v.size() >= 12) register_secret(v);
    }
  }
}

Result<protocol::AgentFile> identity_file(const Identity& identity, const IdentityFile& f, const std::string& where) {
  const auto host = resolve_path(f.host_path, "/");
  const std::string what =
      "identity '" + identity.name + "' copies " + host.string() + " into the agent's config directory";
  std::error_code ec;
  if (!std::filesystem::is_regular_file(host, ec)) {
    return make_error("identity",
                      what + ", but it is " + (std::filesystem::exists(host, ec) ? "not a regular file" : "missing") +
                          " on this host",
                      where);
  }
  if (std::filesystem::file_size(host, ec) > kMaxIdentityFileBytes) {
    return make_error("identity", what + ", but it is larger than 1 MiB", where);
  }
  std::ifstream in(host, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  if (!in.is_open() || in.bad()) return make_error("identity", what + ", but it cannot be read", where);
  register_file_secrets(ss.str());
  return protocol::AgentFile{f.as, ss.str(), 0600};
}

}  // namespace

Result<ResolvedIdentity> resolve_identity(const Identity& identity, const std::string& identities_file) {
  ResolvedIdentity out;
  for (const auto& m : identity.mounts) {
    auto host = resolve_path(m.host_path, "/");
    const std::string where = identities_file + ":" + std::to_string(m.line);
    if (!std::filesystem::exists(host)) {
      return make_error(
          "identity",
          "identity '" + identity.name + "' mounts " + host.string() + ", which does not exist on this host", where);
    }
    out.mounts.push_back(protocol::Mount{host.string(), m.container_path, true});
  }
  for (const auto& f : identity.files) {
    auto file = identity_file(identity, f, identities_file + ":" + std::to_string(f.line));
    if (!file.ok()) return file.error();
    out.files.push_back(*file);
  }
  std::string wanted;
  for (const auto& e : identity.env) {
    auto v = env_value(e, identities_file + ":" + std::to_string(e.line));
    if (!v.ok()) return v.error();
    if (!v->has_value()) {
      wanted += (wanted.empty() ? "" : " or ") + (e.from_env.empty() ? e.from_file : e.from_env);
      continue;
    }
    register_secret(**v);
    out.env[e.name] = **v;
  }
  // Optional credentials are alternatives: an identity with none of them would run its agent
  // logged out.
  if (!identity.env.empty() && out.env.empty() && out.files.empty() && out.mounts.empty()) {
    return make_error("identity",
                      "identity '" + identity.name + "' has none of its credentials: set " + wanted +
                          " before starting the coordinator",
                      identities_file + ":" + std::to_string(identity.line));
  }
  return out;
}

}  // namespace polyphony
