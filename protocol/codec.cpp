// MessagePack encoding and defensive decoding of the wire messages; PROTOCOL.md is the contract.
//
// Each struct's fields are described once (`describe`), and that description drives the
// field counter and writer of `encode` and the checking reader of `decode`.
#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <concepts>
#include <cstring>
#include <limits>
#include <msgpack.hpp>
#include <optional>
#include <span>
#include <stdexcept>
#include <type_traits>

#include "common/ids.h"
#include "protocol/messages.h"
#include "protocol/validation.h"

namespace polyphony::protocol {
namespace {

// ---- field checks: each returns what is wrong with a decoded value, or nothing.

using Problem = std::optional<std::string>;

struct NoCheck {
  template <class T>
  Problem operator()(const T&) const {
    return std::nullopt;
  }
};

// `s` shortened and escaped so that hostile text is safe and readable in a log line.
std::string quote(std::string_view s) {
  constexpr std::size_t kMax = 64;
  std::string out = "\"";
  std::size_t n = std::min(s.size(), kMax);
  while (n < s.size() && n > 0 && (static_cast<unsigned char>(s[n]) & 0xc0) == 0x80) --n;
  for (char c : s.substr(0, n)) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out += c;
    }
  }
  return out + (n < s.size() ? "\"..." : "\"");
}

template <class I>
auto at_least(I min) {
  return [min](I v) -> Problem {
    if (v >= min) return std::nullopt;
    return "must be >= " + std::to_string(min) + ", got " + std::to_string(v);
  };
}

template <class I>
auto between(I min, I max) {
  return [min, max](I v) -> Problem {
    if (v >= min && v <= max) return std::nullopt;
    return "must be between " + std::to_string(min) + " and " + std::to_string(max) + ", got " + std::to_string(v);
  };
}

Problem finite_non_negative(double v) {
  if (std::isfinite(v) && v >= 0) return std::nullopt;
  return "must be a finite number >= 0, got " + std::to_string(v);
}

// A field whose value is one of a fixed list (an enum on the wire): checked on encode as on
// decode.
struct OneOf {
  std::span<const std::string_view> allowed;

