// The coordinator loop: discover -> claim -> route -> dispatch, and the workers' reports. It
// wires the worker registry, the land queue and the attempt policy to the sockets and the DB.
#include "coordinator/coordinator.h"

#include <unistd.h>

#include <cerrno>
#include <random>
#include <zmq_addon.hpp>

#include "common/ids.h"
#include "common/log.h"
#include "coordinator/identity_broker.h"
#include "coordinator/scheduling.h"
#include "coordinator/submission.h"

namespace polyphony {

namespace fs = std::filesystem;

Coordinator::Coordinator(zmq::context_t& context, Settings settings, const Clock& clock)
    : context_(context),
      clock_(clock),
      socket_(context, zmq::socket_type::router),
      client_socket_(context, zmq::socket_type::router),
      settings_(std::move(settings)),
      registry_(settings_.config.heartbeat_interval_ms, settings_.config.heartbeat_liveness,
                settings_.config.lost_worker_expiry_ms),
      logs_(settings_.config.log_dir),
      monitor_(context, zmq::socket_type::pair) {}

Result<std::unique_ptr<Coordinator>> Coordinator::create(zmq::context_t& context, Settings settings,
                                                         std::vector<std::string> endpoints,
                                                         std::vector<std::string> client_endpoints,
                                                         const Clock& clock) {
  auto c = std::unique_ptr<Coordinator>(new Coordinator(context, std::move(settings), clock));
  auto store = StateStore::open(c->settings_.config.state_db);
  if (!store.ok()) return store.error();
  c->store_.emplace(std::move(*store));
  auto queue = SqliteQueue::open(c->settings_.config.queue_db);
  if (!queue.ok()) return queue.error();
  c->queue_ = std::move(*queue);
  c->scoring_jobs_ = std::make_unique<BackgroundJobs>(kScoringThreads);
  c->github_jobs_ = std::make_unique<BackgroundJobs>(1);
  c->view_jobs_ = std::make_unique<BackgroundJobs>(kViewThreads);
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
  POLY_TRY(c->watch_worker_connections());
  POLY_TRY(c->bind_worker_endpoints(endpoints));
  POLY_TRY(c->bind_client_endpoints(client_endpoints));
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  c->coordinator_id_ = std::string(host) + ":" + std::to_string(getpid());
  c->started_ms_ = c->now();
  c->restore_land_grants();
  return c;
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
                    protocol::peer_user_id(frames[1]), std::nullopt, zmq_msg_get(frames[1].handle(), ZMQ_SRCFD)};
      if (!f.message.ok()) f.result_lease = protocol::result_lease(frames[1].to_string_view());
      received.push_back(std::move(f));
    });
  } catch (const zmq::error_t& e) {
    socket_error = e;  // what arrived before it is still handled
  }
  last_worker_read_ms_ = now();
  auto handle_all = [&] { handle_frames(received); };
  // Heartbeats alone record nothing: no transaction (most turns with 1,000 idle workers).
  const bool records = std::any_of(received.begin(), received.end(), [](const WorkerFrame& f) {
    return f.result_lease || (f.message.ok() && !std::holds_alternative<protocol::Heartbeat>(*f.message));
  });
  if (records)
    batch(handle_all);
  else
    handle_all();
  if (socket_error) throw *socket_error;
}

