// The worker-agent: registers with the coordinator, runs dispatched attempts on threads of
// their own, streams their updates and logs back, and resends results until acknowledged.
#pragma once

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "common/log.h"
#include "protocol/messages.h"
#include "protocol/security.h"
#include "worker-agent/container_pool.h"
#include "worker-agent/docker_client.h"
#include "worker-agent/workspaces.h"

#include <chrono>
#include <functional>

namespace polyphony {

// How long an attempt waits for the coordinator to let it land (it queues behind other
// landings on the same repo, each of which may verify again).
inline constexpr std::chrono::minutes kLandGrantWait{30};

struct WorkerOptions {
  std::string worker_id;             // also the DEALER routing id
  std::string coordinator_endpoint;  // e.g. inproc://polyphony-workers or tcp://host:7701
  int capacity = 4;
  std::vector<std::string> labels;
  std::string image = "polyphony-worker:latest";
  int container_uid = 1000;
  int container_gid = 1000;
  int64_t heartbeat_interval_ms = 1000;
  int liveness = 3;
  int64_t result_resend_ms = 2000;
  // CURVE keys for a coordinator across hosts; nullopt: plain (inproc, ipc, insecure loopback).
  std::optional<protocol::CurveClientKeys> curve;
  // Where workspaces live, for the free disk space reported in hello ("": not reported).
  std::string workspace_root;
  // Task containers kept started ahead of tasks (on spare workspaces of the repos served last);
  // 0: none, every attempt creates its container.
  int warm_containers = 0;
  // The worker's own limits for every container, and what a RunSpec may name (an empty list
  // allows nothing); a spec outside it is refused.
  ContainerLimits limits;
  AllowList allowed;
};

// This host's worker id, kept in `<home>/worker-id`: read when the file is there, else made
// ("<hostname>-<6 hex digits>", id-safe) and written, so a restarted worker keeps its id and
// reaps its own leftovers. Errors name the file.
Result<std::string> persisted_worker_id(const std::filesystem::path& home);

class WorkerAgent {
 public:
  WorkerAgent(zmq::context_t& context, WorkerOptions options, DockerClient& docker, Workspaces& workspaces);
  ~WorkerAgent();

  // Serves until `stop` is set; then cancels running attempts and waits for their threads.
  void run(const std::atomic<bool>& stop);

 private:
  struct Run {
    protocol::RunSpec spec;
    std::thread thread;
    std::atomic<bool> cancelled{false};
    std::atomic<bool> finished{false};
    // Set just before its result is sent: it holds no slot any more, though its thread may not
    // have ended when the coordinator, hearing the result, dispatches the next task.
    std::atomic<bool> reported{false};
    // Set when it asks to land: its agent and verify are done, so it holds no capacity slot
    // (the coordinator counts it the same way) and the next task starts beside its landing.
    std::atomic<bool> landing{false};
    bool clean_up = false;  // the coordinator cancelled it: remove its workspace when it ends
    // Stopped because the coordinator was silent past the lease: it may have given the task to
    // another worker, so this attempt must not run beside that one.
    std::atomic<bool> fenced{false};
    // The coordinator's answer to this attempt's land request, handed from the socket thread.
    std::mutex grant_mutex;
    std::condition_variable grant_ready;
    std::optional<protocol::LandGrant> grant;
  };

  static Status wait_for_land_grant(Run& run, const std::function<void(const protocol::Message&)>& emit);
  void reap_orphans();
  // At start (no run of this life yet): removes the task workspaces whose run died with an
  // earlier life of this worker (killed mid-run: no `ended` mark). Their tasks are retried,
  // maybe elsewhere, so nothing else would remove them; the workspace of a run that ended
  // stays until `polyphony cleanup`.
  void remove_dead_runs_workspaces();
  // Marks the task's workspace as that of a run that ended (its result is about to be sent).
  void mark_ended(const std::string& task_id);
  void connect();
  // What the connection's monitor saw: a refused or failed CURVE handshake is said at once.
  void read_connection_events();
  // Says goodbye to the coordinator (it requeues what this worker ran) before stopping.
  void say_goodbye();
  // The coordinator asked for a cleanup: done on a thread of its own, answered through the outbox.
  void on_cleanup(const protocol::CleanupRequest& m);
  void join_cleanup();
  void send_hello();
  void send(const protocol::Message& m);
  void handle(const protocol::Message& m);
  void on_dispatch(const protocol::Dispatch& d);
  // Passes what the runs emitted on to the coordinator. When the connection is full (its
  // high-water mark) the frame waits and the outbox is not read further, so the runs' sends
  // block: back-pressure, nothing dropped. `drop_when_full` (shutting down) drops it instead.
  void forward_outbox(bool drop_when_full = false);
  void reap_finished_runs();
  // The coordinator has been silent for `silent_ms`, past the lease it gives (liveness x
  // heartbeat interval): it presumes this worker lost and may dispatch its tasks elsewhere, so
  // every attempt not yet granted its landing stops (a granted one is pushing, and the
  // coordinator keeps its lease for that). Its result then says why, as an `infra` failure.
  void fence_runs(int64_t silent_ms);
  void resend_results();
  void start_run(const protocol::RunSpec& spec);
  void on_cancel(const protocol::Cancel& c);
  // Removes the task's containers (of this worker) and its workspace. Only for a task no run holds.
  void clean_up_task(const std::string& task_id);

  zmq::context_t& context_;
  WorkerOptions options_;
  DockerClient& docker_;
  Workspaces& workspaces_;
  std::unique_ptr<zmq::socket_t> dealer_;
  std::unique_ptr<zmq::socket_t> monitor_;  // PAIR: dealer_'s handshake events
  zmq::socket_t outbox_;                    // PULL: run threads push encoded frames here
  std::optional<zmq::message_t> held_;      // a frame from the outbox the connection had no room for
  std::string outbox_endpoint_;
  std::map<std::string, std::unique_ptr<Run>> runs_;             // by task id
  std::string hosts_file_;                                       // mounted at /etc/hosts without a network
  std::string runner_;                                           // polyphony-runner, PID 1 of task containers
  std::unique_ptr<ContainerPool> pool_;                          // warm containers; null: none
  std::map<std::string, protocol::TaskResult> unacked_results_;  // by task id
  int64_t last_heard_ms_ = 0;
  int64_t last_sent_ms_ = 0;
  int64_t last_resend_ms_ = 0;
  int64_t heartbeat_seq_ = 0;
  int64_t reconnect_delay_ms_ = 250;
  bool said_goodbye_ = false;    // nothing more goes to the coordinator
  std::thread cleanup_thread_;   // a cleanup the coordinator asked for; joined before a run starts
  LogLimiter every_30s_{30000};  // a refused handshake repeats on every reconnect
};

}  // namespace polyphony
