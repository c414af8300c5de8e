// One attempt of one task on this worker: provision, run the agent, verify, land.
#include "worker-agent/task_run.h"

#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <future>
#include <mutex>
#include <sstream>
#include <thread>

#include "common/yaml_reader.h"
#include "worker-agent/agent_output.h"
#include "worker-agent/failure_excerpt.h"

namespace polyphony {

namespace fs = std::filesystem;
using FK = protocol::FailureKind;

std::map<std::string, std::string> run_labels(const protocol::RunSpec& spec, const std::string& role,
                                              const std::string& worker_id) {
  return {{"polyphony.task", spec.task_id},
          {"polyphony.worker", worker_id},
          {"polyphony.attempt", std::to_string(spec.attempt)},
          {"polyphony.epoch", std::to_string(spec.epoch)},
          {"polyphony.role", role}};
}

WarmKey warm_key(const protocol::RunSpec& spec, int uid, int gid, const std::string& hosts_file,
                 const std::string& runner, const ContainerLimits& limits) {
  WarmKey key;
  key.runner = runner;
  key.limits = limits;
  key.image = spec.image;
  key.user = std::to_string(uid) + ":" + std::to_string(gid);
  key.network_mode = spec.network_mode;
  key.memory_bytes = spec.memory_bytes;
  key.nano_cpus = static_cast<int64_t>(spec.cpus * 1e9);
  key.repo_url = spec.repo_url;
  key.base_branch = spec.base_branch;
  for (const auto& m : spec.agent.mounts) key.mounts.push_back({m.host_path, m.container_path, true});
  // Without a network the engine writes no /etc/hosts: localhost must still resolve for tests.
  if (spec.network_mode == "none" && !hosts_file.empty()) key.mounts.push_back({hosts_file, "/etc/hosts", true});
  return key;
}

Result<std::string> verify_from_repo_file(const std::string& text) {
  YamlReader y(".polyphony.yaml");
  auto doc = y.load_string(text);
  if (!doc.ok()) return doc.error();
  if (doc->IsNull()) return std::string();
  POLY_TRY(y.check_keys(*doc, {"verify"}, ".polyphony.yaml"));
  if (!(*doc)["verify"].IsDefined()) return std::string();
  return y.as_string((*doc)["verify"], "verify");
}

// An agent failure that is not the task's fault, so another agent should take the attempt:
// the CLI is missing or not executable (126, 127), it died on a signal, or its output says the
// provider refused it (rate limit, quota, authentication).
bool looks_unavailable(int exit_code, const std::string& tail) {
  if (exit_code == 126 || exit_code == 127 || (exit_code > 128 && exit_code != 137)) return true;
  std::string t;
  for (char c : tail) t += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* p :
       {"rate limit", "rate-limit", "ratelimit", "too many requests", "quota exceeded", "unauthorized",
        "authentication failed", "invalid api key", "not logged in", "command not found", "401 ", "429 "}) {
    if (t.find(p) != std::string::npos) return true;
  }
  return false;
}

Result<std::string> choose_verify(const protocol::RunSpec& spec, const Workspace& ws, RunContext& ctx) {
  auto file = ctx.workspaces.read_at_base(ws, ".polyphony.yaml");
  if (!file.ok()) return file.error();
  if (file->has_value()) {
    auto v = verify_from_repo_file(**file);
    if (!v.ok()) return v.error();
    if (!v->empty()) return *v;
  }
  return spec.verify_command;
}

