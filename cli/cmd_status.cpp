// `polyphony status`, `show` and `logs`: read the state DB, the queue and the log files.
#include <cctype>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "cli/cli.h"
#include "cli/table.h"
#include "cli/task_views.h"
#include "coordinator/github_source.h"
#include "coordinator/state_store.h"
#include "coordinator/work_source.h"
#include "dashboard/api_json.h"

namespace polyphony::cli {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Every task: those the coordinator recorded, then those still waiting in the queue.
Result<std::vector<Task>> all_tasks(const Config& config) {
  std::vector<Task> tasks;
  std::set<std::string> seen;
  if (fs::exists(config.state_db)) {
    auto store = StateStore::open(config.state_db, true);
    if (!store.ok()) return store.error();
    auto list = store->list();
    if (!list.ok()) return list.error();
    tasks = *list;
    for (const auto& t : tasks) seen.insert(t.request.id);
  }
  if (fs::exists(config.queue_db)) {
    auto queue = SqliteQueue::open(config.queue_db, true);
    if (!queue.ok()) return queue.error();
    auto pending = (*queue)->pending();
    if (!pending.ok()) return pending.error();
    for (const auto& r : *pending) {
      if (seen.count(r.id)) continue;
      Task t;
      t.request = r;
      t.updated_at_ms = r.created_at_ms;
      t.reason = "waiting for the coordinator (is `polyphony serve` running?)";
      tasks.push_back(t);
    }
  }
  return tasks;
}

// The shapes the dashboard's API answers with too: one home (dashboard/api_json.h).
using dashboard::runs_json;
using dashboard::task_json;

// The agent runs the state DB recorded for the task (none when it has no DB yet).
std::vector<AgentRun> agent_runs_of(const Config& config, const std::string& id) {
  if (!fs::exists(config.state_db)) return {};
  auto store = StateStore::open(config.state_db, true);
  if (!store.ok()) return {};
  auto runs = store->agent_runs(id);
  return runs.ok() ? *runs : std::vector<AgentRun>{};
}

std::string clip(const std::string& s, size_t n) {
  std::string one = s.substr(0, s.find('\n'));
  return one.size() <= n ? one : one.substr(0, n - 3) + "...";
}

std::string or_dash(const std::string& s) {
  return s.empty() ? "-" : s;
}

Colour state_colour(TaskState state) {
  switch (state) {
    case TaskState::kLanded:
      return Colour::kGreen;
    case TaskState::kFailed:
    case TaskState::kBlocked:
      return Colour::kRed;
    case TaskState::kRunning:
      return Colour::kYellow;
    case TaskState::kVerifying:
      return Colour::kCyan;
    case TaskState::kCancelled:
      return Colour::kMagenta;
    case TaskState::kDiscovered:
      return Colour::kDim;
    default:
      return Colour::kBlue;
  }
}

void print_table(const std::vector<Task>& tasks, const Terminal& term) {
  const int64_t now = now_ms();
  // The id and the state are never cut; the reason wraps, so it is read whole on a terminal.
  // A narrow terminal leaves out the score, the plan, the worker, then the branch (`show` and
  // --json have them) before the reason would get too narrow to read.
  Table table({{"ID", Overflow::kKeep},
               {"STATE", Overflow::kKeep},
               {"AGENT"},
               {"SCORE", Overflow::kKeep, 0, 1},
               {"PLAN", Overflow::kTruncate, 0, 2},
               {"BRANCH", Overflow::kTruncate, 20, 4},
               {"WORKER", Overflow::kTruncate, 12, 3},
               {"AGE", Overflow::kKeep},
               {"REASON", Overflow::kWrap, 30}});
  for (const auto& t : tasks) {
    const bool show_reason = t.state == TaskState::kFailed || t.state == TaskState::kBlocked ||
                             t.state == TaskState::kCancelled || t.state == TaskState::kDiscovered;
    table.add_row({{t.request.id},
                   {std::string(to_string(t.state)), state_colour(t.state)},
                   {or_dash(t.agent.empty() ? t.request.agent : t.agent)},
                   {t.score >= 0 ? std::to_string(t.score) : "-"},
                   {or_dash(t.plan)},
                   {or_dash(t.branch)},
                   {or_dash(t.worker)},
                   {ago(t.request.created_at_ms, now)},
                   {show_reason ? t.reason.substr(0, t.reason.find('\n')) : ""}});
  }
  std::cout << table.render(term);
}

// The pull request GitHub mode opened for the task; empty when none.
std::string pull_url(const Config& config, const std::string& id) {
  auto url = read_github_pull_url(config.state_db, id);
  return url.ok() ? *url : std::string();
}

// One line on the GitHub work source, when GitHub mode has run: whether it answers, and when a
// back-off (rate limit, gh not logged in, network down) ends.
void print_github_health(const Config& config, const Terminal& term) {
  auto health = read_github_health(config.state_db);
  if (!health.ok()) {
    std::cout << "github: cannot read its state: " << health.error().to_string() << "\n";
    return;
  }
  if (!health->has_value()) return;
  const GithubHealth& h = **health;
  if (h.state == "ok") {
    std::cout << "github " << h.repo << ": ok\n\n";
    return;
  }
  std::cout << "github " << h.repo << ": "
            << paint(h.state == "rate_limited" ? "RATE LIMITED" : "ERROR", Colour::kRed, term.colour);
  if (const int64_t now = now_ms(); h.until_ms > now) {
    std::cout << ", backing off until " << iso_utc(h.until_ms) << " (" << ago(h.until_ms, now) << ")";
  }
  std::cout << "\n  " << printable(h.message) << "\n\n";
}

Result<Task> find_task(const Config& config, const std::string& id) {
  auto tasks = all_tasks(config);
  if (!tasks.ok()) return tasks.error();
  for (const auto& t : *tasks) {
    if (t.request.id == id) return t;
  }
  return make_error("not_found", "no task with this id (see `polyphony status`)", id);
}

}  // namespace

