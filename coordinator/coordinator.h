// The coordinator: discovers tasks, claims and routes them, dispatches RunSpecs to workers
// over ZeroMQ, and records what the workers report. One thread owns the socket and the DB.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "common/config.h"
#include "common/result.h"
#include "coordinator/state_store.h"
#include "coordinator/work_source.h"
#include "protocol/messages.h"

namespace polyphony {

// The in-process endpoint the embedded single-box worker connects to.
inline constexpr const char* kEmbeddedWorkerEndpoint = "inproc://polyphony-workers";

struct WorkerEntry {
  std::string routing_id;
  protocol::Hello hello;
  std::set<std::string> running;   // task ids dispatched to it and not yet finished
  int64_t last_seen_ms = 0;
  int64_t last_sent_ms = 0;
  int64_t heartbeat_seq = 0;
};

// Retry policy: exponential backoff from base to cap, with +-20% jitter.
int64_t retry_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms, uint64_t random);

// A dispatched task the worker has said nothing about for this long is failed and retried
// (the dispatch was lost or refused).
inline constexpr int64_t kDispatchAnswerTimeoutMs = 30000;

// Whether a failure of this kind is worth another attempt.
bool is_retryable(const std::string& failure_kind);

class Coordinator {
 public:
  // Opens the state DB and the queue; binds `endpoints` on a ROUTER socket of `context`.
  static Result<std::unique_ptr<Coordinator>> create(zmq::context_t& context, Settings settings,
                                                     std::vector<std::string> endpoints);

  // Serves until `stop` is set. Never throws.
  void run(const std::atomic<bool>& stop);

  // One turn of the loop (used by run and by tests): wait up to `wait_ms` for messages,
  // handle them, and do any due periodic work.
  void step(int64_t wait_ms);

 private:
  Coordinator(zmq::context_t& context, Settings settings);

  void handle_frame(const std::string& routing_id, const std::string& body);
  void on_hello(const std::string& routing_id, const protocol::Hello& m);
  void on_update(WorkerEntry& w, const protocol::TaskUpdate& m);
  void on_log(WorkerEntry& w, const protocol::LogChunk& m);
  void on_result(WorkerEntry& w, const protocol::TaskResult& m);
  void record_result(WorkerEntry& w, const protocol::TaskResult& m);

  void periodic();
  void discover();
  void claim_discovered();
  void dispatch_claimed();
  Status dispatch_one(const Task& task, WorkerEntry& worker);
  void fail_attempt(const Task& task, TaskState from, const std::string& kind, const std::string& reason);
  void expire_unheld_tasks();
  void expire_unanswered_dispatches();
  void heartbeat_workers();

  WorkerEntry* worker_by_routing(const std::string& routing_id);
  WorkerEntry* pick_worker();
  int running_count() const;
  // The task if the message's epoch and sender match its current lease; logs and returns
  // nullopt otherwise.
  std::optional<Task> leased_task(const WorkerEntry& w, const std::string& task_id, int64_t epoch,
                                  const char* what);
  void send(const std::string& routing_id, const protocol::Message& m);

  zmq::context_t& context_;
  zmq::socket_t socket_;
  Settings settings_;
  std::optional<StateStore> store_;
  std::unique_ptr<SqliteQueue> queue_;
  std::map<std::string, WorkerEntry> workers_;  // by routing id
  // When each dispatched task was last heard of (dispatch sent, update or log received).
  std::map<std::string, int64_t> last_activity_ms_;
  std::string coordinator_id_;
  int64_t started_ms_ = 0;
  int64_t next_periodic_ms_ = 0;
};

}  // namespace polyphony
