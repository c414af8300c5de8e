// The wire messages between coordinator, workers and clients (see protocol/PROTOCOL.md).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/ids.h"
#include "common/result.h"

namespace polyphony::protocol {

// Bumped on any incompatible change to a message or field; see PROTOCOL.md.
inline constexpr int kProtocolVersion = 1;

struct Mount {
  std::string host_path;       // path on the worker host
  std::string container_path;  // absolute path inside the container
  bool read_only = true;

  bool operator==(const Mount&) const = default;
};

// Which agent runs, and how: resolved by the coordinator from agents.yaml and identities.yaml.
// A file of the agent's identity (a credential, a CLI config) the worker writes into the agent's
// own writable config directory before it starts; never written back.
struct AgentFile {
  std::string path;     // relative to the config directory, no ".." and no leading '/'
  std::string content;  // the bytes
  int mode = 0600;

  bool operator==(const AgentFile&) const = default;
};

struct AgentSpec {
  std::string name;                        // "scripted", "claude", ...
  std::vector<std::string> command;        // argv; placeholders already substituted
  std::map<std::string, std::string> env;  // env overlay for the container (may hold secrets)
  std::vector<Mount> mounts;               // identity mounts, always read-only
  std::string stdin_text;                  // given to the agent on stdin; "" : /dev/null
  std::string output_format;               // how its stdout reads: "" (text), "claude-stream-json", "codex-json"
  std::string config_env;                  // variable that names its writable config dir
                                           // (CLAUDE_CONFIG_DIR, CODEX_HOME); "" : none
  std::vector<AgentFile> files;            // written into that dir before it starts

  bool operator==(const AgentSpec&) const = default;
};

// Where a reviewer writes its verdict, inside its container: the first line "approve" or
// "changes requested", then its comments.
inline constexpr const char* kVerdictFile = "/polyphony-review/verdict.md";

// Everything a worker needs to run one attempt of one task.
struct RunSpec {
  std::string task_id;
  int attempt = 1;
  int64_t epoch = 0;  // lease epoch (fencing token) of this dispatch
  std::string title;
  std::string body;
  std::string task_type;
  std::string risk;
  std::string repo_url;     // local path or URL of the origin
  std::string base_branch;  // branch to land on, e.g. "main"
  std::string branch;       // polyphony/<id>-<slug>, already sanitized
  AgentSpec agent;
  std::string plan;                         // "solo", "review" or "strong" (informational except review)
  AgentSpec reviewer;                       // review plan: the second agent; empty name otherwise
  int review_rounds = 0;                    // review plan: times the reviewer may send the work back
  std::vector<std::string> rework_command;  // the implementer's argv after a review asked for
                                            // changes (points it at /polyphony/review.md)
  std::string feedback;                     // what earlier attempts got wrong, shown to the agent
  std::string image;                        // e.g. "polyphony-worker:latest"
  std::string network_mode;                 // "bridge", "none", ...
  double cpus = 0;                          // 0: no limit
  int64_t memory_bytes = 0;                 // 0: no limit
  int64_t run_timeout_s = 0;                // agent run; 0: no limit
  int64_t verify_timeout_s = 0;             // verify run; 0: no limit
  int64_t stall_timeout_s = 0;              // agent silent (no output) for this long is stopped; 0: never
  std::string verify_command;               // from config.yaml, used when the repo has no .polyphony.yaml
  std::string land_mode = "merge";  // "merge": land on base_branch; "branch": push only the task branch (a PR follows)
  std::string rework_stdin;         // the implementer's stdin after a review asked for changes
  int max_turns = 0;                // budget: model turns per agent run; 0: no limit
  int64_t max_tokens = 0;           // budget: input + output tokens per agent run; 0: no limit
  bool run_timeout_is_budget = false;  // run_timeout_s is the budget's max_wall_s: passing it is "budget"

  bool operator==(const RunSpec&) const = default;
};

// worker -> coordinator, first message on a connection and after every reconnect.
struct RunningTask {
  std::string task_id;
  int attempt = 0;
  int64_t epoch = 0;

