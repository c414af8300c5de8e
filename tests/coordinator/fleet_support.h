// A real Coordinator on a thread of its own, with fake workers and clients on real sockets,
// for tests of the fleet protocol: registration, liveness, leases, CURVE, hostile frames.
#pragma once

#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <optional>
#include <thread>
#include <zmq.hpp>

#include "common/clock.h"
#include "coordinator/coordinator.h"
#include "protocol/messages.h"
#include "protocol/security.h"
#include "test_support.h"

namespace polyphony::testing {

// Collects log lines of the default logger while it lives. Create it before any thread logs.
class LogCapture {
 public:
  LogCapture();
  ~LogCapture();
  bool contains(const std::string& text) const;
  std::string text() const;

 private:
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
};

// The real clocks, moved forward by hand: a test jumps past a deadline (a liveness budget, say)
// instead of waiting for it, while the loop's other timers keep running in real time.
class JumpClock final : public Clock {
 public:
  int64_t now_ms() const override { return system_clock().now_ms() + skew_ms_.load(); }
  int64_t steady_ms() const override { return system_clock().steady_ms() + skew_ms_.load(); }
  void jump(int64_t ms) { skew_ms_ += ms; }

 private:
  std::atomic<int64_t> skew_ms_{0};
};

// A TCP port on 127.0.0.1 that was free a moment ago.
int free_port();

// The coordinator's home, config and thread. `extra_config` is appended to config.yaml;
// `extra_repos` (lines such as "  name: {url: ...}\n") are added under repos: beside "app".
class FleetCoordinator {
 public:
  explicit FleetCoordinator(const std::string& extra_config = "coordinator: {insecure: true}\n",
                            const std::string& extra_repos = "");
  ~FleetCoordinator();

  const std::string& worker_endpoint() const { return worker_endpoint_; }
  const std::string& client_endpoint() const { return client_endpoint_; }
  const std::filesystem::path& home() const { return dir_.path(); }
  zmq::context_t& context() { return context_; }
  // The coordinator's clock (liveness budget: 2 s).
  JumpClock& clock() { return clock_; }

  // Writes the config files into home() (start() does it too).
  void write_config();
  // Starts the coordinator's thread (after the test has written key files, say).
  void start();
  // Error of Coordinator::create, when start() failed.
  std::optional<Error> start_error() const { return start_error_; }

 private:
  TempDir dir_;
  std::string extra_;
  std::string extra_repos_;
  std::string worker_endpoint_;
  std::string client_endpoint_;
  zmq::context_t context_;
  JumpClock clock_;
  std::unique_ptr<Coordinator> coordinator_;
  std::optional<Error> start_error_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// A worker speaking the protocol by hand on a DEALER.
class FakeWorker {
 public:
  FakeWorker(zmq::context_t& ctx, const std::string& endpoint, const std::string& id,
             std::vector<std::string> labels = {}, int capacity = 1,
             const std::optional<protocol::CurveClientKeys>& curve = std::nullopt);

  void hello(std::vector<protocol::RunningTask> running = {});
  void send(const protocol::Message& m);
  void send_frames(const std::vector<std::string>& frames);
  // Waits for a message of type T (answering with heartbeats meanwhile, unless `silent`).
  template <class T>
  std::optional<T> wait_for(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    auto m = next([](const protocol::Message& m) { return std::holds_alternative<T>(m); }, timeout);
    if (!m) return std::nullopt;
    return std::get<T>(*m);
  }
  // Stops sending heartbeats (frames already queued still go).
  void go_silent() { silent_ = true; }
  void resume() { silent_ = false; }

 private:
  std::optional<protocol::Message> next(const std::function<bool(const protocol::Message&)>& want,
                                        std::chrono::milliseconds timeout);
  zmq::socket_t socket_;
  std::string id_;
  std::vector<std::string> labels_;
  int capacity_;
  bool silent_ = false;
  int64_t seq_ = 0;
};

// One request on the client endpoint; nullopt when nothing answered within `timeout`.
std::optional<protocol::Message> ask(zmq::context_t& ctx, const std::string& endpoint, const protocol::Message& m,
                                     std::chrono::milliseconds timeout = std::chrono::seconds(5),
                                     const std::optional<protocol::CurveClientKeys>& curve = std::nullopt);

// Submits a task for repo "app" (a URL in the fleet config) with the scripted agent.
std::string submit(zmq::context_t& ctx, const std::string& endpoint, const std::string& title,
                   std::vector<std::string> labels = {});

// The worker's row in the coordinator's table, if any.
std::optional<protocol::WorkerStatus> worker_row(zmq::context_t& ctx, const std::string& client_endpoint,
                                                 const std::string& worker_id);

}  // namespace polyphony::testing
