// The coordinator loop: discover -> claim -> route -> dispatch, and the workers' reports.
#include "coordinator/coordinator.h"

#include <unistd.h>

#include <cerrno>

#include <fstream>
#include <random>
#include <zmq_addon.hpp>

#include "common/endpoint_policy.h"
#include "common/ids.h"
#include "common/log.h"
#include "common/private_files.h"
#include "coordinator/identity_broker.h"
#include "coordinator/router.h"
#include "coordinator/scheduling.h"
#include "coordinator/submission.h"
#include "coordinator/task_scoring.h"
#include "coordinator/worker_match.h"

namespace polyphony {

namespace fs = std::filesystem;

int64_t retry_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms, uint64_t random) {
  int64_t d = base_ms;
  for (int i = 1; i < attempt && d < cap_ms; ++i) d *= 2;
  d = std::min(d, cap_ms);
  const int64_t jitter = d / 5;
  if (jitter > 0) d += static_cast<int64_t>(random % static_cast<uint64_t>(2 * jitter + 1)) - jitter;
  return std::max<int64_t>(d, 0);
}

bool is_retryable(const std::string& kind) {
  return kind == "infra" || kind == "timeout" || kind == "conflict" || kind == "verify" ||
         kind == "agent_unavailable";
}

std::vector<std::string> agent_chain(const RouteDecision& d, const std::map<std::string, AgentProfile>& agents) {
  std::vector<std::string> chain;
  auto add = [&](const std::string& a) {
    if (!a.empty() && agents.count(a) && std::find(chain.begin(), chain.end(), a) == chain.end()) chain.push_back(a);
  };
  add(d.agent);
  for (const auto& a : d.fallback) add(a);
  return chain;
}

std::optional<std::string> next_in_chain(const std::vector<std::string>& chain, const std::string& after) {
  auto it = std::find(chain.begin(), chain.end(), after);
  if (it == chain.end() || it + 1 == chain.end()) return std::nullopt;
  return *(it + 1);
}

std::string local_client_endpoint(const fs::path& home) { return "ipc://" + (home / "coordinator.sock").string(); }

protocol::ClientReply task_reply(const Task& t) {
  protocol::ClientReply r;
  r.ok = true;
  r.task_id = t.request.id;
  r.state = std::string(to_string(t.state));
  r.reason = t.reason;
  r.attempt = t.attempt;
  r.agent = t.agent;
  r.branch = t.branch;
  r.merged_commit = t.merged_commit;
  return r;
}

namespace {

protocol::ClientReply refusal(const Error& e) {
  protocol::ClientReply r;
  r.ok = false;
  r.error = e.message;
  r.where = e.where;
  return r;
}

}  // namespace

Coordinator::Coordinator(zmq::context_t& context, Settings settings)
    : context_(context),
      socket_(context, zmq::socket_type::router),
      client_socket_(context, zmq::socket_type::router),
      settings_(std::move(settings)) {}

Result<std::unique_ptr<Coordinator>> Coordinator::create(zmq::context_t& context, Settings settings,
                                                         std::vector<std::string> endpoints,
                                                         std::vector<std::string> client_endpoints) {
  auto c = std::unique_ptr<Coordinator>(new Coordinator(context, std::move(settings)));
  auto store = StateStore::open(c->settings_.config.state_db);
  if (!store.ok()) return store.error();
  c->store_.emplace(std::move(*store));
  auto queue = SqliteQueue::open(c->settings_.config.queue_db);
  if (!queue.ok()) return queue.error();
  c->queue_ = std::move(*queue);
  c->scoring_jobs_ = std::make_unique<BackgroundJobs>(kScoringThreads);
  c->github_jobs_ = std::make_unique<BackgroundJobs>(1);
  if (c->settings_.config.github.enabled()) {
    const auto& gh = c->settings_.config.github;
    auto source = GithubSource::open(c->settings_, make_gh_cli(gh, &c->github_jobs_->stopping()));
    if (!source.ok()) return source.error();
    c->github_ = std::move(*source);
    auto github_store = StateStore::open(c->settings_.config.state_db);
    if (!github_store.ok()) return github_store.error();
    c->github_store_.emplace(std::move(*github_store));
  }
  POLY_TRY(c->start_zap());
  POLY_TRY(c->bind_worker_endpoints(endpoints));
  POLY_TRY(c->bind_client_endpoints(client_endpoints));
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  c->coordinator_id_ = std::string(host) + ":" + std::to_string(getpid());
  c->started_ms_ = now_ms();
  return c;
}

Status Coordinator::start_zap() {
  const CoordinatorSecurity& security = settings_.config.coordinator_security;
  if (!security.curve()) return {};
  auto keys = protocol::load_coordinator_keys(security);
  if (!keys.ok()) return keys.error();
  keys_ = std::move(*keys);
  auto zap = protocol::ZapHandler::bind(context_, {{protocol::kWorkersDomain, keys_->workers},
                                                   {protocol::kClientsDomain, keys_->clients}});
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
  for (const auto& ep : endpoints) if (!crosses_host(ep)) ordered.push_back(ep);
  const size_t local = ordered.size();
  for (const auto& ep : endpoints) if (crosses_host(ep)) ordered.push_back(ep);
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
  return bind_all(socket_, endpoints, keys_, protocol::kWorkersDomain, config.coordinator_security.insecure,
                  "workers");
}

Status Coordinator::bind_client_endpoints(const std::vector<std::string>& endpoints) {
  client_socket_.set(zmq::sockopt::linger, 0);
  client_socket_.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(protocol::kMaxFrameBytes));
  return bind_all(client_socket_, endpoints, keys_, protocol::kClientsDomain,
                  settings_.config.coordinator_security.insecure, "clients");
}

void Coordinator::run(const std::atomic<bool>& stop) {
  spdlog::info("coordinator {} serving (state {})", coordinator_id_, settings_.config.state_db.string());
  while (!stop.load()) step(std::min<int64_t>(settings_.config.poll_interval_ms, 100));
  spdlog::info("coordinator stopping");
}

void Coordinator::drain(zmq::socket_t& socket, const std::function<void(std::vector<zmq::message_t>&)>& fn) {
  for (int i = 0; i < 1000; ++i) {
    std::vector<zmq::message_t> frames;
    auto got = zmq::recv_multipart(socket, std::back_inserter(frames), zmq::recv_flags::dontwait);
    if (!got) return;
    // DEALER peers send [body]; REQ peers add an empty delimiter frame.
    if (frames.size() == 3 && frames[1].size() == 0) frames.erase(frames.begin() + 1);
    if (frames.size() != 2) {
      spdlog::warn("dropped a message of {} frames (expected routing id + body)", frames.size());
      continue;
    }
    fn(frames);
  }
}

void Coordinator::drain_workers() {
  std::vector<WorkerFrame> received;
  std::optional<zmq::error_t> socket_error;
  try {
    drain(socket_, [&](std::vector<zmq::message_t>& frames) {
      WorkerFrame f{frames[0].to_string(), protocol::decode(frames[1].to_string_view()),
                    protocol::peer_user_id(frames[1]), std::nullopt};
      if (!f.message.ok()) f.result_lease = protocol::result_lease(frames[1].to_string_view());
      received.push_back(std::move(f));
    });
  } catch (const zmq::error_t& e) {
    socket_error = e;  // what arrived before it is still handled
  }
  last_worker_read_ms_ = now_ms();
  auto handle_all = [&] { handle_frames(received); };
  // Heartbeats alone record nothing: no transaction (most turns with 1,000 idle workers).
  const bool records = std::any_of(received.begin(), received.end(), [](const WorkerFrame& f) {
    return f.result_lease || (f.message.ok() && !std::holds_alternative<protocol::Heartbeat>(*f.message));
  });
  if (records) batch(handle_all);
  else handle_all();
  if (socket_error) throw *socket_error;
}