// The reviewer's verdict file: "approve" or "changes requested" on its first line.
std::optional<Verdict> parse_verdict(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::string word;
    for (char c : line) {
      if (std::isalpha(static_cast<unsigned char>(c)))
        word += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      else if (!word.empty() && c != ' ' && c != '_' && c != '-')
        break;
    }
    if (word.empty()) continue;
    std::string rest((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (rest.size() > 8192) rest.resize(8192);
    if (word.rfind("approve", 0) == 0 || word == "lgtm") return Verdict{true, rest};
    if (word.rfind("changes", 0) == 0 || word.rfind("request", 0) == 0 || word.rfind("reject", 0) == 0) {
      return Verdict{false, rest};
    }
    return std::nullopt;
  }
  return std::nullopt;
}

namespace {

// Carries the attempt's identity into every message it emits.
class Attempt {
 public:
  Attempt(const protocol::RunSpec& spec, RunContext& ctx) : spec_(spec), ctx_(ctx) {}

  void update(const std::string& state, const std::string& detail = {}) {
    state_ = state;
    protocol::TaskUpdate u;
    u.task_id = spec_.task_id;
    u.attempt = spec_.attempt;
    u.epoch = spec_.epoch;
    u.state = state;
    u.detail = detail;
    ctx_.emit(u);
  }

  // Output of the attempt's processes, kept up to the worker's output limit; what passes it is
  // dropped, noted once in the log and in the task's history.
  void output(const std::string& stream, std::string_view data) {
    const int64_t limit = ctx_.limits.output_limit_bytes;
    if (limit > 0 && output_bytes_ + static_cast<int64_t>(data.size()) > limit) {
      if (!overflowed_) {
        overflowed_ = true;
        log(stream, data.substr(0, static_cast<size_t>(std::max<int64_t>(limit - output_bytes_, 0))));
        const std::string note =
            "output past " + human_bytes(limit) + " for this attempt is dropped (container.output_limit)";
        say(note);
        if (!state_.empty()) update(state_, note);
      }
      output_bytes_ = limit;
      return;
    }
    output_bytes_ += static_cast<int64_t>(data.size());
    log(stream, data);
  }

  void log(const std::string& stream, std::string_view data) {
    if (data.empty()) return;
    protocol::LogChunk c;
    c.task_id = spec_.task_id;
    c.attempt = spec_.attempt;
    c.epoch = spec_.epoch;
    c.stream = stream;
    c.seq = seq_++;
    c.data = std::string(data);
    ctx_.emit(c);
  }

  void say(const std::string& line) { log("system", "polyphony: " + line + "\n"); }

  protocol::TaskResult failed(FK kind, const std::string& reason) {
    const std::string name(protocol::to_string(kind));
    say("attempt failed (" + name + "): " + reason);
    auto r = base_result();
    r.outcome = "failed";
    r.failure_kind = name;
    r.reason = reason;
    return r;
  }

  protocol::TaskResult base_result() const {
    protocol::TaskResult r;
    r.task_id = spec_.task_id;
    r.attempt = spec_.attempt;
    r.epoch = spec_.epoch;
    r.branch = spec_.branch;
    r.usage = usage_;
    return r;
  }

  // An agent run's report, carried by the attempt's result whatever its outcome.
  void record(const protocol::AgentUsage& usage) { usage_.push_back(usage); }

  bool cancelled() const { return ctx_.cancelled != nullptr && ctx_.cancelled->load(); }

 private:
  const protocol::RunSpec& spec_;
  RunContext& ctx_;
  int64_t seq_ = 0;
  std::vector<protocol::AgentUsage> usage_;
  std::string state_;         // the last state sent, for notes
  int64_t output_bytes_ = 0;  // output kept so far
  bool overflowed_ = false;
};

struct ContainerOutcome {
  int exit_code = -1;
  bool timed_out = false;
  bool stalled = false;
  bool cancelled = false;
  bool halted = false;  // the observer asked to stop (a budget passed)
  std::string limit;    // the worker limit it passed and was stopped for (workspace, processes)
  std::string tail;     // last lines of output, for failure reasons
  std::string output;   // the output's last 32-64 KiB, where a failing test's lines are found
};

std::string tail_of(const std::string& text, size_t max_bytes = 600) {
  std::string t = text.size() > max_bytes ? text.substr(text.size() - max_bytes) : text;
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  return t;
}

using OutputSink = std::function<bool(int, std::string_view)>;
// Which worker limit the attempt has passed (a reason for people); nullopt while within them.
using LimitCheck = std::function<std::optional<std::string>()>;

// How often the watchdog looks at the workspace's size and the process limit.
constexpr auto kLimitCheckInterval = std::chrono::milliseconds(500);

// Runs `body` (a process whose output it hands to the sink, returning its exit code) under a
// watchdog that calls `stop` at the deadline, when the output stalls, on cancel, or when
// `over_limit` names a limit passed (checked now and then, and once more at the end), or when
// `observe` (shown every chunk, fd 1 stdout, 2 stderr) returns false; streams the output as
// `stream`.
Result<ContainerOutcome> watched(const std::string& stream, int64_t timeout_s, int64_t stall_timeout_s,
                                 Attempt& attempt, const std::function<void()>& stop,
                                 const std::function<Result<int>(const OutputSink&)>& body,
                                 const LimitCheck& over_limit = {}, const OutputSink& observe = {}) {
  ContainerOutcome out;
  std::atomic<bool> done{false};
  std::atomic<bool> timed_out{false};
  std::atomic<bool> stalled{false};
  std::atomic<bool> cancelled{false};
  std::atomic<bool> halted{false};
  using Clock = std::chrono::steady_clock;
  std::atomic<Clock::rep> last_output{Clock::now().time_since_epoch().count()};
  // The watchdog sleeps on a condition the body's end signals, so the step's end is not held up
  // by its polling interval.
  std::mutex wake_mutex;
  std::condition_variable wake;
  std::string limit;  // written by the watchdog only, read after it is joined
  std::thread watchdog([&] {
    const auto deadline = Clock::now() + std::chrono::seconds(timeout_s > 0 ? timeout_s : 1LL << 30);
    const auto stall = std::chrono::seconds(stall_timeout_s > 0 ? stall_timeout_s : 1LL << 30);
    auto next_check = Clock::now() + kLimitCheckInterval;
    std::unique_lock lock(wake_mutex);
    while (!done.load()) {
      if (attempt.cancelled()) cancelled = true;
      const auto now = Clock::now();
      if (now >= deadline) timed_out = true;
      if (now - Clock::time_point(Clock::duration(last_output.load())) >= stall) stalled = true;
      if (over_limit && now >= next_check) {
        next_check = now + kLimitCheckInterval;
        if (auto passed = over_limit()) limit = *passed;
      }
      if (cancelled || timed_out || stalled || halted || !limit.empty()) {
        lock.unlock();
        stop();
        return;
      }
      wake.wait_for(lock, std::chrono::milliseconds(50), [&] { return done.load(); });
    }
  });
  std::string captured;
  auto code = body([&](int fd, std::string_view data) {
    attempt.output(stream, data);
    if (observe && !halted && !observe(fd, data)) {
      halted = true;
      wake.notify_all();
    }
    last_output = Clock::now().time_since_epoch().count();
    captured.append(data);
    if (captured.size() > 64 * 1024) captured.erase(0, captured.size() - 32 * 1024);
    return true;
  });
  {
    std::lock_guard lock(wake_mutex);
    done = true;
  }
  wake.notify_all();
  watchdog.join();
  out.timed_out = timed_out;
  out.stalled = stalled;
  out.cancelled = cancelled;
  out.halted = halted;
  out.tail = tail_of(captured);
  out.output = std::move(captured);
  // A process that failed because it ran into a limit (a fork refused, a file too large) fails
  // for that limit.
  if (limit.empty() && over_limit) {
    if (auto passed = over_limit()) limit = *passed;
  }
  out.limit = limit;
  // A process stopped by the watchdog may leave the engine without an exit code: the flags say why.
  if (!code.ok()) {
    if (out.timed_out || out.stalled || out.cancelled || out.halted || !out.limit.empty()) return out;
    return code.error();
  }
  out.exit_code = *code;
  return out;
}

// Creates, starts and follows one container to its end, streaming its output as `stream`,
// and removes it. A watchdog stops it at the deadline or on cancel.
Result<ContainerOutcome> run_container(const ContainerSpec& cs, const std::string& stream, int64_t timeout_s,
                                       int64_t stall_timeout_s, Attempt& attempt, RunContext& ctx,
                                       const LimitCheck& over_limit = {}, const OutputSink& observe = {}) {
  auto id = ctx.docker.create_container(cs);
  if (!id.ok()) return id.error();
  struct Remover {
    DockerClient& d;
    std::string id;
    ~Remover() {
      auto s = d.remove_container(id);
      if (!s.ok()) spdlog::warn("cannot remove container {}: {}", id, s.error().to_string());
    }
  } remover{ctx.docker, *id};
  POLY_TRY(ctx.docker.start_container(*id));
  return watched(
      stream, timeout_s, stall_timeout_s, attempt, [&] { (void)ctx.docker.stop_container(*id, 2); },
      [&](const OutputSink& sink) -> Result<int> {
        auto logs = ctx.docker.stream_logs(*id, true, sink);
        if (!logs.ok()) spdlog::warn("logs of container {}: {}", *id, logs.error().to_string());
        return ctx.docker.wait_container(*id, std::chrono::seconds(60));
      },
      over_limit, observe);
}

int64_t ms_between(std::chrono::steady_clock::time_point from, std::chrono::steady_clock::time_point to) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(to - from).count();
}

// The environment every process of the attempt sees.
std::vector<std::string> attempt_env(const protocol::RunSpec& spec) {
  return {"POLYPHONY_TASK_ID=" + spec.task_id, "POLYPHONY_TASK_FILE=/polyphony/task.md",
          "POLYPHONY_BRANCH=" + spec.branch, "POLYPHONY_ATTEMPT=" + std::to_string(spec.attempt), "HOME=/home/agent"};
}

// A container of its own for one role of the attempt (the reviewer): the task container's
// mounts and limits, without the implementer's identity mounts.
ContainerSpec base_container(const protocol::RunSpec& spec, const Workspace& ws, const RunContext& ctx,
                             const std::string& role) {
  WarmKey key = warm_key(spec, ctx.container_uid, ctx.container_gid, ctx.hosts_file, "", ctx.limits);
  key.mounts.clear();
  ContainerSpec cs =
      task_container_spec(key, ws.repo_dir, ws.task_dir / "meta", ws.mirror_dir, run_labels(spec, role, ctx.worker_id));
  cs.env = attempt_env(spec);
  return cs;
}

// Text for an agent's task file that must not read as code: indented lines are never a
// fenced block, so the scripted agent runs nothing from it.
std::string quoted(const std::string& text) {
  std::string out = "    ";
  for (char c : text) {
    out += c;
    if (c == '\n') out += "    ";
  }
  return out;
}

Status write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) return make_error("io", "cannot write " + path.filename().string(), path.string());
  return {};
}

Status make_readable_dir(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return make_error("io", "cannot create " + dir.string() + ": " + ec.message(), dir.string());
  fs::permissions(dir,
                  fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec | fs::perms::others_read |
                      fs::perms::others_exec,
                  ec);
  return {};
}

Status write_task_file(const protocol::RunSpec& spec, const Workspace& ws) {
  fs::path meta = ws.task_dir / "meta";
  POLY_TRY(make_readable_dir(meta));
  std::string text = spec.title + "\n\n" + spec.body + (spec.body.empty() || spec.body.back() == '\n' ? "" : "\n");
  if (!spec.feedback.empty())
    text += "\n## An earlier attempt failed; do not repeat it\n\n" + quoted(spec.feedback) + "\n";
  return write_file(meta / "task.md", text);
}

// How an agent starts in its container: a fixed prelude (it never holds task text) copies the
// identity's files into the run's own writable config directory, then execs the agent's argv
// with its stdin. $1: the files (read-only, under /polyphony), $2: the config directory ("" :
// none), $3: the stdin file ("" : /dev/null), then the argv.
constexpr const char* kAgentPrelude =
    "set -e; if [ -n \"$2\" ]; then umask 077; mkdir -p \"$2\"; "
    "if [ -d \"$1\" ]; then cp -R \"$1\"/. \"$2\"/; fi; fi; "
    "in=$3; shift 3; if [ -n \"$in\" ]; then exec \"$@\" <\"$in\"; fi; exec \"$@\" </dev/null";

struct AgentLaunch {
  std::vector<std::string> argv;
  std::vector<std::string> env;  // the config directory's variable, when the profile names one
};

