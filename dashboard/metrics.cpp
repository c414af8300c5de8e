// /metrics: counters and histograms from the transition history, gauges from the snapshot.
#include "dashboard/metrics.h"

#include <charconv>
#include <cmath>
#include <set>

#include "common/log.h"

namespace polyphony::dashboard {

namespace {

const std::vector<double> kLatencyBounds{0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600};
const std::vector<double> kDurationBounds{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400};

std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  char buf[64];
  const auto end = std::to_chars(buf, buf + sizeof buf, v).ptr;  // the shortest text that reads back as v
  return std::string(buf, end);
}

using Labels = std::vector<std::pair<std::string, std::string>>;

// Writes families: each name's HELP and TYPE once, then its samples.
class TextWriter {
 public:
  explicit TextWriter(std::string& out) : out_(out) {}
  TextWriter& family(const std::string& name, const std::string& type, const std::string& help) {
    out_ += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    return *this;
  }
  TextWriter& sample(const std::string& name, const Labels& labels, double value) {
    out_ += name;
    if (!labels.empty()) {
      out_ += "{";
      for (size_t i = 0; i < labels.size(); ++i) {
        // Label values come from the config, workers and GitHub: redacted like every output.
        out_ += (i ? "," : "") + labels[i].first + "=\"" + escape_label(redact(labels[i].second)) + "\"";
      }
      out_ += "}";
    }
    out_ += " " + number(value) + "\n";
    return *this;
  }
  void histogram(const std::string& name, Labels labels, const Histogram& h) {
    for (size_t i = 0; i < h.bounds.size(); ++i) {
      Labels l = labels;
      l.emplace_back("le", number(h.bounds[i]));
      sample(name + "_bucket", l, static_cast<double>(h.counts[i]));
    }
    Labels inf = labels;
    inf.emplace_back("le", "+Inf");
    sample(name + "_bucket", inf, static_cast<double>(h.count));
    sample(name + "_sum", labels, h.sum);
    sample(name + "_count", labels, static_cast<double>(h.count));
  }

