// One attempt of one task on this worker: provision, run the agent, verify, land.
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <string>

#include "common/clock.h"
#include "protocol/messages.h"
#include "worker-agent/container_pool.h"
#include "worker-agent/docker_client.h"
#include "worker-agent/workspaces.h"

namespace polyphony {

struct RunContext {
  std::string worker_id;
  DockerClient& docker;
  Workspaces& workspaces;
  int container_uid = 1000;
  int container_gid = 1000;
  // Sends a message to the coordinator. Called from the run's own thread.
  std::function<void(const protocol::Message&)> emit;
  // Set by the worker to stop the attempt (cancel, shutdown, stale lease).
  const std::atomic<bool>* cancelled = nullptr;
  // Asks the coordinator for the right to land (fencing and the merge queue across workers)
  // and waits for its answer. Errors: "refused" (stale lease or ended task: do not land),
  // "cancelled", "timeout". Unset: land without asking (tests of a lone worker).
  std::function<Status()> request_land;
  // Warm containers to take instead of creating one (and where containers go when the attempt is
  // done). Unset: the attempt creates its container and removes it before it returns.
  ContainerPool* pool = nullptr;
  // A hosts file (localhost) for containers without a network; "" : none is mounted.
  std::string hosts_file;
  // polyphony-runner where the engine can mount it (install_runner): PID 1 of task containers.
  std::string runner;
  // The worker's own limits for every container of the attempt, and what a RunSpec may name:
  // an attempt whose spec is outside `allowed` fails (config) before anything is made for it.
  ContainerLimits limits{};
  AllowList allowed{};
  // Measures how old a landing grant is (protocol::kLandGrantLifetimeMs); null: system_clock().
  const Clock* clock = nullptr;
};

// The most of a reviewer's verdict file that is read; a larger one is no verdict.
inline constexpr int64_t kMaxVerdictBytes = 64 * 1024;

// Runs the attempt to its end and returns its result (landed or failed with a kind and a
// reason a person can act on). Emits task updates and log chunks on the way. The agent and
// verify run through the runner of one task container (warm from the pool when one fits, else created,
// labelled polyphony.task=<id>); it is named task_container_name() and removed when the attempt
// ends (in the background when there is a pool). A reviewer runs in a container of its own.
protocol::TaskResult execute_run(const protocol::RunSpec& spec, RunContext& context);

// The verify command in a repo's .polyphony.yaml text ("verify: <command>"); empty when the
// file does not name one. Error "config" when the file is malformed.
Result<std::string> verify_from_repo_file(const std::string& text);

// An agent failure that is not the task's fault, so the next agent of the fallback chain should
// take the attempt: the CLI is missing or not executable (exit 126, 127), it died on a signal
// (> 128, except SIGKILL's 137, which comes from outside: OOM or a stop), or the tail of its output says the provider
// refused it (rate limit, quota, auth).
bool looks_unavailable(int exit_code, const std::string& output_tail);

// A reviewer's verdict.
struct Verdict {
  bool approved = false;
  std::string comments;
};

// Parses a verdict file: the first non-blank line starts with "approve" (or "LGTM") or with
// "changes requested" / "request changes" / "reject"; the lines after it are the comments.
// nullopt when the first line says neither.
std::optional<Verdict> parse_verdict(const std::string& text);

// What this attempt's task container is made of (the pool's key). `hosts_file`: mounted at
// /etc/hosts when the container has no network ("" : none); `runner`: its PID 1.
WarmKey warm_key(const protocol::RunSpec& spec, int uid, int gid, const std::string& hosts_file = "",
                 const std::string& runner = "", const ContainerLimits& limits = {});

// Docker labels every container of this attempt carries.
std::map<std::string, std::string> run_labels(const protocol::RunSpec& spec, const std::string& role,
                                              const std::string& worker_id);

}  // namespace polyphony
