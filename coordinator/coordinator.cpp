// The coordinator loop: discover -> claim -> route -> dispatch, and the workers' reports.
#include "coordinator/coordinator.h"

#include <unistd.h>

#include <fstream>
#include <random>
#include <zmq_addon.hpp>

#include "common/ids.h"
#include "common/log.h"
#include "coordinator/identity_broker.h"
#include "coordinator/router.h"
#include "coordinator/scheduling.h"
#include "coordinator/submission.h"
#include "coordinator/task_scoring.h"

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
  c->socket_.set(zmq::sockopt::router_mandatory, 1);
  c->socket_.set(zmq::sockopt::linger, 0);
  c->socket_.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(protocol::kMaxFrameBytes));
  for (const auto& ep : endpoints) {
    try {
      c->socket_.bind(ep);
    } catch (const zmq::error_t& e) {
      return make_error("network", std::string("cannot listen: ") + e.what(), ep);
    }
  }
  c->client_socket_.set(zmq::sockopt::linger, 0);
  c->client_socket_.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(protocol::kMaxFrameBytes));
  for (const auto& ep : client_endpoints) {
    if (ep.rfind("ipc://", 0) == 0) {
      std::error_code ec;
      fs::remove(ep.substr(6), ec);  // a socket file left by a killed coordinator
    }
    try {
      c->client_socket_.bind(ep);
    } catch (const zmq::error_t& e) {
      return make_error("network", std::string("cannot listen for clients: ") + e.what(), ep);
    }
  }
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  c->coordinator_id_ = std::string(host) + ":" + std::to_string(getpid());
  c->started_ms_ = now_ms();
  return c;
}

void Coordinator::run(const std::atomic<bool>& stop) {
  spdlog::info("coordinator {} serving (state {})", coordinator_id_, settings_.config.state_db.string());
  while (!stop.load()) step(std::min<int64_t>(settings_.config.poll_interval_ms, 100));
  spdlog::info("coordinator stopping");
}

void Coordinator::drain(zmq::socket_t& socket, bool clients) {
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
    if (clients) handle_client_frame(frames[0].to_string(), frames[1].to_string());
    else handle_frame(frames[0].to_string(), frames[1].to_string());
  }
}

void Coordinator::step(int64_t wait_ms) {
  zmq::pollitem_t items[] = {{socket_.handle(), 0, ZMQ_POLLIN, 0}, {client_socket_.handle(), 0, ZMQ_POLLIN, 0}};
  const int running_before = running_count();
  // A freed slot waits at most kMinDispatchGapMs, not a whole poll interval.
  if (slot_freed_) wait_ms = std::clamp<int64_t>(last_dispatch_ms_ + kMinDispatchGapMs - now_ms(), 0, wait_ms);
  try {
    zmq::poll(items, 2, std::chrono::milliseconds(wait_ms));
    if (items[0].revents & ZMQ_POLLIN) batch([&] { drain(socket_, false); });
    if (items[1].revents & ZMQ_POLLIN) drain(client_socket_, true);
  } catch (const zmq::error_t& e) {
    if (e.num() != EINTR) spdlog::error("socket error: {}", e.what());
  }
  if (running_count() < running_before) slot_freed_ = true;
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

void Coordinator::handle_frame(const std::string& routing_id, const std::string& body) {
  auto msg = protocol::decode(body);
  if (!msg.ok()) {
    spdlog::warn("dropped a frame from peer {:?}: {} (field {})", routing_id, msg.error().message, msg.error().where);
    return;
  }
  if (const auto* hello = std::get_if<protocol::Hello>(&*msg)) {
    on_hello(routing_id, *hello);
    return;
  }
  WorkerEntry* w = worker_by_routing(routing_id);
  if (w == nullptr) {
    spdlog::warn("dropped a {} from unregistered peer {:?}", protocol::type_name(*msg), routing_id);
    return;
  }
  w->last_seen_ms = now_ms();
  std::visit(
      [&](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, protocol::TaskUpdate>) on_update(*w, m);
        else if constexpr (std::is_same_v<T, protocol::LogChunk>) on_log(*w, m);
        else if constexpr (std::is_same_v<T, protocol::TaskResult>) on_result(*w, m);
        else if constexpr (std::is_same_v<T, protocol::Heartbeat>) {}
        else spdlog::warn("dropped an unexpected {} from worker {}", protocol::type_name(m), w->hello.worker_id);
      },
      *msg);
}

