// The identity broker: named credential bundles become read-only mounts and env values.
#include "coordinator/identity_broker.h"

#include <fstream>
#include <sstream>

#include "common/log.h"

namespace polyphony {

namespace {

Result<std::string> env_value(const IdentityEnv& e, const std::string& where) {
  if (!e.from_env.empty()) {
    const char* v = std::getenv(e.from_env.c_str());
    if (v == nullptr) {
      return make_error("identity", "env " + e.name + " comes from the host variable " + e.from_env +
                        ", which is not set; export it before starting the coordinator", where);
    }
    return std::string(v);
  }
  if (!e.from_file.empty()) {
    auto path = resolve_path(e.from_file, "/");
    std::ifstream in(path);
    if (!in) return make_error("identity", "env " + e.name + " comes from " + path.string() + ", which cannot be read", where);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string v = ss.str();
    while (!v.empty() && (v.back() == '\n' || v.back() == '\r' || v.back() == ' ')) v.pop_back();
    return v;
  }
  return e.value;
}

}  // namespace

Result<ResolvedIdentity> resolve_identity(const Identity& identity, const std::string& identities_file) {
  ResolvedIdentity out;
  for (const auto& m : identity.mounts) {
    auto host = resolve_path(m.host_path, "/");
    const std::string where = identities_file + ":" + std::to_string(m.line);
    if (!std::filesystem::exists(host)) {
      return make_error("identity", "identity '" + identity.name + "' mounts " + host.string() +
                        ", which does not exist on this host", where);
    }
    out.mounts.push_back(protocol::Mount{host.string(), m.container_path, true});
  }
  for (const auto& e : identity.env) {
    auto v = env_value(e, identities_file + ":" + std::to_string(e.line));
    if (!v.ok()) return v.error();
    register_secret(*v);
    out.env[e.name] = *v;
  }
  return out;
}

}  // namespace polyphony
