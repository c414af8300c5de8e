// The coordinator: discovers tasks, claims and routes them, dispatches RunSpecs to workers
// over ZeroMQ, and records what the workers report. One thread (the loop) owns the sockets and
// the DB; slow work (scoring against a remote's mirror, GitHub calls) runs on background jobs
// whose results the loop applies, so heartbeats are always read within their budget.
//
// The loop only wires the units beside it: the worker registry and liveness
// (worker_registry.h), the land queue (land_queue.h), the attempt policy (attempt_policy.h),
// the attempts' logs (task_logs.h); the client endpoint is in client_requests.cpp, the sockets'
// binding in endpoints.cpp.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "common/clock.h"
#include "common/config.h"
#include "common/log.h"
#include "common/result.h"
#include "coordinator/attempt_policy.h"
#include "coordinator/background_jobs.h"
#include "coordinator/github_source.h"
#include "coordinator/land_queue.h"
#include "coordinator/router.h"
#include "coordinator/scoring.h"
#include "coordinator/state_store.h"
#include "coordinator/task_logs.h"
#include "coordinator/task_watches.h"
#include "coordinator/work_source.h"
#include "coordinator/worker_match.h"
#include "coordinator/worker_registry.h"
#include "protocol/messages.h"
#include "protocol/security.h"

namespace polyphony {

// The in-process endpoint the embedded single-box worker connects to.
inline constexpr const char* kEmbeddedWorkerEndpoint = "inproc://polyphony-workers";

// A dispatched task the worker has said nothing about for this long is failed and retried
// (the dispatch was lost or refused).
inline constexpr int64_t kDispatchAnswerTimeoutMs = 30000;

// When a worker frees a slot the coordinator dispatches at once rather than at the next poll,
// but at most this often (a pass has a fixed cost: it reads the free workers and each repo's
// oldest claimed tasks).
inline constexpr int64_t kMinDispatchGapMs = 25;

// How many tasks beyond the free slots a dispatch pass reads of each repo, for tasks that no
// connected worker fits (their labels) and that must not hold back those behind them.
inline constexpr int kDispatchLookahead = 32;

// How long `polyphony cleanup` waits for the workers' reports; a worker silent past it is
// reported as not answering.
inline constexpr int64_t kCleanupAnswerMs = 20000;

// Tasks sent to be scored (and then claimed) in one pass of the loop; the rest wait for the
// next pass. Tasks of one origin are scored together, off the loop, one job per origin at a time.
inline constexpr int kMaxClaimsPerPass = 256;

// Threads that score tasks (mirror fetches included): a stalled remote holds one of them, not
// the others' origins.
inline constexpr int kScoringThreads = 2;

// Threads that answer clients' view queries (status, show, logs, route_explain), and the most
// queries that may wait for one: more are refused until some are answered.
inline constexpr int kViewThreads = 2;
inline constexpr int kMaxPendingViews = 64;

// The client endpoint every coordinator binds: ipc://<home>/coordinator.sock.
std::string local_client_endpoint(const std::filesystem::path& home);

// The task's standing as a client reply.
protocol::ClientReply task_reply(const Task& task);

class Coordinator {
 public:
  // Opens the state DB and the queue; binds `endpoints` on the workers' ROUTER socket and
  // `client_endpoints` on the clients' ROUTER socket.
  // Every decision by time reads `clock` (which must outlive the coordinator).
  static Result<std::unique_ptr<Coordinator>> create(zmq::context_t& context, Settings settings,
                                                     std::vector<std::string> endpoints,
                                                     std::vector<std::string> client_endpoints = {},
                                                     const Clock& clock = system_clock());

  // Cancels an unfinished task or retries a FAILED/BLOCKED one; the reply says what happened.
  protocol::ClientReply control(const std::string& task_id, const std::string& action);

  // The registered workers, lost ones included.
  protocol::WorkersReply workers() const;