void Coordinator::step(int64_t wait_ms) {
  // The background jobs' descriptors wake the poll when a result is ready to apply.
  zmq::pollitem_t items[] = {{socket_.handle(), 0, ZMQ_POLLIN, 0},
                             {client_socket_.handle(), 0, ZMQ_POLLIN, 0},
                             {nullptr, scoring_jobs_->wake_fd(), ZMQ_POLLIN, 0},
                             {nullptr, github_jobs_->wake_fd(), ZMQ_POLLIN, 0},
                             {zap_ ? zap_->socket().handle() : nullptr, 0, ZMQ_POLLIN, 0}};
  // A freed slot waits at most kMinDispatchGapMs, not a whole poll interval.
  if (slot_freed_) wait_ms = std::clamp<int64_t>(last_dispatch_ms_ + kMinDispatchGapMs - now_ms(), 0, wait_ms);
  try {
    zmq::poll(items, zap_ ? 5 : 4, std::chrono::milliseconds(wait_ms));
    last_worker_read_ms_ = now_ms();  // whatever waits on the workers' socket is read next
    if (zap_ && (items[4].revents & ZMQ_POLLIN)) zap_->serve();
    if (items[0].revents & ZMQ_POLLIN) drain_workers();
    if (items[1].revents & ZMQ_POLLIN) {
      drain(client_socket_, [&](std::vector<zmq::message_t>& frames) {
        handle_client_frame(frames[0].to_string(), frames[1].to_string());
      });
    }
  } catch (const zmq::error_t& e) {
    if (e.num() != EINTR) spdlog::error("socket error: {}", e.what());
  }
  apply_background((items[2].revents & ZMQ_POLLIN) != 0, (items[3].revents & ZMQ_POLLIN) != 0);
  if (now_ms() >= next_periodic_ms_) {
    periodic();
    next_periodic_ms_ = now_ms() + settings_.config.poll_interval_ms;
  } else if (slot_freed_ && now_ms() - last_dispatch_ms_ >= kMinDispatchGapMs) {
    // A worker slot freed: fill it now rather than at the next poll.
    batch([&] { dispatch_claimed(); });
  }
  heartbeat_workers();
}

void Coordinator::batch(const std::function<void()>& fn) {
  batching_ = true;
  std::optional<zmq::error_t> socket_error;
  Status s = store_->batch([&]() -> Status {
    try {
      fn();
    } catch (const zmq::error_t& e) {
      socket_error = e;  // what was handled before it still commits
    }
    return {};
  });
  batching_ = false;
  std::vector<Outgoing> out;
  out.swap(deferred_);
  if (!s.ok()) {
    spdlog::error("cannot commit the state of {} message(s): {}; not sending them", out.size(), s.error().to_string());
  } else {
    for (const auto& m : out) send_frame(m.routing_id, m.body, m.type);
  }
  if (socket_error) throw *socket_error;
}

WorkerEntry* Coordinator::heard_from(const std::string& routing_id, const std::string& type) {
  WorkerEntry* w = worker_by_routing(routing_id);
  if (w == nullptr) {
    spdlog::warn("dropped a {} from unregistered peer {:?}", type, routing_id);
    return nullptr;
  }
  if (w->lost) {
    // Heard again without a new hello: the connection survived, only the silence did not.
    // Tasks failed while it was lost are refused (stale epoch) and cancelled on it.
    spdlog::info("worker {} recovered (was lost for {} ms)", w->hello.worker_id, now_ms() - w->lost_at_ms);
    w->lost = false;
    next_heartbeat_walk_ms_ = 0;  // its heartbeats are due again
  }
  w->last_seen_ms = now_ms();
  return w;
}

namespace {

// How many messages from `at` on are task updates from one sender about one attempt (1 when
// the message at `at` is not an update).
size_t update_run(const std::vector<Coordinator::WorkerFrame>& frames, size_t at) {
  const auto* first = frames[at].message.ok() ? std::get_if<protocol::TaskUpdate>(&*frames[at].message) : nullptr;
  size_t n = 1;
  while (first != nullptr && at + n < frames.size()) {
    const auto& f = frames[at + n];
    const auto* u = f.message.ok() ? std::get_if<protocol::TaskUpdate>(&*f.message) : nullptr;
    if (u == nullptr || f.routing_id != frames[at].routing_id || u->task_id != first->task_id ||
        u->epoch != first->epoch) {
      break;
    }
    ++n;
  }
  return n;
}

// A heartbeat's load, and how far the worker's clock is from ours when it says its own.
void note_heartbeat(WorkerEntry& w, const protocol::Heartbeat& m, int64_t now) {
  w.reported_load = m.load;
  if (m.sent_ms > 0) w.clock_offset_ms = m.sent_ms - now;
}

}  // namespace

void Coordinator::handle_frames(const std::vector<WorkerFrame>& frames) {
  for (size_t i = 0; i < frames.size();) {
    const size_t n = update_run(frames, i);
    if (n == 1) {
      handle_message(frames[i]);
    } else if (WorkerEntry* w = heard_from(frames[i].routing_id, "task_update")) {
      std::vector<const protocol::TaskUpdate*> run;
      for (size_t k = i; k < i + n; ++k) run.push_back(&std::get<protocol::TaskUpdate>(*frames[k].message));
      on_updates(*w, run);
    }
    i += n;
  }
}

void Coordinator::handle_message(const WorkerFrame& f) {
  const std::string& routing_id = f.routing_id;
  const Result<protocol::Message>& msg = f.message;
  const std::string& key_name = f.key_name;
  if (!msg.ok() && f.result_lease) {
    on_undecodable_result(f, *f.result_lease, msg.error());
    return;
  }
  if (!msg.ok()) {
    spdlog::warn("dropped a frame from peer {:?}: {} (field {})", routing_id, msg.error().message, msg.error().where);
    return;
  }
  if (const auto* hello = std::get_if<protocol::Hello>(&*msg)) {
    on_hello(routing_id, *hello, key_name);
    return;
  }
  WorkerEntry* w = heard_from(routing_id, protocol::type_name(*msg));
  if (w == nullptr) return;
  if (w->key_name != key_name) {
    // Heartbeats are dropped without a word: the refused hello was logged.
    if (std::holds_alternative<protocol::Heartbeat>(*msg)) return;
    spdlog::warn("dropped a {} from peer {:?}: it comes with CURVE key {:?}, and worker {} registered with key {:?}",
                 protocol::type_name(*msg), routing_id, key_name, routing_id, w->key_name);
    return;
  }
  std::visit(
      [&](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, protocol::TaskUpdate>) on_update(*w, m);
        else if constexpr (std::is_same_v<T, protocol::LogChunk>) on_log(*w, m);
        else if constexpr (std::is_same_v<T, protocol::TaskResult>) on_result(*w, m);
        else if constexpr (std::is_same_v<T, protocol::LandRequest>) on_land_request(*w, m);
        else if constexpr (std::is_same_v<T, protocol::Heartbeat>) note_heartbeat(*w, m, now_ms());
        else spdlog::warn("dropped an unexpected {} from worker {}", protocol::type_name(m), w->hello.worker_id);
      },
      *msg);
}

