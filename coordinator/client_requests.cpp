// The coordinator's client endpoint and commands: submit, query, cancel, retry, the worker
// table, and GitHub mode's adoptions and sync (run as background jobs).
#include <cerrno>
#include <memory>
#include <zmq_addon.hpp>

#include "common/log.h"
#include "coordinator/coordinator.h"
#include "coordinator/submission.h"
#include "coordinator/task_fields.h"

namespace polyphony {

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
  } else if (const auto* w = std::get_if<protocol::Watch>(&*msg)) {
    watch(routing_id, *w);
    return;
  } else if (std::holds_alternative<protocol::WorkersQuery>(*msg)) {
    answer_client(routing_id, workers());
    return;
  } else if (const auto* v = std::get_if<protocol::ViewQuery>(&*msg)) {
    view(routing_id, *v);
    return;
  } else if (const auto* r = std::get_if<protocol::WorkerRemove>(&*msg)) {
    reply = remove_worker(*r);
  } else if (const auto* c = std::get_if<protocol::CleanupRequest>(&*msg)) {
    start_cleanup(routing_id, *c);  // answered when the workers have reported
    return;
  } else {
    spdlog::warn("dropped a {} on the client endpoint", protocol::type_name(*msg));
    reply = refusal(make_error(
        "protocol",
        "clients may send submit, control, watch, workers_query, view_query, worker_remove or cleanup_request only",
        "type"));
  }
  answer_client(routing_id, reply);
}

bool Coordinator::answer_client(const std::string& routing_id, const protocol::Message& reply) {
  try {
    auto encoded = protocol::try_encode(reply);
    if (!encoded.ok()) {
      spdlog::error("cannot answer a client: {}", encoded.error().to_string());
      return false;
    }
    const std::string& out = *encoded;
    std::array<zmq::const_buffer, 2> frames{zmq::buffer(routing_id), zmq::buffer(out)};
    return zmq::send_multipart(client_socket_, frames, zmq::send_flags::dontwait).has_value();
  } catch (const zmq::error_t& e) {
    // EHOSTUNREACH: the client went away (a watcher that stopped waiting); not worth a warning.
    if (e.num() != EHOSTUNREACH) spdlog::warn("cannot answer a client: {}", e.what());
    return false;
  }
}

Result<Task> Coordinator::client_task(const std::string& task_id) {
  auto t = store_->get(task_id);
  if (t.ok() && !t->has_value()) {
    // Perhaps just queued (`polyphony spawn` asks about its new task): read the queue now, and
    // claim and dispatch on this turn of the loop rather than at the next poll.
    discover();
    next_periodic_ms_ = std::min(next_periodic_ms_, now());
    t = store_->get(task_id);
  }
  if (!t.ok()) return t.error();
  if (!t->has_value()) return make_error("not_found", "no task with this id", "task_id");
  return **t;
}

void Coordinator::watch(const std::string& routing_id, const protocol::Watch& m) {
  // Read before the task, so no change recorded after this read is missed.
  if (watches_.empty()) {
    auto seq = store_->last_event_seq();
    if (!seq.ok()) return (void)answer_client(routing_id, refusal(seq.error()));
    watched_seq_ = *seq;
  }
  auto t = client_task(m.task_id);
  if (!t.ok()) return (void)answer_client(routing_id, refusal(t.error()));
  const auto reply = task_reply(*t);
  if (!is_final_state(reply.state) && !watches_.add(m.task_id, routing_id, reply)) {
    return (void)answer_client(routing_id, refusal(make_error("busy",
                                                              "the coordinator follows " + std::to_string(kMaxWatches) +
                                                                  " watches already; query instead",
                                                              "task_id")));
  }
  if (!answer_client(routing_id, reply)) watches_.drop_client(routing_id);
}