  // How a ViewQuery from a client is answered: the CLI's views of this coordinator's state,
  // which cli/ gives (the coordinator does not know their shapes). Called on a thread of its
  // own, never the loop's, so a slow view (route_explain reads a repository) holds up nothing.
  // Without it, view queries are refused.
  using ViewFn = std::function<protocol::ViewReply(const protocol::ViewQuery&)>;
  void serve_views(ViewFn fn) { views_ = std::move(fn); }

  // Takes a worker off the table (`polyphony workers remove`): refused while it holds tasks
  // unless `force`, which requeues them (and tells the worker to stop them).
  protocol::ClientReply remove_worker(const protocol::WorkerRemove& m);

  // Serves until `stop` is set. Never throws.
  void run(const std::atomic<bool>& stop);

  // One turn of the loop (used by run and by tests): wait up to `wait_ms` for messages,
  // handle them, and do any due periodic work.
  void step(int64_t wait_ms);

 private:
  Coordinator(zmq::context_t& context, Settings settings, const Clock& clock);
  int64_t now() const { return clock_.now_ms(); }

  Status bind_worker_endpoints(const std::vector<std::string>& endpoints);
  Status bind_client_endpoints(const std::vector<std::string>& endpoints);
  Status start_zap();
  // Watches the workers' socket for closed connections and failed handshakes (a ZeroMQ socket
  // monitor on an inproc PAIR socket the loop polls).
  Status watch_worker_connections();
  void read_connection_events();
  // The registered sender of a message of `type` (heard now), or null (logged) for an unknown peer.
  WorkerEntry* heard_from(const std::string& routing_id, const std::string& type);
  void handle_client_frame(const std::string& routing_id, const std::string& body);
  // False when the client cannot be told (its connection is gone, or its queue is full).
  bool answer_client(const std::string& routing_id, const protocol::Message& reply);
  // A task the client names: read again after the queue when not held yet (just submitted).
  Result<Task> client_task(const std::string& task_id);
  // Answers a watch with the task's standing now and, unless it is final, follows it.
  void watch(const std::string& routing_id, const protocol::Watch& m);
  // Tells each watching client what changed in the tasks it follows since the last call.
  void tell_watchers();
  protocol::ClientReply submit(const protocol::Submit& m);
  // Answers a ViewQuery off the loop (views_), or refuses it.
  void view(const std::string& routing_id, const protocol::ViewQuery& q);
  protocol::ClientReply cancel(const Task& task, const std::string& reason = "cancelled by a user");
  protocol::ClientReply retry(const Task& task);
  void apply_commands();
  // GitHub mode: an issue named by `polyphony spawn --issue` (command `seq`) joins the next
  // GitHub job; true when the command is done with (refused), false to keep it for now.
  bool adopt_issue(int64_t seq, const std::string& ref);
  // Starts a GitHub job (adoptions, sync, reports) unless one is under way.
  void sync_github();
  // On the loop: what a GitHub job found (issues gone: their tasks cancelled; adoption
  // commands done with: acknowledged).
  void apply_github(const std::vector<GithubCancel>& cancels, const std::vector<int64_t>& done_commands);
  // Hands each [routing id, body] message waiting on `socket` (up to 1,000) to fn.
  void drain(zmq::socket_t& socket, const std::function<void(std::vector<zmq::message_t>&)>& fn);
  // Reads what the workers sent, then handles it in one batch (no batch for heartbeats alone).
  void drain_workers();
  // Reads what waits on the workers' socket before liveness is judged: frames that waited while
  // the loop was busy are not silence.
  void read_workers_before_judging();
  // Applies the results of finished background jobs; `scoring`/`github` say whose fd polled.
  void apply_background(bool scoring, bool github);

 public:
  // A message from a worker, decoded (or refused by the decoder).
  struct WorkerFrame {
    std::string routing_id;
    Result<protocol::Message> message;
    std::string key_name;
    // A task_result that failed to decode but whose lease reads: answered, its attempt failed.
    std::optional<protocol::ResultAck> result_lease;
    int fd = -1;  // the socket it came on (ZMQ_SRCFD), to tell which worker a closed connection was
  };

