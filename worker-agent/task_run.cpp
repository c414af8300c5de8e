// One attempt of one task on this worker: provision, run the agent, verify, land.
#include "worker-agent/task_run.h"

#include <spdlog/spdlog.h>
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <fstream>
#include <mutex>
#include <thread>

#include "common/yaml_reader.h"

namespace polyphony {

namespace fs = std::filesystem;

std::map<std::string, std::string> run_labels(const protocol::RunSpec& spec, const std::string& role,
                                              const std::string& worker_id) {
  return {{"polyphony.task", spec.task_id},
          {"polyphony.worker", worker_id},
          {"polyphony.attempt", std::to_string(spec.attempt)},
          {"polyphony.epoch", std::to_string(spec.epoch)},
          {"polyphony.role", role}};
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

namespace {

// Carries the attempt's identity into every message it emits.
class Attempt {
 public:
  Attempt(const protocol::RunSpec& spec, RunContext& ctx) : spec_(spec), ctx_(ctx) {}

  void update(const std::string& state, const std::string& detail = {}) {
    protocol::TaskUpdate u;
    u.task_id = spec_.task_id;
    u.attempt = spec_.attempt;
    u.epoch = spec_.epoch;
    u.state = state;
    u.detail = detail;
    ctx_.emit(u);
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

  protocol::TaskResult failed(const std::string& kind, const std::string& reason) {
    say("attempt failed (" + kind + "): " + reason);
    auto r = base_result();
    r.outcome = "failed";
    r.failure_kind = kind;
    r.reason = reason;
    return r;
  }

  protocol::TaskResult base_result() const {
    protocol::TaskResult r;
    r.task_id = spec_.task_id;
    r.attempt = spec_.attempt;
    r.epoch = spec_.epoch;
    r.branch = spec_.branch;
    return r;
  }

  bool cancelled() const { return ctx_.cancelled != nullptr && ctx_.cancelled->load(); }

 private:
  const protocol::RunSpec& spec_;
  RunContext& ctx_;
  int64_t seq_ = 0;
};

struct ContainerOutcome {
  int exit_code = -1;
  bool timed_out = false;
  bool stalled = false;
  bool cancelled = false;
  std::string tail;  // last lines of output, for failure reasons
};

std::string tail_of(const std::string& text, size_t max_bytes = 600) {
  std::string t = text.size() > max_bytes ? text.substr(text.size() - max_bytes) : text;
  while (!t.empty() && (t.back() == '\n' || t.back() == ' ')) t.pop_back();
  return t;
}

// Creates, starts and follows one container to its end, streaming its output as `stream`,
// and removes it. A watchdog stops it at the deadline or on cancel.
Result<ContainerOutcome> run_container(const ContainerSpec& cs, const std::string& stream, int64_t timeout_s,
                                       int64_t stall_timeout_s, Attempt& attempt, RunContext& ctx) {
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

  ContainerOutcome out;
  std::atomic<bool> done{false};
  std::atomic<bool> timed_out{false};
  std::atomic<bool> stalled{false};
  std::atomic<bool> cancelled{false};
  using Clock = std::chrono::steady_clock;
  std::atomic<Clock::rep> last_output{Clock::now().time_since_epoch().count()};
  std::thread watchdog([&] {
    const auto deadline = Clock::now() + std::chrono::seconds(timeout_s > 0 ? timeout_s : 1LL << 30);
    const auto stall = std::chrono::seconds(stall_timeout_s > 0 ? stall_timeout_s : 1LL << 30);
    while (!done.load()) {
      if (attempt.cancelled()) cancelled = true;
      const auto now = Clock::now();
      if (now >= deadline) timed_out = true;
      if (now - Clock::time_point(Clock::duration(last_output.load())) >= stall) stalled = true;
      if (cancelled || timed_out || stalled) {
        (void)ctx.docker.stop_container(*id, 2);
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  std::string captured;
  auto logs = ctx.docker.stream_logs(*id, true, [&](int, std::string_view data) {
    attempt.log(stream, data);
    last_output = Clock::now().time_since_epoch().count();
    captured.append(data);
    if (captured.size() > 64 * 1024) captured.erase(0, captured.size() - 32 * 1024);
    return true;
  });
  auto code = ctx.docker.wait_container(*id, std::chrono::seconds(60));
  done = true;
  watchdog.join();
  if (!logs.ok()) spdlog::warn("logs of container {}: {}", *id, logs.error().to_string());
  if (!code.ok()) return code.error();
  out.exit_code = *code;
  out.timed_out = timed_out;
  out.stalled = stalled;
  out.cancelled = cancelled;
  out.tail = tail_of(captured);
  return out;
}

ContainerSpec base_container(const protocol::RunSpec& spec, const Workspace& ws, const RunContext& ctx,
                             const std::string& role) {
  ContainerSpec cs;
  cs.image = spec.image;
  cs.user = std::to_string(ctx.container_uid) + ":" + std::to_string(ctx.container_gid);
  cs.working_dir = "/workspace";
  cs.labels = run_labels(spec, role, ctx.worker_id);
  cs.mounts.push_back({ws.repo_dir.string(), "/workspace", false});
  // The clone borrows its objects from the mirror through an absolute path.
  cs.mounts.push_back({ws.mirror_dir.string(), ws.mirror_dir.string(), true});
  cs.mounts.push_back({(ws.task_dir / "meta").string(), "/polyphony", true});
  cs.memory_bytes = spec.memory_bytes;
  cs.nano_cpus = static_cast<int64_t>(spec.cpus * 1e9);
  cs.network_mode = spec.network_mode;
  cs.env = {"POLYPHONY_TASK_ID=" + spec.task_id, "POLYPHONY_TASK_FILE=/polyphony/task.md",
            "POLYPHONY_BRANCH=" + spec.branch, "POLYPHONY_ATTEMPT=" + std::to_string(spec.attempt),
            "HOME=/home/agent"};
  return cs;
}

Status write_task_file(const protocol::RunSpec& spec, const Workspace& ws) {
  fs::path meta = ws.task_dir / "meta";
  std::error_code ec;
  fs::create_directories(meta, ec);
  std::ofstream out(meta / "task.md", std::ios::binary | std::ios::trunc);
  out << spec.title << "\n\n" << spec.body << (spec.body.empty() || spec.body.back() == '\n' ? "" : "\n");
  if (!out) return make_error("io", "cannot write the task file", (meta / "task.md").string());
  fs::permissions(meta, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                            fs::perms::others_read | fs::perms::others_exec, ec);
  return {};
}

// A missing image is the operator's to fix (retrying cannot help); anything else from the
// engine is infrastructure.
protocol::TaskResult container_failure(Attempt& attempt, const protocol::RunSpec& spec, const std::string& role,
                                       const Error& e) {
  if (e.code == "not_found") {
    return attempt.failed("config", role + " container: image " + spec.image +
                                        " is missing on this worker: run `polyphony image build` (" + e.to_string() + ")");
  }
  return attempt.failed("infra", role + " container: " + e.to_string());
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

// Landings on one origin are serialized within this worker, so its own attempts never race
// each other's pushes; a base that moved meanwhile is merged into (or conflicts with) the branch.
std::mutex& land_lock(const std::string& repo_url) {
  static std::mutex guard;
  static std::map<std::string, std::unique_ptr<std::mutex>> locks;
  std::lock_guard<std::mutex> g(guard);
  auto& m = locks[repo_url];
  if (!m) m = std::make_unique<std::mutex>();
  return *m;
}

// Removes what an earlier attempt of the same task may have left on this worker.
void clear_leftovers(const protocol::RunSpec& spec, RunContext& ctx) {
  auto old = ctx.docker.list_containers({{"polyphony.task", spec.task_id}});
  if (old.ok()) {
    for (const auto& c : *old) (void)ctx.docker.remove_container(c.id);
  }
  (void)ctx.workspaces.remove(spec.task_id);
}

}  // namespace

protocol::TaskResult execute_run(const protocol::RunSpec& spec, RunContext& ctx) {
  Attempt attempt(spec, ctx);
  attempt.say("attempt " + std::to_string(spec.attempt) + " of task " + spec.task_id + " with agent " + spec.agent.name);
  clear_leftovers(spec, ctx);
  auto ws = ctx.workspaces.provision({spec.task_id, spec.repo_url, spec.base_branch, spec.branch});
  if (!ws.ok()) {
    const bool users_fault = ws.error().code == "not_found" || ws.error().code == "usage";
    return attempt.failed(users_fault ? "repo" : "infra", "provisioning failed: " + ws.error().to_string());
  }
  if (spec.attempt > 1) {
    auto earlier = ctx.workspaces.landed_earlier(*ws);
    if (!earlier.ok()) return attempt.failed("infra", "checking for an earlier landing: " + earlier.error().to_string());
    if (earlier->has_value()) {
      attempt.say("an earlier attempt already landed " + spec.branch + " (base now " + **earlier + "); not running it again");
      // The lifecycle only lands from VERIFYING: walk it, saying why each step is empty.
      attempt.update("PROVISIONED", "an earlier attempt already landed this branch");
      attempt.update("RUNNING", "agent not run: an earlier attempt already landed");
      attempt.update("VERIFYING", "verified by the earlier attempt that landed");
      auto r = attempt.base_result();
      r.outcome = "landed";
      r.merged_commit = **earlier;
      return r;
    }
  }
  if (auto s = write_task_file(spec, *ws); !s.ok()) return attempt.failed("infra", s.error().to_string());
  attempt.update("PROVISIONED", "branch " + spec.branch + " at " + ws->base_commit.substr(0, 12));
  if (attempt.cancelled()) return attempt.failed("cancelled", "cancelled before the agent started");

  ContainerSpec agent_cs = base_container(spec, *ws, ctx, "agent");
  agent_cs.cmd = spec.agent.command;
  for (const auto& [k, v] : spec.agent.env) agent_cs.env.push_back(k + "=" + v);
  for (const auto& m : spec.agent.mounts) agent_cs.mounts.push_back({m.host_path, m.container_path, true});
  attempt.update("RUNNING", "agent " + spec.agent.name);
  auto agent_run = run_container(agent_cs, "agent", spec.run_timeout_s, spec.stall_timeout_s, attempt, ctx);
  if (!agent_run.ok()) return container_failure(attempt, spec, "agent", agent_run.error());
  if (agent_run->cancelled) return attempt.failed("cancelled", "cancelled while the agent ran");
  if (agent_run->stalled) {
    return attempt.failed("timeout", "the agent printed nothing for " + std::to_string(spec.stall_timeout_s) +
                                         " s and was stopped (stall timeout)");
  }
  if (agent_run->timed_out) return attempt.failed("timeout", "the agent ran past " + std::to_string(spec.run_timeout_s) + " s and was stopped");
  if (agent_run->exit_code != 0) {
    return attempt.failed("agent", "agent " + spec.agent.name + " exited with status " +
                          std::to_string(agent_run->exit_code) + (agent_run->tail.empty() ? "" : ": " + agent_run->tail));
  }

  auto committed = ctx.workspaces.commit_all(*ws, "polyphony: changes left uncommitted by " + spec.agent.name);
  if (!committed.ok()) return attempt.failed("infra", "committing the agent's changes: " + committed.error().to_string());
  auto ahead = ctx.workspaces.commits_ahead(*ws);
  if (!ahead.ok()) return attempt.failed("infra", ahead.error().to_string());
  if (*ahead == 0) return attempt.failed("agent", "agent " + spec.agent.name + " made no changes");

  auto verify = choose_verify(spec, *ws, ctx);
  if (!verify.ok()) return attempt.failed("verify", "cannot read the repo's verify command: " + verify.error().to_string());
  if (verify->empty()) {
    return attempt.failed("verify", "no verify command: add `verify: <command>` to .polyphony.yaml at the repo root, "
                                    "or set repos.<name>.verify in config.yaml");
  }
  attempt.update("VERIFYING", *verify);
  attempt.log("verify", "$ " + *verify + "\n");
  ContainerSpec verify_cs = base_container(spec, *ws, ctx, "verify");
  verify_cs.cmd = {"sh", "-c", *verify};
  auto verify_run = run_container(verify_cs, "verify", spec.verify_timeout_s, 0, attempt, ctx);
  if (!verify_run.ok()) return container_failure(attempt, spec, "verify", verify_run.error());
  if (verify_run->cancelled) return attempt.failed("cancelled", "cancelled during verify");
  if (verify_run->timed_out) return attempt.failed("timeout", "verify ran past " + std::to_string(spec.verify_timeout_s) + " s and was stopped");
  if (verify_run->exit_code != 0) {
    return attempt.failed("verify", "verify `" + *verify + "` exited with status " + std::to_string(verify_run->exit_code) +
                                        (verify_run->tail.empty() ? "" : ": " + verify_run->tail));
  }
  if (attempt.cancelled()) return attempt.failed("cancelled", "cancelled before landing");

  auto landed = [&] {
    std::lock_guard<std::mutex> serialized(land_lock(spec.repo_url));
    return spec.land_mode == "branch" ? ctx.workspaces.push_branch(*ws) : ctx.workspaces.land(*ws);
  }();
  if (!landed.ok()) {
    const auto& code = landed.error().code;
    const std::string kind = (code == "conflict" || code == "push_rejected") ? "conflict" : "infra";
    return attempt.failed(kind, "landing: " + landed.error().to_string());
  }
  attempt.say(spec.land_mode == "branch" ? "pushed " + landed->branch_commit + " to " + spec.branch
                                         : "landed " + landed->merged_commit + " on " + ws->base_branch);
  auto r = attempt.base_result();
  r.outcome = "landed";
  r.commit = landed->branch_commit;
  r.merged_commit = landed->merged_commit;
  return r;
}

}  // namespace polyphony