void Coordinator::on_hello(const std::string& routing_id, const protocol::Hello& m, const std::string& key_name) {
  if (m.protocol_version != protocol::kProtocolVersion) {
    spdlog::error("worker {} speaks protocol {}, this coordinator {}; ignoring it", m.worker_id, m.protocol_version,
                  protocol::kProtocolVersion);
    return;
  }
  // A worker's id is its routing id (PROTOCOL.md 1). The ROUTER keeps a routing id for the
  // first live connection that claims it, so this rule also refuses a second process
  // registering under a worker id that is already connected.
  if (m.worker_id != routing_id) {
    spdlog::warn("refused hello from peer {:?}: worker id {} differs from its routing id", routing_id, m.worker_id);
    return;
  }
  // A worker id belongs to the key it first registered with (for this coordinator's life):
  // another allowed key cannot take over its id, and with it its leases.
  if (auto bound = workers_.find(routing_id);
      bound != workers_.end() && !bound->second.hello.worker_id.empty() && bound->second.key_name != key_name) {
    spdlog::warn("refused hello from worker {}: it registered with CURVE key {:?} and this hello comes with key {:?}; "
                 "a worker id stays with its first key until the coordinator restarts",
                 m.worker_id, bound->second.key_name, key_name);
    return;
  }
  WorkerEntry& w = workers_[routing_id];
  const bool known = !w.hello.worker_id.empty();
  if (w.lost) {
    spdlog::info("worker {} recovered (was lost for {} ms), re-registering with {} running", m.worker_id,
                 now_ms() - w.lost_at_ms, m.running.size());
  }
  if (w.lost) next_heartbeat_walk_ms_ = 0;  // its heartbeats are due again
  w.routing_id = routing_id;
  w.hello = m;
  w.last_seen_ms = now_ms();
  w.lost = false;
  w.key_name = key_name;
  w.running.clear();
  for (const auto& r : m.running) w.running.insert(r.task_id);
  slot_freed_ = true;  // a new worker, or one that may hold less than before: fill its slots soon
  spdlog::info("worker {} {} (host {}, capacity {}, labels [{}], {} running{})", m.worker_id,
               known ? "re-registered" : "registered", m.hostname, m.capacity, fmt::join(m.labels, ", "),
               m.running.size(), key_name.empty() ? "" : ", key " + key_name);
  protocol::Welcome welcome;
  welcome.coordinator_id = coordinator_id_;
  welcome.heartbeat_interval_ms = settings_.config.heartbeat_interval_ms;
  welcome.liveness = settings_.config.heartbeat_liveness;
  send(routing_id, welcome);
  // Tasks this coordinator believes the worker holds, but which the worker no longer runs,
  // were lost with its previous life: fail them so they are retried.
  auto active = store_->held_by(m.worker_id);
  if (!active.ok()) return;
  for (const auto& t : *active) {
    bool still = std::any_of(m.running.begin(), m.running.end(),
                             [&](const protocol::RunningTask& r) { return r.task_id == t.request.id && r.epoch == t.epoch; });
    if (still) {
      w.running.insert(t.request.id);
    } else {
      fail_attempt(t, t.state, "infra", "worker " + m.worker_id + " restarted and no longer runs this attempt");
    }
  }
}

std::optional<Task> Coordinator::leased_task(WorkerEntry& w, const std::string& task_id, int64_t epoch,
                                             const char* what) {
  return check_lease(w, store_->get(task_id), task_id, epoch, what);
}

std::optional<Task> Coordinator::check_lease(WorkerEntry& w, const Result<std::optional<Task>>& t,
                                             const std::string& task_id, int64_t epoch, const char* what) {
  if (!t.ok() || !t->has_value()) {
    spdlog::warn("dropped {} for unknown task {} from worker {}", what, task_id, w.hello.worker_id);
    if (t.ok()) cancel_stale(w, task_id, epoch, "no such task on this coordinator");
    return std::nullopt;
  }
  const Task& task = **t;
  if (task.epoch != epoch || task.worker != w.hello.worker_id) {
    spdlog::warn("refused {} for task {} from worker {}: stale lease epoch {} (current {} held by {})", what, task_id,
                 w.hello.worker_id, epoch, task.epoch, task.worker.empty() ? "nobody" : task.worker);
    cancel_stale(w, task_id, epoch,
                 "stale lease: epoch " + std::to_string(epoch) + " was superseded by " + std::to_string(task.epoch));
    return std::nullopt;
  }
  return task;
}

void Coordinator::on_update(WorkerEntry& w, const protocol::TaskUpdate& m) {
  auto task = leased_task(w, m.task_id, m.epoch, "an update");
  if (!task) return;
  last_activity_ms_[m.task_id] = now_ms();
  auto to = parse_task_state(m.state);
  if (to && *to == task->state) {  // no change of state: a note for the history (a review verdict)
    if (m.detail.empty()) return;
    auto s = store_->note(m.task_id, m.detail, now_ms());
    if (!s.ok()) spdlog::error("task {}: {}", m.task_id, s.error().to_string());
    else spdlog::info("task {} {}: {} (worker {})", m.task_id, m.state, m.detail, w.hello.worker_id);
    return;
  }
  if (!to || !can_transition(task->state, *to)) {
    spdlog::warn("task {}: ignored update {} -> {} from worker {}", m.task_id, to_string(task->state), m.state,
                 w.hello.worker_id);
    return;
  }
  TransitionUpdate u;
  if (!m.detail.empty()) u.reason = m.detail;
  auto s = store_->advance(*task, *to, u, now_ms());
  if (!s.ok()) {
    spdlog::error("task {}: {}", m.task_id, s.error().to_string());
    return;
  }
  spdlog::info("task {} {} (worker {})", m.task_id, m.state, w.hello.worker_id);
}

void Coordinator::on_updates(WorkerEntry& w, const std::vector<const protocol::TaskUpdate*>& run) {
  auto one_by_one = [&] {
    for (const auto* m : run) on_update(w, *m);
  };
  const protocol::TaskUpdate& first = *run.front();
  auto task = leased_task(w, first.task_id, first.epoch, "an update");
  if (!task) {  // refused (and logged) as the first was; so is each of the rest
    for (size_t i = 1; i < run.size(); ++i) on_update(w, *run[i]);
    return;
  }
  std::vector<std::pair<TaskState, TransitionUpdate>> steps;
  TaskState at = task->state;
  for (const auto* m : run) {
    auto to = parse_task_state(m->state);
    if (!to || *to == at || !can_transition(at, *to)) return one_by_one();  // a note or a refusal among them
    TransitionUpdate u;
    if (!m->detail.empty()) u.reason = m->detail;
    steps.push_back({*to, std::move(u)});
    at = *to;
  }
  last_activity_ms_[first.task_id] = now_ms();
  auto s = store_->advance(*task, steps, now_ms());
  if (!s.ok()) {
    spdlog::error("task {}: {}", first.task_id, s.error().to_string());
    return;
  }
  for (const auto* m : run) spdlog::info("task {} {} (worker {})", m->task_id, m->state, w.hello.worker_id);
}

namespace {

// Appends `data` to a log file only its owner reads.
bool append_log(const fs::path& file, const std::string& data) {
  const int fd = open_private_append(file);
  bool written = fd >= 0;
  for (size_t at = 0; written && at < data.size();) {
    const ssize_t n = ::write(fd, data.data() + at, data.size() - at);
    if (n < 0 && errno == EINTR) continue;
    written = n > 0;
    if (written) at += static_cast<size_t>(n);
  }
  if (fd >= 0) ::close(fd);
  return written;
}

}  // namespace