  Problem operator()(const std::string& v) const {
    for (std::string_view a : allowed) {
      if (v == a) return std::nullopt;
    }
    std::string list;
    for (std::string_view a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
    return "must be one of " + list + "; got " + quote(v);
  }
};

OneOf one_of(std::span<const std::string_view> allowed) {
  return OneOf{allowed};
}

constexpr std::array<std::string_view, 3> kTaskStates = {"PROVISIONED", "RUNNING", "VERIFYING"};
constexpr std::array<std::string_view, 4> kStreams = {"agent", "verify", "review", "system"};
constexpr std::array<std::string_view, 4> kPlans = {"", "solo", "review", "strong"};
constexpr std::array<std::string_view, 2> kOutcomes = {"landed", "failed"};
constexpr std::array<std::string_view, 3> kWorkerStates = {"ready", "busy", "lost"};
constexpr std::array<std::string_view, 2> kLandModes = {"merge", "branch"};
constexpr std::array<std::string_view, 3> kControlActions = {"query", "cancel", "retry"};
constexpr std::array<std::string_view, 3> kOutputFormats = {"", "claude-stream-json", "codex-json"};
constexpr std::array<std::string_view, 2> kRoles = {"implementer", "reviewer"};
constexpr std::array<std::string_view, 11> kReplyStates = {"",
                                                           kLifecycleStates[0],
                                                           kLifecycleStates[1],
                                                           kLifecycleStates[2],
                                                           kLifecycleStates[3],
                                                           kLifecycleStates[4],
                                                           kLifecycleStates[5],
                                                           kLifecycleStates[6],
                                                           kLifecycleStates[7],
                                                           kLifecycleStates[8],
                                                           kLifecycleStates[9]};
const OneOf state_or_empty{kReplyStates};

Problem task_id(const std::string& v) {
  if (is_valid_task_id(v)) return std::nullopt;
  return "invalid task id " + quote(v) + ": use 1-64 characters from A-Z a-z 0-9 _ -";
}

Problem peer_id(const std::string& v) {
  if (is_valid_peer_id(v)) return std::nullopt;
  return "invalid id " + quote(v) + ": use 1-255 characters from A-Z a-z 0-9 . _ : -, not starting with '.'";
}

Problem task_branch(const std::string& v) {
  if (is_valid_task_branch(v)) return std::nullopt;
  return "invalid branch " + quote(v) + ": must be a valid git branch name under polyphony/";
}

// Empty means "the origin's default branch".
Problem base_branch_or_empty(const std::string& v) {
  if (v.empty() || is_valid_branch_name(v)) return std::nullopt;
  return "invalid branch " + quote(v) + ": not a valid git branch name";
}

Problem commit_or_empty(const std::string& v) {
  if (v.empty() || is_valid_commit_id(v)) return std::nullopt;
  return "invalid commit " + quote(v) + ": expected 40 or 64 lowercase hex digits";
}

Problem non_empty(const std::string& v) {
  if (!v.empty()) return std::nullopt;
  return "must not be empty";
}

// Mounts become Docker binds "host:container:ro", so neither side may hold a ':'.
Problem bind_path(const std::string& v) {
  if (!v.empty() && v.front() == '/' && v.find(':') == v.npos) return std::nullopt;
  return "invalid path " + quote(v) + ": must be absolute and hold no ':'";
}

Problem env_names(const std::map<std::string, std::string>& env) {
  for (const auto& [name, value] : env) {
    if (name.empty() || name.find('=') != name.npos) {
      return "invalid variable name " + quote(name) + ": must be non-empty and hold no '='";
    }
  }
  return std::nullopt;
}

// ---- descriptions: one per struct, in wire order. `V` is a reader, writer or counter; `S` is
// the struct, const when encoding. req: required key; opt: optional key (absent or nil keeps
// the struct's default); bytes: a bin (or str) holding arbitrary bytes; rule: a check across
// fields, reported at the named key.

template <class S, class T>
concept Is = std::same_as<std::remove_const_t<S>, T>;

template <class V, Is<Mount> S>
void describe(V& v, S& m) {
  v.req("host_path", m.host_path, bind_path);
  v.req("container_path", m.container_path, bind_path);
  v.opt("read_only", m.read_only);
}

// A path inside the agent's config directory: relative, and never climbing out of it.
Problem relative_path(const std::string& v) {
  bool ok = !v.empty() && v.front() != '/' && v.find('\0') == v.npos;
  for (size_t at = 0; ok && at <= v.size();) {
    const size_t end = std::min(v.find('/', at), v.size());
    const std::string_view part(v.data() + at, end - at);
    ok = !part.empty() && part != "." && part != "..";
    at = end + 1;
  }
  if (ok) return std::nullopt;
  return "invalid path " + quote(v) + ": must be relative, without empty, '.' or '..' parts";
}

template <class V, Is<AgentFile> S>
void describe(V& v, S& f) {
  v.req("path", f.path, relative_path);
  v.bytes("content", f.content);
  v.opt("mode", f.mode, between(0, 0777));
}

// The name of an environment variable: letters, digits and '_', not starting with a digit.
Problem env_name_or_empty(const std::string& v) {
  bool ok = v.empty() || !std::isdigit(static_cast<unsigned char>(v.front()));
  for (char c : v) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
  if (ok) return std::nullopt;
  return "invalid variable name " + quote(v) + ": use A-Z a-z 0-9 _";
}

template <class V, Is<AgentSpec> S>
void describe(V& v, S& a) {
  v.req("name", a.name);  // non-empty for the implementer: RunSpec checks it (a reviewer may be absent)
  v.req("command", a.command);
  v.opt("env", a.env, env_names);
  v.opt("mounts", a.mounts);
  v.opt("stdin_text", a.stdin_text);
  v.opt("output_format", a.output_format, one_of(kOutputFormats));
  v.opt("config_env", a.config_env, env_name_or_empty);
  v.opt("files", a.files);
}

template <class V, Is<RunSpec> S>
void describe(V& v, S& r) {
  v.req("task_id", r.task_id, task_id);
  v.req("attempt", r.attempt, at_least(1));
  v.req("epoch", r.epoch, at_least<int64_t>(0));
  v.req("title", r.title);
  v.opt("body", r.body);
  v.opt("task_type", r.task_type);
  v.opt("risk", r.risk);
  v.req("repo_url", r.repo_url, non_empty);
  v.req("base_branch", r.base_branch, base_branch_or_empty);
  v.req("branch", r.branch, task_branch);
  v.req("agent", r.agent);
  v.opt("plan", r.plan, one_of(kPlans));
  v.opt("reviewer", r.reviewer);
  v.opt("review_rounds", r.review_rounds, between(0, 100));
  v.opt("rework_command", r.rework_command);
  v.opt("feedback", r.feedback);
  v.rule("agent", [&r]() -> Problem {
    if (r.agent.name.empty()) return "agent.name must not be empty";
    return std::nullopt;
  });
  v.req("image", r.image, non_empty);
  v.req("network_mode", r.network_mode, non_empty);
  v.opt("cpus", r.cpus, finite_non_negative);
  v.opt("memory_bytes", r.memory_bytes, at_least<int64_t>(0));
  v.opt("run_timeout_s", r.run_timeout_s, at_least<int64_t>(0));
  v.opt("verify_timeout_s", r.verify_timeout_s, at_least<int64_t>(0));
  v.opt("stall_timeout_s", r.stall_timeout_s, at_least<int64_t>(0));
  v.opt("verify_command", r.verify_command);
  v.opt("land_mode", r.land_mode, one_of(kLandModes));
  v.opt("rework_stdin", r.rework_stdin);
  v.opt("max_turns", r.max_turns, at_least(0));
  v.opt("max_tokens", r.max_tokens, at_least<int64_t>(0));
  v.opt("run_timeout_is_budget", r.run_timeout_is_budget);
}

template <class V, Is<RunningTask> S>
void describe(V& v, S& t) {
  v.req("task_id", t.task_id, task_id);
  v.req("attempt", t.attempt, at_least(1));
  v.req("epoch", t.epoch, at_least<int64_t>(0));
}

template <class V, Is<Hello> S>
void describe(V& v, S& h) {
  v.opt("protocol_version", h.protocol_version);
  v.req("worker_id", h.worker_id, peer_id);
  v.req("hostname", h.hostname);
  v.req("version", h.version);
  v.req("capacity", h.capacity, between(1, 4096));
  v.opt("labels", h.labels);
  v.opt("image_present", h.image_present);
  v.opt("free_disk_bytes", h.free_disk_bytes, at_least<int64_t>(0));
  v.opt("running", h.running);
}

template <class V, Is<Welcome> S>
void describe(V& v, S& w) {
  v.opt("protocol_version", w.protocol_version);
  v.req("coordinator_id", w.coordinator_id, peer_id);
  v.req("heartbeat_interval_ms", w.heartbeat_interval_ms, between<int64_t>(1, 3'600'000));
  v.req("liveness", w.liveness, between(1, 10000));
}

template <class V, Is<Heartbeat> S>
void describe(V& v, S& h) {
  v.req("seq", h.seq, at_least<int64_t>(0));
  v.opt("load", h.load, at_least(0));
  v.opt("sent_ms", h.sent_ms, at_least<int64_t>(0));
}

template <class V, Is<Dispatch> S>
void describe(V& v, S& d) {
  v.req("spec", d.spec);
}

// The lease coordinates that every task-scoped message carries.
template <class V, class S>
void describe_lease(V& v, S& m) {
  v.req("task_id", m.task_id, task_id);
  v.req("attempt", m.attempt, at_least(1));
  v.req("epoch", m.epoch, at_least<int64_t>(0));
}

template <class V, Is<TaskUpdate> S>
void describe(V& v, S& u) {
  describe_lease(v, u);
  v.req("state", u.state, one_of(kTaskStates));
  v.opt("detail", u.detail);
}

template <class V, Is<LogChunk> S>
void describe(V& v, S& c) {
  describe_lease(v, c);
  v.req("stream", c.stream, one_of(kStreams));
  v.req("seq", c.seq, at_least<int64_t>(0));
  v.bytes("data", c.data);
}

template <class V, Is<AgentUsage> S>
void describe(V& v, S& u) {
  v.req("role", u.role, one_of(kRoles));
  v.req("agent", u.agent, non_empty);
  v.opt("model", u.model);
  v.opt("turns", u.turns, at_least(0));
  v.opt("input_tokens", u.input_tokens, at_least<int64_t>(0));
  v.opt("output_tokens", u.output_tokens, at_least<int64_t>(0));
  v.opt("cost_usd", u.cost_usd, finite_non_negative);
  v.opt("final_message", u.final_message);
}

Problem failure_kind_matches(const TaskResult& r) {
  if (r.outcome == "failed") return one_of(kFailureKinds)(r.failure_kind);
  if (r.failure_kind.empty()) return std::nullopt;
  return "must be empty when outcome is \"landed\", got " + quote(r.failure_kind);
}

template <class V, Is<TaskResult> S>
void describe(V& v, S& r) {
  describe_lease(v, r);
  v.req("outcome", r.outcome, one_of(kOutcomes));
  v.opt("failure_kind", r.failure_kind);
  v.opt("reason", r.reason);
  v.req("branch", r.branch, task_branch);
  v.opt("commit", r.commit, commit_or_empty);
  v.opt("merged_commit", r.merged_commit, commit_or_empty);
  v.opt("tree", r.tree, commit_or_empty);
  v.opt("usage", r.usage);
  v.opt("already_in_base", r.already_in_base, commit_or_empty);
  v.enum_rule("failure_kind", [&r] { return failure_kind_matches(r); });
}

template <class V, Is<ResultAck> S>
void describe(V& v, S& a) {
  describe_lease(v, a);
}

template <class V, Is<LandRequest> S>
void describe(V& v, S& r) {
  describe_lease(v, r);
}

template <class V, Is<LandGrant> S>
void describe(V& v, S& g) {
  describe_lease(v, g);
  v.req("granted", g.granted);
  v.opt("reason", g.reason);
}

template <class V, Is<Cancel> S>
void describe(V& v, S& c) {
  v.req("task_id", c.task_id, task_id);
  v.req("epoch", c.epoch, at_least<int64_t>(0));
  v.opt("reason", c.reason);
}

template <class V, Is<Submit> S>
void describe(V& v, S& m) {
  v.req("title", m.title);
  v.opt("body", m.body);
  v.req("repo", m.repo);
  v.opt("base_branch", m.base_branch, base_branch_or_empty);
  v.opt("task_type", m.task_type);
  v.opt("risk", m.risk);
  v.opt("labels", m.labels);
  v.opt("agent", m.agent);
}

template <class V, Is<Control> S>
void describe(V& v, S& c) {
  v.req("task_id", c.task_id, task_id);
  v.req("action", c.action, one_of(kControlActions));
}

template <class V, Is<ClientReply> S>
void describe(V& v, S& r) {
  v.req("ok", r.ok);
  v.opt("error", r.error);
  v.opt("where", r.where);
  v.opt("task_id", r.task_id);
  v.opt("state", r.state, state_or_empty);
  v.opt("reason", r.reason);
  v.opt("attempt", r.attempt, at_least(0));
  v.opt("agent", r.agent);
  v.opt("branch", r.branch);
  v.opt("merged_commit", r.merged_commit, commit_or_empty);
}

template <class V, Is<WorkersQuery> S>
void describe(V&, S&) {}

template <class V, Is<Watch> S>
void describe(V& v, S& w) {
  v.req("task_id", w.task_id, task_id);
}

template <class V, Is<WorkerStatus> S>
void describe(V& v, S& w) {
  v.req("worker_id", w.worker_id, peer_id);
  v.opt("hostname", w.hostname);
  v.opt("version", w.version);
  v.req("state", w.state, one_of(kWorkerStates));
  v.opt("heartbeat_age_ms", w.heartbeat_age_ms, at_least<int64_t>(0));
  v.opt("capacity", w.capacity, between(1, 4096));
  v.opt("load", w.load, at_least(0));
  v.opt("labels", w.labels);
  v.opt("running", w.running);
  v.opt("image_present", w.image_present);
  v.opt("free_disk_bytes", w.free_disk_bytes, at_least<int64_t>(0));
  v.opt("key", w.key);
  v.opt("clock_known", w.clock_known);
  v.opt("clock_offset_ms", w.clock_offset_ms);
}

template <class V, Is<WorkersReply> S>
void describe(V& v, S& r) {
  v.req("coordinator_id", r.coordinator_id, peer_id);
  v.opt("workers", r.workers);
}

template <class V, Is<ViewQuery> S>
void describe(V& v, S& q) {
  v.req("view", q.view, one_of(kViews));
  v.opt("task_ids", q.task_ids);
  v.opt("states", q.states);
  v.opt("repo", q.repo);
  v.opt("limit", q.limit, at_least<int64_t>(0));
  v.opt("attempt", q.attempt, at_least(0));
  v.opt("offset", q.offset, at_least<int64_t>(-1));
  v.opt("max_bytes", q.max_bytes, between<int64_t>(1, kMaxViewLogBytes));
  v.opt("title", q.title);
  v.opt("body", q.body);
  v.opt("base_branch", q.base_branch, base_branch_or_empty);
  v.opt("task_type", q.task_type);
  v.opt("risk", q.risk);
  v.opt("labels", q.labels);
  v.opt("agent", q.agent);
}

template <class V, Is<ViewReply> S>
void describe(V& v, S& r) {
  v.req("ok", r.ok);
  v.opt("code", r.code);
  v.opt("error", r.error);
  v.opt("where", r.where);
  v.opt("json", r.json);
}

template <class V, Is<Goodbye> S>
void describe(V& v, S& g) {
  v.opt("reason", g.reason);
}

template <class V, Is<WorkerRemove> S>
void describe(V& v, S& r) {
  v.req("worker_id", r.worker_id, peer_id);
  v.opt("force", r.force);
}

template <class V, Is<CleanupRequest> S>
void describe(V& v, S& r) {
  v.opt("request_id", r.request_id, at_least<int64_t>(0));
  v.opt("dry_run", r.dry_run);
}

template <class V, Is<CleanupReport> S>
void describe(V& v, S& r) {
  v.req("request_id", r.request_id, at_least<int64_t>(0));
  v.req("worker_id", r.worker_id, peer_id);
  v.opt("workspaces", r.workspaces, at_least(0));
  v.opt("containers", r.containers, at_least(0));
  v.opt("answered", r.answered);
  v.opt("error", r.error);
}

template <class V, Is<CleanupReply> S>
void describe(V& v, S& r) {
  v.opt("reports", r.reports);
}

template <class T>
constexpr bool kIsRecord =
    std::is_same_v<T, Mount> || std::is_same_v<T, AgentSpec> || std::is_same_v<T, AgentFile> ||
    std::is_same_v<T, AgentUsage> || std::is_same_v<T, RunSpec> || std::is_same_v<T, RunningTask> ||
    std::is_same_v<T, WorkerStatus> || std::is_same_v<T, CleanupReport>;

// The "type" of each message on the wire.
template <class T>
constexpr std::string_view kTypeName = "";
// clang-format off
template <> constexpr std::string_view kTypeName<Hello> = "hello";
template <> constexpr std::string_view kTypeName<Welcome> = "welcome";
template <> constexpr std::string_view kTypeName<Heartbeat> = "heartbeat";
template <> constexpr std::string_view kTypeName<Dispatch> = "dispatch";
template <> constexpr std::string_view kTypeName<TaskUpdate> = "task_update";
template <> constexpr std::string_view kTypeName<LogChunk> = "log_chunk";
template <> constexpr std::string_view kTypeName<TaskResult> = "task_result";
template <> constexpr std::string_view kTypeName<ResultAck> = "result_ack";
template <> constexpr std::string_view kTypeName<LandRequest> = "land_request";
template <> constexpr std::string_view kTypeName<LandGrant> = "land_grant";
template <> constexpr std::string_view kTypeName<Cancel> = "cancel";
template <> constexpr std::string_view kTypeName<Submit> = "submit";
template <> constexpr std::string_view kTypeName<Control> = "control";
template <> constexpr std::string_view kTypeName<ClientReply> = "client_reply";
template <> constexpr std::string_view kTypeName<WorkersQuery> = "workers_query";
template <> constexpr std::string_view kTypeName<WorkersReply> = "workers_reply";
template <> constexpr std::string_view kTypeName<ViewQuery> = "view_query";
template <> constexpr std::string_view kTypeName<ViewReply> = "view_reply";
template <> constexpr std::string_view kTypeName<Goodbye> = "goodbye";
template <> constexpr std::string_view kTypeName<WorkerRemove> = "worker_remove";
template <> constexpr std::string_view kTypeName<CleanupRequest> = "cleanup_request";
template <> constexpr std::string_view kTypeName<CleanupReport> = "cleanup_report";
template <> constexpr std::string_view kTypeName<CleanupReply> = "cleanup_reply";
template <> constexpr std::string_view kTypeName<Watch> = "watch";
// clang-format on

// ---- decoding

Error protocol_error(std::string where, std::string message) {
  return make_error("protocol", std::move(message), std::move(where));
}

using MaybeError = std::optional<Error>;

// Where a value sits in the frame ("dispatch.spec.agent.command[2]"): a chain of nodes on the
// stack while reading, rendered only for an error, so the happy path allocates nothing.
struct Path {
  enum class Kind { kRoot, kField, kIndex, kKey };
  const Path* parent = nullptr;
  Kind kind = Kind::kRoot;
  std::string_view name;  // root name, field name or map key
  std::size_t index = 0;