Result<std::vector<TaskEvent>> task_events(const Config& config, const std::string& id) {
  if (!fs::exists(config.state_db)) return std::vector<TaskEvent>{};
  auto store = StateStore::open(config.state_db, true);
  if (!store.ok()) return store.error();
  return store->events(id);
}

Result<json> show_json(const std::string& id, const Config& config) {
  auto task = find_task(config, id);
  if (!task.ok()) return task.error();
  auto events = task_events(config, task->request.id);
  if (!events.ok()) return events.error();
  json j = task_json(*task);
  j["body"] = task->request.body;
  j["pull_request"] = pull_url(config, task->request.id);
  j["agent_runs"] = runs_json(agent_runs_of(config, task->request.id));
  j["events"] = json::array();
  for (const auto& e : *events) {
    j["events"].push_back({{"from", e.from},
                           {"to", e.to},
                           {"attempt", e.attempt},
                           {"worker", e.worker},
                           {"reason", e.reason},
                           {"failure_kind", e.failure_kind},
                           {"at_ms", e.at_ms},
                           {"at", iso_utc(e.at_ms)}});
  }
  return j;
}

namespace {

constexpr const char* kStatusFooter =
    R"(On a terminal the table fits its width (a narrow one leaves out the score, the plan, the worker,
then the branch; the reason wraps) and states are coloured (not when NO_COLOR is set or
TERM=dumb). Piped or redirected, it is plain text, one line a task, nothing cut.
)";

struct StatusFilter {
  std::vector<std::string> ids;
  std::set<TaskState> states;  // empty: all
  std::string repo;            // empty: all
  size_t limit = 0;            // 0: no limit
};

std::string valid_states() {
  std::string out;
  for (TaskState s : all_task_states()) out += (out.empty() ? "" : ", ") + std::string(to_string(s));
  return out;
}

