// The registered workers and their liveness.
#include "coordinator/worker_registry.h"

#include <algorithm>

namespace polyphony {

int slots_held(const WorkerEntry& w, const std::set<std::string>& landing) {
  return static_cast<int>(
      std::count_if(w.running.begin(), w.running.end(), [&](const std::string& id) { return !landing.count(id); }));
}

protocol::WorkersReply worker_table(const std::map<std::string, WorkerEntry>& workers,
                                    const std::string& coordinator_id, int64_t now,
                                    const std::set<std::string>& landing) {
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

WorkerRegistry::HelloOutcome WorkerRegistry::hello(const std::string& routing_id, const protocol::Hello& m,
                                                   const std::string& key_name, int64_t now_ms) {
  HelloOutcome out;
  if (m.protocol_version != protocol::kProtocolVersion) {
    out.verdict = HelloVerdict::kWrongVersion;
    return out;
  }
  // The ROUTER keeps a routing id for the first live connection that claims it, so this rule
  // also refuses a second process registering under a worker id that is already connected.
  if (m.worker_id != routing_id) {
    out.verdict = HelloVerdict::kIdMismatch;
    return out;
  }
  // Another allowed key cannot take over a worker's id, and with it its leases.
  if (auto bound = workers_.find(routing_id);
      bound != workers_.end() && !bound->second.hello.worker_id.empty() && bound->second.key_name != key_name) {
    out.verdict = HelloVerdict::kKeyMismatch;
    out.bound_key = bound->second.key_name;
    return out;
  }
  WorkerEntry& w = workers_[routing_id];
  out.known = !w.hello.worker_id.empty();
  if (w.lost) {
    out.lost_for_ms = now_ms - w.lost_at_ms;
    next_walk_ms_ = 0;  // its heartbeats are due again
  }
  w.routing_id = routing_id;
  w.hello = m;
  w.last_seen_ms = now_ms;
  w.lost = false;
  w.disconnected_ms.reset();
  w.key_name = key_name;
  w.running.clear();
  for (const auto& r : m.running) w.running.insert(r.task_id);
  out.worker = &w;
  return out;
}

WorkerRegistry::Heard WorkerRegistry::heard(const std::string& routing_id, int64_t now_ms) {
  Heard out;
  out.worker = find(routing_id);
  if (out.worker == nullptr) return out;
  if (out.worker->lost) {
    // Heard again without a new hello: the connection survived, only the silence did not.
    out.lost_for_ms = now_ms - out.worker->lost_at_ms;
    out.worker->lost = false;
    next_walk_ms_ = 0;  // its heartbeats are due again
  }
  out.worker->last_seen_ms = now_ms;
  out.worker->disconnected_ms.reset();
  return out;
}

void WorkerRegistry::note_heartbeat(WorkerEntry& w, const protocol::Heartbeat& m, int64_t now_ms) {
  w.reported_load = m.load;
  if (m.sent_ms > 0) w.clock_offset_ms = m.sent_ms - now_ms;
}

void WorkerRegistry::sent(const std::string& routing_id, int64_t now_ms) {
  if (WorkerEntry* w = find(routing_id)) w->last_sent_ms = now_ms;
}

WorkerEntry* WorkerRegistry::disconnected(int fd, int64_t now_ms) {
  if (fd < 0) return nullptr;
  for (auto& [rid, w] : workers_) {
    if (w.connection_fd != fd || w.lost) continue;
    disconnected(w, now_ms);
    return &w;
  }
  return nullptr;
}

void WorkerRegistry::disconnected(WorkerEntry& w, int64_t now_ms) {
  w.connection_fd = -1;
  if (w.lost || w.disconnected_ms) return;
  w.disconnected_ms = now_ms;
  next_walk_ms_ = 0;  // its confirmation deadline is earlier than what the last walk saw
}

bool WorkerRegistry::remove(const std::string& routing_id) {
  return workers_.erase(routing_id) > 0;
}

namespace {

// The time past which `w` (live) is lost: its budget after it was last heard, or one interval
// after its connection closed, whichever comes first.
int64_t lost_after(const WorkerEntry& w, int64_t interval_ms, int64_t budget_ms) {
  const int64_t silent = w.last_seen_ms + budget_ms;
  return w.disconnected_ms ? std::min(silent, *w.disconnected_ms + interval_ms) : silent;
}

}  // namespace

WorkerRegistry::Walk WorkerRegistry::walk(int64_t now) {
  Walk out;
  int64_t next = now + interval_ms_;
  for (auto it = workers_.begin(); it != workers_.end();) {
    WorkerEntry& w = it->second;
    if (w.lost) {
      if (lost_expiry_ms_ > 0 && now - w.lost_at_ms > lost_expiry_ms_) {
        out.expired.push_back(it->first);
        it = workers_.erase(it);
        continue;
      }
      if (lost_expiry_ms_ > 0) next = std::min(next, w.lost_at_ms + lost_expiry_ms_ + 1);
      ++it;
      continue;
    }
    ++it;
    const int64_t deadline = lost_after(w, interval_ms_, budget_ms_);
    if (now > deadline) {
      w.lost = true;
      w.lost_at_ms = now;
      out.lost.push_back(&w);
      if (lost_expiry_ms_ > 0) next = std::min(next, now + lost_expiry_ms_ + 1);
      continue;
    }
    next = std::min(next, deadline + 1);
    if (w.disconnected_ms) continue;  // nothing to send a heartbeat on
    if (now - w.last_sent_ms >= interval_ms_) out.heartbeat_due.push_back(&w);
    // A heartbeat due now is sent now by the caller: its next is an interval away.
    const int64_t sent = now - w.last_sent_ms >= interval_ms_ ? now : w.last_sent_ms;
    next = std::min(next, sent + interval_ms_);
  }
  next_walk_ms_ = next;
  return out;
}

bool WorkerRegistry::holds(const std::string& worker_id, const std::string& task_id, int64_t now) const {
  // A worker's id is its routing id (hello refuses any other), so this is its entry.
  auto it = workers_.find(worker_id);
  return it != workers_.end() && !it->second.lost && now - it->second.last_seen_ms < budget_ms_ &&
         it->second.running.count(task_id) > 0;
}

WorkerRegistry::FreeWorkers WorkerRegistry::free_workers(int64_t now, const std::set<std::string>& landing) {
  FreeWorkers free;
  for (auto& [rid, w] : workers_) {
    WorkerCandidate c{w.hello.worker_id,
                      w.hello.capacity,
                      slots_held(w, landing),
                      {},
                      !w.lost && !w.disconnected_ms && now - w.last_seen_ms <= budget_ms_,
                      w.hello.image_present};
    if (!c.live || !c.image_present || c.capacity < 1 || c.load >= c.capacity) continue;  // choose_worker's own rule
    c.labels = w.hello.labels;
    free.candidates.push_back(std::move(c));
    free.entries.push_back(&w);
  }
  return free;
}

int WorkerRegistry::running_count(const std::set<std::string>& landing) const {
  int n = 0;
  for (const auto& [rid, w] : workers_) n += slots_held(w, landing);
  return n;
}

bool WorkerRegistry::forget_task(const std::string& task_id) {
  bool freed = false;
  for (auto& [rid, w] : workers_) freed = w.running.erase(task_id) > 0 || freed;
  return freed;
}

WorkerEntry* WorkerRegistry::find(const std::string& routing_id) {
  auto it = workers_.find(routing_id);
  return it == workers_.end() ? nullptr : &it->second;
}

}  // namespace polyphony