  Path field(std::string_view key) const { return {this, Kind::kField, key}; }
  Path element(std::size_t i) const { return {this, Kind::kIndex, {}, i}; }
  Path entry(std::string_view key) const { return {this, Kind::kKey, key}; }

  std::string str() const {
    const std::string prefix = parent ? parent->str() : std::string();
    switch (kind) {
      case Kind::kRoot:
        return std::string(name);
      case Kind::kField:
        return prefix.empty() ? std::string(name) : prefix + "." + std::string(name);
      case Kind::kIndex:
        return prefix + "[" + std::to_string(index) + "]";
      case Kind::kKey:
        return prefix + "[" + quote(name) + "]";
    }
    return prefix;
  }
};

Error protocol_error(const Path& at, std::string message) {
  return protocol_error(at.str(), std::move(message));
}

MaybeError read(const msgpack::object& o, const Path& at, bool& out);
MaybeError read(const msgpack::object& o, const Path& at, int& out);
MaybeError read(const msgpack::object& o, const Path& at, int64_t& out);
MaybeError read(const msgpack::object& o, const Path& at, double& out);
MaybeError read(const msgpack::object& o, const Path& at, std::string& out);
MaybeError read(const msgpack::object& o, const Path& at, std::map<std::string, std::string>& out);
template <class T>
MaybeError read(const msgpack::object& o, const Path& at, std::vector<T>& out);
template <class T>
requires kIsRecord<T> MaybeError read(const msgpack::object& o, const Path& at, T& out);

std::string_view type_of(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL:
      return "nil";
    case msgpack::type::BOOLEAN:
      return "bool";
    case msgpack::type::POSITIVE_INTEGER:
    case msgpack::type::NEGATIVE_INTEGER:
      return "integer";
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      return "float";
    case msgpack::type::STR:
      return "string";
    case msgpack::type::BIN:
      return "binary";
    case msgpack::type::ARRAY:
      return "array";
    case msgpack::type::MAP:
      return "map";
    case msgpack::type::EXT:
      return "ext";
  }
  return "unknown";
}

