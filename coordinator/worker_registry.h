// The registered workers and their liveness: hellos, heartbeats, who is lost and when, and the
// slots their attempts hold. No sockets: what to send, and to whom, is the caller's; every
// decision by time takes the time as an argument.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "coordinator/worker_match.h"
#include "protocol/messages.h"

namespace polyphony {

struct WorkerEntry {
  std::string routing_id;
  protocol::Hello hello;
  std::set<std::string> running;  // task ids dispatched to it and not yet finished
  int64_t last_seen_ms = 0;
  int64_t last_sent_ms = 0;
  int64_t heartbeat_seq = 0;
  // Silent past its liveness budget: kept in the table, given no work, until it is heard again.
  bool lost = false;
  int64_t lost_at_ms = 0;
  // When its connection closed (the socket monitor said so) and nothing was heard since: lost
  // unless heard within one heartbeat interval (it may reconnect at once).
  std::optional<int64_t> disconnected_ms;
  int connection_fd = -1;                  // the socket its last message came on (-1: unknown, inproc)
  int reported_load = 0;                   // from its last heartbeat
  std::optional<int64_t> clock_offset_ms;  // its clock minus ours, from its last heartbeat that said
  std::string key_name;                    // its CURVE key's name on the allow-list; "" without CURVE
  // (task id, epoch) pairs it was told to cancel because the lease is not its own any more.
  std::set<std::pair<std::string, int64_t>> stale_cancelled;
};

// Slots the tasks dispatched to `w` hold: all but those in `landing` (passed verify, asked to land).
int slots_held(const WorkerEntry& w, const std::set<std::string>& landing);

// The worker table as clients see it (`polyphony workers`). A worker's load is the slots its
// attempts hold: those in `landing` (passed verify, asked to land) are listed but hold none.
protocol::WorkersReply worker_table(const std::map<std::string, WorkerEntry>& workers,
                                    const std::string& coordinator_id, int64_t now_ms,
                                    const std::set<std::string>& landing = {});

class WorkerRegistry {
 public:
  // A worker silent for more than interval_ms * liveness is lost; one lost for more than
  // `lost_expiry_ms` leaves the table (0: never).
  WorkerRegistry(int64_t heartbeat_interval_ms, int liveness, int64_t lost_expiry_ms = 0)
      : interval_ms_(heartbeat_interval_ms),
        budget_ms_(heartbeat_interval_ms * liveness),
        lost_expiry_ms_(lost_expiry_ms) {}

  int64_t budget_ms() const { return budget_ms_; }

  enum class HelloVerdict {
    kAccepted,
    kWrongVersion,  // another protocol version
    kIdMismatch,    // its worker id is not its routing id (PROTOCOL.md 1)
    kKeyMismatch,   // the id registered with another CURVE key (for this coordinator's life)
  };
  struct HelloOutcome {
    HelloVerdict verdict = HelloVerdict::kAccepted;
    WorkerEntry* worker = nullptr;       // when accepted
    bool known = false;                  // it had registered before (re-registration)
    std::optional<int64_t> lost_for_ms;  // it was lost, for this long
    std::string bound_key;               // kKeyMismatch: the key it registered with
  };
  // A hello from `routing_id` over CURVE key `key_name` at `now_ms`. Accepted: the entry holds
  // the hello, is live, and runs what the hello lists (the caller adds the leases it holds).
  HelloOutcome hello(const std::string& routing_id, const protocol::Hello& m, const std::string& key_name,
                     int64_t now_ms);

  struct Heard {
    WorkerEntry* worker = nullptr;       // null: not registered
    std::optional<int64_t> lost_for_ms;  // it was lost and is recovered, after this long
  };
  // Any message from `routing_id` at `now_ms`: it is live (a lost worker recovers).
  Heard heard(const std::string& routing_id, int64_t now_ms);

  // A heartbeat's load, and how far the worker's clock is from ours when it says its own.
  static void note_heartbeat(WorkerEntry& w, const protocol::Heartbeat& m, int64_t now_ms);

  // A message was sent to `routing_id` at `now_ms` (a heartbeat is due an interval later).
  void sent(const std::string& routing_id, int64_t now_ms);

  // The connection on socket `fd` closed at `now_ms`. Returns the worker whose last message
  // came on it (null: none). It gets no heartbeats, and is lost unless heard again within a
  // heartbeat interval (a reconnect).
  WorkerEntry* disconnected(int fd, int64_t now_ms);
  // The same for a worker known to have no connection (a send found no route to it).
  void disconnected(WorkerEntry& w, int64_t now_ms);

  // Takes the worker off the table; false when it was not on it.
  bool remove(const std::string& routing_id);

  // True when the liveness walk has something to do at `now_ms` (see walk()).
  bool walk_due(int64_t now_ms) const { return now_ms >= next_walk_ms_; }

  struct Walk {
    std::vector<WorkerEntry*> lost;           // newly lost now (silent past the budget, or disconnected)
    std::vector<WorkerEntry*> heartbeat_due;  // live, connected, and sent nothing for an interval
    std::vector<std::string> expired;         // lost for longer than the expiry: taken off the table
  };
  // Judges liveness at `now_ms`: marks silent workers lost, takes those lost too long off the
  // table, and lists those due a heartbeat.
  // Nothing is due again before the earliest deadline it saw, so walk_due() stays false until
  // then (a heartbeat sent or received only moves a deadline later).
  Walk walk(int64_t now_ms);

  // True when worker `worker_id` is heard from within its budget at `now_ms` and runs `task_id`.
  bool holds(const std::string& worker_id, const std::string& task_id, int64_t now_ms) const;

  // The workers a dispatch pass may give work to (live, image present, capacity free), with
  // `landing` holding no slot, as candidates for choose_worker and their entries in the same order.
  struct FreeWorkers {
    std::vector<WorkerCandidate> candidates;
    std::vector<WorkerEntry*> entries;
  };
  FreeWorkers free_workers(int64_t now_ms, const std::set<std::string>& landing);

  // Slots held over all workers.
  int running_count(const std::set<std::string>& landing) const;

  // The task is no longer run by any worker; true when one was running it (a slot freed).
  bool forget_task(const std::string& task_id);

  WorkerEntry* find(const std::string& routing_id);
  const std::map<std::string, WorkerEntry>& entries() const { return workers_; }
  std::map<std::string, WorkerEntry>& entries() { return workers_; }

 private:
  int64_t interval_ms_;
  int64_t budget_ms_;
  int64_t lost_expiry_ms_;
  std::map<std::string, WorkerEntry> workers_;  // by routing id (= worker id)
  int64_t next_walk_ms_ = 0;
};

}  // namespace polyphony
