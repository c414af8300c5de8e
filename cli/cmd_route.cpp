// `polyphony route --explain`: scores a task against a local repository and shows how it would
// be routed, with the evidence for every dimension. Runs nothing and queues nothing.
#include <nlohmann/json.hpp>

#include <iomanip>
#include <iostream>

#include "cli/cli.h"
#include "cli/task_flags.h"
#include "cli/task_views.h"
#include "common/ids.h"
#include "coordinator/router.h"
#include "coordinator/scoring.h"

namespace polyphony::cli {

namespace {

using nlohmann::json;

struct Explanation {
  TaskRequest task;
  RepoText repo;
  Signals signals;
  Score score;
  RouteDecision decision;
  std::string routing_file;
};

// The local repository and revision to read: a repos: entry's url or the path itself; the
// --base branch, else the configured base branch, else HEAD.
Result<std::pair<std::string, std::string>> local_repo(const TaskRequest& task, const Config& config) {
  const RepoConfig* rc = find_repo(config, task.repo);
  const std::string url = rc ? rc->url : task.repo;
  if (looks_like_url(url)) {
    return make_error("usage",
                      "route --explain reads the repository from a local path, and '" + url +
                          "' is a URL; give --repo a local clone or mirror, or a repos: entry in config.yaml "
                          "whose url is a local path",
                      "--repo");
  }
  std::string rev = !task.base_branch.empty() ? task.base_branch : (rc ? rc->base_branch : "");
  return std::pair{url, rev.empty() ? std::string("HEAD") : rev};
}

std::string agent_line(const Settings& s, const std::string& name, const TaskRequest& task) {
  if (name.empty()) return "-";
  const AgentProfile& a = s.agents.at(name);
  const std::string branch = "polyphony/<id>-" + slugify(task.title);
  return name + " (" + a.tier + "): " + json(expand_command(a.command, task, branch)).dump();
}

std::string or_none(const std::string& s) { return s.empty() ? "(none)" : s; }

std::string rule_text(const Explanation& e) {
  if (!e.decision.rule_line) return e.decision.because == "--agent" ? "--agent" : "none matched; the default agent";
  return e.routing_file + ":" + std::to_string(e.decision.rule_line) + " " +
         e.decision.because.substr(e.decision.because.find(' ') + 1);
}

void print_text(const Explanation& e, const Settings& s) {
  std::ostream& o = std::cout;
  std::string labels;
  for (const auto& l : e.task.labels) labels += (labels.empty() ? "" : ", ") + l;
  o << "task:        " << e.task.title << "\n"
    << "             type " << or_none(e.task.task_type) << ", risk " << or_none(e.task.risk) << ", labels "
    << or_none(labels) << "\n"
    << "repo:        " << e.repo.source << ", " << e.signals.files_scanned << " text file(s) scanned"
    << (e.signals.scan_note.empty() ? "" : "; " + e.signals.scan_note) << "\n\n";
  for (const auto& d : e.score.dimensions) {
    o << std::left << std::setw(20) << dimension_name(d.dimension) << d.value << "  ";
    for (size_t i = 0; i < d.evidence.size(); ++i) o << (i ? std::string(23, ' ') : "") << d.evidence[i] << "\n";
  }
  const RouteDecision& r = e.decision;
  o << std::setw(20) << "total" << e.score.total << " / 10\n\n"
    << "plan:        " << plan_name(r.plan) << " (" << r.plan_because << ")\n"
    << "rule:        " << rule_text(e) << "\n"
    << "implementer: " << agent_line(s, r.agent, e.task) << "\n"
    << "reviewer:    " << agent_line(s, r.reviewer, e.task) << "\n"
    << "fallback:    " << (r.fallback.empty() ? "-" : json(r.fallback).dump()) << "\n"
    << "(explain only: nothing was queued or run)\n";
}

json agent_json(const Settings& s, const std::string& name, const TaskRequest& task) {
  if (name.empty()) return nullptr;
  const AgentProfile& a = s.agents.at(name);
  return {{"name", name}, {"tier", a.tier},
          {"command", expand_command(a.command, task, "polyphony/<id>-" + slugify(task.title))}};
}

json explanation_json(const Explanation& e, const Settings& s) {
  json dims = json::array();
  for (const auto& d : e.score.dimensions) {
    dims.push_back({{"name", dimension_name(d.dimension)}, {"value", d.value}, {"evidence", d.evidence}});
  }
  const RouteDecision& r = e.decision;
  json out{{"task", {{"title", e.task.title}, {"type", e.task.task_type}, {"risk", e.task.risk}, {"labels", e.task.labels}}},
           {"repo", {{"source", e.repo.source}, {"files_scanned", e.signals.files_scanned}, {"scan_note", e.signals.scan_note}}},
           {"dimensions", dims},
           {"total", e.score.total},
           {"plan", plan_name(r.plan)},
           {"plan_because", r.plan_because},
           {"because", r.because},
           {"rule", r.rule_line ? json{{"file", e.routing_file}, {"line", r.rule_line}} : json(nullptr)},
           {"implementer", agent_json(s, r.agent, e.task)},
           {"reviewer", agent_json(s, r.reviewer, e.task)},
           {"fallback", r.fallback}};
  return out;
}

Result<Explanation> explain(const Args& args, const Settings& settings) {
  Explanation e;
  auto task = read_task_flags(args, settings, "route --explain");
  if (!task.ok()) return task.error();
  e.task = *task;
  auto where = local_repo(e.task, settings.config);
  if (!where.ok()) return where.error();
  auto text = read_repo_at(where->first, where->second);
  if (!text.ok()) return text.error();
  e.repo = std::move(*text);
  e.signals = collect_signals(e.task, e.repo);
  e.score = score(e.signals, settings.routing.scoring);
  auto decision = route(e.task, settings.routing, settings.agents, e.score.total);
  if (!decision.ok()) return decision.error();
  e.decision = *decision;
  e.routing_file = (polyphony_home() / "routing.yaml").string();
  return e;
}

int route_command(const Args& args) {
  if (!args.has("explain")) {
    return report(make_error("usage", "route only explains for now: polyphony route --explain TITLE --repo R [...]",
                             "--explain"));
  }
  auto settings = load_or_report();
  if (!settings) return kExitUsage;
  auto e = explain(args, *settings);
  if (!e.ok()) return report(e.error());
  if (args.has("json")) {
    std::cout << explanation_json(*e, *settings).dump(2) << "\n";
  } else {
    print_text(*e, *settings);
  }
  return kExitOk;
}

}  // namespace

Result<json> route_explain_json(const Args& args, const Settings& settings) {
  auto e = explain(args, settings);
  if (!e.ok()) return e.error();
  return explanation_json(*e, settings);
}

void add_route(Command& polyphony) {
  Command route = polyphony.add(
      "route", "--explain: score a task against a local repo, show its routing; runs nothing", route_command);
  route.positionals("TITLE", "the task's title (quote it; after -- when it starts with -)")
      .flag("--explain", "show the score, its evidence, and the plan and agents routing picks")
      .flag("--json", "the same as JSON");
  add_task_flags(route);
}

}  // namespace polyphony::cli