void Coordinator::on_hello(const std::string& routing_id, const protocol::Hello& m) {
  if (m.protocol_version != protocol::kProtocolVersion) {
    spdlog::error("worker {} speaks protocol {}, this coordinator {}; ignoring it", m.worker_id, m.protocol_version,
                  protocol::kProtocolVersion);
    return;
  }
  WorkerEntry& w = workers_[routing_id];
  const bool known = !w.hello.worker_id.empty();
  w.routing_id = routing_id;
  w.hello = m;
  w.last_seen_ms = now_ms();
  w.running.clear();
  for (const auto& r : m.running) w.running.insert(r.task_id);
  spdlog::info("worker {} {} (host {}, capacity {}, {} running)", m.worker_id, known ? "re-registered" : "registered",
               m.hostname, m.capacity, m.running.size());
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

std::optional<Task> Coordinator::leased_task(const WorkerEntry& w, const std::string& task_id, int64_t epoch,
                                             const char* what) {
  auto t = store_->get(task_id);
  if (!t.ok() || !t->has_value()) {
    spdlog::warn("dropped {} for unknown task {} from worker {}", what, task_id, w.hello.worker_id);
    return std::nullopt;
  }
  const Task& task = **t;
  if (task.epoch != epoch || task.worker != w.hello.worker_id) {
    spdlog::warn("refused {} for task {} from worker {}: stale lease epoch {} (current {} held by {})", what, task_id,
                 w.hello.worker_id, epoch, task.epoch, task.worker.empty() ? "nobody" : task.worker);
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
  auto s = store_->transition(m.task_id, task->state, *to, u, now_ms());
  if (!s.ok()) {
    spdlog::error("task {}: {}", m.task_id, s.error().to_string());
    return;
  }
  spdlog::info("task {} {} (worker {})", m.task_id, m.state, w.hello.worker_id);
}

void Coordinator::on_log(WorkerEntry& w, const protocol::LogChunk& m) {
  if (!leased_task(w, m.task_id, m.epoch, "a log chunk")) return;
  last_activity_ms_[m.task_id] = now_ms();
  fs::path dir = settings_.config.log_dir / m.task_id;
  std::error_code ec;
  fs::create_directories(dir, ec);
  std::ofstream out(dir / (std::to_string(m.attempt) + "-" + m.stream + ".log"), std::ios::app | std::ios::binary);
  out << redact(m.data);
  if (!out) spdlog::error("task {}: cannot write its log under {}", m.task_id, dir.string());
}

void Coordinator::on_result(WorkerEntry& w, const protocol::TaskResult& m) {
  auto current = store_->get(m.task_id);
  const bool recorded = current.ok() && current->has_value() && (*current)->epoch == m.epoch &&
                        !is_active((*current)->state);
  if (!recorded) record_result(w, m);
  // Acknowledged even when stale or already recorded, so the worker stops resending it; a
  // stale result itself is never recorded (leased_task refuses it).
  protocol::ResultAck ack;
  ack.task_id = m.task_id;
  ack.attempt = m.attempt;
  ack.epoch = m.epoch;
  send(w.routing_id, ack);
}

void Coordinator::record_result(WorkerEntry& w, const protocol::TaskResult& m) {
  auto task = leased_task(w, m.task_id, m.epoch, "a result");
  if (!task) return;
  w.running.erase(m.task_id);
  if (m.outcome != "landed") {
    fail_attempt(*task, task->state, m.failure_kind.empty() ? "infra" : m.failure_kind, m.reason, m.tree);
    return;
  }
  TransitionUpdate u;
  u.commit = m.commit;
  u.merged_commit = m.merged_commit;
  u.reason = "landed " + m.merged_commit.substr(0, 12) + " from " + m.branch;
  auto s = store_->transition(m.task_id, task->state, TaskState::kLanded, u, now_ms());
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
  for (auto& [rid, w] : workers_) w.running.erase(task.request.id);
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
  } else {
    spdlog::warn("dropped a {} on the client endpoint", protocol::type_name(*msg));
    reply = refusal(make_error("protocol", "clients may send submit or control only", "type"));
  }
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
  auto id = submit_task(r, settings_);
  if (!id.ok()) return refusal(id.error());
  discover();
  auto t = store_->get(*id);
  if (!t.ok() || !t->has_value()) return refusal(make_error("db", "the task was queued but cannot be read back", *id));
  return task_reply(**t);
}

protocol::ClientReply Coordinator::control(const std::string& task_id, const std::string& action) {
  auto t = store_->get(task_id);
  if (!t.ok()) return refusal(t.error());
  if (!t->has_value()) return refusal(make_error("not_found", "no task with this id", "task_id"));
  if (action == "cancel") return cancel(**t);
  if (action == "retry") return retry(**t);
  return task_reply(**t);
}

protocol::ClientReply Coordinator::cancel(const Task& t) {
  if (!can_transition(t.state, TaskState::kCancelled)) {
    return refusal(make_error("usage", "task is already " + std::string(to_string(t.state)), "task_id"));
  }
  for (auto& [rid, w] : workers_) {
    if (w.hello.worker_id == t.worker && w.running.count(t.request.id)) {
      protocol::Cancel c;
      c.task_id = t.request.id;
      c.epoch = t.epoch;
      c.reason = "cancelled by a user";
      send(rid, c);
      w.running.erase(t.request.id);
    }
  }
  TransitionUpdate u;
  u.reason = "cancelled by a user";
  u.failure_kind = "cancelled";
  auto s = store_->transition(t.request.id, t.state, TaskState::kCancelled, u, now_ms());
  if (!s.ok()) return refusal(s.error());
  last_activity_ms_.erase(t.request.id);
  spdlog::info("task {} CANCELLED", t.request.id);
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
    auto reply = control(c.task_id, c.action);
    if (!reply.ok) spdlog::warn("{} of task {} refused: {}", c.action, c.task_id, reply.error);
    (void)queue_->ack_command(c.seq);
  }
}

