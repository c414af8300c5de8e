// What the workers report, as the coordinator's loop records it: task updates, log chunks and
// results, each checked against the current lease first.
#include "common/log.h"
#include "coordinator/coordinator.h"

namespace polyphony {

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
    if (WorkerEntry* w = registry_.find(routing_id); w != nullptr && w->key_name == key_name) w->connection_fd = f.fd;
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
  if (f.fd >= 0) w->connection_fd = f.fd;
  std::visit(
      [&](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, protocol::TaskUpdate>)
          on_update(*w, m);
        else if constexpr (std::is_same_v<T, protocol::LogChunk>)
          on_log(*w, m);
        else if constexpr (std::is_same_v<T, protocol::TaskResult>)
          on_result(*w, m);
        else if constexpr (std::is_same_v<T, protocol::LandRequest>)
          on_land_request(*w, m);
        else if constexpr (std::is_same_v<T, protocol::Heartbeat>)
          WorkerRegistry::note_heartbeat(*w, m, now());
        else if constexpr (std::is_same_v<T, protocol::Goodbye>)
          on_goodbye(*w, m);
        else if constexpr (std::is_same_v<T, protocol::CleanupReport>)
          on_cleanup_report(*w, m);
        else
          spdlog::warn("dropped an unexpected {} from worker {}", protocol::type_name(m), w->hello.worker_id);
      },
      *msg);
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
  last_activity_ms_[m.task_id] = now();
  auto to = parse_task_state(m.state);
  if (to && *to == task->state) {  // no change of state: a note for the history (a review verdict)
    if (m.detail.empty()) return;
    auto s = store_->note(m.task_id, m.detail, now());
    if (!s.ok())
      spdlog::error("task {}: {}", m.task_id, s.error().to_string());
    else
      spdlog::info("task {} {}: {} (worker {})", m.task_id, m.state, m.detail, w.hello.worker_id);
    return;
  }
  if (!to || !can_transition(task->state, *to)) {
    spdlog::warn("task {}: ignored update {} -> {} from worker {}", m.task_id, to_string(task->state), m.state,
                 w.hello.worker_id);
    return;
  }
  TransitionUpdate u;
  if (!m.detail.empty()) u.reason = m.detail;
  auto s = store_->advance(*task, *to, u, now());
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
  last_activity_ms_[first.task_id] = now();
  auto s = store_->advance(*task, steps, now());
  if (!s.ok()) {
    spdlog::error("task {}: {}", first.task_id, s.error().to_string());
    return;
  }
  for (const auto* m : run) spdlog::info("task {} {} (worker {})", m->task_id, m->state, w.hello.worker_id);
}

void Coordinator::on_log(WorkerEntry& w, const protocol::LogChunk& m) {
  if (!leased_task(w, m.task_id, m.epoch, "a log chunk")) return;
  last_activity_ms_[m.task_id] = now();
  logs_.append(m.task_id, m.attempt, m.stream, m.data);
}

void Coordinator::on_result(WorkerEntry& w, const protocol::TaskResult& m) {
  logs_.flush(m.task_id);  // the attempt's output is all there before its end is recorded
  auto current = store_->get(m.task_id);
  const bool recorded =
      current.ok() && current->has_value() && (*current)->epoch == m.epoch && !is_active((*current)->state);
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
    spdlog::warn(
        "dropped a task_result from peer {:?}: it comes with CURVE key {:?}, and worker {} registered with "
        "key {:?}",
        f.routing_id, f.key_name, f.routing_id, w->key_name);
    return;
  }
  spdlog::warn("task {}: the result of epoch {} from worker {} cannot be read: {} (field {})", lease.task_id,
               lease.epoch, w->hello.worker_id, why.message, why.where);
  logs_.flush(lease.task_id);
  auto current = store_->get(lease.task_id);
  const bool recorded =
      current.ok() && current->has_value() && (*current)->epoch == lease.epoch && !is_active((*current)->state);
  if (!recorded) {
    if (auto task = check_lease(*w, current, lease.task_id, lease.epoch, "a result")) {
      // Not retried: what the attempt did (it may have landed) is unknown; the reason says why.
      fail_attempt(*task, task->state, FailureKind::kProtocol,
                   "worker " + w->hello.worker_id + " sent a result the coordinator cannot read: field " + why.where +
                       ": " + why.message);
    }
  }
  send(w->routing_id, lease);  // answered like any result, so the worker stops resending it
}

void Coordinator::record_result(WorkerEntry& w, const protocol::TaskResult& m,
                                const Result<std::optional<Task>>& current) {
  auto task = check_lease(w, current, m.task_id, m.epoch, "a result");
  if (!task) return;
  if (w.running.erase(m.task_id)) slot_freed_ = true;
  release_land(m.task_id);
  if (auto s = store_->record_agent_runs(m.task_id, m.attempt, m.usage); !s.ok()) {
    spdlog::error("task {}: cannot record its agent runs: {}", m.task_id, s.error().to_string());
  }
  if (m.outcome != "landed") {
    // The decoder let through only the kinds a worker may report; none is infra.
    const auto kind = protocol::parse_failure_kind(m.failure_kind).value_or(FailureKind::kInfra);
    fail_attempt(*task, task->state, kind, m.reason, m.tree);
    return;
  }
  TransitionUpdate u;
  u.commit = m.commit;
  u.merged_commit = m.merged_commit;
  u.reason = !m.already_in_base.empty() ? already_in_base_reason(m.already_in_base)
             : !m.merged_commit.empty() ? "landed " + m.merged_commit.substr(0, 12) + " from " + m.branch
             : !m.reason.empty()        ? m.reason
                                        : "pushed " + m.commit.substr(0, 12) + " to " + m.branch;
  if (!m.already_in_base.empty()) {
    // Nothing was pushed: the base, which already held the change, is what the task left there.
    u.commit = "";
    u.merged_commit = m.already_in_base;
  }
  auto s = store_->advance(*task, TaskState::kLanded, u, now());
  last_activity_ms_.erase(m.task_id);
  if (!s.ok())
    spdlog::error("task {}: cannot record landing: {}", m.task_id, s.error().to_string());
  else
    spdlog::info("task {} LANDED ({})", m.task_id, m.merged_commit);
}

}  // namespace polyphony