// Writes a file root owns the directory of (the meta directory, mounted read-only) for the
// container user to read.
Status write_for_container(const fs::path& path, const std::string& text, int mode, const RunContext& ctx) {
  POLY_TRY(write_file(path, text));
  if (::chmod(path.c_str(), static_cast<mode_t>(mode)) != 0 ||
      ::chown(path.c_str(), static_cast<uid_t>(ctx.container_uid), static_cast<gid_t>(ctx.container_gid)) != 0) {
    return make_error("io", std::string("cannot hand to the container user: ") + std::strerror(errno), path.string());
  }
  return ok_status();
}

Status make_container_dir(const fs::path& dir, const RunContext& ctx) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return make_error("io", "cannot create " + dir.string() + ": " + ec.message(), dir.string());
  if (::chmod(dir.c_str(), 0700) != 0 ||
      ::chown(dir.c_str(), static_cast<uid_t>(ctx.container_uid), static_cast<gid_t>(ctx.container_gid)) != 0) {
    return make_error("io", std::string("cannot hand to the container user: ") + std::strerror(errno), dir.string());
  }
  return ok_status();
}

// Puts the agent's identity files and stdin in `meta` (the host side of /polyphony in its
// container) under names of its `role`, and returns the argv that starts it. Every run gets
// a fresh config directory: the host's login is never written to.
Result<AgentLaunch> prepare_agent(const protocol::AgentSpec& agent, const std::vector<std::string>& command,
                                  const std::string& stdin_text, const fs::path& meta, const std::string& role,
                                  const RunContext& ctx) {
  AgentLaunch launch;
  const bool has_config = !agent.config_env.empty() || !agent.files.empty();
  if (!has_config && stdin_text.empty()) {
    launch.argv = command;
    return launch;
  }
  const fs::path files_dir = meta / (role + "-config");
  std::error_code ec;
  fs::remove_all(files_dir, ec);
  if (!agent.files.empty()) {
    POLY_TRY(make_container_dir(files_dir, ctx));
    for (const auto& f : agent.files) {
      const fs::path path = files_dir / f.path;
      for (fs::path dir = path.parent_path(); dir != files_dir; dir = dir.parent_path()) {
        POLY_TRY(make_container_dir(dir, ctx));
      }
      POLY_TRY(write_for_container(path, f.content, f.mode & 0700, ctx));
    }
  }
  std::string stdin_in_container;
  if (!stdin_text.empty()) {
    POLY_TRY(write_for_container(meta / (role + "-stdin.md"), stdin_text, 0600, ctx));
    stdin_in_container = "/polyphony/" + role + "-stdin.md";
  }
  const std::string config_dir = has_config ? "/home/agent/.polyphony/" + role + "-" + agent.name : "";
  if (!agent.config_env.empty()) launch.env.push_back(agent.config_env + "=" + config_dir);
  launch.argv = {
      "sh", "-c", kAgentPrelude, "polyphony-agent", "/polyphony/" + role + "-config", config_dir, stdin_in_container};
  launch.argv.insert(launch.argv.end(), command.begin(), command.end());
  return launch;
}

// Reads the agent's structured output and stops it when it passes its budget.
class AgentWatch {
 public:
  AgentWatch(const protocol::AgentSpec& agent, const std::string& role, const protocol::RunSpec& spec)
      : output_(agent.output_format), agent_(agent.name), role_(role), spec_(spec) {}

  // The observer for watched(): false once a budget is passed.
  OutputSink observer() {
    return [this](int fd, std::string_view data) {
      output_.feed(fd, data);
      const auto& u = output_.usage();
      if (spec_.max_turns > 0 && u.turns > spec_.max_turns) {
        over_ = "agent " + agent_ + " passed its budget of " + std::to_string(spec_.max_turns) + " turns";
      } else if (spec_.max_tokens > 0 && output_.tokens() > spec_.max_tokens) {
        over_ = "agent " + agent_ + " passed its budget of " + std::to_string(spec_.max_tokens) + " tokens (used " +
                std::to_string(output_.tokens()) + ")";
      }
      return over_.empty();
    };
  }

  // The run ended: what it reported, for the attempt's result.
  protocol::AgentUsage finish() {
    output_.finish();
    protocol::AgentUsage u = output_.usage();
    u.role = role_;
    u.agent = agent_;
    return u;
  }

  const AgentOutput& output() const { return output_; }
  const std::string& over_budget() const { return over_; }

  // Why a run that exited `exit_code` failed, as {failure kind, reason}; nullopt: it did not.
  std::optional<std::pair<FK, std::string>> judge(int exit_code, const std::string& tail) const {
    const std::string who = role_ == "reviewer" ? "reviewer " + agent_ : "agent " + agent_;
    if (!output_.structured()) {
      if (exit_code == 0) return std::nullopt;
      return std::pair{looks_unavailable(exit_code, tail) ? FK::kAgentUnavailable : FK::kAgent,
                       who + " exited with status " + std::to_string(exit_code) + (tail.empty() ? "" : ": " + tail)};
    }
    const std::string said = output_.error().empty() ? "" : ": " + output_.error();
    if ((exit_code != 0 || output_.failed()) && !output_.refusal().empty()) {
      return std::pair{FK::kAgentUnavailable, "the model API refused " + who + " (" + output_.refusal() + ")" + said};
    }
    if (exit_code != 0) {
      const std::string why = said.empty() && !tail.empty() ? ": " + tail : said;
      return std::pair{looks_unavailable(exit_code, "") ? FK::kAgentUnavailable : FK::kAgent,
                       who + " exited with status " + std::to_string(exit_code) + why};
    }
    if (output_.failed()) return std::pair{FK::kAgent, who + " reported that its run failed" + said};
    if (!output_.finished()) {
      return std::pair{FK::kAgent, who + " exited without the closing event of its structured output (" +
                                       std::to_string(output_.malformed_lines()) +
                                       " lines were not JSON events): how its run ended "
                                       "is unknown"};
    }
    return std::nullopt;
  }

 private:
  AgentOutput output_;
  std::string agent_;
  std::string role_;
  const protocol::RunSpec& spec_;
  std::string over_;
};

// A missing image, network or other thing the spec names is the operator's to fix (retrying
// cannot help), said in the engine's own words; anything else from the engine is infrastructure.
protocol::TaskResult container_failure(Attempt& attempt, const protocol::RunSpec& spec, const std::string& role,
                                       const Error& e) {
  if (e.code == "no_runner") return attempt.failed(FK::kConfig, role + " container: " + e.message);
  if (e.code == "not_found" && names_missing_image(e.message)) {
    return attempt.failed(FK::kConfig, role + " container: image " + spec.image +
                                           " is missing on this worker: run `polyphony image build` (" + e.to_string() +
                                           ")");
  }
  if (e.code == "not_found") {
    const bool network = e.message.find("network") != std::string::npos;
    return attempt.failed(FK::kConfig, role + " container: the Docker engine says: " + e.message +
                                           (network ? " (config.yaml container.network is '" + spec.network_mode +
                                                          "'; `polyphony doctor` checks it against the engine)"
                                                    : ""));
  }
  if (role == "agent" && (e.message.find("executable file not found") != std::string::npos ||
                          e.message.find("no such file or directory") != std::string::npos)) {
    return attempt.failed(FK::kAgentUnavailable, "agent " + spec.agent.name +
                                                     " cannot start: its CLI is missing from image " + spec.image +
                                                     " (" + e.message + ")");
  }
  return attempt.failed(FK::kInfra, role + " container: " + e.to_string());
}

// The first failing line says why verify failed, not the last line (often a later test that
// passed); output without one is quoted as its end, and said to be.
std::string verify_failure_reason(const std::string& command, int exit_code, const std::string& output) {
  const FailureExcerpt excerpt = failure_excerpt(output);
  const std::string head = "verify `" + command + "` exited with status " + std::to_string(exit_code);
  if (excerpt.text.empty()) return head + " and printed nothing";
  if (excerpt.at_failure) return head + ": " + excerpt.text;
  return head + ", printing no line that reads as a failure; its output ends: " + excerpt.text;
}

// Landings on one origin are serialized within this worker (its merge queue): a branch is
// rebased onto the base as it is, verified again when it moved, and only then pushed. Other
// workers' landings are caught by the push itself, which only fast-forwards.
std::mutex& land_lock(const std::string& repo_url) {
  static std::mutex guard;
  static std::map<std::string, std::unique_ptr<std::mutex>> locks;
  std::lock_guard<std::mutex> g(guard);
  auto& m = locks[repo_url];
  if (!m) m = std::make_unique<std::mutex>();
  return *m;
}

