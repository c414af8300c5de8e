// A fleet for end-to-end tests: one coordinator and worker hosts, each in a network namespace
// of its own with its own address and workspace root, joined by a bridge the fleet makes. They
// share nothing but the coordinator's endpoint (and the Docker engine's unix socket, which
// stands for each host's own engine). A partition is a link set down. Traffic goes only to the
// addresses made here; every namespace is deleted at the end. The endpoint is not loopback, so
// it runs CURVE: each host has its own key pair, allowed by the coordinator. Needs root.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "single_box.h"

namespace polyphony::testing {

// The namespaces, the bridge and the links; torn down in the destructor.
class Network {
 public:
  explicit Network(int hosts);
  ~Network();
  Network(const Network&) = delete;
  Network& operator=(const Network&) = delete;

  std::string hub() const { return prefix_ + "hub"; }
  std::string host(int i) const { return prefix_ + "w" + std::to_string(i); }
  std::string link(int i) const { return "v" + std::to_string(i); }
  std::vector<std::string> exec_in(const std::string& ns) const;
  // Cuts or restores host i's only link.
  void set_link(int i, bool up);

 private:
  std::string prefix_;
  std::vector<std::string> namespaces_;
};

// The coordinator's worker endpoint, on the hub's address.
std::string fleet_endpoint();

// The repository fleet tests start from: verify passes once a done-*.txt exists.
const std::map<std::string, std::string>& fleet_repo();

struct Fleet {
  // `hosts` worker hosts (1..hosts); `extra` is laid over the coordinator's config. With
  // `start`, serve runs and every host's worker starts at once. `liveness`: the coordinator's
  // heartbeat_liveness setting, "" for its default.
  explicit Fleet(int hosts = 3, const std::string& extra = "", bool start = true,
                 const std::map<std::string, std::string>& repo = fleet_repo(),
                 const std::string& liveness = "heartbeat_liveness: 10, ");
  // A host killed for good leaves its warm containers on the engine the hosts share.
  ~Fleet();

  int hosts;
  Network net;
  SingleBox box;
  std::map<int, std::unique_ptr<BackgroundProcess>> workers;
  std::map<int, int> starts;

  std::filesystem::path worker_home(int i) const { return box.home().parent_path() / ("host" + std::to_string(i)); }
  // Unique per test run: tests run side by side on one engine, and a worker reaps containers
  // labelled with its id.
  std::string worker_id(int i) const { return net.host(i); }
  // The host number of a worker id this fleet made, 0 for another.
  int host_of(const std::string& worker_id) const;
  std::vector<std::string> worker_ids() const;

  // `polyphony serve` in the hub namespace, with `env` added.
  void serve(const std::map<std::string, std::string>& env = {});
  // `polyphony-worker` in host i's namespace, with `env` added; each start logs to its own file.
  void start_worker(int i, const std::map<std::string, std::string>& env = {});
  // The current log of host i's worker (its latest start).
  std::string worker_log(int i) const;
  // The coordinator's and every worker start's logs.
  std::string logs() const;
  // The worker's state in `polyphony workers --json` ("ready", "lost", ...), "" when not listed.
  std::string worker_state(int i) const;
  // Commits on the origin's main whose subject is `title`.
  int landings_of(const std::string& title) const;
  // Lets the agent of task `id` (waiting in kWaitForGo) go on, on every host that has a
  // workspace for it now.
  void let_go(const std::string& id) const;
  // Lets the agent of task `id` go on, on every host as each gets to it, until the task finishes
  // (or the deadline); returns its last state.
  std::string finish(const std::string& id, std::chrono::seconds timeout = std::chrono::seconds(180)) const;

 private:
  void make_keys();
};

// What is wrong with a task's history (`polyphony show --json`), "" when nothing: it starts
// DISCOVERED, each event starts where the one before ended and is a transition the lifecycle
// allows (or a note in the same state), it ends in the task's state, and each attempt is
// dispatched (ROUTED) once, in order, the last one being the task's attempt.
std::string history_problem(const nlohmann::json& show);

// Watches the engine, while it lives, for a task with running containers of two workers at
// once (two attempts running side by side), sampling every 100 ms.
class OverlapWatch {
 public:
  explicit OverlapWatch(std::vector<std::string> worker_ids);
  ~OverlapWatch();
  OverlapWatch(const OverlapWatch&) = delete;
  OverlapWatch& operator=(const OverlapWatch&) = delete;
  // Tasks seen running on two workers at once, each with the workers.
  std::map<std::string, std::set<std::string>> overlaps() const;
  int samples() const { return samples_.load(); }

 private:
  void sample();
  std::vector<std::string> worker_ids_;
  mutable std::mutex mutex_;
  std::map<std::string, std::set<std::string>> overlaps_;
  std::atomic<int> samples_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace polyphony::testing