void Coordinator::on_log(WorkerEntry& w, const protocol::LogChunk& m) {
  if (!leased_task(w, m.task_id, m.epoch, "a log chunk")) return;
  last_activity_ms_[m.task_id] = now_ms();
  fs::path dir = settings_.config.log_dir / m.task_id;
  (void)make_private_dir(settings_.config.log_dir);
  (void)make_private_dir(dir);
  const fs::path file = dir / (std::to_string(m.attempt) + "-" + m.stream + ".log");
  // What may be the start of a secret (or of a URL's password) waits for the next chunk, or
  // the attempt's result, so a secret split across two chunks is still redacted.
  std::string& held = held_logs_[file.string()];
  std::string text = redact(held + m.data);
  const size_t keep = redaction_hold(text);
  held = text.substr(text.size() - keep);
  text.resize(text.size() - keep);
  if (!append_log(file, text)) spdlog::error("task {}: cannot write its log under {}", m.task_id, dir.string());
}

void Coordinator::flush_logs(const std::string& task_id) {
  const std::string prefix = (settings_.config.log_dir / task_id).string() + "/";
  for (auto it = held_logs_.lower_bound(prefix); it != held_logs_.end() && it->first.rfind(prefix, 0) == 0;) {
    if (!append_log(it->first, it->second)) spdlog::error("task {}: cannot write its log {}", task_id, it->first);
    it = held_logs_.erase(it);
  }
}

void Coordinator::on_result(WorkerEntry& w, const protocol::TaskResult& m) {
  flush_logs(m.task_id);  // the attempt's output is all there before its end is recorded
  auto current = store_->get(m.task_id);
  const bool recorded = current.ok() && current->has_value() && (*current)->epoch == m.epoch &&
                        !is_active((*current)->state);
  if (!recorded) record_result(w, m, current);
  // Acknowledged even when stale or already recorded, so the worker stops resending it; a
  // stale result itself is never recorded (leased_task refuses it).
  protocol::ResultAck ack;
  ack.task_id = m.task_id;
  ack.attempt = m.attempt;
  ack.epoch = m.epoch;
  send(w.routing_id, ack);
}

void Coordinator::on_undecodable_result(const WorkerFrame& f, const protocol::ResultAck& lease, const Error& why) {
  WorkerEntry* w = heard_from(f.routing_id, "task_result");
  if (w == nullptr) return;
  if (w->key_name != f.key_name) {
    spdlog::warn("dropped a task_result from peer {:?}: it comes with CURVE key {:?}, and worker {} registered with "
                 "key {:?}", f.routing_id, f.key_name, f.routing_id, w->key_name);
    return;
  }
  spdlog::warn("task {}: the result of epoch {} from worker {} cannot be read: {} (field {})", lease.task_id,
               lease.epoch, w->hello.worker_id, why.message, why.where);
  flush_logs(lease.task_id);
  auto current = store_->get(lease.task_id);
  const bool recorded = current.ok() && current->has_value() && (*current)->epoch == lease.epoch &&
                        !is_active((*current)->state);
  if (!recorded) {
    if (auto task = check_lease(*w, current, lease.task_id, lease.epoch, "a result")) {
      // Not retried: what the attempt did (it may have landed) is unknown; the reason says why.
      fail_attempt(*task, task->state, "protocol",
                   "worker " + w->hello.worker_id + " sent a result the coordinator cannot read: field " + why.where +
                       ": " + why.message);
    }
  }
  send(w->routing_id, lease);  // answered like any result, so the worker stops resending it
}

void Coordinator::on_land_request(WorkerEntry& w, const protocol::LandRequest& m) {
  auto task = leased_task(w, m.task_id, m.epoch, "a land request");
  if (!task) {
    answer_land(w.routing_id, m, false, "stale lease epoch " + std::to_string(m.epoch) + ": this attempt no longer owns the task");
    return;
  }
  if (task->state != TaskState::kVerifying) {
    answer_land(w.routing_id, m, false, "task is " + std::string(to_string(task->state)) + ", not VERIFYING");
    return;
  }
  last_activity_ms_[m.task_id] = now_ms();
  if (landing_.insert(m.task_id).second) slot_freed_ = true;  // its agent is done: the next task may start
  const std::string& repo = task->request.repo;
  auto holder = land_holder_.find(repo);
  if (holder == land_holder_.end() || holder->second == m.task_id) {
    land_holder_[repo] = m.task_id;
    land_granted_at_ms_[m.task_id] = now_ms();
    answer_land(w.routing_id, m, true, "");
    return;
  }
  auto& waiting = land_waiting_[repo];
  for (auto& p : waiting) {
    if (p.request.task_id == m.task_id) {
      p = PendingLand{w.routing_id, m};  // asked again (maybe from a new epoch): keep its place
      return;
    }
  }
  spdlog::info("task {} waits to land behind task {} on {}", m.task_id, holder->second, repo);
  waiting.push_back(PendingLand{w.routing_id, m});
}

void Coordinator::answer_land(const std::string& routing_id, const protocol::LandRequest& m, bool granted,
                              const std::string& reason) {
  protocol::LandGrant g;
  g.task_id = m.task_id;
  g.attempt = m.attempt;
  g.epoch = m.epoch;
  g.granted = granted;
  g.reason = reason;
  if (!granted) spdlog::warn("task {}: refused to let epoch {} land: {}", m.task_id, m.epoch, reason);
  send(routing_id, g);
}

void Coordinator::release_land(const std::string& task_id) {
  landing_.erase(task_id);
  land_granted_at_ms_.erase(task_id);
  for (auto& [repo, waiting] : land_waiting_) {
    std::erase_if(waiting, [&](const PendingLand& p) { return p.request.task_id == task_id; });
  }
  for (auto it = land_holder_.begin(); it != land_holder_.end(); ++it) {
    if (it->second != task_id) continue;
    const std::string repo = it->first;
    land_holder_.erase(it);
    grant_next_land(repo);
    return;
  }
}

void Coordinator::grant_next_land(const std::string& repo) {
  auto& waiting = land_waiting_[repo];
  while (!waiting.empty() && !land_holder_.count(repo)) {
    PendingLand next = waiting.front();
    waiting.pop_front();
    WorkerEntry* w = worker_by_routing(next.routing_id);
    if (w == nullptr) continue;  // its worker is gone; it will ask again after re-registering
    on_land_request(*w, next.request);
  }
}

void Coordinator::record_result(WorkerEntry& w, const protocol::TaskResult& m, const Result<std::optional<Task>>& current) {
  auto task = check_lease(w, current, m.task_id, m.epoch, "a result");
  if (!task) return;
  if (w.running.erase(m.task_id)) slot_freed_ = true;
  release_land(m.task_id);
  if (auto s = store_->record_agent_runs(m.task_id, m.attempt, m.usage); !s.ok()) {
    spdlog::error("task {}: cannot record its agent runs: {}", m.task_id, s.error().to_string());
  }
  if (m.outcome != "landed") {
    fail_attempt(*task, task->state, m.failure_kind.empty() ? "infra" : m.failure_kind, m.reason, m.tree);
    return;
  }
  TransitionUpdate u;
  u.commit = m.commit;
  u.merged_commit = m.merged_commit;
  u.reason = !m.merged_commit.empty() ? "landed " + m.merged_commit.substr(0, 12) + " from " + m.branch
             : !m.reason.empty()       ? m.reason
                                       : "pushed " + m.commit.substr(0, 12) + " to " + m.branch;
  auto s = store_->advance(*task, TaskState::kLanded, u, now_ms());
  last_activity_ms_.erase(m.task_id);
  if (!s.ok()) spdlog::error("task {}: cannot record landing: {}", m.task_id, s.error().to_string());
  else spdlog::info("task {} LANDED ({})", m.task_id, m.merged_commit);
}

