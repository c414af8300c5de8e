// Simulated workers: one epoll loop over many DEALER sockets (ZMQ_FD), the real codec.
#include "bench/fleet_sim.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <map>
#include <vector>
#include <zmq.hpp>

#include "bench/bench_box.h"
#include "protocol/messages.h"

namespace polyphony::bench {

namespace {

int64_t clock_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

// A fake but well-formed 40-digit commit id, different per task.
std::string fake_commit(const std::string& task_id, char salt) {
  std::string out(40, '0');
  const size_t h = std::hash<std::string>{}(task_id + salt);
  static const char* kHex = "0123456789abcdef";
  for (size_t i = 0; i < out.size(); ++i) out[i] = kHex[(h >> ((i % 16) * 4)) & 0xf];
  return out;
}

}  // namespace

struct SimulatedFleet::Impl {
  struct Worker {
    std::unique_ptr<zmq::socket_t> socket;
    std::string id;
    int64_t last_sent_ms = 0;
    int64_t seq = 0;
    std::map<std::string, protocol::TaskResult> unacked;  // by task id
    std::map<std::string, int64_t> held;                  // task id -> epoch
  };

  FleetOptions options;
  zmq::context_t context;
  std::vector<Worker> workers;
  int epoll_fd = -1;
  std::atomic<bool> stop{false};
  mutable std::mutex mu;
  FleetStats stats;
  std::thread thread;

  explicit Impl(FleetOptions o) : options(std::move(o)) {
    context.set(zmq::ctxopt::max_sockets, options.workers + 64);
    epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd < 0) throw BenchError("epoll_create1 failed");
    workers.resize(static_cast<size_t>(options.workers));
    const int64_t now = clock_ms();
    for (size_t i = 0; i < workers.size(); ++i) {
      Worker& w = workers[i];
      w.id = options.id_prefix + "-" + std::to_string(i);
      w.socket = std::make_unique<zmq::socket_t>(context, zmq::socket_type::dealer);
      w.socket->set(zmq::sockopt::routing_id, w.id);
      w.socket->set(zmq::sockopt::linger, 0);
      w.socket->set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(protocol::kMaxFrameBytes));
      w.socket->connect(options.endpoint);
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u32 = static_cast<uint32_t>(i);
      const int fd = w.socket->get(zmq::sockopt::fd);
      if (::epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) throw BenchError("epoll_ctl failed");
      // Spread the heartbeats over the interval, as workers started at different times would.
      w.last_sent_ms = now - static_cast<int64_t>(i) * options.heartbeat_interval_ms / options.workers;
    }
    for (auto& w : workers) send_hello(w);
    thread = std::thread([this] { loop(); });
  }

  ~Impl() {
    stop = true;
    if (thread.joinable()) thread.join();
    workers.clear();
    if (epoll_fd >= 0) ::close(epoll_fd);
  }

  void send(Worker& w, const protocol::Message& m) {
    const std::string body = protocol::encode(m);
    try {
      w.socket->send(zmq::buffer(body), zmq::send_flags::dontwait);
    } catch (const zmq::error_t&) {
      return;  // the coordinator's own timers recover, as with a real worker
    }
    w.last_sent_ms = clock_ms();
  }

  void send_hello(Worker& w) {
    protocol::Hello h;
    h.worker_id = w.id;
    h.hostname = "bench-sim";
    h.version = "bench";
    h.capacity = options.capacity;
    h.image_present = true;
    h.free_disk_bytes = int64_t{100} << 30;
    send(w, h);
  }

  void update(Worker& w, const protocol::RunSpec& spec, const char* state, const std::string& detail) {
    protocol::TaskUpdate u;
    u.task_id = spec.task_id;
    u.attempt = spec.attempt;
    u.epoch = spec.epoch;
    u.state = state;
    u.detail = detail;
    send(w, u);
  }

  // What a real worker says on the way, with the same detail texts (worker-agent/task_run.cpp).
  void on_dispatch(Worker& w, const protocol::RunSpec& spec) {
    {
      std::lock_guard lock(mu);
      ++stats.dispatches;
      stats.last_dispatch = steady_now();
      if (stats.first_dispatch == 0) stats.first_dispatch = stats.last_dispatch;
    }
    update(w, spec, "PROVISIONED", "branch " + spec.branch + " at " + fake_commit(spec.task_id, 'b').substr(0, 12));
    update(w, spec, "RUNNING", "agent " + spec.agent.name);
    if (options.mode == FleetOptions::Mode::kHold) {
      w.held[spec.task_id] = spec.epoch;
      std::lock_guard lock(mu);
      ++stats.held;
      return;
    }
    update(w, spec, "VERIFYING", spec.verify_command.empty() ? "true" : spec.verify_command);
    protocol::TaskResult r;
    r.task_id = spec.task_id;
    r.attempt = spec.attempt;
    r.epoch = spec.epoch;
    r.outcome = "landed";
    r.branch = spec.branch;
    r.commit = fake_commit(spec.task_id, 'c');
    r.merged_commit = fake_commit(spec.task_id, 'm');
    w.unacked[spec.task_id] = r;
    send(w, r);
  }

  void on_cancel(Worker& w, const protocol::Cancel& c) {
    auto it = w.held.find(c.task_id);
    if (it == w.held.end() || it->second != c.epoch) return;
    w.held.erase(it);
    {
      std::lock_guard lock(mu);
      --stats.held;
    }
  }

  void handle(Worker& w, const protocol::Message& m) {
    if (const auto* d = std::get_if<protocol::Dispatch>(&m)) {
      on_dispatch(w, d->spec);
    } else if (const auto* a = std::get_if<protocol::ResultAck>(&m)) {
      auto it = w.unacked.find(a->task_id);
      if (it == w.unacked.end() || it->second.epoch != a->epoch) return;
      w.unacked.erase(it);
      std::lock_guard lock(mu);
      ++stats.acks;
      stats.last_ack = steady_now();
    } else if (std::holds_alternative<protocol::Heartbeat>(m)) {
      std::lock_guard lock(mu);
      ++stats.heartbeats_in;
    } else if (std::holds_alternative<protocol::Welcome>(m)) {
      std::lock_guard lock(mu);
      ++stats.welcomed;
    } else if (const auto* c = std::get_if<protocol::Cancel>(&m)) {
      on_cancel(w, *c);
    }
  }

  // Everything the socket holds. ZMQ_FD only signals edges, so the loop re-checks ZMQ_EVENTS
  // after every receive (handling may send, which can consume the signal).
  void drain(Worker& w) {
    while (w.socket->get(zmq::sockopt::events) & ZMQ_POLLIN) {
      zmq::message_t frame;
      if (!w.socket->recv(frame, zmq::recv_flags::dontwait)) break;
      auto msg = protocol::decode(frame.to_string_view());
      if (!msg.ok()) {
        std::lock_guard lock(mu);
        ++stats.bad_frames;
        continue;
      }
      handle(w, *msg);
    }
  }

  // Heartbeats due, results to resend; `sweep` drains every socket (the safety net for an edge
  // consumed by a send).
  void timers(int64_t now, bool resend, bool sweep) {
    int64_t beats = 0;
    for (auto& w : workers) {
      bool sent = false;
      if (now - w.last_sent_ms >= options.heartbeat_interval_ms) {
        protocol::Heartbeat hb;
        hb.seq = ++w.seq;
        hb.load = static_cast<int>(w.held.size() + w.unacked.size());
        send(w, hb);
        sent = true;
        ++beats;
      }
      if (resend) {
        for (const auto& [id, r] : w.unacked) send(w, r);
        sent = sent || !w.unacked.empty();
      }
      if (sent || sweep) drain(w);
    }
    std::lock_guard lock(mu);
    stats.heartbeats_out += beats;
  }

  void loop() {
    std::vector<epoll_event> events(256);
    int64_t next_timers = 0, next_resend = clock_ms() + 3000, next_sweep = 0;
    while (!stop.load()) {
      const int n = ::epoll_wait(epoll_fd, events.data(), static_cast<int>(events.size()), 10);
      for (int i = 0; i < n; ++i) drain(workers[events[static_cast<size_t>(i)].data.u32]);
      const int64_t now = clock_ms();
      if (now >= next_timers) {
        const bool resend = now >= next_resend;
        const bool sweep = now >= next_sweep;
        if (resend) next_resend = now + 3000;
        if (sweep) next_sweep = now + 250;
        timers(now, resend, sweep);
        next_timers = now + 20;
      }
    }
  }
};

