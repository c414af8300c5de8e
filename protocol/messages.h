// The wire messages between coordinator, workers and clients (see protocol/PROTOCOL.md).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/result.h"

namespace polyphony::protocol {

// Bumped on any incompatible change to a message or field; see PROTOCOL.md.
inline constexpr int kProtocolVersion = 1;

struct Mount {
  std::string host_path;       // path on the worker host
  std::string container_path;  // absolute path inside the container
  bool read_only = true;
};

// Which agent runs, and how: resolved by the coordinator from agents.yaml and identities.yaml.
struct AgentSpec {
  std::string name;                          // "scripted", "claude", ...
  std::vector<std::string> command;          // argv; placeholders already substituted
  std::map<std::string, std::string> env;    // env overlay for the container (may hold secrets)
  std::vector<Mount> mounts;                 // identity mounts, always read-only
};

// Everything a worker needs to run one attempt of one task.
struct RunSpec {
  std::string task_id;
  int attempt = 1;
  int64_t epoch = 0;            // lease epoch (fencing token) of this dispatch
  std::string title;
  std::string body;
  std::string task_type;
  std::string risk;
  std::string repo_url;         // local path or URL of the origin
  std::string base_branch;      // branch to land on, e.g. "main"
  std::string branch;           // polyphony/<id>-<slug>, already sanitized
  AgentSpec agent;
  std::string image;            // e.g. "polyphony-worker:latest"
  std::string network_mode;     // "bridge", "none", ...
  double cpus = 0;              // 0: no limit
  int64_t memory_bytes = 0;     // 0: no limit
  int64_t run_timeout_s = 0;    // agent run; 0: no limit
  int64_t verify_timeout_s = 0; // verify run; 0: no limit
  std::string verify_command;   // from config.yaml, used when the repo has no .polyphony.yaml
};

// worker -> coordinator, first message on a connection and after every reconnect.
struct RunningTask {
  std::string task_id;
  int attempt = 0;
  int64_t epoch = 0;
};
struct Hello {
  int protocol_version = kProtocolVersion;
  std::string worker_id;
  std::string hostname;
  std::string version;          // software version
  int capacity = 1;             // concurrent tasks
  std::vector<std::string> labels;
  bool image_present = false;
  int64_t free_disk_bytes = 0;
  std::vector<RunningTask> running;
};

// coordinator -> worker, answer to Hello.
struct Welcome {
  int protocol_version = kProtocolVersion;
  std::string coordinator_id;
  int64_t heartbeat_interval_ms = 1000;
  int liveness = 5;             // missed heartbeats before the peer is considered lost
};

// both directions.
struct Heartbeat {
  int64_t seq = 0;
  int load = 0;                 // tasks the sender is running (worker) / 0 (coordinator)
};

// coordinator -> worker: run this attempt under this lease.
struct Dispatch {
  RunSpec spec;
};

// worker -> coordinator: the attempt moved to a new state.
struct TaskUpdate {
  std::string task_id;
  int attempt = 0;
  int64_t epoch = 0;
  std::string state;            // "PROVISIONED", "RUNNING", "VERIFYING"
  std::string detail;           // free text (container id, verify command, ...)
};

// worker -> coordinator: output of the agent, verify, or the worker itself.
struct LogChunk {
  std::string task_id;
  int attempt = 0;
  int64_t epoch = 0;
  std::string stream;           // "agent", "verify", "system"
  int64_t seq = 0;              // per attempt, starting at 0, no gaps
  std::string data;
};

// worker -> coordinator: how the attempt ended. Repeated until acknowledged.
struct TaskResult {
  std::string task_id;
  int attempt = 0;
  int64_t epoch = 0;
  std::string outcome;          // "landed" or "failed"
  std::string failure_kind;     // when failed: "agent", "verify", "infra", "timeout", "conflict", "cancelled"
  std::string reason;           // human-readable
  std::string branch;
  std::string commit;           // head of the task branch
  std::string merged_commit;    // head of the base branch after landing
};

// coordinator -> worker: the result was recorded; stop resending it.
struct ResultAck {
  std::string task_id;
  int attempt = 0;
  int64_t epoch = 0;
};

// coordinator -> worker: stop this attempt and clean up.
struct Cancel {
  std::string task_id;
  int64_t epoch = 0;
  std::string reason;
};

using Message = std::variant<Hello, Welcome, Heartbeat, Dispatch, TaskUpdate, LogChunk, TaskResult,
                             ResultAck, Cancel>;

// The "type" string of a message on the wire ("hello", "welcome", ...).
std::string type_name(const Message& m);

// One MessagePack-encoded frame. Never fails.
std::string encode(const Message& m);

// Decodes one frame. Errors (code "protocol") name the offending field in `where`,
// e.g. "dispatch.spec.agent.command[2]". Never throws, never trusts sizes from the input.
Result<Message> decode(std::string_view frame);

// Frames larger than this are refused before decoding.
inline constexpr size_t kMaxFrameBytes = 16 * 1024 * 1024;

}  // namespace polyphony::protocol