void Coordinator::periodic() {
  discover();
  apply_commands();
  batch([&] { claim_discovered(); });
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
  RepoTextCache repo_texts;  // one read of each repo per pass, not one per task
  for (const auto& t : *tasks) {
    TransitionUpdate u;
    std::string why = "claimed by " + coordinator_id_;
    // Scored once, at the claim, against the repository at the task's base; the plan follows.
    auto scored = score_task(t.request, settings_, &repo_texts);
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
    auto s = store_->transition(t.request.id, TaskState::kDiscovered, TaskState::kClaimed, u, now_ms());
    if (!s.ok()) spdlog::error("task {}: {}", t.request.id, s.error().to_string());
  }
}

// Active tasks held by a worker that has not been heard from within its liveness budget
// (e.g. after a coordinator restart nobody re-registered) are failed and retried.
void Coordinator::expire_unheld_tasks() {
  const int64_t now = now_ms();
  const int64_t budget = settings_.config.heartbeat_interval_ms * settings_.config.heartbeat_liveness;
  if (now - started_ms_ < budget) return;
  auto active = store_->list(active_task_states());
  if (!active.ok()) return;
  for (const auto& t : *active) {
    bool held = false;
    for (const auto& [rid, w] : workers_) {
      if (w.hello.worker_id == t.worker && now - w.last_seen_ms < budget) held = w.running.count(t.request.id) > 0;
    }
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

int Coordinator::running_count() const {
  int n = 0;
  for (const auto& [rid, w] : workers_) n += static_cast<int>(w.running.size());
  return n;
}

WorkerEntry* Coordinator::pick_worker() {
  WorkerEntry* best = nullptr;
  const int64_t budget = settings_.config.heartbeat_interval_ms * settings_.config.heartbeat_liveness;
  for (auto& [rid, w] : workers_) {
    if (now_ms() - w.last_seen_ms > budget) continue;
    if (static_cast<int>(w.running.size()) >= w.hello.capacity) continue;
    if (best == nullptr || w.running.size() * static_cast<size_t>(best->hello.capacity) <
                               best->running.size() * static_cast<size_t>(w.hello.capacity)) {
      best = &w;
    }
  }
  return best;
}

void Coordinator::dispatch_claimed() {
  last_dispatch_ms_ = now_ms();
  slot_freed_ = false;
  const int slots = settings_.config.max_concurrency - running_count();
  if (slots <= 0) return;
  // Only what `slots` dispatches can take: of each repo its `slots` oldest due tasks.
  const int64_t now = now_ms();
  auto claimed = store_->dispatchable(now, slots);
  auto running_per_repo = store_->active_per_repo();
  if (!claimed.ok() || !running_per_repo.ok()) return;
  for (const auto& t : dispatch_order(*claimed, *running_per_repo, settings_.config.max_concurrency_per_repo, slots, now)) {
    WorkerEntry* w = pick_worker();
    if (w == nullptr) return;
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
  POLY_TRY(store_->transition(t.request.id, TaskState::kClaimed, TaskState::kRouted, u, now_ms()));
  auto routed = store_->get(t.request.id);
  if (!routed.ok() || !routed->has_value()) return make_error("db", "task vanished after routing", t.request.id);
  const Task& task = **routed;
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
  if (t.attempt > 0 && t.failure_kind != "agent_unavailable" && !t.reason.empty()) {
    // What went wrong before, for the agent to avoid (it sees it in its prompt and task file).
    d.spec.feedback = t.reason;
    d.spec.agent.command = expand_command(settings_.agents.at(agent_name).command,
                                          with_feedback(task.request, t.reason), d.spec.branch);
  }
  if (decision->plan == Plan::kReview && !decision->reviewer.empty() && decision->reviewer != agent_name) {
    auto reviewer_identity = identity_of(decision->reviewer);
    if (!reviewer_identity.ok()) {
      fail_attempt(task, TaskState::kRouted, "identity", reviewer_identity.error().to_string());
      return {};
    }
    d.spec.reviewer = agent_spec(settings_.agents.at(decision->reviewer), *reviewer_identity,
                                 review_request(task.request, d.spec.branch), d.spec.branch);
    d.spec.review_rounds = settings_.config.review_rounds;
    d.spec.rework_command = expand_command(settings_.agents.at(agent_name).command,
                                           rework_request(with_feedback(task.request, d.spec.feedback)), d.spec.branch);
  }
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
  const int64_t now = now_ms();
  const int64_t budget = settings_.config.heartbeat_interval_ms * settings_.config.heartbeat_liveness;
  for (auto it = workers_.begin(); it != workers_.end();) {
    WorkerEntry& w = it->second;
    if (now - w.last_seen_ms > budget) {
      spdlog::warn("worker {} lost (silent for {} ms)", w.hello.worker_id, now - w.last_seen_ms);
      it = workers_.erase(it);
      continue;
    }
    if (now - w.last_sent_ms >= settings_.config.heartbeat_interval_ms) {
      protocol::Heartbeat hb;
      hb.seq = ++w.heartbeat_seq;
      send(w.routing_id, hb);
    }
    ++it;
  }
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
