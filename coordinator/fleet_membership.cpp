// Workers joining and leaving as the coordinator's loop sees it: closed connections from the
// socket monitor, goodbyes, `polyphony workers remove`, and `polyphony cleanup` fanned out to
// every connected worker.
#include <algorithm>
#include <cstring>
#include <zmq_addon.hpp>

#include "common/log.h"
#include "coordinator/coordinator.h"

namespace polyphony {

Status Coordinator::watch_worker_connections() {
  const std::string endpoint =
      "inproc://polyphony-workers-monitor-" + std::to_string(reinterpret_cast<uintptr_t>(this));
  const int events =
      ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL;
  if (zmq_socket_monitor(socket_.handle(), endpoint.c_str(), events) != 0) {
    return make_error("network", std::string("cannot monitor the workers' socket: ") + zmq_strerror(zmq_errno()),
                      endpoint);
  }
  monitor_.set(zmq::sockopt::linger, 0);
  monitor_.connect(endpoint);
  return {};
}

void Coordinator::read_connection_events() {
  for (int i = 0; i < 1000; ++i) {
    std::vector<zmq::message_t> frames;
    if (!zmq::recv_multipart(monitor_, std::back_inserter(frames), zmq::recv_flags::dontwait)) return;
    if (frames.size() != 2 || frames[0].size() < 6) continue;
    uint16_t event = 0;
    uint32_t value = 0;
    std::memcpy(&event, frames[0].data(), sizeof event);
    std::memcpy(&value, static_cast<const char*>(frames[0].data()) + 2, sizeof value);
    if (event == ZMQ_EVENT_DISCONNECTED) {
      if (WorkerEntry* w = registry_.disconnected(static_cast<int>(value), now())) {
        spdlog::info("worker {}: its connection closed; lost unless it reconnects within {} ms", w->hello.worker_id,
                     settings_.config.heartbeat_interval_ms);
      }
      continue;
    }
    // No ZAP request was made (a ZAP refusal is logged by the handler, with the key): the peer
    // and this coordinator did not agree on CURVE, e.g. it has another coordinator public key.
    if (once_a_second_.allow("handshake:" + std::to_string(event) + ":" + std::to_string(value), now())) {
      spdlog::warn(
          "refused a connection on {}: its CURVE handshake failed ({} {}); does the worker use this "
          "coordinator's public key and CURVE at all?",
          frames[1].to_string(), event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ? "protocol error" : "no detail", value);
    }
  }
}

void Coordinator::requeue_tasks_of(const std::string& worker_id, const std::string& why) {
  auto held = store_->held_by(worker_id);
  if (!held.ok()) {
    spdlog::error("cannot read the tasks worker {} holds: {}", worker_id, held.error().to_string());
    return;
  }
  for (const auto& t : *held) {
    if (lands_.pushing(t.request.id, now())) continue;
    fail_attempt(t, t.state, FailureKind::kInfra, why);
  }
}

void Coordinator::on_goodbye(WorkerEntry& w, const protocol::Goodbye& m) {
  const std::string id = w.hello.worker_id;
  spdlog::info("worker {} left ({}); requeueing the {} task(s) it ran", id, m.reason.empty() ? "goodbye" : m.reason,
               w.running.size());
  registry_.remove(w.routing_id);
  requeue_tasks_of(id, "worker " + id + " stopped (" + (m.reason.empty() ? "goodbye" : m.reason) + ")");
  for (auto& [request_id, pending] : cleanups_) pending.waiting.erase(id);
  slot_freed_ = true;
}

protocol::ClientReply Coordinator::remove_worker(const protocol::WorkerRemove& m) {
  protocol::ClientReply r;
  WorkerEntry* w = registry_.find(m.worker_id);
  if (w == nullptr) {
    r.error = "no worker " + m.worker_id + " in the table (`polyphony workers` lists them)";
    r.where = "worker_id";
    return r;
  }
  auto held = store_->held_by(m.worker_id);
  std::set<std::string> tasks(w->running.begin(), w->running.end());
  if (held.ok()) {
    for (const auto& t : *held) tasks.insert(t.request.id);
  }
  if (!tasks.empty() && !m.force) {
    std::string list;
    for (const auto& t : tasks) list += (list.empty() ? "" : ", ") + t;
    r.error = "worker " + m.worker_id + " holds " + std::to_string(tasks.size()) + " task(s) (" + list +
              "); wait for them, or pass --force to requeue them";
    r.where = "force";
    return r;
  }
  if (held.ok()) {
    for (const auto& t : *held) cancel_stale(*w, t.request.id, t.epoch, "worker removed by a user");
  }
  const bool live = !w->lost;
  registry_.remove(m.worker_id);
  requeue_tasks_of(m.worker_id, "worker " + m.worker_id + " removed by a user");
  spdlog::info("worker {} removed from the table by a user{}", m.worker_id,
               tasks.empty() ? "" : " (" + std::to_string(tasks.size()) + " task(s) requeued)");
  r.ok = true;
  r.reason = "removed worker " + m.worker_id +
             (tasks.empty() ? "" : "; requeued " + std::to_string(tasks.size()) + " task(s)") +
             (live ? "; it was live: if it keeps running it registers again" : "");
  return r;
}

void Coordinator::start_cleanup(const std::string& client, const protocol::CleanupRequest& m) {
  const int64_t id = next_cleanup_id_++;
  PendingCleanup& p = cleanups_[id];
  p.client = client;
  p.dry_run = m.dry_run;
  p.deadline_ms = now() + kCleanupAnswerMs;
  protocol::CleanupRequest ask{id, m.dry_run};
  for (auto& [rid, w] : registry_.entries()) {
    if (w.lost || w.disconnected_ms) continue;
    p.waiting.insert(w.hello.worker_id);
    send(rid, ask);
  }
  spdlog::info("cleanup {}: asked {} worker(s) to remove finished tasks' workspaces and containers{}", id,
               p.waiting.size(), m.dry_run ? " (dry run)" : "");
  finish_cleanups();  // at once when no worker is connected
}

void Coordinator::on_cleanup_report(WorkerEntry& w, const protocol::CleanupReport& m) {
  auto it = cleanups_.find(m.request_id);
  if (it == cleanups_.end() || !it->second.waiting.erase(w.hello.worker_id)) return;  // late, or not asked
  protocol::CleanupReport r = m;
  r.worker_id = w.hello.worker_id;
  r.answered = true;
  spdlog::info("cleanup {}: worker {} removed {} workspace(s) and {} container(s){}", m.request_id, r.worker_id,
               r.workspaces, r.containers, r.error.empty() ? "" : "; " + r.error);
  it->second.reports.push_back(std::move(r));
  finish_cleanups();
}

void Coordinator::finish_cleanups() {
  const int64_t at = now();
  for (auto it = cleanups_.begin(); it != cleanups_.end();) {
    PendingCleanup& p = it->second;
    if (!p.waiting.empty() && at < p.deadline_ms) {
      ++it;
      continue;
    }
    protocol::CleanupReply reply;
    reply.reports = std::move(p.reports);
    for (const auto& worker_id : p.waiting) {
      protocol::CleanupReport silent;
      silent.request_id = it->first;
      silent.worker_id = worker_id;
      silent.answered = false;
      silent.error = "no answer within " + std::to_string(kCleanupAnswerMs / 1000) + " s";
      reply.reports.push_back(std::move(silent));
    }
    std::sort(reply.reports.begin(), reply.reports.end(),
              [](const auto& a, const auto& b) { return a.worker_id < b.worker_id; });
    answer_client(p.client, reply);
    it = cleanups_.erase(it);
  }
}

}  // namespace polyphony