// Removes the containers an earlier attempt of the same task may have left on this engine.
void clear_leftover_containers(const protocol::RunSpec& spec, RunContext& ctx) {
  auto old = task_containers(ctx.docker, spec.task_id);
  if (old.ok()) {
    for (const auto& c : *old) (void)ctx.docker.remove_container(c.id);
  }
}

}  // namespace

namespace {

// Attempts to bring a verified branch onto a base that keeps moving before giving up (conflict).
constexpr int kMaxLandRounds = 5;

class Run {
 public:
  Run(const protocol::RunSpec& spec, RunContext& ctx) : spec_(spec), ctx_(ctx), attempt_(spec, ctx) {}

  protocol::TaskResult execute();

 private:
  std::optional<protocol::TaskResult> run_agent(const std::vector<std::string>& command, int round);
  std::optional<protocol::TaskResult> verify();
  Result<Verdict> review(int round);
  std::optional<protocol::TaskResult> implement_and_review();
  protocol::TaskResult land();
  // GitHub mode (land_mode "branch"): push only the task branch; a pull request lands it.
  protocol::TaskResult push_branch();
  void hold_for_tests(const char* state);
  protocol::TaskResult attempt_work();
  // The task container, created now when the attempt took none from the pool.
  Status ensure_container();
  // Runs `cmd` in the task container as the container user, under the watchdog. `stdout_to`
  // set: the process's stdout goes there (data, not the log) until it returns an error, which is
  // kept in `stdout_status`.
  Result<ContainerOutcome> exec_in(const std::vector<std::string>& cmd, std::vector<std::string> env,
                                   const std::string& stream, int64_t timeout_s, int64_t stall_timeout_s,
                                   const OutputSink& observe = {},
                                   const std::function<Status(std::string_view)>& stdout_to = {},
                                   Status* stdout_status = nullptr);
  // Inside the container, as its user, once everything the agent left running is killed: commits
  // what the agent left uncommitted and writes the branch as a bundle to stdout, which is taken
  // into pinned.git and pinned. A failure is the attempt's result.
  std::optional<protocol::TaskResult> collect_branch();
  // Says so when verify's output shows the workspace's branch away from the pinned commit.
  void note_branch_moved(const std::string& verify_tail);
  void release_container();
  // Which of the worker's limits the attempt has passed: the workspace's size, or the task
  // container's process limit (a fork refused for it); nullopt while within them.
  std::optional<std::string> limit_passed();
  // Rebases the branch onto the origin's base; `moved_to` is the new base when it moved. A
  // failure (conflict, infra) is the attempt's result.
  std::optional<protocol::TaskResult> rebase_onto_base(std::optional<std::string>& moved_to);
  std::optional<protocol::TaskResult> already_in_base();
  // Rebases the branch onto the origin's base when it moved, and says so (no verify here).
  std::optional<protocol::TaskResult> catch_up_with_base();

  const protocol::RunSpec& spec_;
  RunContext& ctx_;
  Attempt attempt_;
  WarmKey key_;
  Workspace ws_;
  std::string verify_command_;
  std::string container_;                  // the task container's id, once there is one
  int container_pid_ = 0;                  // its PID 1 on the host, for its cgroup; 0: unknown
  std::shared_ptr<RunnerChannel> runner_;  // its PID 1, connected
  // The pinned commit, which verify brings the workspace to first.
  std::string pinned_;
};

std::optional<std::string> Run::limit_passed() {
  const ContainerLimits& l = ctx_.limits;
  if (l.workspace_limit_bytes > 0 && !ws_.repo_dir.empty()) {
    const int64_t used = disk_usage(ws_.repo_dir, l.workspace_limit_bytes);
    if (used >= l.workspace_limit_bytes) {
      return "the workspace grew past its limit of " + human_bytes(l.workspace_limit_bytes) +
             " (container.workspace_limit) and the attempt was stopped";
    }
  }
  if (l.pids_limit > 0 && container_pid_ > 0) {
    auto refused = pids_limit_refusals(container_pid_);
    if (refused && *refused > 0) {
      return "the container ran into its limit of " + std::to_string(l.pids_limit) +
             " processes (container.pids_limit; " + std::to_string(*refused) +
             " forks refused: a fork bomb, or work that needs a higher limit) and the attempt was stopped";
    }
  }
  return std::nullopt;
}

Status Run::ensure_container() {
  if (!container_.empty()) return ok_status();
  ContainerSpec cs = task_container_spec(key_, ws_.repo_dir, ws_.task_dir / "meta", ws_.mirror_dir,
                                         run_labels(spec_, "task", ctx_.worker_id));
  cs.name = task_container_name(spec_.task_id, spec_.epoch);
  auto started = start_task_container(ctx_.docker, key_, cs, ws_.task_dir / "meta");
  if (!started.ok()) return started.error();
  container_ = started->id;
  runner_ = started->runner;
  return ok_status();
}

// The task container's PID 1 on the host, looked up once per container.
int host_pid_of(DockerClient& docker, const std::string& container) {
  auto pid = docker.container_pid(container);
  return pid.ok() ? *pid : 0;
}

Result<ContainerOutcome> Run::exec_in(const std::vector<std::string>& cmd, std::vector<std::string> env,
                                      const std::string& stream, int64_t timeout_s, int64_t stall_timeout_s,
                                      const OutputSink& observe,
                                      const std::function<Status(std::string_view)>& stdout_to, Status* stdout_status) {
  POLY_TRY(ensure_container());
  if (container_pid_ == 0 && ctx_.limits.pids_limit > 0) container_pid_ = host_pid_of(ctx_.docker, container_);
  ExecSpec exec{cmd, std::move(env), "", "/workspace"};
  // Hanging up on the runner ends everything in the container (and the stop makes sure): the
  // attempt is over then.
  return watched(
      stream, timeout_s, stall_timeout_s, attempt_,
      [&] {
        runner_->hang_up();
        (void)ctx_.docker.stop_container(container_, 0);
      },
      [&](const OutputSink& sink) {
        if (!stdout_to) return runner_->run(exec, sink);
        return runner_->run(exec, [&](int fd, std::string_view data) {
          if (fd != 1) return sink(fd, data);
          if (stdout_status->ok()) *stdout_status = stdout_to(data);
          return true;
        });
      },
      [this] { return limit_passed(); }, observe);
}

// Run in the container by collect_branch, as its user: kill(-1) first ends every process the
// agent left (all but the runner and this shell). git runs on /workspace whatever core.worktree
// says, with no hooks and no fsmonitor, so nothing new is started; everything but the bundle
// goes to stderr. Exit 3: HEAD is not on the branch; 5: the branch holds nothing past the base.
constexpr const char* kCollectScript = R"sh(kill -KILL -1 2>/dev/null
branch=$1 base=$2 message=$3 name=$4 email=$5
g() { git --git-dir=/workspace/.git --work-tree=/workspace -c core.hooksPath=/dev/null -c core.fsmonitor=false "$@"; }
[ "$(g symbolic-ref -q HEAD)" = "refs/heads/$branch" ] || { echo "HEAD is not on branch $branch" >&2; exit 3; }
g add -A >&2 || exit 4
g diff --cached --quiet ||
  g -c user.name="$name" -c user.email="$email" commit -q --no-verify -m "$message" >&2 || exit 4
[ "$(g rev-parse "refs/heads/$branch")" != "$base" ] || exit 5
exec git --git-dir=/workspace/.git -c core.hooksPath=/dev/null bundle create --quiet - "^$base" "refs/heads/$branch"
)sh";

