// The tools, each a schema and a call into the CLI's own code paths.
#include "mcp/tools.h"

#include <filesystem>
#include <map>
#include <zmq.hpp>

#include "cli/task_flags.h"
#include "cli/task_views.h"
#include "common/config.h"
#include "coordinator/task_fields.h"

namespace polyphony::mcp {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json text(const std::string& description) {
  return {{"type", "string"}, {"description", description}};
}
json integer(const std::string& description, int64_t min, int64_t max) {
  return {{"type", "integer"}, {"description", description}, {"minimum", min}, {"maximum", max}};
}
json strings(const std::string& description) {
  return {{"type", "array"}, {"items", {{"type", "string"}}}, {"description", description}};
}
json object(json properties, std::vector<std::string> required = {}) {
  return {{"type", "object"},
          {"properties", std::move(properties)},
          {"required", required},
          {"additionalProperties", false}};
}
// An output schema: extra fields are allowed (the CLI's JSON may grow).
json result(json properties, std::vector<std::string> required) {
  return {{"type", "object"}, {"properties", std::move(properties)}, {"required", required}};
}

json task_fields() {
  return {{"title", text("what to do, in one line")},
          {"body", text("what to do, in more words: the agent's instructions")},
          {"repo", text("the repository: a repos: name in the coordinator's config.yaml, a URL, or a path on "
                        "its host")},
          {"type", text("the task's type, e.g. bugfix or feature (routing rules match it)")},
          {"risk", text("the task's risk, e.g. high (routing rules match it)")},
          {"labels", strings("labels; needs:L requires a worker with label L")},
          {"agent", text("run this agent (agents.yaml) instead of the one routing picks")},
          {"base", text("the branch to start from and land on (default: the repo's)")}};
}

json reply_schema() {
  return result({{"id", text("the task's id")},
                 {"state", text("DISCOVERED, CLAIMED, ROUTED, PROVISIONED, RUNNING, VERIFYING, LANDING, LANDED, "
                                "FAILED, BLOCKED or CANCELLED")},
                 {"reason", text("why it is in this state (for FAILED, BLOCKED, CANCELLED)")},
                 {"attempt", {{"type", "integer"}}},
                 {"agent", text("the agent of the current or last attempt")},
                 {"branch", text("the task's branch")},
                 {"merged_commit", text("the commit on the base branch once LANDED")}},
                {"id", "state"});
}

// The argument a CLI flag stands for, for error messages ("--base" -> "base").
std::string argument_for(const std::string& where) {
  static const std::map<std::string, std::string> names{
      {"TITLE", "title"},    {"ID", "id"},         {"--body", "body"},      {"--body-file", "body"}, {"--repo", "repo"},
      {"--type", "type"},    {"--risk", "risk"},   {"--label", "labels"},   {"--agent", "agent"},    {"--base", "base"},
      {"--state", "states"}, {"--limit", "limit"}, {"--attempt", "attempt"}};
  auto it = names.find(where);
  return it == names.end() ? where : it->second;
}

Error as_argument_error(Error e) {
  e.where = argument_for(e.where);
  return e;
}

// The tool's task arguments as the CLI's TITLE and task flags.
cli::Args task_args(const json& a) {
  cli::Args args;
  if (a.contains("title")) args.positional = {a["title"].get<std::string>()};
  for (const char* key : {"body", "repo", "type", "risk", "agent", "base"}) {
    if (a.contains(key)) args.values[key] = {a[key].get<std::string>()};
  }
  if (a.contains("labels")) args.values["label"] = a["labels"].get<std::vector<std::string>>();
  return args;
}

Result<Settings> local_settings() {
  auto s = load_settings(polyphony_home());
  if (!s.ok()) return s.error();
  return *s;
}

// A view of a coordinator on another host, asked over its client endpoint; its errors read as
// the local view's.
Result<json> remote_view(const ToolOptions& o, const protocol::ViewQuery& q) {
  zmq::context_t ctx;
  auto view = cli::ask_view(ctx, o.target, q);
  if (!view.ok()) return as_argument_error(view.error());
  return view;
}

// Validates the task as `polyphony spawn` does and submits it. A local path is made absolute
// here when the coordinator shares this machine, as `polyphony spawn` reads it from its cwd.
Result<json> spawn_one(const ToolOptions& o, zmq::context_t& ctx, const json& a) {
  auto task = cli::task_from_flags(task_args(a), "spawn");
  if (!task.ok()) return as_argument_error(task.error());
  std::error_code ec;
  if (o.local && !task->repo.empty() && !looks_like_url(task->repo) && fs::exists(task->repo, ec)) {
    task->repo = fs::absolute(task->repo, ec).lexically_normal().string();
  }
  auto reply = cli::submit_to(ctx, o.target, *task);
  if (!reply.ok()) return as_argument_error(reply.error());
  return cli::reply_json(*reply);
}

Tool spawn_tool(const ToolOptions& o) {
  return {"spawn",
          "Spawn a task",
          "Queue one coding task on Polyphony (validated as `polyphony spawn` does); it runs in its own container "
          "and lands only after its verify passes. Returns the task id at once; use wait to see it end.",
          object(task_fields(), {"title"}),
          reply_schema(),
          [o](const json& a, const std::atomic<bool>&) -> Result<json> {
            zmq::context_t ctx;
            return spawn_one(o, ctx, a);
          }};
}

Result<json> remote_status(const ToolOptions& o, const json& a) {
  protocol::ViewQuery q;
  q.view = "status";
  if (a.contains("ids")) q.task_ids = a["ids"].get<std::vector<std::string>>();
  if (a.contains("states")) q.states = a["states"].get<std::vector<std::string>>();
  q.repo = a.value("repo", "");
  q.limit = a.value("limit", int64_t{0});
  auto tasks = remote_view(o, q);
  if (!tasks.ok()) return tasks.error();
  return json{{"tasks", *tasks}};
}

Tool status_tool(const ToolOptions& o) {
  json in = object({{"ids", strings("only these tasks")},
                    {"states", strings("only tasks in these states (any case), e.g. [\"failed\", \"blocked\"]")},
                    {"repo", text("only tasks on this repo")},
                    {"limit", integer("at most the N newest of the tasks shown", 1, 100000)}});
  return {"status",
          "List tasks",
          "Tasks, newest first, as `polyphony status --json` gives them (id, state, agent, score, plan, branch, "
          "reason, agent runs...).",
          in,
          result({{"tasks", {{"type", "array"}, {"items", {{"type", "object"}}}}}}, {"tasks"}),
          [o](const json& a, const std::atomic<bool>&) -> Result<json> {
            if (!o.local) return remote_status(o, a);
            cli::Args args;
            if (a.contains("ids")) args.positional = a["ids"].get<std::vector<std::string>>();
            if (a.contains("states")) args.values["state"] = a["states"].get<std::vector<std::string>>();
            if (a.contains("repo")) args.values["repo"] = {a["repo"].get<std::string>()};
            if (a.contains("limit")) args.values["limit"] = {std::to_string(a["limit"].get<int64_t>())};
            auto settings = local_settings();
            if (!settings.ok()) return settings.error();
            auto tasks = cli::status_json(args, settings->config);
            if (!tasks.ok()) return as_argument_error(tasks.error());
            return json{{"tasks", *tasks}};
          }};
}

Tool show_tool(const ToolOptions& o) {
  return {"show",
          "Show one task",
          "One task with its body, agent runs (model, turns, tokens, final message) and every state change, as "
          "`polyphony show ID --json` gives it.",
          object({{"id", text("the task's id")}}, {"id"}),
          result({{"id", text("the task's id")}, {"state", text("its state")}, {"events", {{"type", "array"}}}},
                 {"id", "state", "events"}),
          [o](const json& a, const std::atomic<bool>&) -> Result<json> {
            if (!o.local) {
              protocol::ViewQuery q;
              q.view = "show";
              q.task_ids = {a["id"].get<std::string>()};
              return remote_view(o, q);
            }
            auto settings = local_settings();
            if (!settings.ok()) return settings.error();
            return cli::show_json(a["id"].get<std::string>(), settings->config);
          }};
}

Tool logs_tool(const ToolOptions& o) {
  json in =
      object({{"id", text("the task's id")},
              {"attempt", integer("only this attempt's output (default: every attempt)", 1, 1000)},
              {"offset", integer("start at this byte of the whole output (default: its last max_bytes)", 0, INT64_MAX)},
              {"max_bytes", integer("the most bytes to return (default 16384)", 1, kMaxLogBytes)}},
             {"id"});
  json out =
      result({{"id", text("the task's id")},
              {"text", text("the output: a '==> attempt N stream <==' line before each stream's part")},
              {"offset", {{"type", "integer"}, {"description", "where text starts in the whole output"}}},
              {"next_offset", {{"type", "integer"}, {"description", "where text ends: the offset of the next page"}}},
              {"total_bytes", {{"type", "integer"}, {"description", "the whole output's size so far"}}}},
             {"id", "text", "offset", "next_offset", "total_bytes"});
  return {"logs",
          "Read a task's output",
          "The agent's, verify's and review's output of a task, as `polyphony logs ID` prints it, a bounded page at a "
          "time: by default its last max_bytes; pass offset (e.g. a previous next_offset) to page.",
          in,
          out,
          [o](const json& a, const std::atomic<bool>&) -> Result<json> {
            if (!o.local) {
              protocol::ViewQuery q;
              q.view = "logs";
              q.task_ids = {a["id"].get<std::string>()};
              q.attempt = static_cast<int>(a.value("attempt", int64_t{0}));
              q.offset = a.value("offset", int64_t{-1});
              q.max_bytes = a.value("max_bytes", int64_t{16384});
              return remote_view(o, q);
            }
            auto settings = local_settings();
            if (!settings.ok()) return settings.error();
            cli::Args args;
            args.positional = {a["id"].get<std::string>()};
            if (a.contains("attempt")) args.values["attempt"] = {std::to_string(a["attempt"].get<int64_t>())};
            auto all = cli::logs_text(args, settings->config);
            if (!all.ok()) return as_argument_error(all.error());
            const auto [start, end] = log_window(*all, a.contains("offset") ? a["offset"].get<int64_t>() : -1,
                                                 a.value("max_bytes", int64_t{16384}));
            return json{{"id", args.positional[0]},
                        {"text", all->substr(start, end - start)},
                        {"offset", start},
                        {"next_offset", end},
                        {"total_bytes", all->size()}};
          }};
}

Tool wait_tool(const ToolOptions& o) {
  json out = reply_schema();
  out["properties"]["finished"] = {{"type", "boolean"}, {"description", "false when timeout_s passed first"}};
  out["required"].push_back("finished");
  return {"wait",
          "Wait for a task to end",
          "Waits until the task ends (LANDED, FAILED, BLOCKED or CANCELLED) or timeout_s passes, and returns its "
          "state and the reason. Only LANDED means its work is on the base branch.",
          object({{"id", text("the task's id")},
                  {"timeout_s", integer("give up waiting after this many seconds (default 600)", 1, 86400)}},
                 {"id"}),
          out,
          [o](const json& a, const std::atomic<bool>& stop) -> Result<json> {
            zmq::context_t ctx;
            const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(a.value("timeout_s", 600));
            auto reply = cli::wait_for_task(ctx, o.target, a["id"].get<std::string>(), deadline, &stop);
            if (!reply.ok()) return reply.error();
            json j = cli::reply_json(*reply);
            j["finished"] = cli::finished_state(reply->state);
            return j;
          }};
}

Tool control_tool(const ToolOptions& o, const std::string& action, const std::string& title,
                  const std::string& description) {
  return {action,
          title,
          description,
          object({{"id", text("the task's id")}}, {"id"}),
          reply_schema(),
          [o, action](const json& a, const std::atomic<bool>&) -> Result<json> {
            zmq::context_t ctx;
            auto reply = cli::control_task(ctx, o.target, a["id"].get<std::string>(), action);
            if (!reply.ok()) return reply.error();
            return cli::reply_json(*reply);
          }};
}

Tool route_explain_tool(const ToolOptions& o) {
  json out = result({{"total", {{"type", "integer"}, {"description", "the complexity score, 0 to 10"}}},
                     {"plan", text("solo, review or strong: how the task would run")},
                     {"dimensions", {{"type", "array"}, {"description", "each scored dimension with its evidence"}}},
                     {"implementer", {{"type", {"object", "null"}}}}},
                    {"total", "plan", "dimensions"});
  return {"route_explain",
          "Score and route a task without queueing it",
          "Scores the task against the repository (a local path or a repos: entry whose url is one, on the "
          "coordinator's host) and shows the plan and agents routing would pick, with the evidence for each score "
          "dimension, as `polyphony route --explain --json`. Nothing is queued or run.",
          object(task_fields(), {"title", "repo"}),
          out,
          [o](const json& a, const std::atomic<bool>&) -> Result<json> {
            if (!o.local) {
              auto task = cli::task_from_flags(task_args(a), "route_explain");
              if (!task.ok()) return as_argument_error(task.error());
              return remote_view(o, route_explain_query(*task));
            }
            auto settings = local_settings();
            if (!settings.ok()) return settings.error();
            auto e = cli::route_explain_json(task_args(a), *settings);
            if (!e.ok()) return as_argument_error(e.error());
            return e;
          }};
}

Tool team_tool(const ToolOptions& o) {
  json member = task_fields();
  member.erase("repo");
  member.erase("base");
  json tasks = {{"type", "array"},
                {"minItems", 1},
                {"maxItems", kMaxTeamTasks},
                {"items", object(member, {"title"})},
                {"description", "the tasks, each with its own title and body"}};
  json in = object({{"repo", text("the repository every task works on")},
                    {"base", text("the branch every task starts from and lands on, e.g. a feature branch")},
                    {"tasks", tasks}},
                   {"repo", "tasks"});
  json out = result({{"ids", strings("the tasks' ids, in the order given")},
                     {"tasks", {{"type", "array"}, {"items", reply_schema()}}}},
                    {"ids", "tasks"});
  return {"team",
          "Spawn a team of related tasks",
          "Spawns several related tasks on one repository with one call, all on one base branch when given (e.g. a "
          "feature branch that collects them). Each is checked before any is queued; returns their ids.",
          in,
          out,
          [o](const json& a, const std::atomic<bool>&) -> Result<json> {
            std::vector<json> members;
            for (size_t i = 0; i < a["tasks"].size(); ++i) {
              json m = a["tasks"][i];
              m["repo"] = a["repo"];
              if (a.contains("base")) m["base"] = a["base"];
              auto checked = cli::task_from_flags(task_args(m), "spawn");
              const std::string where = "tasks[" + std::to_string(i) + "]";
              if (!checked.ok()) return make_error("usage", checked.error().message, where);
              members.push_back(std::move(m));
            }
            zmq::context_t ctx;
            json ids = json::array();
            json replies = json::array();
            for (size_t i = 0; i < members.size(); ++i) {
              auto reply = spawn_one(o, ctx, members[i]);
              if (!reply.ok()) {
                Error e = reply.error();
                e.where = "tasks[" + std::to_string(i) + "]." + e.where;
                if (!ids.empty()) e.message += " (queued before it: " + ids.dump() + ")";
                return e;
              }
              ids.push_back((*reply)["id"]);
              replies.push_back(*reply);
            }
            return json{{"ids", ids}, {"tasks", replies}};
          }};
}

}  // namespace

std::vector<Tool> polyphony_tools(const ToolOptions& o) {
  return {spawn_tool(o),
          status_tool(o),
          show_tool(o),
          logs_tool(o),
          wait_tool(o),
          control_tool(o, "cancel", "Cancel a task", "Stops a task: its container is stopped and nothing lands."),
          control_tool(o, "retry", "Retry a task", "Runs a FAILED or BLOCKED task again."),
          route_explain_tool(o),
          team_tool(o)};
}

}  // namespace polyphony::mcp