 private:
  // A worker's message as decoded (or refused by the decoder).
  void handle_message(const WorkerFrame& f);
  // Handles `frames` in order, consecutive updates of one attempt together.
  void handle_frames(const std::vector<WorkerFrame>& frames);
  void on_hello(const std::string& routing_id, const protocol::Hello& m, const std::string& key_name);
  void on_update(WorkerEntry& w, const protocol::TaskUpdate& m);
  // Consecutive updates of one attempt (as a worker sends PROVISIONED, RUNNING, VERIFYING at
  // once): recorded with one read and one write of the task, an event each; exactly as one
  // by one otherwise.
  void on_updates(WorkerEntry& w, const std::vector<const protocol::TaskUpdate*>& run);
  void on_log(WorkerEntry& w, const protocol::LogChunk& m);
  void on_result(WorkerEntry& w, const protocol::TaskResult& m);
  // A result frame that failed to decode (`why`) but names its lease: the attempt fails with a
  // reason naming the bad field, and the worker is answered so it stops resending.
  void on_undecodable_result(const WorkerFrame& f, const protocol::ResultAck& lease, const Error& why);
  void on_land_request(WorkerEntry& w, const protocol::LandRequest& m);
  // The worker is stopping: off the table at once, what it held requeued.
  void on_goodbye(WorkerEntry& w, const protocol::Goodbye& m);
  // Fails (and so requeues) every attempt the state DB says `worker_id` holds, but those
  // pushing a granted landing (they end by their result or by expire_unheld_tasks).
  void requeue_tasks_of(const std::string& worker_id, const std::string& why);
  // `polyphony cleanup`: asks every connected worker to clean up; the client is answered when
  // all have reported or kCleanupAnswerMs passed.
  void start_cleanup(const std::string& client_routing_id, const protocol::CleanupRequest& m);
  void on_cleanup_report(WorkerEntry& w, const protocol::CleanupReport& m);
  // Answers the cleanups every worker reported on, and those past their deadline.
  void finish_cleanups();
  void answer_land(const std::string& routing_id, const protocol::LandRequest& m, bool granted,
                   const std::string& reason);
  // Ends the task's hold on its repo's landing slot (if it had it or waited for it) and grants
  // the slot to the next request in line that still holds its lease.
  void release_land(const std::string& task_id);
  // Records a result under the lease it names; `current` is the task as on_result read it.
  void record_result(WorkerEntry& w, const protocol::TaskResult& m, const Result<std::optional<Task>>& current);

  void periodic();
  void discover();
  // Sends the DISCOVERED tasks not being scored to be scored, by origin (off the loop).
  void claim_discovered();
  // A scoring job for tasks of one origin; what it returns claims them on the loop.
  BackgroundJobs::Job score_job(std::vector<Task> tasks);
  // DISCOVERED -> CLAIMED with its score (or why it has none) and its plan.
  void claim(const Task& task, const Result<Score>& scored);
  // How the finished tasks of the task's repo in the band of `score` ended (what routing learns
  // from); nullopt without a score or when the DB cannot say. `always`: also when learning is off
  // (for the claim's explanation).
  std::optional<BandOutcomes> outcomes_for(const Task& task, std::optional<int> score, bool always = false);
  void dispatch_claimed();
  Status dispatch_one(const Task& task, WorkerEntry& worker);
  // Sends the routed task's attempt to `w`, or fails it (config, identity) when it cannot run.
  void send_attempt(const Task& routed, const Result<RouteDecision>& decision, const std::string& feedback,
                    WorkerEntry& w);
  void fail_attempt(const Task& task, TaskState from, FailureKind kind, const std::string& reason,
                    const std::string& tree = {});
  Result<ResolvedIdentity> identity_of(const std::string& agent_name) const;
  void expire_unheld_tasks();
  // Landings a previous life of the coordinator granted that may still be pushing hold their
  // repos' slots again (LandQueue::restore), so a restart never lets a second attempt land.
  void restore_land_grants();
  void expire_unanswered_dispatches();
  void heartbeat_workers();