// Run in the container by verify, as its user, before the verify command: kill(-1) ends what
// the agent or an earlier step left. Then the clone's git state is put back as the worker made
// it, so nothing of the agent's can stand between the pinned commit and the files verify sees:
// its config (filters, core.worktree, checkStat, extensions) rewritten and no global or system
// config or attributes read (the agent can write its home); info/attributes, grafts,
// shallow and a commondir removed; its objects replaced by the mirror's (alternates) and the
// pinned branch's from the worker's bundle (hashed as they are indexed); its refs replaced by
// the branch and the base's remote-tracking ref. The workspace is brought to exactly the
// pinned commit: untracked and ignored files go too (nested repositories included), so nothing
// the agent left beside the commit can make verify pass; then the command runs (eval in a subshell, so an `exit` in it
// still comes back here; the command is an argument, never spliced into the script), and what it left running is killed
// too before its status is reported, so nothing of it outlives verify into review or landing. 125: the workspace could
// not be brought there.
constexpr const char* kVerifyScript = R"sh(kill -KILL -1 2>/dev/null
polyphony_cmd=$8 polyphony_branch=$1
polyphony_sync() {
  export HOME=/nonexistent XDG_CONFIG_HOME=/nonexistent GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null \
    GIT_ATTR_NOSYSTEM=1
  cd /workspace && [ -d .git ] && [ ! -L .git ] || return 1
  rm -rf .git/objects .git/refs .git/packed-refs .git/logs .git/HEAD .git/commondir .git/shallow \
    .git/info/attributes .git/info/grafts .git/config.worktree || return 1
  { [ -f .git/index ] && [ ! -L .git/index ]; } || rm -f .git/index || return 1
  mkdir -p .git/objects/info .git/objects/pack .git/refs/heads .git/refs/tags || return 1
  printf '%s\n' "$3" > .git/objects/info/alternates && printf 'ref: refs/heads/%s\n' "$1" > .git/HEAD || return 1
  printf '[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n\tlogallrefupdates = true\n'\
'[remote "origin"]\n\turl = %s\n\tfetch = +refs/heads/*:refs/remotes/origin/*\n' "$4" > .git/config || return 1
  g() { git --git-dir=/workspace/.git --work-tree=/workspace -c core.hooksPath=/dev/null "$@"; }
  g bundle unbundle "$5" >/dev/null && g update-ref "refs/remotes/origin/$6" "$7" &&
    g checkout -q --force -B "$1" "$2" && g clean -ffdxq
}
(polyphony_sync "$@") || { echo "polyphony: cannot bring /workspace to the pinned commit $2" >&2; exit 125; }
unset -f polyphony_sync
set --
(eval "$polyphony_cmd")
polyphony_status=$?
kill -KILL -1 2>/dev/null
if [ $polyphony_status -eq 0 ]; then
  polyphony_now=$(cd / && git --git-dir=/workspace/.git -c core.hooksPath=/dev/null -c core.fsmonitor=false \
    rev-parse -q --verify "refs/heads/$polyphony_branch" 2>/dev/null)
  printf '\n%s%s\n' "polyphony: after verify the workspace's branch is at " "${polyphony_now:-nothing}"
fi
exit $polyphony_status
)sh";

// The last line kVerifyScript prints when verify passed.
constexpr std::string_view kBranchAfterVerify = "polyphony: after verify the workspace's branch is at ";

// The most of a branch's bundle taken from a container.
constexpr size_t kMaxBundleBytes = size_t{1} << 30;

std::optional<protocol::TaskResult> Run::collect_branch() {
  const auto started = std::chrono::steady_clock::now();
  auto import = ctx_.workspaces.import_branch(ws_, kMaxBundleBytes);
  if (!import.ok()) return attempt_.failed(FK::kInfra, "taking in the agent's branch: " + import.error().to_string());
  const CommitIdentity who = ctx_.workspaces.commit_identity();
  Status taken = ok_status();
  auto run = exec_in(
      {"sh", "-c", kCollectScript, "polyphony-collect", spec_.branch, ws_.base_commit,
       "polyphony: changes left uncommitted by " + spec_.agent.name, who.name, who.email},
      attempt_env(spec_), "agent", spec_.verify_timeout_s, 0, {},
      [&](std::string_view data) { return (*import)->add(data); }, &taken);
  if (!run.ok()) return container_failure(attempt_, spec_, "agent", run.error());
  if (run->cancelled) return attempt_.failed(FK::kCancelled, "cancelled while the agent's work was committed");
  if (run->timed_out) return attempt_.failed(FK::kTimeout, "committing the agent's work ran out of time");
  if (run->exit_code == 5) return attempt_.failed(FK::kAgent, "agent " + spec_.agent.name + " made no changes");
  if (run->exit_code == 3) {
    return attempt_.failed(FK::kAgent, "agent " + spec_.agent.name + " left the workspace off branch " + spec_.branch);
  }
  if (run->exit_code != 0 || !taken.ok()) {
    const std::string why = !taken.ok() ? taken.error().to_string()
                                        : "exited with status " + std::to_string(run->exit_code) +
                                              (run->tail.empty() ? "" : ": " + run->tail);
    return attempt_.failed(FK::kAgent, "the agent's branch could not be committed and taken in: " + why);
  }
  auto pinned = ctx_.workspaces.pin_import(ws_, **import);
  if (!pinned.ok()) {
    return attempt_.failed(pinned.error().code == "bad_bundle" ? FK::kAgent : FK::kInfra,
                           "taking in the agent's branch: " + pinned.error().to_string());
  }
  pinned_ = *pinned;
  spdlog::info("task {}: branch committed in the container and pinned at {} in {} ms", spec_.task_id,
               pinned_.substr(0, 12), ms_between(started, std::chrono::steady_clock::now()));
  return std::nullopt;
}

std::optional<protocol::TaskResult> Run::rebase_onto_base(std::optional<std::string>& moved_to) {
  auto moved = ctx_.workspaces.rebase_onto_origin(ws_);
  if (!moved.ok()) {
    return attempt_.failed(moved.error().code == "conflict" ? FK::kConflict : FK::kInfra,
                           "rebasing onto " + ws_.base_branch + ": " + moved.error().to_string());
  }
  moved_to = *moved;
  if (!moved_to) return std::nullopt;
  // The rebased commit exists only here: verify takes it to the workspace in its bundle.
  auto head = ctx_.workspaces.head_commit(ws_);
  if (!head.ok()) return attempt_.failed(FK::kInfra, "reading the rebased branch: " + head.error().to_string());
  pinned_ = *head;
  return std::nullopt;
}

std::optional<protocol::TaskResult> Run::catch_up_with_base() {
  std::optional<std::string> moved_to;
  if (auto failed = rebase_onto_base(moved_to)) return failed;
  if (moved_to) {
    attempt_.say(ws_.base_branch + " moved to " + moved_to->substr(0, 12) + " while the agent worked: rebased onto it");
  }
  return std::nullopt;
}

void Run::release_container() {
  if (runner_) runner_->hang_up();
  runner_.reset();
  container_pid_ = 0;
  if (container_.empty()) return;
  if (ctx_.pool != nullptr) {
    ctx_.pool->dispose(container_);
  } else if (auto s = ctx_.docker.remove_container(container_); !s.ok()) {
    spdlog::warn("cannot remove container {}: {}", container_.substr(0, 12), s.error().to_string());
  }
  container_.clear();
}