 private:
  std::string& out_;
};

Histogram histogram_of(const std::vector<double>& bounds) {
  Histogram h;
  h.bounds = bounds;
  h.counts.assign(bounds.size(), 0);
  return h;
}

double seconds(int64_t ms) {
  return static_cast<double>(ms) / 1000.0;
}

// The outcome an attempt's event ends it with; empty when the event ends no attempt.
std::string outcome_of(const TaskEvent& e) {
  if (e.to == "LANDED") return "landed";
  if (e.to == "FAILED") return "failed";
  const std::set<std::string> running{"ROUTED", "PROVISIONED", "RUNNING", "VERIFYING"};
  if (e.to == "CANCELLED" && running.count(e.from)) return "cancelled";
  return "";
}

void render_tasks(TextWriter& w, const MetricsSnapshot& s) {
  std::map<std::string, int> by_state;
  for (TaskState st : all_task_states()) by_state[std::string(to_string(st))] = 0;
  std::map<std::string, int> failures;
  int queued = 0;
  for (const auto& t : s.tasks) {
    ++by_state[std::string(to_string(t.state))];
    if (t.state == TaskState::kDiscovered || t.state == TaskState::kClaimed) ++queued;
    if ((t.state == TaskState::kFailed || t.state == TaskState::kBlocked) && !t.failure_kind.empty()) {
      ++failures[t.failure_kind];
    }
  }
  w.family("polyphony_tasks", "gauge", "Tasks by lifecycle state.");
  for (const auto& [state, n] : by_state) w.sample("polyphony_tasks", {{"state", state}}, n);
  w.family("polyphony_queue_depth", "gauge", "Tasks waiting for a worker (DISCOVERED or CLAIMED).");
  w.sample("polyphony_queue_depth", {}, queued);
  w.family("polyphony_stopped_tasks_by_failure_kind", "gauge",
           "FAILED or BLOCKED tasks by the failure kind of their last attempt.");
  for (const auto& [kind, n] : failures) w.sample("polyphony_stopped_tasks_by_failure_kind", {{"kind", kind}}, n);
}

void render_workers(TextWriter& w, const MetricsSnapshot& s) {
  w.family("polyphony_coordinator_up", "gauge", "1 when the coordinator answered the dashboard's worker query.");
  w.sample("polyphony_coordinator_up", {}, s.workers ? 1 : 0);
  if (!s.workers) return;
  std::map<std::string, int> by_state{{"ready", 0}, {"busy", 0}, {"lost", 0}};
  for (const auto& wk : s.workers->workers) ++by_state[wk.state];
  w.family("polyphony_workers", "gauge", "Registered workers by state (ready, busy, lost).");
  for (const auto& [state, n] : by_state) w.sample("polyphony_workers", {{"state", state}}, n);
  w.family("polyphony_worker_heartbeat_age_seconds", "gauge", "Time since the coordinator last heard from the worker.");
  for (const auto& wk : s.workers->workers) {
    w.sample("polyphony_worker_heartbeat_age_seconds", {{"worker", wk.worker_id}}, seconds(wk.heartbeat_age_ms));
  }
  w.family("polyphony_worker_load", "gauge", "Task slots the worker's attempts hold.");
  for (const auto& wk : s.workers->workers) w.sample("polyphony_worker_load", {{"worker", wk.worker_id}}, wk.load);
  w.family("polyphony_worker_capacity", "gauge", "Tasks the worker runs at once.");
  for (const auto& wk : s.workers->workers) {
    w.sample("polyphony_worker_capacity", {{"worker", wk.worker_id}}, wk.capacity);
  }
}

void render_agents(TextWriter& w, const MetricsSnapshot& s) {
  struct Usage {
    double runs = 0, input = 0, output = 0, cost = 0;
  };
  std::map<std::pair<std::string, std::string>, Usage> by;  // (agent, role)
  for (const auto& r : s.runs) {
    Usage& u = by[{r.usage.agent, r.usage.role}];
    u.runs += 1;
    u.input += static_cast<double>(r.usage.input_tokens);
    u.output += static_cast<double>(r.usage.output_tokens);
    u.cost += r.usage.cost_usd;
  }
  w.family("polyphony_agent_runs_total", "counter", "Agent runs that reported usage, by agent and role.");
  for (const auto& [k, u] : by) {
    w.sample("polyphony_agent_runs_total", {{"agent", k.first}, {"role", k.second}}, u.runs);
  }
  w.family("polyphony_agent_tokens_total", "counter", "Tokens the agents reported, by agent, role and direction.");
  for (const auto& [k, u] : by) {
    w.sample("polyphony_agent_tokens_total", {{"agent", k.first}, {"role", k.second}, {"direction", "input"}}, u.input);
    w.sample("polyphony_agent_tokens_total", {{"agent", k.first}, {"role", k.second}, {"direction", "output"}},
             u.output);
  }
  w.family("polyphony_agent_cost_usd_total", "counter", "Cost in US dollars the agents reported, by agent and role.");
  for (const auto& [k, u] : by) {
    w.sample("polyphony_agent_cost_usd_total", {{"agent", k.first}, {"role", k.second}}, u.cost);
  }
}

void render_land_waits(TextWriter& w, const MetricsSnapshot& s) {
  Histogram h = histogram_of(kLatencyBounds);
  for (const auto& wait : s.land_waits) h.observe(seconds(std::max<int64_t>(0, wait.granted_at_ms - wait.asked_at_ms)));
  w.family("polyphony_merge_queue_wait_seconds", "histogram",
           "Time from an attempt's request to land to the grant of its repo's landing slot (the merge queue).");
  w.histogram("polyphony_merge_queue_wait_seconds", {}, h);
}

void render_github_usage(TextWriter& w, const MetricsSnapshot& s) {
  const GithubUsage& u = s.github_usage;
  if (u.calls.empty() && u.rate_limits.empty()) return;
  w.family("polyphony_github_calls_total", "counter",
           "GitHub API calls, by endpoint kind and status (HTTP status, or the error when no answer came).");
  for (const auto& c : u.calls) {
    w.sample("polyphony_github_calls_total", {{"endpoint", c.endpoint}, {"status", c.status}},
             static_cast<double>(c.count));
  }
  w.family("polyphony_github_rate_limit_limit", "gauge",
           "Calls GitHub allows per window, by resource, as last reported.");
  for (const auto& l : u.rate_limits) {
    w.sample("polyphony_github_rate_limit_limit", {{"resource", l.resource}}, static_cast<double>(l.limit));
  }
  w.family("polyphony_github_rate_limit_remaining", "gauge",
           "Calls left in the window, by resource, as last reported.");
  for (const auto& l : u.rate_limits) {
    w.sample("polyphony_github_rate_limit_remaining", {{"resource", l.resource}}, static_cast<double>(l.remaining));
  }
  w.family("polyphony_github_rate_limit_reset_timestamp_seconds", "gauge",
           "When the window resets (Unix time), by resource, as last reported.");
  for (const auto& l : u.rate_limits) {
    w.sample("polyphony_github_rate_limit_reset_timestamp_seconds", {{"resource", l.resource}}, seconds(l.reset_at_ms));
  }
}

void render_github(TextWriter& w, const MetricsSnapshot& s) {
  render_github_usage(w, s);
  if (!s.github) return;
  w.family("polyphony_github_state", "gauge",
           "1 for the GitHub work source's current state (ok, rate_limited, error).");
  for (const char* state : {"ok", "rate_limited", "error"}) {
    w.sample("polyphony_github_state", {{"state", state}}, s.github->state == state ? 1 : 0);
  }
  w.family("polyphony_github_backoff_seconds", "gauge", "Time left before the next GitHub call may be made.");
  w.sample("polyphony_github_backoff_seconds", {}, std::max<double>(0, seconds(s.github->until_ms - s.now_ms)));
}

}  // namespace