Error type_error(const Path& at, std::string_view expected, const msgpack::object& o) {
  return protocol_error(at, "expected " + std::string(expected) + ", got " + std::string(type_of(o)));
}

std::string_view str_of(const msgpack::object& o) {
  return {o.via.str.ptr, o.via.str.size};
}

// Reads the fields of one MessagePack map. Keys are indexed once (sorted), so a lookup is a
// binary search and a hostile map with many keys costs n log n; duplicate keys are refused.
// The first error wins and later calls do nothing.
class MapReader {
 public:
  MapReader(const msgpack::object& map, const Path& path) : path_(path) {
    index_.reserve(map.via.map.size);
    for (const auto& kv : std::span(map.via.map.ptr, map.via.map.size)) {
      if (kv.key.type != msgpack::type::STR) {
        error_ = protocol_error(where_prefix(), "expected string key, got " + std::string(type_of(kv.key)));
        return;
      }
      index_.emplace_back(str_of(kv.key), &kv.val);
    }
    std::sort(index_.begin(), index_.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    const auto dup = std::adjacent_find(index_.begin(), index_.end(),
                                        [](const auto& a, const auto& b) { return a.first == b.first; });
    if (dup != index_.end()) error_ = protocol_error(where_prefix(), "duplicate key " + quote(dup->first));
  }

  template <class T, class Check = NoCheck>
  void req(std::string_view key, T& out, Check check = {}) {
    field(key, out, check, true);
  }

  template <class T, class Check = NoCheck>
  void opt(std::string_view key, T& out, Check check = {}) {
    field(key, out, check, false);
  }

  // Arbitrary bytes: a bin, or a str that is valid UTF-8 (NUL allowed).
  void bytes(std::string_view key, std::string& out) {
    const msgpack::object* o = present(key, true);
    if (o == nullptr) return;
    if (o->type == msgpack::type::BIN) {
      out.assign(o->via.bin.ptr, o->via.bin.size);
    } else if (o->type != msgpack::type::STR) {
      error_ = type_error(path_.field(key), "binary or string", *o);
    } else if (const auto bad = detail::utf8_error_offset(str_of(*o)); bad != std::string::npos) {
      error_ = protocol_error(path_.field(key), "invalid UTF-8 at byte " + std::to_string(bad));
    } else {
      out.assign(str_of(*o));
    }
  }

  template <class F>
  void rule(std::string_view key, F problem) {
    if (error_) return;
    if (Problem p = problem()) error_ = protocol_error(path_.field(key), std::move(*p));
  }

  // A rule on an enum-like field (checked on encode too).
  template <class F>
  void enum_rule(std::string_view key, F problem) {
    rule(key, std::move(problem));
  }

  // Names the map for error paths once its type is known (the frame's top-level map).
  void set_root(std::string_view name) { path_ = Path{nullptr, Path::Kind::kRoot, name}; }
  const MaybeError& error() const { return error_; }

 private:
  template <class T, class Check>
  void field(std::string_view key, T& out, const Check& check, bool required) {
    const msgpack::object* o = present(key, required);
    if (o == nullptr) return;
    const Path at = path_.field(key);
    if ((error_ = read(*o, at, out))) return;
    if (Problem p = check(out)) error_ = protocol_error(at, std::move(*p));
  }

  // The value under `key` when there is one to read: absent or nil is an error when required.
  const msgpack::object* present(std::string_view key, bool required) {
    if (error_) return nullptr;
    const auto it = std::lower_bound(index_.begin(), index_.end(), key,
                                     [](const auto& entry, std::string_view k) { return entry.first < k; });
    const bool found = it != index_.end() && it->first == key;
    if (found && it->second->type != msgpack::type::NIL) return it->second;
    if (required) error_ = protocol_error(path_.field(key), found ? "required field is nil" : "missing required field");
    return nullptr;
  }

  std::string where_prefix() const {
    std::string at = path_.str();
    return at.empty() ? "frame" : at;
  }

  std::vector<std::pair<std::string_view, const msgpack::object*>> index_;
  Path path_;
  MaybeError error_;
};

MaybeError read(const msgpack::object& o, const Path& at, bool& out) {
  if (o.type != msgpack::type::BOOLEAN) return type_error(at, "bool", o);
  out = o.via.boolean;
  return std::nullopt;
}

template <class I>
MaybeError read_integer(const msgpack::object& o, const Path& at, I& out) {
  using Limits = std::numeric_limits<I>;
  if (o.type == msgpack::type::POSITIVE_INTEGER && o.via.u64 <= static_cast<uint64_t>(Limits::max())) {
    out = static_cast<I>(o.via.u64);
  } else if (o.type == msgpack::type::NEGATIVE_INTEGER && o.via.i64 >= Limits::min()) {
    out = static_cast<I>(o.via.i64);
  } else if (o.type == msgpack::type::POSITIVE_INTEGER || o.type == msgpack::type::NEGATIVE_INTEGER) {
    const std::string value =
        o.type == msgpack::type::POSITIVE_INTEGER ? std::to_string(o.via.u64) : std::to_string(o.via.i64);
    return protocol_error(at, "integer " + value + " does not fit in " + std::to_string(Limits::digits + 1) + " bits");
  } else {
    return type_error(at, "integer", o);
  }
  return std::nullopt;
}

MaybeError read(const msgpack::object& o, const Path& at, int& out) {
  return read_integer(o, at, out);
}

MaybeError read(const msgpack::object& o, const Path& at, int64_t& out) {
  return read_integer(o, at, out);
}

MaybeError read(const msgpack::object& o, const Path& at, double& out) {
  if (o.type == msgpack::type::FLOAT32 || o.type == msgpack::type::FLOAT64) {
    out = o.via.f64;
  } else if (o.type == msgpack::type::POSITIVE_INTEGER) {
    out = static_cast<double>(o.via.u64);
  } else if (o.type == msgpack::type::NEGATIVE_INTEGER) {
    out = static_cast<double>(o.via.i64);
  } else {
    return type_error(at, "float", o);
  }
  return std::nullopt;
}

// Every str field: valid UTF-8 without NUL, which no path, argv entry or log line can carry.
MaybeError read(const msgpack::object& o, const Path& at, std::string& out) {
  if (o.type != msgpack::type::STR) return type_error(at, "string", o);
  const std::string_view s = str_of(o);
  if (const auto bad = detail::utf8_error_offset(s); bad != std::string::npos) {
    return protocol_error(at, "invalid UTF-8 at byte " + std::to_string(bad));
  }
  if (const auto nul = s.find('\0'); nul != s.npos) {
    return protocol_error(at, "NUL character at byte " + std::to_string(nul));
  }
  out.assign(s);
  return std::nullopt;
}

MaybeError read(const msgpack::object& o, const Path& at, std::map<std::string, std::string>& out) {
  if (o.type != msgpack::type::MAP) return type_error(at, "map", o);
  for (const auto& kv : std::span(o.via.map.ptr, o.via.map.size)) {
    std::string key;
    if (MaybeError e = read(kv.key, at, key)) {
      e->message = "key: " + e->message;
      return e;
    }
    const Path entry = at.entry(key);
    if (out.count(key) != 0) return protocol_error(entry, "duplicate key");
    if (MaybeError e = read(kv.val, entry, out[key])) return e;
  }
  return std::nullopt;
}

template <class T>
MaybeError read(const msgpack::object& o, const Path& at, std::vector<T>& out) {
  if (o.type != msgpack::type::ARRAY) return type_error(at, "array", o);
  out.resize(o.via.array.size);
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (MaybeError e = read(o.via.array.ptr[i], at.element(i), out[i])) return e;
  }
  return std::nullopt;
}