  bool operator==(const RunningTask&) const = default;
};
struct Hello {
  int protocol_version = kProtocolVersion;
  std::string worker_id;
  std::string hostname;
  std::string version;  // software version
  int capacity = 1;     // concurrent tasks
  std::vector<std::string> labels;
  bool image_present = false;
  int64_t free_disk_bytes = 0;
  std::vector<RunningTask> running;

  bool operator==(const Hello&) const = default;
};

// coordinator -> worker, answer to Hello.
struct Welcome {
  int protocol_version = kProtocolVersion;
  std::string coordinator_id;
  int64_t heartbeat_interval_ms = 1000;
  int liveness = 3;  // missed heartbeats before the peer is considered lost

  bool operator==(const Welcome&) const = default;
};

// both directions.
struct Heartbeat {
  int64_t seq = 0;
  int load = 0;         // tasks the sender is running (worker) / 0 (coordinator)
  int64_t sent_ms = 0;  // the sender's wall clock (ms since the epoch); 0: not said

  bool operator==(const Heartbeat&) const = default;
};

// coordinator -> worker: run this attempt under this lease.
struct Dispatch {
  RunSpec spec;

  bool operator==(const Dispatch&) const = default;
};

// worker -> coordinator: the attempt moved to a new state.
struct TaskUpdate {
  std::string task_id;
  int attempt = 0;
  int64_t epoch = 0;
  std::string state;   // "PROVISIONED", "RUNNING", "VERIFYING"
  std::string detail;  // free text (container id, verify command, ...)

  bool operator==(const TaskUpdate&) const = default;
};

// worker -> coordinator: output of the agent, verify, or the worker itself.
struct LogChunk {
  std::string task_id;
  int attempt = 0;
  int64_t epoch = 0;
  std::string stream;  // "agent", "verify", "system"
  int64_t seq = 0;     // per attempt, starting at 0, no gaps
  std::string data;

  bool operator==(const LogChunk&) const = default;
};

// worker -> coordinator: how the attempt ended. Repeated until acknowledged.
// Why an attempt failed: the one enum both ends use. A worker reports the kinds up to kLanding
// (TaskResult.failure_kind); the coordinator also records kIdentity and kProtocol itself.
enum class FailureKind {
  kAgent,
  kVerify,
  kInfra,
  kTimeout,
  kConflict,
  kCancelled,
  kConfig,
  kReview,
  kAgentUnavailable,
  kBudget,
  kRepo,
  kLanding,
  // Recorded by the coordinator only, never on the wire:
  kIdentity,  // an agent's identity cannot be resolved
  kProtocol,  // the worker's result could not be read
};

// Every failure kind a worker may report (TaskResult.failure_kind), as on the wire, in the
// enum's order: the one list both ends use, so nothing a worker sends is refused by the
// coordinator's decoder.
inline constexpr std::array<std::string_view, 12> kFailureKinds = {
    "agent",  "verify", "infra",  "timeout", "conflict", "cancelled", "config", "review", "agent_unavailable",
    "budget", "repo",   "landing"};

// The kind's name: its wire string for the reported kinds, "identity" and "protocol" otherwise.
std::string_view to_string(FailureKind kind);

// The kind a name (any of to_string's) stands for; nullopt for any other text.
std::optional<FailureKind> parse_failure_kind(std::string_view name);

// True when a worker may report `kind` (it is in kFailureKinds).
bool is_failure_kind(std::string_view kind);

// What one agent run reported through its structured output (absent fields stay 0 / "").
struct AgentUsage {
  std::string role;   // "implementer" or "reviewer"
  std::string agent;  // the profile's name
  std::string model;
  int turns = 0;
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  double cost_usd = 0;
  std::string final_message;  // its last message, at most 4 KiB

