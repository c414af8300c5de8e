// Task containers, and a warm pool of them: containers started ahead of time on spare
// workspaces, so that a task's agent starts in a container that is already running, in a clone
// that is already checked out.
//
// A task container's PID 1 is polyphony-runner (runner/runner.h), connected to the worker from
// the moment the container starts; the agent and verify run through it, one after the other.
// The container is the task's sandbox: its mounts, limits and network are fixed when it is
// created, so a warm container is only used by a task that needs exactly the same (the WarmKey).
#pragma once

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "worker-agent/docker_client.h"
#include "worker-agent/lockdown.h"
#include "worker-agent/runner_channel.h"
#include "worker-agent/workspaces.h"

namespace polyphony {

// What a task container is made of, before any task is known.
struct WarmKey {
  std::string image;
  std::string user;  // "1000:1000"
  std::string network_mode;
  int64_t memory_bytes = 0;
  int64_t nano_cpus = 0;
  std::string repo_url;
  std::string base_branch;
  std::vector<BindMount> mounts;  // the agent's identity mounts (read-only)
  std::string runner;             // polyphony-runner on the engine's host (install_runner)
  ContainerLimits limits;         // the worker's own, whatever the RunSpec says

  // A canonical text of all of the above: two keys are the same when their ids are.
  std::string id() const;
};

// The container a task's agent and verify run in: the repo at /workspace, the task's meta
// directory read-only at /polyphony, the mirror the clone borrows from read-only at its own path,
// identity mounts read-only, and the runner as PID 1 (an idle `sleep infinity` when the key names
// no runner: a container whose command the caller sets). Locked down whatever the key says:
// every capability dropped (but limits.cap_add), no-new-privileges; and by the key's limits:
// a process limit, a read-only root with tmpfs /tmp and /home/agent (owned by the user), and
// no file larger than the workspace limit.
ContainerSpec task_container_spec(const WarmKey& key, const std::filesystem::path& repo_dir,
                                  const std::filesystem::path& meta_dir, const std::filesystem::path& mirror_dir,
                                  std::map<std::string, std::string> labels);

// Creates and starts `cs` (made by task_container_spec from `key`) and connects to its runner.
// Error "no_runner" when the key names no runner (the worker found none at start).
Result<RunnerContainer> start_task_container(DockerClient& docker, const WarmKey& key, const ContainerSpec& cs,
                                             const std::filesystem::path& meta_dir);

// The name a task container has once it belongs to a task. Task ids have no '.', so the prefix
// "polyphony.<task>." names one task's containers only.
std::string task_container_name(const std::string& task_id, int64_t epoch);

// Every container of the task on this engine (of `worker_id` when not empty): those created for
// it (label polyphony.task) and warm containers it took (by name).
Result<std::vector<ContainerInfo>> task_containers(DockerClient& docker, const std::string& task_id,
                                                   const std::string& worker_id = {});

struct WarmSlot {
  std::string container_id;
  Spare spare;
  std::shared_ptr<RunnerChannel> runner;  // connected to the container's PID 1
};

class ContainerPool {
 public:
  struct Options {
    std::string worker_id;
    int size = 0;    // warm containers kept at most (over all keys); 0: none
    int makers = 2;  // threads making them (and one more removes containers)
    // Background work (making and removing containers) waits until neither take() nor
    // dispose() was called for `quiet`, or it has waited `max_delay`: tasks starting and ending
    // together (a burst of dispatches, a wave of landings) get the machine first.
    std::chrono::milliseconds quiet{0};
    std::chrono::milliseconds max_delay{0};
  };

  // `clock` times the quiet period and the longest delay (steady_ms).
  ContainerPool(DockerClient& docker, Workspaces& workspaces, Options options, const Clock& clock = system_clock());
  // Stops the makers and removes every warm container and spare it holds, and every container
  // handed to dispose() that is not removed yet.
  ~ContainerPool();

  ContainerPool(const ContainerPool&) = delete;
  ContainerPool& operator=(const ContainerPool&) = delete;

  // A warm container for `key` and the spare it is started on, or nullopt when none is ready.
  // Either way a replacement for `key` is made in the background (the oldest warm container of
  // another key makes room when the pool is full). The caller owns what it gets.
  std::optional<WarmSlot> take(const WarmKey& key);

  // Removes a container in the background, off the task's way.
  void dispose(const std::string& container_id);

  // Warm containers ready for `key` now.
  int ready(const WarmKey& key) const;

  // Blocks until every requested warm container is made (or failed) and disposals are done, or
  // `timeout` passes. For tests and benchmarks.
  bool settle(std::chrono::milliseconds timeout) const;

 private:
  struct Ready {
    std::string key_id;
    WarmSlot slot;
  };

  void maker_loop(bool disposer);
  // Waits (the lock held by `lock`) until the oldest of `queued` may be worked on; false when
  // the pool stops or the queue empties meanwhile.
  bool wait_for_quiet(std::unique_lock<std::mutex>& lock, const std::deque<int64_t>& queued);
  Result<WarmSlot> make(const WarmKey& key);
  void destroy(const WarmSlot& slot);

  DockerClient& docker_;
  Workspaces& workspaces_;
  Options options_;
  const Clock& clock_;
  mutable std::mutex mutex_;
  mutable std::condition_variable wake_;
  mutable std::condition_variable settled_;
  std::deque<WarmKey> wanted_;           // keys to make a warm container for
  std::deque<int64_t> wanted_at_;        // when each was asked for (clock_.steady_ms())
  std::deque<int64_t> disposals_at_;     // when each disposal was asked for
  int64_t last_activity_ = 0;            // the last take() or dispose()
  std::deque<Ready> ready_;              // oldest first
  std::deque<WarmSlot> disposals_;       // containers (and spares) to remove
  std::map<std::string, int> failures_;  // key id -> consecutive failures to make one
  int busy_ = 0;                         // threads at work (makers and the remover)
  std::map<std::string, int> making_;    // key id -> warm containers being made
  int making_total_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> makers_;
};

}  // namespace polyphony