void Coordinator::step(int64_t wait_ms) {
  // The background jobs' descriptors wake the poll when a result is ready to apply.
  zmq::pollitem_t items[] = {{socket_.handle(), 0, ZMQ_POLLIN, 0},
                             {client_socket_.handle(), 0, ZMQ_POLLIN, 0},
                             {nullptr, scoring_jobs_->wake_fd(), ZMQ_POLLIN, 0},
                             {nullptr, github_jobs_->wake_fd(), ZMQ_POLLIN, 0},
                             {nullptr, view_jobs_->wake_fd(), ZMQ_POLLIN, 0},
                             {monitor_.handle(), 0, ZMQ_POLLIN, 0},
                             {zap_ ? zap_->socket().handle() : nullptr, 0, ZMQ_POLLIN, 0}};
  // A freed slot waits at most kMinDispatchGapMs, not a whole poll interval.
  if (slot_freed_) wait_ms = std::clamp<int64_t>(last_dispatch_ms_ + kMinDispatchGapMs - now(), 0, wait_ms);
  try {
    zmq::poll(items, zap_ ? 7 : 6, std::chrono::milliseconds(wait_ms));
    last_worker_read_ms_ = now();  // whatever waits on the workers' socket is read next
    if (zap_ && (items[6].revents & ZMQ_POLLIN)) zap_->serve();
    // Messages first: a worker's last frames (a goodbye) come before its connection's close.
    if (items[0].revents & ZMQ_POLLIN) drain_workers();
    if (items[5].revents & ZMQ_POLLIN) read_connection_events();
    if (items[1].revents & ZMQ_POLLIN) {
      drain(client_socket_, [&](std::vector<zmq::message_t>& frames) {
        handle_client_frame(frames[0].to_string(), frames[1].to_string());
      });
    }
  } catch (const zmq::error_t& e) {
    if (e.num() != EINTR) spdlog::error("socket error: {}", e.what());
  }
  apply_background((items[2].revents & ZMQ_POLLIN) != 0, (items[3].revents & ZMQ_POLLIN) != 0);
  if (items[4].revents & ZMQ_POLLIN) view_jobs_->apply_finished();
  if (now() >= next_periodic_ms_) {
    periodic();
    next_periodic_ms_ = now() + settings_.config.poll_interval_ms;
  } else if (slot_freed_ && now() - last_dispatch_ms_ >= kMinDispatchGapMs) {
    // A worker slot freed: fill it now rather than at the next poll.
    batch([&] { dispatch_claimed(); });
  }
  heartbeat_workers();
  if (!cleanups_.empty()) finish_cleanups();
  tell_watchers();
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
  const auto heard = registry_.heard(routing_id, now());
  if (heard.worker == nullptr) {
    if (once_a_second_.allow("unregistered:" + routing_id, now())) {
      spdlog::warn("dropped a {} from unregistered peer {:?} (it has not said hello, said goodbye, or was removed)",
                   type, routing_id);
    }
  } else if (heard.lost_for_ms) {
    // Tasks failed while it was lost are refused (stale epoch) and cancelled on it.
    spdlog::info("worker {} recovered (was lost for {} ms)", heard.worker->hello.worker_id, *heard.lost_for_ms);
  }
  return heard.worker;
}