  bool operator==(const AgentUsage&) const = default;
};

struct TaskResult {
  std::string task_id;
  int attempt = 0;
  int64_t epoch = 0;
  std::string outcome;       // "landed" or "failed"
  std::string failure_kind;  // when failed: "agent", "verify", "infra", "timeout", "conflict", "cancelled"
                             // "config" (misconfigured worker or repo, e.g. image missing), "review"
                             // (the reviewer kept requesting changes), "agent_unavailable"
                             // (the agent's CLI is missing, rate-limited, unauthorized or crashed),
                             // "budget" (the agent passed max_turns, max_tokens or its run time),
                             // "repo" (the repo or its base branch cannot be used: not retried),
                             // "landing" (the origin refused the push: a hook, a protected
                             // branch, a clone that cannot take it; not retried)
  std::string reason;        // human-readable; for "landed": empty, or why the base did not
                             // move (the branch landed alone, e.g. a working clone with changes)
  std::string branch;
  std::string commit;             // head of the task branch
  std::string merged_commit;      // head of the base branch after landing
  std::string tree;               // tree of the verified branch head (failed verify or landed)
  std::vector<AgentUsage> usage;  // each agent run of the attempt, in order
  std::string already_in_base;    // "landed" with nothing pushed: the base commit that already holds
                                  // the change (the branch, rebased onto it, changes nothing)

  bool operator==(const TaskResult&) const = default;
};

// coordinator -> worker: the result was recorded; stop resending it.
struct ResultAck {
  std::string task_id;
  int attempt = 0;
  int64_t epoch = 0;

  bool operator==(const ResultAck&) const = default;
};

// worker -> coordinator: the attempt is verified and asks to land. The coordinator grants one
// landing per repo at a time (the merge queue across workers) and only to the current lease.
struct LandRequest {
  std::string task_id;
  int attempt = 0;
  int64_t epoch = 0;

  bool operator==(const LandRequest&) const = default;
};

// How long a granted landing is good for. The coordinator does not expire a lease it granted a
// landing for this long after the grant (the worker may be pushing, heard from or not; the grant
// outlives a coordinator restart); a worker that has not started its push this long after the
// grant asks for it again instead of pushing on an old one.
inline constexpr int64_t kLandGrantLifetimeMs = 120000;

// coordinator -> worker: answer to LandRequest. Refused: the lease is stale or the task ended;
// the worker must not land, and stops the attempt.
struct LandGrant {
  std::string task_id;
  int attempt = 0;
  int64_t epoch = 0;
  bool granted = false;
  std::string reason;

  bool operator==(const LandGrant&) const = default;
};

// coordinator -> worker: stop this attempt and clean up.
struct Cancel {
  std::string task_id;
  int64_t epoch = 0;
  std::string reason;