// What follows a failed attempt: another attempt (CLAIMED, after a backoff), BLOCKED, or
// nothing (the task rests FAILED until a user retries it).
std::optional<std::pair<TaskState, TransitionUpdate>> Coordinator::after_failure(const Task& task,
                                                                                 const std::string& kind,
                                                                                 const std::string& reason,
                                                                                 const std::string& tree) {
  if (!is_retryable(kind)) return std::nullopt;
  TransitionUpdate b;
  if (kind == "verify" && !tree.empty() &&
      std::find(task.failed_trees.begin(), task.failed_trees.end(), tree) != task.failed_trees.end()) {
    b.reason = "verify failed again on the same tree " + tree.substr(0, 12) +
               " as an earlier attempt; another attempt would repeat it; last: " + reason;
    return std::pair{TaskState::kBlocked, b};
  }
  TransitionUpdate r;
  r.worker = "";
  if (kind == "agent_unavailable") {
    // The next agent of the chain takes over at once; this attempt does not count against
    // max_attempts, because the task itself was never tried.
    auto decision = route(task.request, settings_.routing, settings_.agents,
                          task.score >= 0 ? std::optional<int>(task.score) : std::nullopt);
    auto next = decision.ok() ? next_in_chain(agent_chain(*decision, settings_.agents), task.agent) : std::nullopt;
    if (!next) {
      b.reason = "no agent left in the fallback chain could run; last (" + task.agent + "): " + reason;
      return std::pair{TaskState::kBlocked, b};
    }
    r.reason = "agent " + task.agent + " unavailable, falling back to " + *next + ": " + reason;
    r.next_attempt_at_ms = 0;
    r.budget_start = task.budget_start + 1;
    return std::pair{TaskState::kClaimed, r};
  }
  if (task.attempt - task.budget_start >= settings_.config.max_attempts) {
    b.reason = "gave up after " + std::to_string(task.attempt - task.budget_start) + " attempts; last: " + reason;
    return std::pair{TaskState::kBlocked, b};
  }
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  r.reason = "retry after " + kind + " failure: " + reason;
  r.next_attempt_at_ms = now_ms() + retry_backoff_ms(task.attempt, settings_.config.retry_backoff_base_ms,
                                                   settings_.config.retry_backoff_cap_ms, rng());
  return std::pair{TaskState::kClaimed, r};
}

void Coordinator::fail_attempt(const Task& task, TaskState from, const std::string& kind, const std::string& reason,
                               const std::string& tree) {
  std::vector<std::pair<TaskState, TransitionUpdate>> steps;
  if (from != TaskState::kFailed) {
    TransitionUpdate u;
    u.reason = reason;
    u.failure_kind = kind;
    if (kind == "verify") u.failed_tree = tree;
    steps.push_back({TaskState::kFailed, u});
  }
  // The retry decision is part of the same transaction, so nobody sees a retried task as FAILED.
  if (auto next = after_failure(task, kind, reason, tree)) steps.push_back(*next);
  if (steps.empty()) return;
  auto s = store_->transitions(task.request.id, from, steps, now_ms());
  if (!s.ok()) {
    spdlog::error("task {}: cannot record failure: {}", task.request.id, s.error().to_string());
    return;
  }
  spdlog::warn("task {} FAILED ({}): {}{}", task.request.id, kind, reason,
               steps.back().first == TaskState::kBlocked ? " -> BLOCKED"
               : steps.back().first == TaskState::kClaimed ? " -> retrying" : "");
  last_activity_ms_.erase(task.request.id);
  for (auto& [rid, w] : workers_) {
    if (w.running.erase(task.request.id)) slot_freed_ = true;
  }
  release_land(task.request.id);
}

void Coordinator::handle_client_frame(const std::string& routing_id, const std::string& body) {
  auto msg = protocol::decode(body);
  protocol::ClientReply reply;
  if (!msg.ok()) {
    spdlog::warn("dropped a client frame: {} (field {})", msg.error().message, msg.error().where);
    reply = refusal(msg.error());
  } else if (const auto* s = std::get_if<protocol::Submit>(&*msg)) {
    reply = submit(*s);
  } else if (const auto* c = std::get_if<protocol::Control>(&*msg)) {
    reply = control(c->task_id, c->action);
  } else if (std::holds_alternative<protocol::WorkersQuery>(*msg)) {
    answer_client(routing_id, workers());
    return;
  } else {
    spdlog::warn("dropped a {} on the client endpoint", protocol::type_name(*msg));
    reply = refusal(make_error("protocol", "clients may send submit, control or workers_query only", "type"));
  }
  answer_client(routing_id, reply);
}

void Coordinator::answer_client(const std::string& routing_id, const protocol::Message& reply) {
  try {
    const std::string out = protocol::encode(reply);
    std::array<zmq::const_buffer, 2> frames{zmq::buffer(routing_id), zmq::buffer(out)};
    zmq::send_multipart(client_socket_, frames, zmq::send_flags::dontwait);
  } catch (const zmq::error_t& e) {
    spdlog::warn("cannot answer a client: {}", e.what());
  }
}

protocol::ClientReply Coordinator::submit(const protocol::Submit& m) {
  TaskRequest r;
  r.title = m.title;
  r.body = m.body;
  r.repo = m.repo;
  r.base_branch = m.base_branch;
  r.task_type = m.task_type;
  r.risk = m.risk;
  r.labels = m.labels;
  r.agent = m.agent;
  r.source = "client";
  // A client may be on another host: the local paths it may name are the config's to say.
  if (auto valid = validate_submission(r, settings_); !valid.ok()) return refusal(valid.error());
  if (auto allowed = check_client_repo(r, settings_.config); !allowed.ok()) return refusal(allowed.error());
  auto id = submit_task(r, settings_);
  if (!id.ok()) return refusal(id.error());
  discover();
  auto t = store_->get(*id);
  if (!t.ok() || !t->has_value()) return refusal(make_error("db", "the task was queued but cannot be read back", *id));
  return task_reply(**t);
}

protocol::ClientReply Coordinator::control(const std::string& task_id, const std::string& action) {
  auto t = store_->get(task_id);
  if (t.ok() && !t->has_value()) {
    // Perhaps just queued (`polyphony spawn` asks about its new task): read the queue now, and
    // claim and dispatch on this turn of the loop rather than at the next poll.
    discover();
    next_periodic_ms_ = std::min(next_periodic_ms_, now_ms());
    t = store_->get(task_id);
  }
  if (!t.ok()) return refusal(t.error());
  if (!t->has_value()) return refusal(make_error("not_found", "no task with this id", "task_id"));
  if (action == "cancel") return cancel(**t);
  if (action == "retry") return retry(**t);
  return task_reply(**t);
}

protocol::ClientReply Coordinator::cancel(const Task& t, const std::string& reason) {
  if (t.state == TaskState::kCancelled) return task_reply(t);  // what was asked already holds
  if (!can_transition(t.state, TaskState::kCancelled)) {
    return refusal(make_error("usage", "task is already " + std::string(to_string(t.state)), "task_id"));
  }
  for (auto& [rid, w] : workers_) {
    if (w.hello.worker_id == t.worker && w.running.count(t.request.id)) {
      protocol::Cancel c;
      c.task_id = t.request.id;
      c.epoch = t.epoch;
      c.reason = reason;
      send(rid, c);
      if (w.running.erase(t.request.id)) slot_freed_ = true;
    }
  }
  TransitionUpdate u;
  u.reason = reason;
  u.failure_kind = "cancelled";
  auto s = store_->transition(t.request.id, t.state, TaskState::kCancelled, u, now_ms());
  if (!s.ok()) return refusal(s.error());
  last_activity_ms_.erase(t.request.id);
  release_land(t.request.id);
  spdlog::info("task {} CANCELLED: {}", t.request.id, reason);
  return task_reply(**store_->get(t.request.id));
}

