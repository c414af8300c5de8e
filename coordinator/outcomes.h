// How finished tasks ended, per repo, agent and score band: the evidence routing learns from.
// Pure: the state store reads the rows (StateStore::task_outcomes), this file sums them up and
// words them; the router takes the sums as data.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/config.h"

namespace polyphony {

// One finished task (LANDED, FAILED or BLOCKED; a cancelled task is no agent's outcome) as one
// agent worked on it: a task that fell back from one agent to another gives a row for each.
struct TaskOutcome {
  std::string task_id;
  std::string agent;
  int score = -1;
  int attempts = 0;                     // attempts this agent implemented
  bool landed = false;                  // the task landed from this agent's attempt
  int review_rounds = 0;                // reviews of this agent's work
  std::optional<int64_t> tokens;        // input + output tokens, when the runs reported them
  std::optional<double> cost_usd;       // when the runs reported a cost
  int64_t started_at_ms = 0;            // this agent's first attempt was routed
  std::optional<int64_t> landed_at_ms;  // the task landed
};

// A range of complexity totals that share a plan: 0..solo_max, solo_max+1..review_max, above.
struct ScoreBand {
  int min = 0;
  int max = 10;
  Plan plan = Plan::kSolo;
};

// The band of `score` under the scoring thresholds.
ScoreBand score_band(int score, const ScoringPolicy& scoring);

// "0-3", or "7" for a band of one total.
std::string band_text(const ScoreBand& band);

// One agent's record in one repo and band.
struct AgentOutcomes {
  int tasks = 0;
  int landed = 0;
  int attempts = 0;
  int review_rounds = 0;
  int64_t tokens = 0;
  int tokens_known = 0;  // tasks whose runs reported tokens
  double cost_usd = 0;
  int cost_known = 0;                     // tasks whose runs reported a cost
  std::optional<int64_t> median_land_ms;  // from its first attempt to landing, over landed tasks

  double landing_rate() const { return tasks ? static_cast<double>(landed) / tasks : 0; }
  // Mean cost of a task, when some reported one.
  std::optional<double> cost_per_task() const {
    return cost_known ? std::optional<double>(cost_usd / cost_known) : std::nullopt;
  }
};

// Every agent's record for the tasks of one repo whose score fell in one band.
struct BandOutcomes {
  std::string repo;
  ScoreBand band;
  std::map<std::string, AgentOutcomes> agents;
};

// Sums `rows` (any order) up per agent.
BandOutcomes summarize(const std::string& repo, const ScoreBand& band, const std::vector<TaskOutcome>& rows);

// One line for one agent: "codex landed 9 of 10 tasks scored 2-3 here, median 4 min to land,
// 1.2 attempts and 0.5 review rounds a task, 31k tokens and $0.42 a task".
std::string describe(const std::string& agent, const AgentOutcomes& outcomes, const ScoreBand& band);

// A line per agent, most tasks first; one line saying there is no history when there is none.
std::vector<std::string> describe(const BandOutcomes& outcomes);

// A duration for people: "42 s", "4 min", "2.5 h".
std::string human_duration(int64_t ms);

}  // namespace polyphony