  bool operator==(const Cancel&) const = default;
};

// client -> coordinator (client endpoint): queue a task. The coordinator validates it exactly
// as `polyphony spawn` does and answers with a ClientReply carrying the new task id.
struct Submit {
  std::string title;
  std::string body;
  std::string repo;         // a repos: name from the coordinator's config.yaml, a path on the
                            // coordinator's host, or a URL
  std::string base_branch;  // empty: the repo's default
  std::string task_type;
  std::string risk;
  std::vector<std::string> labels;
  std::string agent;  // empty: route
  bool operator==(const Submit&) const = default;
};

// client -> coordinator: ask for a task's standing, or act on it.
struct Control {
  std::string task_id;
  std::string action;  // "query", "cancel", "retry"
  bool operator==(const Control&) const = default;
};

// client -> coordinator (client endpoint): follow a task. Answered at once with a ClientReply
// (its standing now), then with another each time its standing changes, until it is in a
// final state (kFinalStates) or the client's connection is gone. Sending it again on the same
// connection renews it (answered with the standing now), never doubles it.
struct Watch {
  std::string task_id;
  bool operator==(const Watch&) const = default;
};

// The states a task ends in: nothing moves it out of them but a user's retry (FAILED, BLOCKED).
inline constexpr std::array<std::string_view, 4> kFinalStates = {"LANDED", "FAILED", "BLOCKED", "CANCELLED"};

// Every lifecycle state name a ClientReply may carry (coordinator/lifecycle.h's, in its order).
inline constexpr std::array<std::string_view, 10> kLifecycleStates = {
    "DISCOVERED", "CLAIMED", "ROUTED", "PROVISIONED", "RUNNING",
    "VERIFYING",  "LANDED",  "FAILED", "BLOCKED",     "CANCELLED"};

// coordinator -> client: the answer to a Submit, Control or Watch (and a Watch's later news).
struct ClientReply {
  bool ok = false;
  std::string error;  // when !ok: what is wrong
  std::string where;  // when !ok: the field or flag at fault
  std::string task_id;
  std::string state;  // lifecycle state name (kLifecycleStates), when known; else empty
  std::string reason;
  int attempt = 0;
  std::string agent;
  std::string branch;
  std::string merged_commit;
  bool operator==(const ClientReply&) const = default;
};

// client -> coordinator (client endpoint): ask for the worker table. Answered with a
// WorkersReply.
struct WorkersQuery {
  bool operator==(const WorkersQuery&) const = default;
};

// One registered worker, as the coordinator sees it now.
struct WorkerStatus {
  std::string worker_id;
  std::string hostname;
  std::string version;
  std::string state;             // "ready" (has free capacity), "busy" (full), "lost"
  int64_t heartbeat_age_ms = 0;  // since the coordinator last heard from it
  int capacity = 1;
  int load = 0;  // slots its attempts hold (not those landing)
  std::vector<std::string> labels;
  std::vector<std::string> running;  // task ids
  bool image_present = false;
  int64_t free_disk_bytes = 0;
  std::string key;  // name of its CURVE key on the allow-list; "" without CURVE
  // Its wall clock minus the coordinator's, from its last heartbeat (transit time included);
  // known only once a heartbeat carried its clock.
  bool clock_known = false;
  int64_t clock_offset_ms = 0;
  bool operator==(const WorkerStatus&) const = default;
};

// coordinator -> client: the answer to a WorkersQuery.
struct WorkersReply {
  std::string coordinator_id;
  std::vector<WorkerStatus> workers;  // by worker id
  bool operator==(const WorkersReply&) const = default;
};

// The read-only views a client may ask for with a ViewQuery: what `polyphony status --json`,
// `show ID --json`, `logs ID` and `route --explain --json` give on the coordinator's host.
inline constexpr std::array<std::string_view, 4> kViews = {"status", "show", "logs", "route_explain"};

// The most bytes of log text one ViewQuery of the logs view returns.
inline constexpr int64_t kMaxViewLogBytes = 256 * 1024;

// client -> coordinator (client endpoint): ask for one view of the coordinator's state, so a
// client on another host sees what the CLI shows on the coordinator's. Answered with a
// ViewReply. Fields a view does not use are ignored.
struct ViewQuery {
  std::string view;                   // one of kViews
  std::vector<std::string> task_ids;  // status: only these (empty: all); show, logs: exactly one
  std::vector<std::string> states;    // status: only tasks in these states (any case)
  std::string repo;                   // status: only tasks on this repo; route_explain: the task's repo
  int64_t limit = 0;                  // status: only the newest N (0: all)
  int attempt = 0;                    // logs: only this attempt (0: every attempt)
  int64_t offset = -1;                // logs: from this byte of the whole output (-1: its last max_bytes)
  int64_t max_bytes = 16384;          // logs: the most bytes of text, 1..kMaxViewLogBytes
  // route_explain: the task to score, as in a Submit (nothing is queued).
  std::string title;
  std::string body;
  std::string base_branch;
  std::string task_type;
  std::string risk;
  std::vector<std::string> labels;
  std::string agent;
  bool operator==(const ViewQuery&) const = default;
};

// coordinator -> client: the answer to a ViewQuery.
struct ViewReply {
  bool ok = false;
  std::string code;   // when !ok: the kind of error ("usage", "not_found", "busy", ...)
  std::string error;  // when !ok: what is wrong, as the CLI says it
  std::string where;  // when !ok: the field at fault
  std::string json;   // when ok: the view, one JSON document
  bool operator==(const ViewReply&) const = default;
};

// worker -> coordinator: the worker is stopping (SIGTERM, SIGINT). The coordinator removes it
// from its table at once and requeues the attempts it held; nothing more is read from it.
struct Goodbye {
  std::string reason;

  bool operator==(const Goodbye&) const = default;
};

// client -> coordinator: take a worker off the table (`polyphony workers remove`). Refused while
// it holds tasks unless `force`, which requeues them. Answered with a ClientReply.
struct WorkerRemove {
  std::string worker_id;
  bool force = false;

  bool operator==(const WorkerRemove&) const = default;
};

// client -> coordinator: ask every connected worker to remove finished tasks' workspaces and
// containers (answered with a CleanupReply); coordinator -> worker: do so now (answered with a
// CleanupReport). A worker keeps what its current attempts and unacknowledged results hold.
struct CleanupRequest {
  int64_t request_id = 0;  // the coordinator's, echoed in the reports; 0 from a client
  bool dry_run = false;    // count what would go, remove nothing