void Histogram::observe(double value) {
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (value <= bounds[i]) ++counts[i];
  }
  sum += value;
  ++count;
}

std::string escape_label(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

MetricsModel::MetricsModel()
    : dispatch_latency_(histogram_of(kLatencyBounds)), landing_wait_(histogram_of(kDurationBounds)) {}

void MetricsModel::add(const TaskEvent& e) {
  last_seq_ = std::max(last_seq_, e.seq);
  if (e.from == e.to) return;
  ++transitions_[{e.from, e.to}];
  if (const std::string o = outcome_of(e); !o.empty()) {
    // An event of an older DB has no failure kind: its failure counts as "unknown".
    const std::string kind = o == "landed" ? "" : e.failure_kind.empty() ? "unknown" : e.failure_kind;
    ++attempts_[{o, kind}];
    if (o == "landed") ++landings_;
  }
  Open& open = open_[e.task_id];
  if (!open.state.empty() && open.state == e.from) {
    auto [it, fresh] = time_in_state_.try_emplace(open.state, histogram_of(kDurationBounds));
    it->second.observe(seconds(std::max<int64_t>(0, e.at_ms - open.since_ms)));
  }
  if (e.to == "CLAIMED") open.claimed_ms = e.at_ms;
  if (e.to == "RUNNING" && open.claimed_ms > 0) {
    dispatch_latency_.observe(seconds(std::max<int64_t>(0, e.at_ms - open.claimed_ms)));
    open.claimed_ms = 0;
  }
  if (e.to == "VERIFYING" && open.verifying_ms == 0) open.verifying_ms = e.at_ms;
  if (e.to == "LANDED" && open.verifying_ms > 0) {
    landing_wait_.observe(seconds(std::max<int64_t>(0, e.at_ms - open.verifying_ms)));
  }
  if (e.to != "VERIFYING" && e.to != "RUNNING") open.verifying_ms = 0;
  open.state = e.to;
  open.since_ms = e.at_ms;
  if (e.to == "LANDED" || e.to == "CANCELLED") open_.erase(e.task_id);
}

void MetricsModel::render_history(std::string& out) const {
  TextWriter w(out);
  w.family("polyphony_transitions_total", "counter", "Lifecycle transitions, by from and to state.");
  for (const auto& [k, n] : transitions_) {
    w.sample("polyphony_transitions_total", {{"from", k.first}, {"to", k.second}}, static_cast<double>(n));
  }
  w.family("polyphony_attempts_total", "counter",
           "Attempts that ended, by outcome (landed, failed, cancelled) and failure kind (empty when landed).");
  if (!attempts_.count({"landed", ""}))
    w.sample("polyphony_attempts_total", {{"outcome", "landed"}, {"failure_kind", ""}}, 0);
  for (const auto& [k, n] : attempts_) {
    w.sample("polyphony_attempts_total", {{"outcome", k.first}, {"failure_kind", k.second}}, static_cast<double>(n));
  }
  w.family("polyphony_landings_total", "counter", "Tasks landed.");
  w.sample("polyphony_landings_total", {}, static_cast<double>(landings_));
  w.family("polyphony_dispatch_latency_seconds", "histogram",
           "Time from CLAIMED to RUNNING: queueing, retry back-off, routing and container start.");
  w.histogram("polyphony_dispatch_latency_seconds", {}, dispatch_latency_);
  w.family("polyphony_landing_wait_seconds", "histogram",
           "Time from VERIFYING to LANDED: verify, review rounds and the wait in the repo's merge queue.");
  w.histogram("polyphony_landing_wait_seconds", {}, landing_wait_);
  w.family("polyphony_time_in_state_seconds", "histogram", "Time a task spent in a state before leaving it.");
  for (const auto& [state, h] : time_in_state_) w.histogram("polyphony_time_in_state_seconds", {{"state", state}}, h);
  w.family("polyphony_events_seq", "gauge", "The last state-DB event the dashboard has read.");
  w.sample("polyphony_events_seq", {}, static_cast<double>(last_seq_));
}

std::string MetricsModel::render(const MetricsSnapshot& s) const {
  std::string out;
  TextWriter w(out);
  render_tasks(w, s);
  render_history(out);
  render_land_waits(w, s);
  render_workers(w, s);
  render_agents(w, s);
  render_github(w, s);
  return out;
}

}  // namespace polyphony::dashboard