template <class T>
requires kIsRecord<T> MaybeError read(const msgpack::object& o, const Path& at, T& out) {
  if (o.type != msgpack::type::MAP) return type_error(at, "map", o);
  MapReader reader(o, at);
  describe(reader, out);
  return reader.error();
}

// Counts the values in a frame and measures its nesting without building anything, so that a
// frame of millions of tiny values is refused before the unpacker allocates an object for each.
class Census : public msgpack::null_visitor {
 public:
  enum class Verdict { kOk, kTooManyValues, kTooDeep };

  static Verdict of(std::string_view frame) {
    Census census;
    std::size_t offset = 0;
    msgpack::parse(frame.data(), frame.size(), offset, census);
    return census.verdict_;
  }

  bool visit_nil() { return count(); }
  bool visit_boolean(bool) { return count(); }
  bool visit_positive_integer(uint64_t) { return count(); }
  bool visit_negative_integer(int64_t) { return count(); }
  bool visit_float32(float) { return count(); }
  bool visit_float64(double) { return count(); }
  bool visit_str(const char*, uint32_t) { return count(); }
  bool visit_bin(const char*, uint32_t) { return count(); }
  bool visit_ext(const char*, uint32_t) { return count(); }
  bool start_array(uint32_t) { return enter(); }
  bool end_array() { return leave(); }
  bool start_map(uint32_t) { return enter(); }
  bool end_map() { return leave(); }