  using FreeWorkers = WorkerRegistry::FreeWorkers;
  // The live worker with free capacity, meeting the task's needs: labels, least loaded. Counts
  // the chosen one's new task in `free`.
  WorkerEntry* pick_worker(const Task& task, FreeWorkers& free);
  // Tells `w` to stop and clean up an attempt whose lease it no longer holds (once per epoch).
  void cancel_stale(WorkerEntry& w, const std::string& task_id, int64_t epoch, const std::string& why);
  // The task ended or left its worker: no worker runs it, it holds no landing slot.
  void forget_attempt(const std::string& task_id);
  // The task if the message's epoch and sender match its current lease; logs and returns
  // nullopt otherwise.
  std::optional<Task> leased_task(WorkerEntry& w, const std::string& task_id, int64_t epoch, const char* what);
  // leased_task's check on a task already read (`t`, as StateStore::get returned it).
  std::optional<Task> check_lease(WorkerEntry& w, const Result<std::optional<Task>>& t, const std::string& task_id,
                                  int64_t epoch, const char* what);
  void send(const std::string& routing_id, const protocol::Message& m);
  // Runs fn inside one state DB transaction (one commit for all it records) and sends the
  // messages it queues only after that commit, so no worker acts on what the DB may not hold.
  void batch(const std::function<void()>& fn);
  void send_frame(const std::string& routing_id, const std::string& body, const std::string& type);

  zmq::context_t& context_;
  const Clock& clock_;
  zmq::socket_t socket_;
  zmq::socket_t client_socket_;
  Settings settings_;
  std::optional<StateStore> store_;
  std::unique_ptr<SqliteQueue> queue_;
  std::unique_ptr<GithubSource> github_;  // null unless config.yaml has github.repo
  WorkerRegistry registry_;
  // When each dispatched task was last heard of (dispatch sent, update or log received).
  std::map<std::string, int64_t> last_activity_ms_;
  TaskLogs logs_;
  TaskWatches watches_;
  int64_t watched_seq_ = -1;                       // the last event tell_watchers read; -1 while nobody watches
  std::optional<protocol::CoordinatorKeys> keys_;  // set when CURVE is configured
  std::unique_ptr<protocol::ZapHandler> zap_;
  std::set<std::string> unplaceable_logged_;  // tasks logged as waiting for a fitting worker
  zmq::socket_t monitor_;                     // PAIR: the workers' socket's monitor events
  LogLimiter once_a_second_{1000};            // lines about one peer: at most one a second
  struct PendingCleanup {
    std::string client;  // its routing id on the client socket
    bool dry_run = false;
    std::set<std::string> waiting;  // workers yet to report
    std::vector<protocol::CleanupReport> reports;
    int64_t deadline_ms = 0;
  };
  std::map<int64_t, PendingCleanup> cleanups_;  // by request id
  int64_t next_cleanup_id_ = 1;
  // The merge queue across workers, and the attempts landing (they hold no worker slot).
  LandQueue lands_;
  std::string coordinator_id_;
  int64_t started_ms_ = 0;
  int64_t next_periodic_ms_ = 0;
  int64_t last_dispatch_ms_ = 0;
  bool slot_freed_ = false;  // a worker slot freed (or a worker came) since the last dispatch pass
  bool batching_ = false;
  struct Outgoing {
    std::string routing_id, body, type;
  };
  std::vector<Outgoing> deferred_;   // sent when the batch commits
  int64_t last_worker_read_ms_ = 0;  // when the workers' socket was last polled or drained
  // GitHub mode: the state DB as the GitHub jobs use it (their own connection, used by one job
  // at a time) and the adoptions waiting for the next job.
  std::optional<StateStore> github_store_;
  struct Adoption {
    int64_t seq = 0;
    std::string ref;
    int64_t number = 0;
  };
  std::vector<Adoption> adoptions_;
  ViewFn views_;
  uint64_t views_asked_ = 0;  // view queries given to view_jobs_, for their keys
  int views_pending_ = 0;     // of those, not yet answered
  // Declared last, so destroyed first: no job outlives what it reads (settings_, github_).
  std::unique_ptr<BackgroundJobs> scoring_jobs_;
  std::unique_ptr<BackgroundJobs> github_jobs_;
  std::unique_ptr<BackgroundJobs> view_jobs_;
};

}  // namespace polyphony