  bool operator==(const CleanupRequest&) const = default;
};

// worker -> coordinator: what one worker removed for a CleanupRequest.
struct CleanupReport {
  int64_t request_id = 0;
  std::string worker_id;
  int workspaces = 0;    // task workspaces removed (or that would be, dry run)
  int containers = 0;    // task containers removed (or that would be)
  bool answered = true;  // false: the worker did not answer in time (set by the coordinator)
  std::string error;     // what could not be removed, "" when all went

  bool operator==(const CleanupReport&) const = default;
};

// coordinator -> client: the answer to a CleanupRequest, one report per worker asked.
struct CleanupReply {
  std::vector<CleanupReport> reports;  // by worker id

  bool operator==(const CleanupReply&) const = default;
};

using Message =
    std::variant<Hello, Welcome, Heartbeat, Dispatch, TaskUpdate, LogChunk, TaskResult, ResultAck, LandRequest,
                 LandGrant, Cancel, Submit, Control, ClientReply, WorkersQuery, WorkersReply, Watch, ViewQuery,
                 ViewReply, Goodbye, WorkerRemove, CleanupRequest, CleanupReport, CleanupReply>;

// The "type" string of a message on the wire ("hello", "welcome", ...).
std::string type_name(const Message& m);

// One MessagePack-encoded frame. Text that is not valid UTF-8 or holds NUL is sent with U+FFFD
// in place of the bad bytes. Every enum-like value (failure kinds, states, streams, plans, land
// modes, outcomes, roles, actions, output formats) is checked as decode checks it: one outside
// its list fails with an Error (code "protocol") whose `where` names the field, e.g.
// "task_result.failure_kind". Ids and ranges are not checked; decode does.
Result<std::string> try_encode(const Message& m);

// try_encode for values the program built itself: a value outside its list is a bug in the
// sender, thrown as std::invalid_argument naming the field.
std::string encode(const Message& m);

// Decodes one frame. Errors (code "protocol") name the offending field in `where`,
// e.g. "dispatch.spec.agent.command[2]". Never throws, never trusts sizes from the input.
// A frame of another protocol version (or without one) fails with `where` == "v".
Result<Message> decode(std::string_view frame);

// The lease a task_result frame names (its task_id, attempt and epoch as a ResultAck), read
// when decode refuses the frame for another field: nullopt unless the frame is a task_result of
// this protocol version whose task_id, attempt and epoch are themselves valid. Lets the
// coordinator answer a result it cannot accept, so the worker stops resending it.
std::optional<ResultAck> result_lease(std::string_view frame);

// Frames larger than this are refused before decoding.
inline constexpr size_t kMaxFrameBytes = 16 * 1024 * 1024;

// Maps and arrays nested deeper than this, the frame's own map counting as level 1, are refused
// while unpacking.
inline constexpr size_t kMaxNestingDepth = 16;

// Frames holding more MessagePack values than this (every scalar, key, array and map counts)
// are refused before unpacking; a real message holds a few hundred.
inline constexpr size_t kMaxFrameValues = 1 << 20;

// Workers split output into log chunks of at most this many bytes of data (not enforced by
// decode; it keeps a chunk far below kMaxFrameBytes and the coordinator's writes small).
inline constexpr size_t kMaxLogChunkBytes = 256 * 1024;

// True when `id` is 1-64 characters from [A-Za-z0-9_-]: safe in paths, container names and
// labels. The one task-id check, common/ids.h's.
using polyphony::is_valid_task_id;

// True for worker and coordinator ids: 1-255 characters from [A-Za-z0-9._:-], not starting
// with '.'. A worker's id is also its ZeroMQ routing id.
bool is_valid_peer_id(std::string_view id);

// True for a task branch: "polyphony/<rest>", at most 255 bytes, and a valid git branch name
// (common/ids.h is_valid_branch_name).
bool is_valid_task_branch(std::string_view name);

// True for a full commit id: 40 (SHA-1) or 64 (SHA-256) lowercase hex digits.
bool is_valid_commit_id(std::string_view id);

}  // namespace polyphony::protocol