 private:
  bool count() {
    if (++values_ <= kMaxFrameValues) return true;
    verdict_ = Verdict::kTooManyValues;
    return false;
  }
  bool enter() {
    if (++depth_ <= kMaxNestingDepth) return count();
    verdict_ = Verdict::kTooDeep;
    return false;
  }
  bool leave() {
    --depth_;
    return true;
  }

  std::size_t values_ = 0;
  std::size_t depth_ = 0;
  Verdict verdict_ = Verdict::kOk;
};

// Unpacks exactly one MessagePack value filling the whole frame. Container sizes are bounded
// by the frame length (every element takes at least one byte), so a lying header cannot make
// the unpacker allocate more than the frame justifies.
MaybeError unpack_frame(std::string_view frame, msgpack::object_handle& out) {
  const std::size_t n = frame.size();
  const msgpack::unpack_limit limits(n, n / 2, n, n, n, kMaxNestingDepth);
  const auto reference_frame = [](msgpack::type::object_type, std::size_t, void*) { return true; };
  std::size_t offset = 0;
  try {
    out = msgpack::unpack(frame.data(), n, offset, reference_frame, nullptr, limits);
  } catch (const msgpack::insufficient_bytes&) {
    return protocol_error("frame", "truncated: the frame ends inside a MessagePack value");
  } catch (const msgpack::depth_size_overflow&) {
    return protocol_error("frame", "nesting deeper than " + std::to_string(kMaxNestingDepth) + " levels");
  } catch (const msgpack::size_overflow&) {
    return protocol_error("frame", "truncated or corrupt: a container claims more elements than the frame holds");
  } catch (const std::bad_alloc&) {
    return protocol_error("frame", "out of memory while unpacking");
  } catch (const std::exception& e) {
    return protocol_error("frame", std::string("malformed MessagePack: ") + e.what());
  } catch (...) {
    return protocol_error("frame", "malformed MessagePack");
  }
  if (offset != n) {
    return protocol_error("frame", std::to_string(n - offset) + " trailing bytes after the message");
  }
  return std::nullopt;
}