SimulatedFleet::SimulatedFleet(FleetOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

SimulatedFleet::~SimulatedFleet() = default;

FleetStats SimulatedFleet::stats() const {
  std::lock_guard lock(impl_->mu);
  return impl_->stats;
}

double zmq_round_trip_rate(double seconds) {
  zmq::context_t context;
  zmq::socket_t router(context, zmq::socket_type::router);
  router.set(zmq::sockopt::linger, 0);
  const std::string endpoint = "tcp://127.0.0.1:" + std::to_string(free_port());
  router.bind(endpoint);
  std::atomic<bool> stop{false};
  std::thread echo([&] {
    while (!stop.load()) {
      zmq::pollitem_t item{router.handle(), 0, ZMQ_POLLIN, 0};
      zmq::poll(&item, 1, std::chrono::milliseconds(50));
      if (!(item.revents & ZMQ_POLLIN)) continue;
      zmq::message_t id, body;
      if (!router.recv(id) || !router.recv(body)) continue;
      router.send(id, zmq::send_flags::sndmore);
      router.send(body, zmq::send_flags::none);
    }
  });
  zmq::socket_t dealer(context, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::linger, 0);
  dealer.connect(endpoint);
  auto round_trip = [&] {
    dealer.send(zmq::message_t(), zmq::send_flags::none);
    zmq::message_t reply;
    (void)dealer.recv(reply);
  };
  for (int i = 0; i < 100; ++i) round_trip();  // connect and warm up
  int64_t n = 0;
  const double start = steady_now();
  double now = start;
  while (now - start < seconds) {
    for (int i = 0; i < 100; ++i) round_trip();
    n += 100;
    now = steady_now();
  }
  stop = true;
  echo.join();
  return static_cast<double>(n) / (now - start);
}

}  // namespace polyphony::bench