void Coordinator::on_hello(const std::string& routing_id, const protocol::Hello& m, const std::string& key_name) {
  const auto out = registry_.hello(routing_id, m, key_name, now());
  switch (out.verdict) {
    case WorkerRegistry::HelloVerdict::kWrongVersion:
      spdlog::error("worker {} speaks protocol {}, this coordinator {}; ignoring it", m.worker_id, m.protocol_version,
                    protocol::kProtocolVersion);
      return;
    case WorkerRegistry::HelloVerdict::kIdMismatch:
      spdlog::warn("refused hello from peer {:?}: worker id {} differs from its routing id", routing_id, m.worker_id);
      return;
    case WorkerRegistry::HelloVerdict::kKeyMismatch:
      spdlog::warn(
          "refused hello from worker {}: it registered with CURVE key {:?} and this hello comes with key "
          "{:?}; a worker id stays with its first key until the coordinator restarts",
          m.worker_id, out.bound_key, key_name);
      return;
    case WorkerRegistry::HelloVerdict::kAccepted:
      break;
  }
  WorkerEntry& w = *out.worker;
  if (out.lost_for_ms) {
    spdlog::info("worker {} recovered (was lost for {} ms), re-registering with {} running", m.worker_id,
                 *out.lost_for_ms, m.running.size());
  }
  slot_freed_ = true;  // a new worker, or one that may hold less than before: fill its slots soon
  spdlog::info("worker {} {} (host {}, capacity {}, labels [{}], {} running{})", m.worker_id,
               out.known ? "re-registered" : "registered", m.hostname, m.capacity, fmt::join(m.labels, ", "),
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
  std::set<std::string> still_held;
  for (const auto& t : *active) {
    const bool still = std::any_of(m.running.begin(), m.running.end(), [&](const protocol::RunningTask& r) {
      return r.task_id == t.request.id && r.epoch == t.epoch;
    });
    if (still) {
      w.running.insert(t.request.id);
      still_held.insert(t.request.id);
    } else {
      fail_attempt(t, t.state, FailureKind::kInfra,
                   "worker " + m.worker_id + " restarted and no longer runs this attempt");
      // What its dead run left (workspace, containers) goes now: the retry may run elsewhere.
      cancel_stale(w, t.request.id, t.epoch, "the attempt died with the worker's previous life");
    }
  }
  // Attempts the worker still runs that are no longer its own (failed while it was away, or
  // dispatched again elsewhere): told to stop now, not when they next report.
  for (const auto& r : m.running) {
    if (still_held.count(r.task_id)) continue;
    if (!leased_task(w, r.task_id, r.epoch, "a running attempt in a hello")) w.running.erase(r.task_id);
  }
}

void Coordinator::on_land_request(WorkerEntry& w, const protocol::LandRequest& m) {
  auto task = leased_task(w, m.task_id, m.epoch, "a land request");
  if (!task) {
    answer_land(w.routing_id, m, false,
                "stale lease epoch " + std::to_string(m.epoch) + ": this attempt no longer owns the task");
    return;
  }
  if (task->state != TaskState::kVerifying) {
    answer_land(w.routing_id, m, false, "task is " + std::string(to_string(task->state)) + ", not VERIFYING");
    return;
  }
  last_activity_ms_[m.task_id] = now();
  if (!lands_.landing().count(m.task_id)) slot_freed_ = true;  // its agent is done: the next task may start
  const auto answer = lands_.request(task->request.repo, {w.routing_id, m}, now());
  if (answer.waited_ms) {
    const LandWait wait{m.task_id, m.attempt, task->request.repo, now() - *answer.waited_ms, now()};
    if (auto s = store_->record_land_wait(wait); !s.ok()) {
      spdlog::error("task {}: cannot record its merge-queue wait: {}", m.task_id, s.error().to_string());
    }
  }
  if (answer.granted) answer_land(w.routing_id, m, true, "");
  if (answer.queued) {
    spdlog::info("task {} waits to land behind task {} on {}", m.task_id, answer.behind, task->request.repo);
  }
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
  const auto repo = lands_.release(task_id);
  if (!repo) return;
  while (auto next = lands_.next_waiting(*repo)) {
    WorkerEntry* w = registry_.find(next->routing_id);
    if (w == nullptr) continue;          // its worker is gone; it will ask again after re-registering
    on_land_request(*w, next->request);  // granted, unless its lease or state no longer allow it
  }
}

void Coordinator::forget_attempt(const std::string& task_id) {
  last_activity_ms_.erase(task_id);
  if (registry_.forget_task(task_id)) slot_freed_ = true;
  release_land(task_id);
}

void Coordinator::fail_attempt(const Task& task, TaskState from, FailureKind kind, const std::string& reason,
                               const std::string& tree) {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  // The retry decision is part of the same transaction, so nobody sees a retried task as FAILED.
  const auto outcomes = outcomes_for(task, task.score >= 0 ? std::optional<int>(task.score) : std::nullopt);
  auto grant = store_->last_grant(task.request.id, task.attempt);
  const bool may_have_landed = lands_.pushing(task.request.id, now()) || (grant.ok() && grant->has_value());
  const Steps steps = failure_steps(task, from, kind, reason, tree, settings_, now(), rng(),
                                    outcomes ? &*outcomes : nullptr, may_have_landed);
  if (steps.empty()) return;
  auto s = store_->transitions(task.request.id, from, steps, now());
  if (!s.ok()) {
    spdlog::error("task {}: cannot record failure: {}", task.request.id, s.error().to_string());
    return;
  }
  spdlog::warn("task {} FAILED ({}): {}{}", task.request.id, to_string(kind), reason,
               steps.back().first == TaskState::kBlocked   ? " -> BLOCKED"
               : steps.back().first == TaskState::kClaimed ? " -> retrying"
                                                           : "");
  forget_attempt(task.request.id);
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

void Coordinator::apply_background(bool scoring, bool github) {
  if (scoring) scoring_jobs_->apply_finished();
  if (github) github_jobs_->apply_finished();
}

void Coordinator::read_workers_before_judging() {
  // Cheap when nothing waits (one read that finds nothing); said when the loop was held up.
  const int64_t unread_ms = now() - last_worker_read_ms_;
  if (unread_ms > settings_.config.heartbeat_interval_ms) {
    spdlog::warn(
        "the coordinator's loop did not read the workers' socket for {} ms; reading it before judging "
        "liveness",
        unread_ms);
  }
  try {
    drain_workers();
  } catch (const zmq::error_t& e) {
    if (e.num() != EINTR) spdlog::error("socket error: {}", e.what());
  }
}

void Coordinator::restore_land_grants() {
  auto verifying = store_->list({TaskState::kVerifying});
  if (!verifying.ok()) {
    spdlog::error("cannot read the tasks that may be landing: {}", verifying.error().to_string());
    return;
  }
  for (const auto& t : *verifying) {
    auto grant = store_->last_grant(t.request.id, t.attempt);
    if (!grant.ok()) {
      spdlog::error("task {}: cannot read its landing grant: {}", t.request.id, grant.error().to_string());
      continue;
    }
    if (!*grant || now() - (*grant)->granted_at_ms >= kLandGraceMs) continue;
    if (!lands_.restore((*grant)->repo, t.request.id, (*grant)->granted_at_ms)) continue;
    spdlog::info(
        "task {}: attempt {} was granted its landing {} ms ago by the previous coordinator; {} stays held for it "
        "until it reports or {} s after the grant",
        t.request.id, t.attempt, now() - (*grant)->granted_at_ms, (*grant)->repo, kLandGraceMs / 1000);
  }
}

// Active tasks held by a worker that has not been heard from within its liveness budget
// (e.g. after a coordinator restart nobody re-registered) are failed and retried.
void Coordinator::expire_unheld_tasks() {
  if (now() - started_ms_ < registry_.budget_ms()) return;
  read_workers_before_judging();
  const int64_t at = now();
  auto active = store_->list(active_task_states());
  if (!active.ok()) return;
  for (const auto& t : *active) {
    if (registry_.holds(t.worker, t.request.id, at) || lands_.pushing(t.request.id, at)) continue;
    fail_attempt(t, t.state, FailureKind::kInfra, "worker " + t.worker + " lost the attempt (no heartbeat)");
  }
}

void Coordinator::expire_unanswered_dispatches() {
  auto routed = store_->list({TaskState::kRouted});
  if (!routed.ok()) return;
  const int64_t at = now();
  for (const auto& t : *routed) {
    auto it = last_activity_ms_.find(t.request.id);
    if (it == last_activity_ms_.end()) {
      last_activity_ms_[t.request.id] = at;  // routed before this coordinator started
      continue;
    }
    if (at - it->second > kDispatchAnswerTimeoutMs) {
      fail_attempt(t, t.state, FailureKind::kInfra, "worker " + t.worker + " never answered the dispatch");
    }
  }
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

protocol::WorkersReply Coordinator::workers() const {
  return worker_table(registry_.entries(), coordinator_id_, now(), lands_.landing());
}

void Coordinator::dispatch_claimed() {
  const int64_t at = now();
  last_dispatch_ms_ = at;
  slot_freed_ = false;
  const int slots = settings_.config.max_concurrency - registry_.running_count(lands_.landing());
  if (slots <= 0) return;
  // Only what a pass can take: of each repo its oldest due tasks, with room for tasks that no
  // worker fits (labels), which must not hold back those behind them.
  auto claimed = store_->dispatchable(at, slots + kDispatchLookahead);
  auto running_per_repo = store_->active_per_repo();
  if (!claimed.ok() || !running_per_repo.ok()) return;
  int dispatched = 0;
  FreeWorkers free = registry_.free_workers(at, lands_.landing());
  for (const auto& t : dispatch_order(*claimed, *running_per_repo, settings_.config.max_concurrency_per_repo,
                                      static_cast<int>(claimed->size()), at)) {
    if (dispatched >= slots) return;
    WorkerEntry* w = pick_worker(t, free);
    if (w == nullptr) continue;
    ++dispatched;
    auto s = dispatch_one(t, *w);
    if (!s.ok()) spdlog::error("task {}: {}", t.request.id, s.error().to_string());
  }
}

Status Coordinator::dispatch_one(const Task& t, WorkerEntry& w) {
  const std::optional<int> score = t.score >= 0 ? std::optional<int>(t.score) : std::nullopt;
  const auto outcomes = outcomes_for(t, score);
  auto decision = route(t.request, settings_.routing, settings_.agents, score, outcomes ? &*outcomes : nullptr);
  auto epoch = store_->next_epoch();
  if (!epoch.ok()) return epoch.error();
  TransitionUpdate u;
  u.attempt = t.attempt + 1;
  u.agent = decision.ok() ? implementer(t, *decision, settings_.agents) : "";
  u.branch = t.branch.empty() ? task_branch(t.request.id, t.request.title) : t.branch;
  u.worker = w.hello.worker_id;
  u.epoch = *epoch;
  u.reason = decision.ok() ? dispatch_reason(*decision, *u.agent, w.hello.worker_id) : decision.error().to_string();
  auto routed = store_->advance(t, TaskState::kRouted, u, now());
  if (!routed.ok()) return routed.error();
  send_attempt(*routed, decision, feedback_for(t), w);
  return {};
}

void Coordinator::send_attempt(const Task& task, const Result<RouteDecision>& decision, const std::string& feedback,
                               WorkerEntry& w) {
  if (!decision.ok()) return fail_attempt(task, TaskState::kRouted, FailureKind::kConfig, decision.error().to_string());
  auto identity = identity_of(task.agent);
  if (!identity.ok()) {
    return fail_attempt(task, TaskState::kRouted, FailureKind::kIdentity, identity.error().to_string());
  }
  std::optional<ResolvedIdentity> reviewer;
  if (has_reviewer(*decision, task.agent)) {
    auto resolved = identity_of(decision->reviewer);
    if (!resolved.ok()) {
      return fail_attempt(task, TaskState::kRouted, FailureKind::kIdentity, resolved.error().to_string());
    }
    reviewer = std::move(*resolved);
  }
  const protocol::Dispatch d{
      run_spec({task, *decision, *identity, reviewer ? &*reviewer : nullptr, feedback}, settings_)};
  lands_.forget_landing(task.request.id);  // a new attempt holds a slot until it too asks to land
  w.running.insert(task.request.id);
  last_activity_ms_[task.request.id] = now();
  send(w.routing_id, d);
  spdlog::info("task {} ROUTED to agent {} on worker {} (attempt {}, epoch {}, plan {})", task.request.id, task.agent,
               w.hello.worker_id, task.attempt, task.epoch, d.spec.plan);
}

Result<ResolvedIdentity> Coordinator::identity_of(const std::string& agent_name) const {
  const AgentProfile& agent = settings_.agents.at(agent_name);
  if (agent.identity.empty()) return ResolvedIdentity{};
  const std::string file = (settings_.config.home / "identities.yaml").string();
  return resolve_identity(settings_.identities.at(agent.identity), file);
}

void Coordinator::heartbeat_workers() {
  if (!registry_.walk_due(now())) return;
  read_workers_before_judging();
  const int64_t at = now();
  const auto walk = registry_.walk(at);
  for (WorkerEntry* w : walk.lost) {
    // Kept in the table as lost (until it expires); what it held is requeued now.
    spdlog::warn("worker {} lost ({} ms after it was last heard{}); requeueing its {} task(s)", w->hello.worker_id,
                 at - w->last_seen_ms, w->disconnected_ms ? ", its connection closed" : "", w->running.size());
    requeue_tasks_of(w->hello.worker_id, "worker " + w->hello.worker_id + " lost (no heartbeat)");
  }
  for (const auto& id : walk.expired) {
    spdlog::info("worker {} dropped from the table: lost for more than {} ms (coordinator.lost_worker_expiry_ms)", id,
                 settings_.config.lost_worker_expiry_ms);
  }
  for (WorkerEntry* w : walk.heartbeat_due) {
    protocol::Heartbeat hb;
    hb.seq = ++w->heartbeat_seq;
    send(w->routing_id, hb);
  }
}

void Coordinator::send(const std::string& routing_id, const protocol::Message& m) {
  auto encoded = protocol::try_encode(m);
  if (!encoded.ok()) {  // a bug here: the value was built by this program
    spdlog::error("cannot send a {} to peer {:?}: {}", protocol::type_name(m), routing_id, encoded.error().to_string());
    return;
  }
  std::string body = std::move(*encoded);
  if (batching_) {
    deferred_.push_back({routing_id, std::move(body), protocol::type_name(m)});
    registry_.sent(routing_id, now());
    return;
  }
  send_frame(routing_id, body, protocol::type_name(m));
}

void Coordinator::send_frame(const std::string& routing_id, const std::string& body, const std::string& type) {
  try {
    std::array<zmq::const_buffer, 2> frames{zmq::buffer(routing_id), zmq::buffer(body)};
    zmq::send_multipart(socket_, frames, zmq::send_flags::dontwait);
    registry_.sent(routing_id, now());
  } catch (const zmq::error_t& e) {
    // Tried again no sooner than an interval later; with no route, the peer has no connection.
    registry_.sent(routing_id, now());
    WorkerEntry* w = registry_.find(routing_id);
    if (e.num() == EHOSTUNREACH && w != nullptr) registry_.disconnected(*w, now());
    if (once_a_second_.allow("send:" + routing_id, now())) {
      spdlog::warn("cannot send a {} to peer {:?}: {}", type, routing_id,
                   e.num() == EHOSTUNREACH ? "it is not connected" : e.what());
    }
  }
}

}  // namespace polyphony