Result<std::set<TaskState>> parse_states(const std::vector<std::string>& values) {
  std::set<TaskState> states;
  for (const auto& value : values) {
    std::stringstream list(value);
    for (std::string name; std::getline(list, name, ',');) {
      std::string upper;
      for (char c : name) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      auto state = parse_task_state(upper);
      if (!state) {
        return make_error("usage", "unknown state '" + name + "' (valid states: " + valid_states() + ")", "--state");
      }
      states.insert(*state);
    }
  }
  return states;
}

Result<size_t> parse_limit(const std::string& text) {
  size_t used = 0;
  long long n = 0;
  try {
    n = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || n < 1) {
    return make_error("usage", "expected a positive whole number (the most tasks to show), got '" + text + "'",
                      "--limit");
  }
  return static_cast<size_t>(n);
}

Result<StatusFilter> parse_filter(const Args& args) {
  StatusFilter f;
  f.ids = args.positional;
  auto states = parse_states(args.all("state"));
  if (!states.ok()) return states.error();
  f.states = *states;
  if (args.has("repo")) {
    f.repo = args.get("repo");
    if (f.repo.empty()) return make_error("usage", "--repo needs a repo name, url or path", "--repo");
  }
  if (args.has("limit")) {
    auto limit = parse_limit(args.get("limit"));
    if (!limit.ok()) return limit.error();
    f.limit = *limit;
  }
  return f;
}

// The repo as config.yaml knows it (its url), else as an absolute path when it is one on disk.
std::string repo_identity(const Config& config, const std::string& repo) {
  if (const RepoConfig* rc = find_repo(config, repo)) return rc->url;
  std::error_code ec;
  if (fs::exists(repo, ec)) {
    auto canonical = fs::weakly_canonical(fs::absolute(repo, ec), ec);
    if (!ec) return canonical.string();
  }
  return repo;
}

std::vector<Task> apply_filter(std::vector<Task> tasks, const StatusFilter& f, const Config& config) {
  std::stable_sort(tasks.begin(), tasks.end(),
                   [](const Task& a, const Task& b) { return a.request.created_at_ms > b.request.created_at_ms; });
  const std::string repo = f.repo.empty() ? "" : repo_identity(config, f.repo);
  std::vector<Task> shown;
  for (auto& t : tasks) {
    if (!f.ids.empty() && std::find(f.ids.begin(), f.ids.end(), t.request.id) == f.ids.end()) continue;
    if (!f.states.empty() && !f.states.count(t.state)) continue;
    if (!repo.empty() && t.request.repo != f.repo && repo_identity(config, t.request.repo) != repo) continue;
    if (f.limit > 0 && shown.size() == f.limit) break;
    shown.push_back(std::move(t));
  }
  return shown;
}

Result<std::vector<Task>> selected_tasks(const Args& args, const Config& config) {
  auto filter = parse_filter(args);
  if (!filter.ok()) return filter.error();
  auto tasks = all_tasks(config);
  if (!tasks.ok()) return tasks.error();
  for (const auto& id : filter->ids) {
    auto known = std::find_if(tasks->begin(), tasks->end(), [&](const Task& t) { return t.request.id == id; });
    if (known == tasks->end()) return make_error("not_found", "no such task (see `polyphony status`)", id);
  }
  return apply_filter(std::move(*tasks), *filter, config);
}

int status(const Args& args) {
  if (auto filter = parse_filter(args); !filter.ok()) return report(filter.error());
  auto settings = load_or_report();
  if (!settings) return kExitUsage;
  if (args.has("json")) {
    auto out = status_json(args, settings->config);
    if (!out.ok()) return report(out.error());
    std::cout << out->dump(2) << "\n";
    return kExitOk;
  }
  auto shown = selected_tasks(args, settings->config);
  if (!shown.ok()) return report(shown.error());
  const Terminal term = stdout_terminal();
  print_github_health(settings->config, term);
  print_table(*shown, term);
  return kExitOk;
}

