// `polyphony serve`'s dashboard: its link to the coordinator is the client endpoint, the way the
// CLI's `workers`, `cancel`, `retry` and `polyphony-submit` ask.
#include "cli/dashboard_link.h"

#include <spdlog/spdlog.h>

#include <fstream>

#include "cli/client_connection.h"
#include "common/endpoint_policy.h"
#include "common/private_files.h"
#include "coordinator/coordinator.h"

namespace polyphony::cli {

namespace {

class ClientEndpointLink final : public dashboard::CoordinatorLink {
 public:
  ClientEndpointLink(zmq::context_t& context, std::string endpoint)
      : context_(context), target_{std::move(endpoint), std::nullopt} {}

  Result<protocol::WorkersReply> workers() override {
    return ask_for<protocol::WorkersReply>(context_, target_, protocol::WorkersQuery{});
  }
  Result<protocol::ClientReply> submit(const protocol::Submit& submit) override {
    return ask(context_, target_, submit);
  }
  Result<protocol::ClientReply> control(const std::string& task_id, const std::string& action) override {
    return ask(context_, target_, protocol::Control{task_id, action});
  }

 private:
  zmq::context_t& context_;
  ClientTarget target_;  // the local endpoint: no CURVE
};

class ServedDashboard final : public DashboardHandle {
 public:
  ServedDashboard(std::unique_ptr<ClientEndpointLink> link, std::unique_ptr<dashboard::Dashboard> server)
      : link_(std::move(link)), server_(std::move(server)) {}
  ~ServedDashboard() override { server_.reset(); }  // the server goes before the link it uses

 private:
  std::unique_ptr<ClientEndpointLink> link_;
  std::unique_ptr<dashboard::Dashboard> server_;
};

}  // namespace

Result<std::unique_ptr<DashboardHandle>> start_dashboard(zmq::context_t& context, const Config& config) {
  if (config.http_listen.empty()) return std::unique_ptr<DashboardHandle>();
  auto address = parse_http_listen(config.http_listen);
  if (!address) return make_error("config", "not HOST:PORT: " + config.http_listen, "coordinator.http_listen");
  dashboard::DashboardOptions options;
  options.host = address->first;
  options.port = address->second;
  options.state_db = config.state_db;
  options.log_dir = config.log_dir;
  if (!config.http_token_file.empty()) {
    auto token = dashboard::read_token_file(config.http_token_file);
    if (!token.ok()) return token.error();
    options.token = *token;
  }
  auto link = std::make_unique<ClientEndpointLink>(context, local_client_endpoint(config.home));
  auto server = dashboard::Dashboard::start(options, *link);
  if (!server.ok()) return server.error();
  const std::string url = (*server)->url();
  spdlog::info("dashboard at {} (metrics at {}metrics)", url, url);
  const auto url_file = config.home / "dashboard.url";
  std::ofstream(url_file, std::ios::trunc) << url << "\n";
  make_private(url_file);
  return std::unique_ptr<DashboardHandle>(new ServedDashboard(std::move(link), std::move(*server)));
}

}  // namespace polyphony::cli