// Fault injection for the kill and cancel tests, unset in production: the attempt stays in
// `state` until the file POLYPHONY_TEST_HOLD_<STATE>_UNTIL names exists (the test releases it),
// so a test can act there without racing a timer. A cancel ends the hold early. The worker's
// log says when a hold starts, which is what tests wait for.
void Run::hold_for_tests(const char* state) {
  const char* until_file = std::getenv((std::string("POLYPHONY_TEST_HOLD_") + state + "_UNTIL").c_str());
  if (until_file == nullptr) return;
  // A file is never waited on for more than ten minutes: a test that died keeps no attempt forever.
  const auto until = std::chrono::steady_clock::now() + std::chrono::minutes(10);
  spdlog::info("task {}: test hold in {} starts", spec_.task_id, state);
  while (std::chrono::steady_clock::now() < until && !attempt_.cancelled()) {
    if (std::filesystem::exists(until_file)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  spdlog::info("task {}: test hold in {} ends", spec_.task_id, state);
}

std::optional<protocol::TaskResult> Run::run_agent(const std::vector<std::string>& command, int round) {
  auto env = attempt_env(spec_);
  for (const auto& [k, v] : spec_.agent.env) env.push_back(k + "=" + v);
  env.push_back("POLYPHONY_ROLE=implementer");
  env.push_back("POLYPHONY_ROUND=" + std::to_string(round + 1));
  const bool rework = round > 0 && !spec_.rework_command.empty();
  auto launch = prepare_agent(spec_.agent, command, rework ? spec_.rework_stdin : spec_.agent.stdin_text,
                              ws_.task_dir / "meta", "implementer", ctx_);
  if (!launch.ok()) return attempt_.failed(FK::kInfra, "preparing the agent's files: " + launch.error().to_string());
  env.insert(env.end(), launch->env.begin(), launch->env.end());
  AgentWatch watch(spec_.agent, "implementer", spec_);
  const auto started = std::chrono::steady_clock::now();
  auto run =
      exec_in(launch->argv, std::move(env), "agent", spec_.run_timeout_s, spec_.stall_timeout_s, watch.observer());
  const auto ran = std::chrono::steady_clock::now();
  attempt_.record(watch.finish());
  if (!run.ok()) return container_failure(attempt_, spec_, "agent", run.error());
  if (run->cancelled) return attempt_.failed(FK::kCancelled, "cancelled while the agent ran");
  if (run->halted) return attempt_.failed(FK::kBudget, watch.over_budget() + " and was stopped");
  if (!run->limit.empty()) return attempt_.failed(FK::kAgent, "agent " + spec_.agent.name + ": " + run->limit);
  if (run->stalled) {
    return attempt_.failed(FK::kTimeout, "the agent printed nothing for " + std::to_string(spec_.stall_timeout_s) +
                                             " s and was stopped (stall timeout)");
  }
  if (run->timed_out) {
    if (spec_.run_timeout_is_budget) {
      return attempt_.failed(FK::kBudget, "agent " + spec_.agent.name + " passed its budget of " +
                                              std::to_string(spec_.run_timeout_s) + " s and was stopped");
    }
    return attempt_.failed(FK::kTimeout,
                           "the agent ran past " + std::to_string(spec_.run_timeout_s) + " s and was stopped");
  }
  // SIGKILL comes from outside (the kernel's OOM killer, a stop): the machine's trouble, not
  // the agent's, so the same agent tries again.
  if (run->exit_code == 137) {
    return attempt_.failed(FK::kInfra, "agent " + spec_.agent.name + " exited with status 137" +
                                           (run->tail.empty() ? "" : ": " + run->tail) +
                                           " (killed: out of memory, or stopped from outside)");
  }
  if (auto judged = watch.judge(run->exit_code, run->tail)) return attempt_.failed(judged->first, judged->second);
  if (auto failed = collect_branch()) return failed;
  auto ahead = ctx_.workspaces.commits_ahead(ws_);
  if (!ahead.ok()) return attempt_.failed(FK::kInfra, ahead.error().to_string());
  if (*ahead == 0) return attempt_.failed(FK::kAgent, "agent " + spec_.agent.name + " made no changes");
  spdlog::info("task {}: agent ran {} ms, its work committed and pinned in {} ms", spec_.task_id,
               ms_between(started, ran), ms_between(ran, std::chrono::steady_clock::now()));
  return std::nullopt;
}

std::optional<protocol::TaskResult> Run::verify() {
  attempt_.log("verify", "$ " + verify_command_ + "\n");
  // Whatever the agent left running goes first, so nothing of it can touch the tree while the
  // tests run, and the tree is the pinned commit's, from objects the worker wrote: what lands is
  // what was verified.
  const auto started = std::chrono::steady_clock::now();
  if (auto s = ctx_.workspaces.write_pinned_bundle(ws_, ws_.task_dir / "meta" / "pinned.bundle"); !s.ok()) {
    return attempt_.failed(FK::kInfra, "writing the pinned branch for verify: " + s.error().to_string());
  }
  auto run = exec_in(
      {"sh", "-c", kVerifyScript, "polyphony-verify", spec_.branch, pinned_, (ws_.mirror_dir / "objects").string(),
       ws_.repo_url, "/polyphony/pinned.bundle", ws_.base_branch, ws_.base_commit, verify_command_},
      attempt_env(spec_), "verify", spec_.verify_timeout_s, 0);
  spdlog::info("task {}: verify ran {} ms", spec_.task_id, ms_between(started, std::chrono::steady_clock::now()));
  if (!run.ok()) return container_failure(attempt_, spec_, "verify", run.error());
  if (run->cancelled) return attempt_.failed(FK::kCancelled, "cancelled during verify");
  if (!run->limit.empty()) return attempt_.failed(FK::kVerify, "verify `" + verify_command_ + "`: " + run->limit);
  if (run->timed_out) {
    return attempt_.failed(FK::kTimeout,
                           "verify ran past " + std::to_string(spec_.verify_timeout_s) + " s and was stopped");
  }
  if (run->exit_code != 0) {
    auto r = attempt_.failed(FK::kVerify, verify_failure_reason(verify_command_, run->exit_code, run->output));
    // The tree lets the coordinator tell a deterministic failure from one worth retrying.
    auto tree = ctx_.workspaces.head_tree(ws_);
    if (tree.ok()) r.tree = *tree;
    return r;
  }
  note_branch_moved(run->tail);
  return std::nullopt;
}

// The workspace's branch is data the agent (or verify's own processes) could move; it is never
// what lands. When it no longer names the pinned commit, the move is refused out loud: the task's
// history says what lands instead.
void Run::note_branch_moved(const std::string& tail) {
  const size_t at = tail.rfind(kBranchAfterVerify);
  if (at == std::string::npos) return;
  const std::string now = tail.substr(at + kBranchAfterVerify.size());
  if (now == pinned_) return;
  const std::string note = "the workspace's branch moved during verify (to " + now.substr(0, 40) +
                           "); that is refused: the verified commit " + pinned_.substr(0, 12) + " is what lands";
  attempt_.say(note);
  attempt_.update("VERIFYING", note);
}

// Runs the reviewer in its own container on a fresh clone of the pinned commit (read-only) and
// reads the verdict it leaves in its own writable directory.
Result<Verdict> Run::review(int round) {
  hold_for_tests("REVIEW");
  if (attempt_.cancelled()) return make_error("cancelled", "cancelled before review");
  const fs::path meta = ws_.task_dir / "review-meta";
  const fs::path out = ws_.task_dir / "review-out";
  std::error_code ec;
  fs::remove_all(out, ec);
  POLY_TRY(make_readable_dir(meta));
  fs::create_directories(out, ec);
  if (::chown(out.c_str(), static_cast<uid_t>(ctx_.container_uid), static_cast<gid_t>(ctx_.container_gid)) != 0) {
    return make_error("io", std::string("cannot chown: ") + std::strerror(errno), out.string());
  }
  POLY_TRY(write_file(meta / "task.md", "Review: " + spec_.title + "\n\nReview the work on branch " + spec_.branch +
                                            " against " + ws_.base_commit.substr(0, 12) +
                                            " (read-only at /workspace). Write your verdict to " +
                                            protocol::kVerdictFile +
                                            ": its first line `approve` or `changes requested`, then your "
                                            "comments.\n\nThe task was:\n\n" +
                                            quoted(spec_.title + "\n\n" + spec_.body) + "\n"));
  // A clone of its own, of the pinned commit: the implementer's .git (its config, hooks) never
  // reaches the reviewer's container.
  auto clone = ctx_.workspaces.make_review_clone(ws_);
  POLY_TRY(clone);
  ContainerSpec cs = base_container(spec_, ws_, ctx_, "reviewer");
  for (auto& m : cs.mounts) {
    if (m.container_path == "/workspace") {
      m.host_path = clone->string();
      m.read_only = true;
    }
    if (m.container_path == "/polyphony") m.host_path = meta.string();
  }
  cs.mounts.push_back({out.string(), fs::path(protocol::kVerdictFile).parent_path().string(), false});
  auto launch =
      prepare_agent(spec_.reviewer, spec_.reviewer.command, spec_.reviewer.stdin_text, meta, "reviewer", ctx_);
  POLY_TRY(launch);
  cs.cmd = launch->argv;
  cs.env.insert(cs.env.end(), launch->env.begin(), launch->env.end());
  for (const auto& [k, v] : spec_.reviewer.env) cs.env.push_back(k + "=" + v);
  for (const auto& m : spec_.reviewer.mounts) cs.mounts.push_back({m.host_path, m.container_path, true});
  cs.env.push_back("POLYPHONY_ROLE=reviewer");
  cs.env.push_back("POLYPHONY_ROUND=" + std::to_string(round + 1));
  cs.env.push_back(std::string("POLYPHONY_VERDICT_FILE=") + protocol::kVerdictFile);
  AgentWatch watch(spec_.reviewer, "reviewer", spec_);
  const int64_t out_limit = ctx_.limits.workspace_limit_bytes;
  auto run = run_container(
      cs, "review", spec_.run_timeout_s, spec_.stall_timeout_s, attempt_, ctx_,
      [&]() -> std::optional<std::string> {
        if (out_limit <= 0 || disk_usage(out, out_limit) < out_limit) return std::nullopt;
        return "its verdict directory grew past " + human_bytes(out_limit) +
               " (container.workspace_limit) and it was stopped";
      },
      watch.observer());
  attempt_.record(watch.finish());
  POLY_TRY(run);
  if (run->cancelled) return make_error("cancelled", "cancelled during review");
  if (run->halted) return make_error("budget", watch.over_budget() + " and was stopped");
  if (!run->limit.empty()) return make_error("agent", "reviewer " + spec_.reviewer.name + ": " + run->limit);
  if (run->timed_out || run->stalled) {
    return make_error("agent",
                      "reviewer " + spec_.reviewer.name + " was stopped: " +
                          (run->stalled ? "it printed nothing for " + std::to_string(spec_.stall_timeout_s) + " s"
                                        : "it ran past " + std::to_string(spec_.run_timeout_s) + " s"));
  }
  if (auto judged = watch.judge(run->exit_code, run->tail)) {
    return make_error(std::string(protocol::to_string(judged->first)), judged->second);
  }
  // The reviewer wrote it, and root reads it: no symlink, FIFO or device, and no more than a cap.
  auto text = read_untrusted_file(out / "verdict.md", kMaxVerdictBytes);
  if (!text.ok()) {
    return make_error("agent", "reviewer " + spec_.reviewer.name + " left no verdict: " + protocol::kVerdictFile + " " +
                                   (text.error().code == "not_found" ? std::string("is missing")
                                                                     : "is refused: " + text.error().message));
  }
  auto verdict = parse_verdict(*text);
  if (!verdict) {
    return make_error("agent", "reviewer " + spec_.reviewer.name + " left no verdict in " + protocol::kVerdictFile +
                                   " (its first line must be `approve` or `changes requested`)");
  }
  return *verdict;
}

// The implementer works, verify checks it, and in the review plan the reviewer approves it or
// sends it back (with its comments in /polyphony/review.md) up to review_rounds times.
std::optional<protocol::TaskResult> Run::implement_and_review() {
  const bool reviewed = !spec_.reviewer.name.empty();
  for (int round = 0;; ++round) {
    const auto& command = round > 0 && !spec_.rework_command.empty() ? spec_.rework_command : spec_.agent.command;
    attempt_.update("RUNNING", round == 0 ? "agent " + spec_.agent.name
                                          : "agent " + spec_.agent.name + " addresses the review (round " +
                                                std::to_string(round + 1) + ")");
    if (auto failed = run_agent(command, round)) return failed;
    attempt_.update("VERIFYING", verify_command_);
    hold_for_tests("VERIFYING");
    if (attempt_.cancelled()) return attempt_.failed(FK::kCancelled, "cancelled before verify");
    // Verify what would land now: the branch on the base as it is, not as it was when the agent
    // started. Landing then verifies again only when the base moves once more meanwhile.
    if (auto failed = catch_up_with_base()) return failed;
    if (auto failed = verify()) return failed;
    if (!reviewed) return std::nullopt;
    auto verdict = review(round);
    if (!verdict.ok()) {
      const std::string& code = verdict.error().code;
      if (code == "cancelled" || code == "budget" || code == "agent_unavailable") {
        return attempt_.failed(*protocol::parse_failure_kind(code), verdict.error().message);
      }
      return attempt_.failed(code == "agent" ? FK::kAgent : FK::kInfra, verdict.error().message);
    }
    const std::string who = "review by " + spec_.reviewer.name + " (round " + std::to_string(round + 1) + "): ";
    const std::string comments = tail_of(verdict->comments, 1500);
    attempt_.update("VERIFYING", who + (verdict->approved ? "approved" : "changes requested") +
                                     (comments.empty() ? "" : ": " + comments));
    if (verdict->approved) return std::nullopt;
    if (round >= spec_.review_rounds) {
      return attempt_.failed(FK::kReview, "reviewer " + spec_.reviewer.name + " still requests changes after " +
                                              std::to_string(round + 1) + " reviews: " + comments);
    }
    if (auto s = write_file(ws_.task_dir / "meta" / "review.md",
                            "Review by " + spec_.reviewer.name + ": changes requested\n\n" + verdict->comments);
        !s.ok()) {
      return attempt_.failed(FK::kInfra, s.error().to_string());
    }
  }
}

protocol::TaskResult Run::push_branch() {
  if (attempt_.cancelled()) return attempt_.failed(FK::kCancelled, "cancelled before pushing");
  auto pushed = [&] {
    std::lock_guard<std::mutex> serialized(land_lock(spec_.repo_url));
    return ctx_.workspaces.push_branch(ws_);
  }();
  if (!pushed.ok()) {
    const auto& code = pushed.error().code;
    return attempt_.failed(code == "push_rejected"  ? FK::kConflict
                           : code == "push_refused" ? FK::kLanding
                                                    : FK::kInfra,
                           "pushing " + spec_.branch + ": " + pushed.error().to_string());
  }
  attempt_.say("pushed " + pushed->branch_commit + " to " + spec_.branch + " (a pull request lands it)");
  auto r = attempt_.base_result();
  r.outcome = "landed";
  r.commit = pushed->branch_commit;
  if (auto tree = ctx_.workspaces.head_tree(ws_); tree.ok()) r.tree = *tree;
  return r;
}

// The branch, on the base as it is now, changes nothing (another task landed the same change):
// the task is done without a push, and says which base commit holds its change.
std::optional<protocol::TaskResult> Run::already_in_base() {
  auto changes = ctx_.workspaces.changes_base(ws_);
  if (!changes.ok())
    return attempt_.failed(FK::kInfra, "comparing the branch with its base: " + changes.error().to_string());
  if (*changes) return std::nullopt;
  attempt_.say(ws_.base_branch + " at " + ws_.base_commit.substr(0, 12) +
               " already holds this change: nothing to land, nothing pushed");
  auto r = attempt_.base_result();
  r.outcome = "landed";
  r.already_in_base = ws_.base_commit;
  r.reason = "already in base: " + ws_.base_branch + " at " + ws_.base_commit.substr(0, 12) + " holds this change";
  return r;
}

protocol::TaskResult Run::land() {
  if (spec_.land_mode == "branch") return push_branch();
  using Clock = std::chrono::steady_clock;
  for (int round = 1;; ++round) {
    if (attempt_.cancelled()) return attempt_.failed(FK::kCancelled, "cancelled before landing");
    const auto asked = Clock::now();
    if (ctx_.request_land) {
      auto granted = ctx_.request_land();
      if (!granted.ok()) {
        const auto& code = granted.error().code;
        return attempt_.failed(code == "cancelled" ? FK::kCancelled : FK::kInfra,
                               "the coordinator did not let this attempt land: " + granted.error().message);
      }
    }
    const polyphony::Clock& clock = ctx_.clock != nullptr ? *ctx_.clock : system_clock();
    const int64_t grant_came_ms = clock.steady_ms();
    hold_for_tests("LANDING");
    std::lock_guard<std::mutex> serialized(land_lock(spec_.repo_url));
    const auto granted_at = Clock::now();
    std::optional<std::string> moved_to;
    if (auto failed = rebase_onto_base(moved_to)) return *failed;
    const auto rebased_at = Clock::now();
    if (auto held = already_in_base()) return *held;
    if (moved_to) {
      attempt_.say(ws_.base_branch + " moved to " + moved_to->substr(0, 12) +
                   ": rebased the branch onto it; verifying again before landing");
      if (auto failed = verify()) return *failed;
    }
    const auto verified_at = Clock::now();
    // A grant is good for protocol::kLandGrantLifetimeMs: past that the coordinator may have
    // given the task to another attempt (it restarted, or lost this worker), so this one asks
    // again rather than push on an old grant.
    const int64_t grant_age_ms = clock.steady_ms() - grant_came_ms;
    if (ctx_.request_land && grant_age_ms >= protocol::kLandGrantLifetimeMs * 3 / 4) {
      attempt_.say("the landing grant is " + std::to_string(grant_age_ms / 1000) +
                   " s old: asking for it again before pushing");
      if (round < kMaxLandRounds) continue;
      return attempt_.failed(FK::kInfra,
                             "landing: the grant was too old to push on, " + std::to_string(kMaxLandRounds) + " times");
    }
    auto landed = ctx_.workspaces.land(ws_);
    spdlog::info("task {}: landing round {}: {} ms waiting for the queue, rebase {} ms, verify again {} ms, push {} ms",
                 spec_.task_id, round, ms_between(asked, granted_at), ms_between(granted_at, rebased_at),
                 ms_between(rebased_at, verified_at), ms_between(verified_at, Clock::now()));
    if (landed.ok()) {
      attempt_.say(landed->merged_commit.empty() ? landed->note
                                                 : "landed " + landed->merged_commit + " on " + ws_.base_branch);
      auto r = attempt_.base_result();
      r.outcome = "landed";
      r.commit = landed->branch_commit;
      r.merged_commit = landed->merged_commit;
      r.reason = landed->note;
      if (auto tree = ctx_.workspaces.head_tree(ws_); tree.ok()) r.tree = *tree;
      return r;
    }
    const auto& code = landed.error().code;
    if ((code == "base_moved" || code == "push_rejected") && round < kMaxLandRounds) {
      attempt_.say("landing raced another: " + landed.error().message + "; rebasing again");
      continue;
    }
    // A race lost every round is a conflict (retried); a refusal (a hook, a protected branch, a
    // clone that cannot take the branch) would refuse the next attempt too: reported once.
    const bool raced = code == "base_moved" || code == "push_rejected";
    return attempt_.failed(raced                    ? FK::kConflict
                           : code == "push_refused" ? FK::kLanding
                                                    : FK::kInfra,
                           "landing: " + landed.error().to_string());
  }
}

protocol::TaskResult Run::execute() {
  auto result = attempt_work();
  release_container();
  return result;
}

protocol::TaskResult Run::attempt_work() {
  attempt_.say("attempt " + std::to_string(spec_.attempt) + " of task " + spec_.task_id + " with agent " +
               spec_.agent.name + (spec_.reviewer.name.empty() ? "" : ", reviewer " + spec_.reviewer.name));
  hold_for_tests("ROUTED");
  if (attempt_.cancelled()) return attempt_.failed(FK::kCancelled, "cancelled before provisioning");
  const auto started = std::chrono::steady_clock::now();
  // The worker's own allow-list, whatever the coordinator asked for: nothing is made for a spec
  // outside it.
  if (auto refused = refusal(spec_, ctx_.allowed)) {
    return attempt_.failed(FK::kConfig, "worker " + ctx_.worker_id + " refuses this RunSpec: " + *refused);
  }
  // What an earlier attempt left goes first: its containers (stopping whatever still writes in
  // its workspace), then its workspace. The coordinator records each attempt before it sends it,
  // so a first attempt has no earlier one: the engine is not asked.
  if (spec_.attempt > 1) clear_leftover_containers(spec_, ctx_);
  (void)ctx_.workspaces.remove(spec_.task_id);
  const int64_t cleared_ms = ms_between(started, std::chrono::steady_clock::now());
  key_ = warm_key(spec_, ctx_.container_uid, ctx_.container_gid, ctx_.hosts_file, ctx_.runner, ctx_.limits);
  const WorkspaceRequest request{spec_.task_id, spec_.repo_url, spec_.base_branch, spec_.branch};
  std::optional<WarmSlot> warm = ctx_.pool != nullptr ? ctx_.pool->take(key_) : std::nullopt;
  // A warm container is named for the task (so that a crash from here on leaves nothing
  // unaccounted for) by the engine while the workspace is provisioned.
  int64_t rename_ms = 0;
  auto named = std::async(std::launch::async, [&]() -> Status {
    if (!warm) return ok_status();
    const auto asked = std::chrono::steady_clock::now();
    Status s = ctx_.docker.rename_container(warm->container_id, task_container_name(spec_.task_id, spec_.epoch));
    rename_ms = ms_between(asked, std::chrono::steady_clock::now());
    return s;
  });
  auto ws = warm ? ctx_.workspaces.provision_from(request, warm->spare) : ctx_.workspaces.provision(request);
  const auto provisioned = std::chrono::steady_clock::now();
  const Status renamed = named.get();
  if (warm) {
    container_ = warm->container_id;
    runner_ = warm->runner;
  }
  if (warm && !renamed.ok()) {
    // Not the task's container then: it goes, and one is created for the workspace when the
    // agent starts.
    spdlog::warn("task {}: cannot take warm container {}: {}", spec_.task_id, container_.substr(0, 12),
                 renamed.error().to_string());
    release_container();
  }
  const bool took_container = !container_.empty();
  spdlog::info(
      "task {}: workspace in {} ms ({}: leftovers {} ms, then provision, and beside it the container's "
      "rename {} ms)",
      spec_.task_id, ms_between(started, provisioned), took_container ? "warm" : "cold", cleared_ms, rename_ms);
  if (took_container && ws.ok()) attempt_.say("took warm container " + container_.substr(0, 12));
  if (warm && !ws.ok()) {
    // The spare is gone with the failure; its container goes too, and a fresh clone is tried.
    spdlog::warn("task {}: provisioning from a spare failed ({}); cloning afresh", spec_.task_id,
                 ws.error().to_string());
    release_container();
    ws = ctx_.workspaces.provision(request);
  }
  if (!ws.ok()) {
    const bool users_fault = ws.error().code == "not_found" || ws.error().code == "usage";
    return attempt_.failed(users_fault ? FK::kRepo : FK::kInfra, "provisioning failed: " + ws.error().to_string());
  }
  ws_ = *ws;
  if (spec_.attempt > 1) {
    auto earlier = ctx_.workspaces.landed_earlier(ws_);
    if (!earlier.ok())
      return attempt_.failed(FK::kInfra, "checking for an earlier landing: " + earlier.error().to_string());
    if (earlier->has_value()) {
      attempt_.say("an earlier attempt already landed " + spec_.branch + " (base now " + **earlier +
                   "); not running it again");
      // The lifecycle only lands from VERIFYING: walk it, saying why each step is empty.
      attempt_.update("PROVISIONED", "an earlier attempt already landed this branch");
      attempt_.update("RUNNING", "agent not run: an earlier attempt already landed");
      attempt_.update("VERIFYING", "verified by the earlier attempt that landed");
      auto r = attempt_.base_result();
      r.outcome = "landed";
      r.merged_commit = **earlier;
      return r;
    }
  }
  if (auto s = write_task_file(spec_, ws_); !s.ok()) return attempt_.failed(FK::kInfra, s.error().to_string());
  attempt_.update("PROVISIONED", "branch " + spec_.branch + " at " + ws_.base_commit.substr(0, 12));
  hold_for_tests("PROVISIONED");
  if (attempt_.cancelled()) return attempt_.failed(FK::kCancelled, "cancelled before the agent started");
  // The verify command is read before the agent runs, from the base, so the agent cannot change it.
  auto verify_command = choose_verify(spec_, ws_, ctx_);
  if (!verify_command.ok()) {
    return attempt_.failed(FK::kConfig, "cannot read the repo's verify command: " + verify_command.error().to_string());
  }
  if (verify_command->empty()) {
    return attempt_.failed(FK::kConfig,
                           "no verify command: add `verify: <command>` to .polyphony.yaml at the repo root, "
                           "or set repos.<name>.verify in config.yaml");
  }
  verify_command_ = *verify_command;
  if (auto failed = implement_and_review()) return *failed;
  return land();
}

}  // namespace

protocol::TaskResult execute_run(const protocol::RunSpec& spec, RunContext& ctx) {
  return Run(spec, ctx).execute();
}

}  // namespace polyphony