protocol::ClientReply Coordinator::retry(const Task& t) {
  if (t.state != TaskState::kFailed && t.state != TaskState::kBlocked) {
    return refusal(make_error("usage", "only FAILED or BLOCKED tasks can be retried; this one is " +
                                           std::string(to_string(t.state)), "task_id"));
  }
  TransitionUpdate u;
  u.reason = "retry requested by a user";
  u.worker = "";
  u.next_attempt_at_ms = 0;
  u.budget_start = t.attempt;
  auto s = store_->transition(t.request.id, t.state, TaskState::kClaimed, u, now_ms());
  if (!s.ok()) return refusal(s.error());
  spdlog::info("task {} retry requested", t.request.id);
  return task_reply(**store_->get(t.request.id));
}

void Coordinator::apply_commands() {
  auto commands = queue_->pending_commands();
  if (!commands.ok()) {
    spdlog::error("cannot read commands: {}", commands.error().to_string());
    return;
  }
  for (const auto& c : *commands) {
    if (c.action == "github_issue") {
      if (adopt_issue(c.seq, c.task_id)) (void)queue_->ack_command(c.seq);
      continue;
    }
    auto reply = control(c.task_id, c.action);
    if (!reply.ok) spdlog::warn("{} of task {} refused: {}", c.action, c.task_id, reply.error);
    (void)queue_->ack_command(c.seq);
  }
}

void Coordinator::periodic() {
  discover();
  apply_commands();
  sync_github();
  claim_discovered();
  expire_unheld_tasks();
  expire_unanswered_dispatches();
  batch([&] { dispatch_claimed(); });
}

void Coordinator::discover() {
  auto pending = queue_->poll();
  if (!pending.ok()) {
    spdlog::error("cannot read the queue: {}", pending.error().to_string());
    return;
  }
  for (const auto& r : *pending) {
    auto added = store_->add(r, now_ms());
    if (!added.ok()) {
      spdlog::error("task {}: cannot record it: {}", r.id, added.error().to_string());
      continue;
    }
    if (*added) spdlog::info("task {} DISCOVERED: {}", r.id, r.title);
    auto acked = queue_->ack(r.id);
    if (!acked.ok()) spdlog::error("task {}: cannot acknowledge it in the queue: {}", r.id, acked.error().to_string());
  }
}

void Coordinator::claim_discovered() {
  auto tasks = store_->list({TaskState::kDiscovered});
  if (!tasks.ok()) return;
  // By origin: the tasks of one repo are scored together (one fetch, one read), and never while
  // a job for that origin is under way, so no task is scored twice at once.
  std::map<std::string, std::vector<Task>> by_origin;
  int taken = 0;
  for (const auto& t : *tasks) {
    std::string key = "score " + scoring_origin(t.request, settings_.config);
    if (scoring_jobs_->pending(key)) continue;  // claimed when that job's result comes back
    // A large backlog is scored over several passes.
    if (++taken > kMaxClaimsPerPass) break;
    by_origin[std::move(key)].push_back(t);
  }
  for (auto& [key, batch_of_tasks] : by_origin) scoring_jobs_->submit(key, score_job(std::move(batch_of_tasks)));
}

BackgroundJobs::Job Coordinator::score_job(std::vector<Task> tasks) {
  const std::atomic<bool>* cancel = &scoring_jobs_->stopping();
  // Off the loop: reads only settings_, which nothing changes while the coordinator lives.
  return [this, cancel, tasks = std::move(tasks)]() -> BackgroundJobs::Apply {
    RepoTextCache texts;  // one read of the origin for all its tasks
    std::vector<Result<Score>> scores;
    for (const auto& t : tasks) scores.push_back(score_task(t.request, settings_, &texts, cancel));
    return [this, tasks, scores = std::move(scores)] {
      batch([&] {
        for (size_t i = 0; i < tasks.size(); ++i) claim(tasks[i], scores[i]);
      });
      slot_freed_ = true;  // new work to dispatch: at once rather than at the next poll
    };
  };
}

void Coordinator::claim(const Task& t, const Result<Score>& scored) {
  TransitionUpdate u;
  std::string why = "claimed by " + coordinator_id_;
  // Scored once, at the claim, against the repository at the task's base; the plan follows.
  std::optional<int> total;
  if (scored.ok()) {
    total = scored->total;
    u.score = scored->total;
    why += "; complexity " + std::to_string(scored->total) + "/10";
  } else {
    spdlog::warn("task {}: cannot score it: {}", t.request.id, scored.error().to_string());
    why += "; not scored (" + scored.error().message + ")";
  }
  auto decision = route(t.request, settings_.routing, settings_.agents, total);
  if (decision.ok()) {
    u.plan = plan_name(decision->plan);
    u.reviewer = decision->reviewer;
    why += "; plan " + std::string(plan_name(decision->plan)) + " (" + decision->plan_because + ")";
  }
  u.reason = why;
  // Refused when the task left DISCOVERED while it was scored (cancelled, say).
  auto s = store_->transition(t.request.id, TaskState::kDiscovered, TaskState::kClaimed, u, now_ms());
  if (!s.ok()) spdlog::warn("task {}: not claimed: {}", t.request.id, s.error().to_string());
}

void Coordinator::apply_background(bool scoring, bool github) {
  if (scoring) scoring_jobs_->apply_finished();
  if (github) github_jobs_->apply_finished();
}

void Coordinator::read_workers_before_judging() {
  // Cheap when nothing waits (one read that finds nothing); said when the loop was held up.
  const int64_t unread_ms = now_ms() - last_worker_read_ms_;
  if (unread_ms > settings_.config.heartbeat_interval_ms) {
    spdlog::warn("the coordinator's loop did not read the workers' socket for {} ms; reading it before judging "
                 "liveness", unread_ms);
  }
  try {
    drain_workers();
  } catch (const zmq::error_t& e) {
    if (e.num() != EINTR) spdlog::error("socket error: {}", e.what());
  }
}

// Active tasks held by a worker that has not been heard from within its liveness budget
// (e.g. after a coordinator restart nobody re-registered) are failed and retried.
void Coordinator::expire_unheld_tasks() {
  const int64_t budget = settings_.config.heartbeat_interval_ms * settings_.config.heartbeat_liveness;
  if (now_ms() - started_ms_ < budget) return;
  read_workers_before_judging();
  const int64_t now = now_ms();
  auto active = store_->list(active_task_states());
  if (!active.ok()) return;
  for (const auto& t : *active) {
    // A worker's id is its routing id (on_hello refuses any other), so this is its entry.
    auto holder = workers_.find(t.worker);
    const bool held = holder != workers_.end() && now - holder->second.last_seen_ms < budget &&
                      holder->second.running.count(t.request.id) > 0;
    auto granted = land_granted_at_ms_.find(t.request.id);
    if (!held && granted != land_granted_at_ms_.end() && now - granted->second < kLandGraceMs) continue;  // pushing
    if (!held) fail_attempt(t, t.state, "infra", "worker " + t.worker + " lost the attempt (no heartbeat)");
  }
}