void Coordinator::tell_watchers() {
  if (watches_.empty()) return;
  std::set<std::string> changed;
  while (true) {
    auto events = store_->events_after(watched_seq_, 1000);
    if (!events.ok()) {
      spdlog::error("cannot read task events for watching clients: {}", events.error().to_string());
      return;
    }
    for (const auto& e : *events) {
      watched_seq_ = e.seq;
      if (watches_.watched(e.task_id)) changed.insert(e.task_id);
    }
    if (events->size() < 1000) break;
  }
  for (const auto& id : changed) {
    auto t = store_->get(id);
    if (!t.ok() || !t->has_value()) continue;
    const auto reply = task_reply(**t);
    for (const auto& client : watches_.news(id, reply)) {
      if (!answer_client(client, reply)) watches_.drop_client(client);
    }
    if (is_final_state(reply.state)) watches_.end(id);
  }
}

void Coordinator::view(const std::string& routing_id, const protocol::ViewQuery& q) {
  auto refuse = [&](const std::string& code, const std::string& why) {
    answer_client(routing_id, protocol::ViewReply{false, code, why, "view", ""});
  };
  if (!views_) return refuse("usage", "this coordinator answers no view queries");
  if (views_pending_ >= kMaxPendingViews) {
    return refuse("busy",
                  "the coordinator has " + std::to_string(views_pending_) + " view queries under way; ask again");
  }
  const bool queued = view_jobs_->submit("view-" + std::to_string(++views_asked_), [this, routing_id, q] {
    auto reply = std::make_shared<protocol::ViewReply>();
    try {
      *reply = views_(q);
    } catch (const std::exception& e) {
      *reply = protocol::ViewReply{false, "internal", std::string("the view failed: ") + e.what(), "view", ""};
    }
    return [this, routing_id, reply] {
      --views_pending_;
      answer_client(routing_id, *reply);
    };
  });
  if (queued) ++views_pending_;
}

protocol::ClientReply Coordinator::submit(const protocol::Submit& m) {
  TaskRequest r = submitted_request(m);
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
  auto t = client_task(task_id);
  if (!t.ok()) return refusal(t.error());
  if (action == "cancel") return cancel(*t);
  if (action == "retry") return retry(*t);
  return task_reply(*t);
}

protocol::ClientReply Coordinator::cancel(const Task& t, const std::string& reason) {
  if (t.state == TaskState::kCancelled) return task_reply(t);  // what was asked already holds
  if (!can_transition(t.state, TaskState::kCancelled)) {
    return refusal(make_error("usage", "task is already " + std::string(to_string(t.state)), "task_id"));
  }
  // Past its land grant the worker may be pushing: a cancel now could leave the work on the
  // origin with the task CANCELLED. It lands or fails on its own, and `show` says which.
  if (lands_.holder(t.request.repo) == t.request.id) {
    return refusal(make_error("landing",
                              "task is landing (its turn to land was granted): it can no longer be "
                              "cancelled; `polyphony show " +
                                  t.request.id + "` says whether it landed",
                              "task_id"));
  }
  for (auto& [rid, w] : registry_.entries()) {
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
  auto s = store_->transition(t.request.id, t.state, TaskState::kCancelled, u, now());
  if (!s.ok()) return refusal(s.error());
  last_activity_ms_.erase(t.request.id);
  release_land(t.request.id);
  spdlog::info("task {} CANCELLED: {}", t.request.id, reason);
  return task_reply(**store_->get(t.request.id));
}

protocol::ClientReply Coordinator::retry(const Task& t) {
  if (t.state != TaskState::kFailed && t.state != TaskState::kBlocked) {
    return refusal(make_error(
        "usage", "only FAILED or BLOCKED tasks can be retried; this one is " + std::string(to_string(t.state)),
        "task_id"));
  }
  TransitionUpdate u;
  u.reason = "retry requested by a user";
  u.worker = "";
  u.next_attempt_at_ms = 0;
  u.budget_start = t.attempt;
  auto s = store_->transition(t.request.id, t.state, TaskState::kClaimed, u, now());
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

bool Coordinator::adopt_issue(int64_t seq, const std::string& ref_text) {
  auto ref = parse_issue_ref(ref_text);
  if (!github_ || !ref.ok() || ref->repo != settings_.config.github.repo) {
    spdlog::error("spawn --issue {}: refused: {}", ref_text,
                  !github_    ? "GitHub mode is off (config.yaml has no github.repo)"
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