int show(const Args& args) {
  if (args.positional.size() != 1) return report(make_error("usage", "show takes one task ID", "ID"));
  auto settings = load_or_report();
  if (!settings) return kExitUsage;
  if (args.has("json")) {
    auto j = show_json(args.positional[0], settings->config);
    if (!j.ok()) return report(j.error());
    std::cout << j->dump(2) << "\n";
    return kExitOk;
  }
  auto task = find_task(settings->config, args.positional[0]);
  if (!task.ok()) return report(task.error());
  auto events = task_events(settings->config, task->request.id);
  if (!events.ok()) return report(events.error());
  const auto& t = *task;
  std::cout << "task " << t.request.id << ": " << t.request.title << "\n"
            << "state   " << to_string(t.state) << (t.reason.empty() ? "" : " (" + t.reason + ")") << "\n"
            << "repo    " << t.request.repo << "\n"
            << "agent   " << (t.agent.empty() ? "-" : t.agent) << "   attempt " << t.attempt << "\n"
            << "score   " << (t.score >= 0 ? std::to_string(t.score) + "/10" : "-") << "   plan "
            << (t.plan.empty() ? "-" : t.plan) << (t.reviewer.empty() ? "" : " (reviewer " + t.reviewer + ")") << "\n"
            << "branch  " << (t.branch.empty() ? "-" : t.branch) << "\n";
  if (const std::string held = already_in_base(t); !held.empty()) {
    std::cout << "landed  nothing: " << held << " on the base already holds this change\n";
  } else if (!t.merged_commit.empty()) {
    std::cout << "landed  " << t.merged_commit << "\n";
  }
  if (const std::string pr = pull_url(settings->config, t.request.id); !pr.empty())
    std::cout << "pull    " << pr << "\n";
  const auto runs = agent_runs_of(settings->config, t.request.id);
  if (!runs.empty()) std::cout << "agent runs:\n";
  for (const auto& r : runs) {
    const auto& u = r.usage;
    std::ostringstream cost;
    cost << std::fixed << std::setprecision(4) << u.cost_usd;
    std::cout << "  attempt " << r.attempt << "  " << std::setw(11) << u.role << " " << u.agent
              << (u.model.empty() ? "" : " (" + u.model + ")") << "  turns " << u.turns << "  tokens " << u.input_tokens
              << " in / " << u.output_tokens << " out" << (u.cost_usd > 0 ? "  $" + cost.str() : "") << "\n";
    if (!u.final_message.empty()) std::cout << "    " << clip(u.final_message, 160) << "\n";
  }
  std::cout << "history:\n";
  for (const auto& e : *events) {
    std::time_t secs = static_cast<std::time_t>(e.at_ms / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    std::cout << "  " << std::put_time(&tm, "%Y-%m-%dT%H:%M:%SZ") << "  " << std::setw(12)
              << (e.from.empty() ? "-" : e.from) << " -> " << std::setw(12) << e.to << " attempt " << e.attempt
              << (e.worker.empty() ? "" : "  worker " + e.worker) << (e.reason.empty() ? "" : "  " + e.reason) << "\n";
  }
  return kExitOk;
}

// What was appended to the attempt's log files since `offsets`, with a header whenever the
// stream changes.
std::string new_output(const fs::path& dir, int attempt, std::map<std::string, std::streamoff>& offsets,
                       std::string& last_header) {
  std::string out;
  for (const char* stream : {"system", "agent", "verify", "review"}) {
    const std::string name = std::to_string(attempt) + "-" + stream + ".log";
    std::ifstream in(dir / name, std::ios::binary);
    if (!in) continue;
    in.seekg(offsets[name]);
    std::string chunk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (chunk.empty()) continue;
    offsets[name] += static_cast<std::streamoff>(chunk.size());
    const std::string header = "==> attempt " + std::to_string(attempt) + " " + stream + " <==";
    if (header != last_header) out += header + "\n";
    last_header = header;
    out += chunk;
  }
  return out;
}

// --attempt N of `logs`: 0 when not given (every attempt).
Result<int> attempt_flag(const Args& args, const Task& task) {
  if (!args.has("attempt")) return 0;
  int only = 0;
  try {
    only = std::stoi(args.get("attempt"));
  } catch (const std::exception&) {
    return make_error("usage", "--attempt needs a number", "--attempt");
  }
  const int attempts = std::max(task.attempt, 1);
  if (only < 1 || only > attempts) {
    return make_error("usage",
                      "task " + task.request.id + " has " + std::to_string(task.attempt) +
                          " attempt(s) so far; --attempt takes 1 to " + std::to_string(attempts),
                      "--attempt");
  }
  return only;
}

int logs(const Args& args) {
  if (args.positional.size() != 1) return report(make_error("usage", "logs takes one task ID", "ID"));
  auto settings = load_or_report();
  if (!settings) return kExitUsage;
  auto task = find_task(settings->config, args.positional[0]);
  if (!task.ok()) return report(task.error());
  auto only = attempt_flag(args, *task);
  if (!only.ok()) return report(only.error());
  const fs::path dir = settings->config.log_dir / task->request.id;
  std::map<std::string, std::streamoff> offsets;
  std::string last_header;
  bool any = false;
  while (true) {
    for (int attempt = 1; attempt <= std::max(task->attempt, 1); ++attempt) {
      if (*only != 0 && attempt != *only) continue;
      const std::string out = new_output(dir, attempt, offsets, last_header);
      std::cout << out << std::flush;
      any |= !out.empty();
    }
    // A retried failure goes straight back to CLAIMED, so a finished state is final.
    if (!args.has("follow") || is_finished(task->state)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    auto next = find_task(settings->config, task->request.id);
    if (!next.ok()) return report(next.error());
    task = next;
  }
  if (!any) std::cerr << "polyphony: no output recorded yet for task " << task->request.id << "\n";
  return kExitOk;
}

}  // namespace

Result<json> status_json(const Args& args, const Config& config) {
  auto shown = selected_tasks(args, config);
  if (!shown.ok()) return shown.error();
  json out = json::array();
  for (const auto& t : *shown) {
    json j = task_json(t);
    j["agent_runs"] = runs_json(agent_runs_of(config, t.request.id));
    out.push_back(std::move(j));
  }
  return out;
}

Result<std::string> logs_text(const Args& args, const Config& config) {
  if (args.positional.size() != 1) return make_error("usage", "logs takes one task ID", "ID");
  auto task = find_task(config, args.positional[0]);
  if (!task.ok()) return task.error();
  auto only = attempt_flag(args, *task);
  if (!only.ok()) return only.error();
  std::map<std::string, std::streamoff> offsets;
  std::string last_header;
  std::string out;
  const fs::path dir = config.log_dir / task->request.id;
  for (int attempt = 1; attempt <= std::max(task->attempt, 1); ++attempt) {
    if (*only == 0 || attempt == *only) out += new_output(dir, attempt, offsets, last_header);
  }
  return out;
}

void add_status(Command& polyphony) {
  polyphony.add("status", "tasks, newest first: id, state, agent, score, plan, branch, worker, age", status)
      .positionals("ID", "only these tasks")
      .flag("--json", "the same tasks as JSON, with ISO 8601 UTC times beside the epoch milliseconds")
      .repeatable("--state", "S", "only tasks in state S (any case); repeat it or give several: --state failed,blocked")
      .option("--repo", "R", "only tasks on repo R (a repos: name in config.yaml, its url, or a local path)")
      .option("--limit", "N", "at most the N newest of the tasks shown")
      .footer(kStatusFooter);
  polyphony.add("show", "one task with its whole history", show)
      .positionals("ID", "the task's id")
      .flag("--json", "the task, its agent runs and its events as JSON");
  polyphony.add("logs", "the agent's and verify's output", logs)
      .positionals("ID", "the task's id")
      .option("--attempt", "N", "only attempt N's output")
      .flag("-f,--follow", "follow it live until the task ends");
}

}  // namespace polyphony::cli