void Coordinator::expire_unanswered_dispatches() {
  auto routed = store_->list({TaskState::kRouted});
  if (!routed.ok()) return;
  const int64_t now = now_ms();
  for (const auto& t : *routed) {
    auto it = last_activity_ms_.find(t.request.id);
    if (it == last_activity_ms_.end()) {
      last_activity_ms_[t.request.id] = now;  // routed before this coordinator started
      continue;
    }
    if (now - it->second > kDispatchAnswerTimeoutMs) {
      fail_attempt(t, t.state, "infra", "worker " + t.worker + " never answered the dispatch");
    }
  }
}

int slots_held(const WorkerEntry& w, const std::set<std::string>& landing) {
  return static_cast<int>(std::count_if(w.running.begin(), w.running.end(),
                                        [&](const std::string& id) { return !landing.count(id); }));
}

int Coordinator::running_count() const {
  int n = 0;
  for (const auto& [rid, w] : workers_) n += slots_held(w, landing_);
  return n;
}

Coordinator::FreeWorkers Coordinator::free_workers() {
  const int64_t budget = settings_.config.heartbeat_interval_ms * settings_.config.heartbeat_liveness;
  const int64_t now = now_ms();
  FreeWorkers free;
  for (auto& [rid, w] : workers_) {
    WorkerCandidate c{w.hello.worker_id, w.hello.capacity, slots_held(w, landing_), {},
                      !w.lost && now - w.last_seen_ms <= budget, w.hello.image_present};
    if (!c.live || !c.image_present || c.capacity < 1 || c.load >= c.capacity) continue;  // choose_worker's own rule
    c.labels = w.hello.labels;
    free.candidates.push_back(std::move(c));
    free.entries.push_back(&w);
  }
  return free;
}

WorkerEntry* Coordinator::pick_worker(const Task& task, FreeWorkers& free) {
  auto chosen = choose_worker(free.candidates, task.request.labels);
  if (chosen) {
    unplaceable_logged_.erase(task.request.id);
    WorkerEntry* w = free.entries[*chosen];
    // Counted as taken for the rest of the pass; a full worker leaves the pool.
    if (++free.candidates[*chosen].load >= free.candidates[*chosen].capacity) {
      free.candidates.erase(free.candidates.begin() + static_cast<std::ptrdiff_t>(*chosen));
      free.entries.erase(free.entries.begin() + static_cast<std::ptrdiff_t>(*chosen));
    }
    return w;
  }
  const auto needs = required_labels(task.request.labels);
  if (!needs.empty() && unplaceable_logged_.insert(task.request.id).second) {
    spdlog::info("task {} waits for a live worker with labels [{}] and free capacity", task.request.id,
                 fmt::join(needs, ", "));
  }
  return nullptr;
}

void Coordinator::cancel_stale(WorkerEntry& w, const std::string& task_id, int64_t epoch, const std::string& why) {
  if (!protocol::is_valid_task_id(task_id) || !w.stale_cancelled.insert({task_id, epoch}).second) return;
  if (w.stale_cancelled.size() > 10000) w.stale_cancelled.erase(w.stale_cancelled.begin());
  protocol::Cancel c;
  c.task_id = task_id;
  c.epoch = epoch;
  c.reason = why;
  send(w.routing_id, c);
  spdlog::info("task {}: told worker {} to stop epoch {} and clean up ({})", task_id, w.hello.worker_id, epoch, why);
}

protocol::WorkersReply worker_table(const std::map<std::string, WorkerEntry>& workers, const std::string& coordinator_id,
                                    int64_t now, const std::set<std::string>& landing) {
  protocol::WorkersReply r;
  r.coordinator_id = coordinator_id;
  for (const auto& [rid, w] : workers) {
    protocol::WorkerStatus s;
    s.worker_id = w.hello.worker_id;
    s.hostname = w.hello.hostname;
    s.version = w.hello.version;
    s.capacity = w.hello.capacity;
    s.load = slots_held(w, landing);
    s.state = w.lost ? "lost" : s.load >= s.capacity ? "busy" : "ready";
    s.heartbeat_age_ms = std::max<int64_t>(0, now - w.last_seen_ms);
    s.labels = w.hello.labels;
    s.running.assign(w.running.begin(), w.running.end());
    s.image_present = w.hello.image_present;
    s.free_disk_bytes = w.hello.free_disk_bytes;
    s.key = w.key_name;
    s.clock_known = w.clock_offset_ms.has_value();
    s.clock_offset_ms = w.clock_offset_ms.value_or(0);
    r.workers.push_back(std::move(s));
  }
  return r;
}

protocol::WorkersReply Coordinator::workers() const {
  return worker_table(workers_, coordinator_id_, now_ms(), landing_);
}

void Coordinator::dispatch_claimed() {
  last_dispatch_ms_ = now_ms();
  slot_freed_ = false;
  const int slots = settings_.config.max_concurrency - running_count();
  if (slots <= 0) return;
  // Only what a pass can take: of each repo its oldest due tasks, with room for tasks that no
  // worker fits (labels), which must not hold back those behind them.
  const int64_t now = now_ms();
  auto claimed = store_->dispatchable(now, slots + kDispatchLookahead);
  auto running_per_repo = store_->active_per_repo();
  if (!claimed.ok() || !running_per_repo.ok()) return;
  int dispatched = 0;
  FreeWorkers free = free_workers();
  for (const auto& t : dispatch_order(*claimed, *running_per_repo, settings_.config.max_concurrency_per_repo,
                                      static_cast<int>(claimed->size()), now)) {
    if (dispatched >= slots) return;
    WorkerEntry* w = pick_worker(t, free);
    if (w == nullptr) continue;
    ++dispatched;
    auto s = dispatch_one(t, *w);
    if (!s.ok()) spdlog::error("task {}: {}", t.request.id, s.error().to_string());
  }
}

