// `polyphony route --explain`: scores a task against a local repository and shows how it would
// be routed, with the evidence for every dimension. Runs nothing and queues nothing.
#include <nlohmann/json.hpp>

#include <chrono>
#include <iomanip>
#include <iostream>

#include "cli/cli.h"
#include "cli/task_flags.h"
#include "cli/task_views.h"
#include "common/ids.h"
#include "coordinator/calibration.h"
#include "coordinator/router.h"
#include "coordinator/score_index.h"
#include "coordinator/scoring.h"
#include "coordinator/state_store.h"
#include "coordinator/task_scoring.h"

namespace polyphony::cli {

namespace {

using nlohmann::json;

struct Explanation {
  TaskRequest task;
  std::shared_ptr<const ScoreIndex> index;
  double index_ms = 0;  // how long getting the index took (built, or read from the cache)
  Signals signals;
  Score score;
  RouteDecision decision;
  std::string routing_file;
  BandOutcomes outcomes;  // none recorded without a state DB
  bool has_state_db = false;
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

std::string or_none(const std::string& s) {
  return s.empty() ? "(none)" : s;
}

std::string rule_text(const Explanation& e) {
  if (!e.decision.rule_line) return e.decision.because == "--agent" ? "--agent" : "none matched; the default agent";
  return e.routing_file + ":" + std::to_string(e.decision.rule_line) + " " +
         e.decision.because.substr(e.decision.because.find(' ') + 1);
}

// How the finished tasks of the task's repo in its score band ended, from the state DB (read
// only); none when there is no DB yet.
Result<BandOutcomes> recorded_outcomes(const TaskRequest& task, int score, const Settings& s) {
  const ScoreBand band = score_band(score, s.routing.scoring);
  if (!std::filesystem::exists(s.config.state_db)) return summarize(task.repo, band, {});
  auto store = StateStore::open(s.config.state_db, true);
  if (!store.ok()) return store.error();
  auto rows = store->task_outcomes(task.repo, band.min, band.max);
  if (!rows.ok()) return rows.error();
  return summarize(task.repo, band, *rows);
}

void print_learning(const Explanation& e, const Settings& s) {
  std::ostream& o = std::cout;
  const std::vector<std::string> lines =
      e.has_state_db ? describe(e.outcomes)
                     : std::vector<std::string>{"no state DB yet (" + s.config.state_db.string() + ")"};
  for (size_t i = 0; i < lines.size(); ++i) o << (i ? std::string(13, ' ') : "outcomes:    ") << lines[i] << "\n";
  o << "learning:    "
    << (s.routing.learning.enabled ? e.decision.learning : "off (routing.yaml learning.enabled is false)") << "\n";
}

// How the index was made when it was updated from another commit's, not built in full.
std::string built_from(const ScoreIndex& index) {
  if (index.built_from.empty()) return {};
  return std::string(index.loaded_from_cache ? "; it was " : "; ") + "updated from the index of " +
         index.built_from.substr(0, 12) + " (" + std::to_string(index.files_reparsed) + " changed code file(s) parsed)";
}

void print_text(const Explanation& e, const Settings& s) {
  std::ostream& o = std::cout;
  std::string labels;
  for (const auto& l : e.task.labels) labels += (labels.empty() ? "" : ", ") + l;
  o << "task:        " << e.task.title << "\n"
    << "             type " << or_none(e.task.task_type) << ", risk " << or_none(e.task.risk) << ", labels "
    << or_none(labels) << "\n"
    << "repo:        " << e.index->source << ", " << e.signals.files_scanned << " file(s) indexed"
    << (e.signals.scan_note.empty() ? "" : "; " + e.signals.scan_note) << "\n"
    << "index:       " << e.signals.parser << "; " << (e.index->loaded_from_cache ? "read from the cache" : "built")
    << " in " << std::fixed << std::setprecision(0) << e.index_ms << " ms" << built_from(*e.index) << "\n";
  for (const auto& n : e.signals.notes) o << "note:        " << n << "\n";
  o << "\n";
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
    << "fallback:    " << (r.fallback.empty() ? "-" : json(r.fallback).dump()) << "\n";
  print_learning(e, s);
  o << "(explain only: nothing was queued or run)\n";
}

json agent_json(const Settings& s, const std::string& name, const TaskRequest& task) {
  if (name.empty()) return nullptr;
  const AgentProfile& a = s.agents.at(name);
  return {{"name", name},
          {"tier", a.tier},
          {"command", expand_command(a.command, task, "polyphony/<id>-" + slugify(task.title))}};
}

json outcomes_json(const BandOutcomes* outcomes) {
  if (!outcomes) return nullptr;
  json agents = json::array();
  for (const auto& [name, a] : outcomes->agents) {
    agents.push_back({{"name", name},
                      {"tasks", a.tasks},
                      {"landed", a.landed},
                      {"landing_rate", a.landing_rate()},
                      {"attempts", a.attempts},
                      {"review_rounds", a.review_rounds},
                      {"tokens", a.tokens_known ? json(a.tokens) : json(nullptr)},
                      {"cost_usd", a.cost_known ? json(a.cost_usd) : json(nullptr)},
                      {"median_land_ms", a.median_land_ms ? json(*a.median_land_ms) : json(nullptr)}});
  }
  const ScoreBand& b = outcomes->band;
  return {{"repo", outcomes->repo},
          {"band", {{"min", b.min}, {"max", b.max}, {"plan", plan_name(b.plan)}}},
          {"agents", agents},
          {"lines", describe(*outcomes)}};
}

json explanation_json(const Explanation& e, const Settings& s) {
  json dims = json::array();
  for (const auto& d : e.score.dimensions) {
    dims.push_back({{"name", dimension_name(d.dimension)}, {"value", d.value}, {"evidence", d.evidence}});
  }
  const RouteDecision& r = e.decision;
  json out{
      {"task", {{"title", e.task.title}, {"type", e.task.task_type}, {"risk", e.task.risk}, {"labels", e.task.labels}}},
      {"repo",
       {{"source", e.index->source},
        {"files_scanned", e.signals.files_scanned},
        {"scan_note", e.signals.scan_note},
        {"parser", e.signals.parser}}},  // whether the index was cached, and how long it took, only in the text: the
                                         // JSON is the same every run
      {"named_nothing", e.signals.named_nothing},
      {"notes", e.signals.notes},
      {"dimensions", dims},
      {"total", e.score.total},
      {"plan", plan_name(r.plan)},
      {"plan_because", r.plan_because},
      {"because", r.because},
      {"rule", r.rule_line ? json{{"file", e.routing_file}, {"line", r.rule_line}} : json(nullptr)},
      {"implementer", agent_json(s, r.agent, e.task)},
      {"reviewer", agent_json(s, r.reviewer, e.task)},
      {"fallback", r.fallback},
      {"outcomes", outcomes_json(e.has_state_db ? &e.outcomes : nullptr)},
      {"learning", {{"enabled", s.routing.learning.enabled}, {"decided", r.learned}, {"because", r.learning}}}};
  return out;
}

Result<Explanation> explain(const Args& args, const Settings& settings) {
  Explanation e;
  auto task = read_task_flags(args, settings, "route --explain");
  if (!task.ok()) return task.error();
  e.task = *task;
  auto where = local_repo(e.task, settings.config);
  if (!where.ok()) return where.error();
  const auto started = std::chrono::steady_clock::now();
  ScoreIndexCache indexes(score_index_dir(settings.config));
  auto index = indexes.at(where->first, where->second);
  if (!index.ok()) return index.error();
  e.index = *index;
  e.index_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  e.signals = collect_signals(e.task, *e.index);
  e.score = score(e.signals, settings.routing.scoring);
  auto outcomes = recorded_outcomes(e.task, e.score.total, settings);
  if (!outcomes.ok()) return outcomes.error();
  e.outcomes = *outcomes;
  e.has_state_db = std::filesystem::exists(settings.config.state_db);
  auto decision = route(e.task, settings.routing, settings.agents, e.score.total, &e.outcomes);
  if (!decision.ok()) return decision.error();
  e.decision = *decision;
  e.routing_file = (polyphony_home() / "routing.yaml").string();
  return e;
}

// `route --calibrate FILE.tsv --repo R`: scores a user's labelled tasks against R and prints
// band accuracy, pair ordering and the best thresholds for the set.
int calibrate_command(const Args& args, const Settings& settings) {
  if (!args.positional.empty()) {
    return report(make_error("usage", "route --calibrate takes no TITLE: the tasks come from the TSV file", "TITLE"));
  }
  if (!args.has("repo"))
    return report(make_error("usage", "route --calibrate needs --repo R, a local repository", "--repo"));
  TaskRequest probe;
  probe.repo = args.get("repo");
  auto where = local_repo(probe, settings.config);
  if (!where.ok()) return report(where.error());
  auto tasks = read_labelled_tasks(args.get("calibrate"));
  if (!tasks.ok()) {
    Error e = tasks.error();
    if (e.code == "io") e.where = "--calibrate";
    return report(e);
  }
  ScoreIndexCache indexes(score_index_dir(settings.config));
  auto r = calibrate(*tasks, where->first, settings.routing.scoring, indexes);
  if (!r.ok()) return report(r.error());
  std::cout << format_report(*r, settings.routing.scoring);
  return kExitOk;
}

int route_command(const Args& args) {
  if (!args.has("explain") && !args.has("calibrate")) {
    return report(make_error("usage",
                             "route explains or calibrates: polyphony route --explain TITLE --repo R [...], or "
                             "polyphony route --calibrate FILE.tsv --repo R",
                             "--explain"));
  }
  auto settings = load_or_report();
  if (!settings) return kExitUsage;
  if (args.has("calibrate")) return calibrate_command(args, *settings);
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
      "route",
      "--explain: score a task against a local repo, show its routing; --calibrate: check the score; runs nothing",
      route_command);
  route.positionals("TITLE", "the task's title (quote it; after -- when it starts with -)")
      .flag("--explain",
            "show the score, its evidence, the plan and agents routing picks, and how earlier tasks "
            "of this repo and score band ended")
      .option("--calibrate", "FILE.tsv",
              "score labelled tasks (band, base, title, description per line) against --repo and print band "
              "accuracy, pair ordering and the best thresholds")
      .flag("--json", "the same as JSON");
  add_task_flags(route);
}

}  // namespace polyphony::cli
