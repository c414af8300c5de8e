// The coordinator's sockets: the workers' and the clients' ROUTER endpoints, and ZAP for CURVE.
#include <filesystem>

#include "common/endpoint_policy.h"
#include "common/log.h"
#include "common/private_files.h"
#include "coordinator/coordinator.h"

namespace polyphony {

namespace fs = std::filesystem;

std::string local_client_endpoint(const fs::path& home) {
  return "ipc://" + (home / "coordinator.sock").string();
}

Status Coordinator::start_zap() {
  const CoordinatorSecurity& security = settings_.config.coordinator_security;
  if (!security.curve()) return {};
  auto keys = protocol::load_coordinator_keys(security);
  if (!keys.ok()) return keys.error();
  keys_ = std::move(*keys);
  auto zap = protocol::ZapHandler::bind(
      context_, {{protocol::kWorkersDomain, keys_->workers}, {protocol::kClientsDomain, keys_->clients}});
  if (!zap.ok()) return zap.error();
  zap_ = std::move(*zap);
  spdlog::info("CURVE on: {} worker key(s) and {} client key(s) allowed", keys_->workers.size(), keys_->clients.size());
  return {};
}

namespace {

// Binds `endpoints` on `socket`: ipc:// and inproc:// first, plain; then those that cross a host,
// with CURVE when `keys` is set, else only loopback TCP with `insecure`. Socket options apply
// to later binds only, so the order matters.
Status bind_all(zmq::socket_t& socket, const std::vector<std::string>& endpoints,
                const std::optional<protocol::CoordinatorKeys>& keys, const char* zap_domain, bool insecure,
                const char* what) {
  std::vector<std::string> ordered;
  for (const auto& ep : endpoints)
    if (!crosses_host(ep)) ordered.push_back(ep);
  const size_t local = ordered.size();
  for (const auto& ep : endpoints)
    if (crosses_host(ep)) ordered.push_back(ep);
  for (size_t i = 0; i < ordered.size(); ++i) {
    const std::string& ep = ordered[i];
    if (i == local && keys) protocol::make_curve_server(socket, keys->server, zap_domain);
    if (i >= local && !keys) {
      POLY_TRY(check_plain_endpoint(ep, insecure, "coordinator.secret_key_file", "coordinator.insecure", ep));
    }
    if (ep.rfind("ipc://", 0) == 0 && std::string(what) == "clients") {
      std::error_code ec;
      fs::remove(ep.substr(6), ec);  // a socket file left by a killed coordinator
    }
    try {
      socket.bind(ep);
    } catch (const zmq::error_t& e) {
      return make_error("network", std::string("cannot listen for ") + what + ": " + e.what(), ep);
    }
    if (ep.rfind("ipc://", 0) == 0) make_private(ep.substr(6));
    if (i >= local) spdlog::info("listening for {} on {} ({})", what, ep, keys ? "CURVE" : "plain TCP, loopback");
  }
  return {};
}

}  // namespace

Status Coordinator::bind_worker_endpoints(const std::vector<std::string>& endpoints) {
  const Config& config = settings_.config;
  socket_.set(zmq::sockopt::router_mandatory, 1);
  socket_.set(zmq::sockopt::linger, 0);
  socket_.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(protocol::kMaxFrameBytes));
  // ZMTP heartbeats let libzmq drop a dead TCP connection, so a worker that reconnects with
  // the same routing id is not held back by its old, half-open one.
  socket_.set(zmq::sockopt::heartbeat_ivl, static_cast<int>(config.heartbeat_interval_ms));
  socket_.set(zmq::sockopt::heartbeat_timeout,
              static_cast<int>(config.heartbeat_interval_ms * config.heartbeat_liveness));
  return bind_all(socket_, endpoints, keys_, protocol::kWorkersDomain, config.coordinator_security.insecure, "workers");
}

Status Coordinator::bind_client_endpoints(const std::vector<std::string>& endpoints) {
  client_socket_.set(zmq::sockopt::linger, 0);
  // A reply to a client whose connection is gone fails rather than vanishing: its watches end.
  client_socket_.set(zmq::sockopt::router_mandatory, 1);
  client_socket_.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(protocol::kMaxFrameBytes));
  return bind_all(client_socket_, endpoints, keys_, protocol::kClientsDomain,
                  settings_.config.coordinator_security.insecure, "clients");
}

}  // namespace polyphony
