// Fleet test harness: a coordinator thread, fake workers and clients.
#include "fleet_support.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <zmq_addon.hpp>

#include "common/config.h"
#include "protocol/validation.h"

namespace polyphony::testing {

LogCapture::LogCapture() : sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(4000)) {
  spdlog::default_logger()->sinks().push_back(sink_);
}

LogCapture::~LogCapture() {
  auto& sinks = spdlog::default_logger()->sinks();
  sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
}

bool LogCapture::contains(const std::string& text) const {
  return this->text().find(text) != std::string::npos;
}

std::string LogCapture::text() const {
  std::string out;
  for (const auto& line : sink_->last_formatted()) out += line;
  return out;
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  socklen_t len = sizeof(addr);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

FleetCoordinator::FleetCoordinator(const std::string& extra_config, const std::string& extra_repos)
    : dir_("polyphony-fleet"),
      extra_(extra_config),
      extra_repos_(extra_repos),
      worker_endpoint_("tcp://127.0.0.1:" + std::to_string(free_port())),
      client_endpoint_(local_client_endpoint(dir_.path())) {}

void FleetCoordinator::write_config() {
  for (const auto& [name, text] : default_config_files()) write_file(dir_ / name, text);
  write_file(dir_ / "config.yaml",
             "poll_interval_ms: 20\nmax_concurrency: 16\nretry_backoff_base_ms: 10\nretry_backoff_cap_ms: 20\n"
             "max_attempts: 5\n"
             "repos:\n  app: {url: \"https://example.invalid/app.git\"}\n" +
                 extra_repos_ + extra_);
}

void FleetCoordinator::start() {
  write_config();
  auto settings = load_settings(dir_.path());
  REQUIRE(settings.ok());
  settings->config.heartbeat_interval_ms = 100;
  settings->config.heartbeat_liveness = 20;  // 2 s: fake workers heartbeat only while a test waits on them
  settings->config.embedded_worker = false;
  auto c = Coordinator::create(context_, *settings, {worker_endpoint_}, {client_endpoint_}, clock_);
  if (!c.ok()) {
    start_error_ = c.error();
    return;
  }
  coordinator_ = std::move(*c);
  thread_ = std::thread([this] { coordinator_->run(stop_); });
}

FleetCoordinator::~FleetCoordinator() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  coordinator_.reset();
}

FakeWorker::FakeWorker(zmq::context_t& ctx, const std::string& endpoint, const std::string& id,
                       std::vector<std::string> labels, int capacity,
                       const std::optional<protocol::CurveClientKeys>& curve)
    : socket_(ctx, zmq::socket_type::dealer), id_(id), labels_(std::move(labels)), capacity_(capacity) {
  socket_.set(zmq::sockopt::linger, 0);
  socket_.set(zmq::sockopt::routing_id, id);
  if (curve) protocol::make_curve_client(socket_, *curve);
  socket_.connect(endpoint);
}

void FakeWorker::hello(std::vector<protocol::RunningTask> running) {
  protocol::Hello h;
  h.worker_id = id_;
  h.hostname = "fake-" + id_;
  h.version = "test";
  h.capacity = capacity_;
  h.labels = labels_;
  h.image_present = true;
  h.running = std::move(running);
  send(h);
}

// Unchecked: a fake worker may send what a real one must not, for the coordinator to refuse.
void FakeWorker::send(const protocol::Message& m) {
  send_frames({protocol::detail::encode_unchecked(m)});
}

void FakeWorker::send_frames(const std::vector<std::string>& frames) {
  std::vector<zmq::const_buffer> parts;
  for (const auto& f : frames) parts.push_back(zmq::buffer(f));
  zmq::send_multipart(socket_, parts, zmq::send_flags::dontwait);
}

std::optional<protocol::Message> FakeWorker::next(const std::function<bool(const protocol::Message&)>& want,
                                                  std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (!silent_) {
      protocol::Heartbeat hb;
      hb.seq = ++seq_;
      send(hb);
    }
    zmq::pollitem_t items[] = {{socket_.handle(), 0, ZMQ_POLLIN, 0}};
    zmq::poll(items, 1, std::chrono::milliseconds(20));
    zmq::message_t frame;
    while (socket_.recv(frame, zmq::recv_flags::dontwait)) {
      auto m = protocol::decode(frame.to_string_view());
      if (m.ok() && want(*m)) return *m;
    }
  }
  return std::nullopt;
}

std::optional<protocol::Message> ask(zmq::context_t& ctx, const std::string& endpoint, const protocol::Message& m,
                                     std::chrono::milliseconds timeout,
                                     const std::optional<protocol::CurveClientKeys>& curve) {
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 0);
  if (curve) protocol::make_curve_client(s, *curve);
  s.connect(endpoint);
  const std::string body = protocol::encode(m);
  s.send(zmq::buffer(body), zmq::send_flags::none);
  zmq::pollitem_t items[] = {{s.handle(), 0, ZMQ_POLLIN, 0}};
  zmq::poll(items, 1, timeout);
  zmq::message_t reply;
  if (!(items[0].revents & ZMQ_POLLIN) || !s.recv(reply, zmq::recv_flags::dontwait)) return std::nullopt;
  auto decoded = protocol::decode(reply.to_string_view());
  if (!decoded.ok()) return std::nullopt;
  return *decoded;
}

std::string submit(zmq::context_t& ctx, const std::string& endpoint, const std::string& title,
                   std::vector<std::string> labels) {
  protocol::Submit s;
  s.title = title;
  s.repo = "app";
  s.agent = "scripted";
  s.labels = std::move(labels);
  auto reply = ask(ctx, endpoint, s);
  REQUIRE(reply.has_value());
  const auto* r = std::get_if<protocol::ClientReply>(&*reply);
  REQUIRE(r != nullptr);
  INFO(r->error);
  REQUIRE(r->ok);
  return r->task_id;
}

std::optional<protocol::WorkerStatus> worker_row(zmq::context_t& ctx, const std::string& client_endpoint,
                                                 const std::string& worker_id) {
  auto reply = ask(ctx, client_endpoint, protocol::WorkersQuery{});
  if (!reply) return std::nullopt;
  const auto* table = std::get_if<protocol::WorkersReply>(&*reply);
  if (table == nullptr) return std::nullopt;
  for (const auto& w : table->workers) {
    if (w.worker_id == worker_id) return w;
  }
  return std::nullopt;
}

}  // namespace polyphony::testing