template <class T>
Result<Message> read_message(MapReader& reader) {
  reader.set_root(kTypeName<T>);
  T msg;
  describe(reader, msg);
  if (reader.error()) return *reader.error();
  return Message(std::move(msg));
}

template <std::size_t... I>
Result<Message> read_body(MapReader& reader, const std::string& type, std::index_sequence<I...>) {
  using Reader = Result<Message> (*)(MapReader&);
  static constexpr std::array<std::pair<std::string_view, Reader>, sizeof...(I)> kReaders = {
      {{kTypeName<std::variant_alternative_t<I, Message>>, &read_message<std::variant_alternative_t<I, Message>>}...}};
  for (const auto& [name, read_fn] : kReaders) {
    if (name == type) return read_fn(reader);
  }
  std::string known;
  for (const auto& entry : kReaders) known += (known.empty() ? "" : ", ") + std::string(entry.first);
  return protocol_error("type", "unknown message type " + quote(type) + "; this build knows " + known);
}

Result<Message> read_envelope(const msgpack::object& top) {
  if (top.type != msgpack::type::MAP) return type_error(Path{.name = "frame"}, "map", top);
  MapReader reader(top, Path{});  // unnamed until "type" is read: "v" and "type" are top-level
  int version = 0;
  reader.req("v", version);
  if (reader.error()) return *reader.error();
  if (version != kProtocolVersion) {
    return protocol_error("v", "protocol version " + std::to_string(version) + " received; this build speaks version " +
                                   std::to_string(kProtocolVersion));
  }
  std::string type;
  reader.req("type", type);
  if (reader.error()) return *reader.error();
  return read_body(reader, type, std::make_index_sequence<std::variant_size_v<Message>>());
}

// ---- encoding

// The buffer a frame is packed into, with its packer.
struct Sink {
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> pk{&buffer};
};

void write(Sink& out, bool v) {
  v ? out.pk.pack_true() : out.pk.pack_false();
}
void write(Sink& out, int v) {
  out.pk.pack_int(v);
}
void write(Sink& out, int64_t v) {
  out.pk.pack_int64(v);
}

// Always a float64 (0xcb), as PROTOCOL.md promises: msgpack-c's pack_double would write 2.0
// as the integer 2.
void write(Sink& out, double v) {
  uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof bits);
  std::array<char, 9> bytes{static_cast<char>(0xcb)};
  for (std::size_t i = 1; i < bytes.size(); ++i) {
    bytes[i] = static_cast<char>(bits >> (8 * (bytes.size() - 1 - i)));
  }
  out.buffer.write(bytes.data(), bytes.size());
}
// Text the receiver would refuse (ill-formed UTF-8, NUL: container output in a reason, say) is
// repaired rather than sent, so one bad byte cannot make a result undeliverable.
void write(Sink& out, std::string_view v) {
  const auto pack = [&out](std::string_view text) {
    out.pk.pack_str(static_cast<uint32_t>(text.size()));
    out.pk.pack_str_body(text.data(), static_cast<uint32_t>(text.size()));
  };
  if (detail::is_wire_text(v)) {
    pack(v);
  } else {
    pack(detail::to_wire_text(v));
  }
}
void write(Sink& out, const std::map<std::string, std::string>& m);
template <class T>
void write(Sink& out, const std::vector<T>& v);
template <class T>
requires kIsRecord<T>
void write(Sink& out, const T& record);

// Counts the keys a description writes, for the map header that precedes them.
struct FieldCounter {
  uint32_t count = 0;
  template <class T, class Check = NoCheck>
  void req(std::string_view, const T&, Check = {}) {
    ++count;
  }
  template <class T, class Check = NoCheck>
  void opt(std::string_view, const T&, Check = {}) {
    ++count;
  }
  void bytes(std::string_view, const std::string&) { ++count; }
  template <class F>
  void rule(std::string_view, F&&) {}
  template <class F>
  void enum_rule(std::string_view, F&&) {}
};

// Writes every field, optional ones included, so a frame always says everything.
struct MapWriter {
  Sink& out;
  template <class T, class Check = NoCheck>
  void req(std::string_view key, const T& v, Check = {}) {
    write(out, key);
    write(out, v);
  }
  template <class T, class Check = NoCheck>
  void opt(std::string_view key, const T& v, Check = {}) {
    req(key, v);
  }
  void bytes(std::string_view key, const std::string& v) {
    write(out, key);
    out.pk.pack_bin(static_cast<uint32_t>(v.size()));
    out.pk.pack_bin_body(v.data(), static_cast<uint32_t>(v.size()));
  }
  template <class F>
  void rule(std::string_view, F&&) {}
  template <class F>
  void enum_rule(std::string_view, F&&) {}
};

void write(Sink& out, const std::map<std::string, std::string>& m) {
  out.pk.pack_map(static_cast<uint32_t>(m.size()));
  for (const auto& [k, v] : m) {
    write(out, k);
    write(out, v);
  }
}