Status Coordinator::dispatch_one(const Task& t, WorkerEntry& w) {
  const int attempt = t.attempt + 1;
  auto decision = route(t.request, settings_.routing, settings_.agents,
                        t.score >= 0 ? std::optional<int>(t.score) : std::nullopt);
  // The implementer: the chain's first agent, or after a fallback the one that took over.
  std::string agent_name;
  if (decision.ok()) {
    const auto chain = agent_chain(*decision, settings_.agents);
    agent_name = chain.empty() ? decision->agent : chain.front();
    if (t.attempt > 0 && std::find(chain.begin(), chain.end(), t.agent) != chain.end()) {
      agent_name = t.agent;
      if (t.failure_kind == "agent_unavailable") agent_name = next_in_chain(chain, t.agent).value_or(t.agent);
    }
  }
  auto epoch = store_->next_epoch();
  if (!epoch.ok()) return epoch.error();
  TransitionUpdate u;
  u.attempt = attempt;
  u.agent = agent_name;
  u.branch = t.branch.empty() ? task_branch(t.request.id, t.request.title) : t.branch;
  u.worker = w.hello.worker_id;
  u.epoch = *epoch;
  u.reason = decision.ok() ? "agent " + agent_name + " (" + decision->because + "), plan " +
                                 plan_name(decision->plan) +
                                 (decision->reviewer.empty() ? "" : " with reviewer " + decision->reviewer) +
                                 ", worker " + w.hello.worker_id
                           : decision.error().to_string();
  auto routed = store_->advance(t, TaskState::kRouted, u, now_ms());
  if (!routed.ok()) return routed.error();
  const Task& task = *routed;
  if (!decision.ok()) {
    fail_attempt(task, TaskState::kRouted, "config", decision.error().to_string());
    return {};
  }
  auto identity = identity_of(agent_name);
  if (!identity.ok()) {
    fail_attempt(task, TaskState::kRouted, "identity", identity.error().to_string());
    return {};
  }
  protocol::Dispatch d;
  d.spec = make_run_spec(task, settings_.agents.at(agent_name), *identity, settings_.config, attempt, *epoch);
  d.spec.plan = plan_name(decision->plan);
  if (task.request.source == "github") d.spec.land_mode = "branch";  // the coordinator opens a pull request
  if (t.attempt > 0 && t.failure_kind != "agent_unavailable" && !t.reason.empty()) {
    // What went wrong before, for the agent to avoid (it sees it in its prompt and task file).
    d.spec.feedback = t.reason;
    const TaskRequest told = with_feedback(task.request, t.reason);
    d.spec.agent.command = expand_command(settings_.agents.at(agent_name).command, told, d.spec.branch);
    if (!d.spec.agent.stdin_text.empty()) {
      d.spec.agent.stdin_text = expand_text(settings_.agents.at(agent_name).stdin_template, told, d.spec.branch);
    }
  }
  if (decision->budget) apply_budget(d.spec, *decision->budget);
  if (decision->plan == Plan::kReview && !decision->reviewer.empty() && decision->reviewer != agent_name) {
    auto reviewer_identity = identity_of(decision->reviewer);
    if (!reviewer_identity.ok()) {
      fail_attempt(task, TaskState::kRouted, "identity", reviewer_identity.error().to_string());
      return {};
    }
    d.spec.reviewer = agent_spec(settings_.agents.at(decision->reviewer), *reviewer_identity,
                                 review_request(task.request, d.spec.branch), d.spec.branch);
    d.spec.review_rounds = settings_.config.review_rounds;
    const TaskRequest rework = rework_request(with_feedback(task.request, d.spec.feedback));
    d.spec.rework_command = expand_command(settings_.agents.at(agent_name).command, rework, d.spec.branch);
    const std::string& rework_stdin = settings_.agents.at(agent_name).stdin_template;
    if (!rework_stdin.empty()) d.spec.rework_stdin = expand_text(rework_stdin, rework, d.spec.branch);
  }
  landing_.erase(t.request.id);  // a new attempt holds a slot until it too asks to land
  w.running.insert(t.request.id);
  last_activity_ms_[t.request.id] = now_ms();
  send(w.routing_id, d);
  spdlog::info("task {} ROUTED to agent {} on worker {} (attempt {}, epoch {}, plan {})", t.request.id, agent_name,
               w.hello.worker_id, attempt, *epoch, d.spec.plan);
  return {};
}

Result<ResolvedIdentity> Coordinator::identity_of(const std::string& agent_name) const {
  const AgentProfile& agent = settings_.agents.at(agent_name);
  if (agent.identity.empty()) return ResolvedIdentity{};
  return resolve_identity(settings_.identities.at(agent.identity), (settings_.config.home / "identities.yaml").string());
}

void Coordinator::heartbeat_workers() {
  int64_t now = now_ms();
  // Nothing is due before the earliest deadline the last walk saw: a heartbeat sent or
  // received since only moves a deadline later, and a new worker's first is an interval away.
  if (now < next_heartbeat_walk_ms_) return;
  read_workers_before_judging();
  now = now_ms();
  const int64_t interval = settings_.config.heartbeat_interval_ms;
  const int64_t budget = interval * settings_.config.heartbeat_liveness;
  int64_t next = now + interval;
  for (auto& [rid, w] : workers_) {
    if (w.lost) continue;
    if (now - w.last_seen_ms > budget) {
      // Kept in the table as lost; expire_unheld_tasks fails and requeues what it held.
      w.lost = true;
      w.lost_at_ms = now;
      spdlog::warn("worker {} lost (silent for {} ms); its {} task(s) will be requeued", w.hello.worker_id,
                   now - w.last_seen_ms, w.running.size());
      continue;
    }
    if (now - w.last_sent_ms >= interval) {
      protocol::Heartbeat hb;
      hb.seq = ++w.heartbeat_seq;
      send(w.routing_id, hb);
    }
    next = std::min({next, w.last_sent_ms + interval, w.last_seen_ms + budget + 1});
  }
  next_heartbeat_walk_ms_ = next;
}

WorkerEntry* Coordinator::worker_by_routing(const std::string& routing_id) {
  auto it = workers_.find(routing_id);
  return it == workers_.end() ? nullptr : &it->second;
}

void Coordinator::send(const std::string& routing_id, const protocol::Message& m) {
  std::string body = protocol::encode(m);
  if (batching_) {
    deferred_.push_back({routing_id, std::move(body), protocol::type_name(m)});
    if (auto it = workers_.find(routing_id); it != workers_.end()) it->second.last_sent_ms = now_ms();
    return;
  }
  send_frame(routing_id, body, protocol::type_name(m));
}

void Coordinator::send_frame(const std::string& routing_id, const std::string& body, const std::string& type) {
  try {
    std::array<zmq::const_buffer, 2> frames{zmq::buffer(routing_id), zmq::buffer(body)};
    zmq::send_multipart(socket_, frames, zmq::send_flags::dontwait);
    if (auto it = workers_.find(routing_id); it != workers_.end()) it->second.last_sent_ms = now_ms();
  } catch (const zmq::error_t& e) {
    spdlog::warn("cannot send a {} to peer {:?}: {}", type, routing_id, e.what());
  }
}

}  // namespace polyphony

namespace polyphony {

bool Coordinator::adopt_issue(int64_t seq, const std::string& ref_text) {
  auto ref = parse_issue_ref(ref_text);
  if (!github_ || !ref.ok() || ref->repo != settings_.config.github.repo) {
    spdlog::error("spawn --issue {}: refused: {}", ref_text,
                  !github_ ? "GitHub mode is off (config.yaml has no github.repo)"
                  : !ref.ok() ? ref.error().message
                              : "this coordinator serves " + settings_.config.github.repo);
    return true;
  }
  // Adopted by a GitHub job; while one is under way the command waits in the queue.
  if (!github_jobs_->pending("github")) adoptions_.push_back({seq, ref_text, ref->number});
  return false;
}

void Coordinator::sync_github() {
  if (!github_ || github_jobs_->pending("github")) return;
  // Off the loop: the job alone uses github_ and github_store_ (one job at a time); the loop
  // applies what it returns.
  github_jobs_->submit("github", [this, adoptions = std::move(adoptions_)]() -> BackgroundJobs::Apply {
    std::vector<int64_t> done;
    for (const auto& a : adoptions) {
      auto id = github_->adopt(*github_store_, a.number);
      if (!id.ok() && id.error().code == "retry") continue;  // GitHub cannot answer now: kept for the next job
      if (!id.ok()) spdlog::error("spawn --issue {}: {}", a.ref, id.error().to_string());
      done.push_back(a.seq);
    }
    auto cancels = github_->sync(*github_store_);
    github_->report(*github_store_);
    return [this, cancels = std::move(cancels), done = std::move(done)] { apply_github(cancels, done); };
  });
  adoptions_.clear();
}

void Coordinator::apply_github(const std::vector<GithubCancel>& cancels, const std::vector<int64_t>& done_commands) {
  for (int64_t seq : done_commands) (void)queue_->ack_command(seq);
  for (const auto& c : cancels) {
    auto t = store_->get(c.task_id);
    if (!t.ok() || !t->has_value() || !can_transition((*t)->state, TaskState::kCancelled)) continue;
    auto reply = cancel(**t, c.reason);
    if (!reply.ok) spdlog::error("task {}: cannot cancel it ({}): {}", c.task_id, c.reason, reply.error);
  }
}

}  // namespace polyphony