template <class T>
void write(Sink& out, const std::vector<T>& v) {
  out.pk.pack_array(static_cast<uint32_t>(v.size()));
  for (const T& e : v) write(out, e);
}

template <class T>
requires kIsRecord<T>
void write(Sink& out, const T& record) {
  FieldCounter counter;
  describe(counter, record);
  out.pk.pack_map(counter.count);
  MapWriter writer{out};
  describe(writer, record);
}

// ---- checks on encode: every enum-like value (OneOf fields, enum rules), nested records and
// lists of records included, so a sender never emits a frame its peer would refuse for one.

template <class T>
constexpr bool kIsRecordList = false;
template <class T>
constexpr bool kIsRecordList<std::vector<T>> = kIsRecord<T>;

template <class T>
requires kIsRecord<T> MaybeError check_enums(const T& record, const Path& at);

class EnumChecker {
 public:
  explicit EnumChecker(const Path& path) : path_(path) {}

  template <class T, class Check = NoCheck>
  void req(std::string_view key, const T& v, Check check = {}) {
    field(key, v, check);
  }
  template <class T, class Check = NoCheck>
  void opt(std::string_view key, const T& v, Check check = {}) {
    field(key, v, check);
  }
  void bytes(std::string_view, const std::string&) {}
  template <class F>
  void rule(std::string_view, F&&) {}
  template <class F>
  void enum_rule(std::string_view key, F problem) {
    if (error_) return;
    if (Problem p = problem()) error_ = protocol_error(path_.field(key), std::move(*p));
  }
  const MaybeError& error() const { return error_; }

 private:
  template <class T, class Check>
  void field(std::string_view key, const T& v, const Check& check) {
    if (error_) return;
    const Path at = path_.field(key);
    if constexpr (std::is_same_v<Check, OneOf>) {
      if (Problem p = check(v)) error_ = protocol_error(at, std::move(*p));
    } else if constexpr (kIsRecord<T>) {
      error_ = check_enums(v, at);
    } else if constexpr (kIsRecordList<T>) {
      for (std::size_t i = 0; i < v.size() && !error_; ++i) error_ = check_enums(v[i], at.element(i));
    }
  }

  Path path_;
  MaybeError error_;
};

template <class T>
requires kIsRecord<T> MaybeError check_enums(const T& record, const Path& at) {
  EnumChecker checker(at);
  describe(checker, record);
  return checker.error();
}

template <class T>
MaybeError check_message_enums(const T& msg) {
  EnumChecker checker(Path{nullptr, Path::Kind::kRoot, kTypeName<T>});
  describe(checker, msg);
  return checker.error();
}

template <class T>
std::string encode_message(const T& msg) {
  Sink out;
  FieldCounter counter;
  describe(counter, msg);
  out.pk.pack_map(counter.count + 2);
  MapWriter writer{out};
  writer.req("v", kProtocolVersion);
  writer.req("type", kTypeName<T>);
  describe(writer, msg);
  return std::string(out.buffer.data(), out.buffer.size());
}

}  // namespace

std::string type_name(const Message& m) {
  return std::visit([](const auto& msg) { return std::string(kTypeName<std::decay_t<decltype(msg)>>); }, m);
}

Result<std::string> try_encode(const Message& m) {
  MaybeError bad = std::visit([](const auto& msg) { return check_message_enums(msg); }, m);
  if (bad) return *bad;
  return detail::encode_unchecked(m);
}

std::string encode(const Message& m) {
  auto frame = try_encode(m);
  if (!frame.ok()) {
    throw std::invalid_argument("cannot encode a " + type_name(m) + ": field " + frame.error().where + ": " +
                                frame.error().message);
  }
  return std::move(*frame);
}

std::string detail::encode_unchecked(const Message& m) {
  return std::visit([](const auto& msg) { return encode_message(msg); }, m);
}

Result<Message> decode(std::string_view frame) {
  if (frame.size() > kMaxFrameBytes) {
    return protocol_error("frame", "frame of " + std::to_string(frame.size()) + " bytes exceeds the limit of " +
                                       std::to_string(kMaxFrameBytes) + " bytes");
  }
  try {
    switch (Census::of(frame)) {
      case Census::Verdict::kOk:
        break;
      case Census::Verdict::kTooManyValues:
        return protocol_error("frame", "more than " + std::to_string(kMaxFrameValues) + " MessagePack values");
      case Census::Verdict::kTooDeep:
        return protocol_error("frame", "nesting deeper than " + std::to_string(kMaxNestingDepth) + " levels");
    }
    msgpack::object_handle handle;
    if (MaybeError e = unpack_frame(frame, handle)) return *e;
    return read_envelope(handle.get());
  } catch (const std::exception& e) {  // bad_alloc while building the result, in practice
    return protocol_error("frame", std::string("cannot decode: ") + e.what());
  }
}

std::optional<ResultAck> result_lease(std::string_view frame) {
  if (frame.size() > kMaxFrameBytes) return std::nullopt;
  try {
    if (Census::of(frame) != Census::Verdict::kOk) return std::nullopt;
    msgpack::object_handle handle;
    if (unpack_frame(frame, handle)) return std::nullopt;
    const msgpack::object& top = handle.get();
    if (top.type != msgpack::type::MAP) return std::nullopt;
    MapReader reader(top, Path{});
    int version = 0;
    std::string type;
    reader.req("v", version);
    reader.req("type", type);
    if (reader.error() || version != kProtocolVersion || type != kTypeName<TaskResult>) return std::nullopt;
    ResultAck lease;
    describe_lease(reader, lease);
    if (reader.error()) return std::nullopt;
    return lease;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace polyphony::protocol
