// Outcomes per repo, agent and score band: sums and their wording.
#include "coordinator/outcomes.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace polyphony {

ScoreBand score_band(int score, const ScoringPolicy& s) {
  if (score <= s.solo_max) return {0, s.solo_max, Plan::kSolo};
  if (score <= s.review_max) return {s.solo_max + 1, s.review_max, Plan::kReview};
  return {s.review_max + 1, 10, Plan::kStrong};
}

std::string band_text(const ScoreBand& band) {
  if (band.min == band.max) return std::to_string(band.min);
  return std::to_string(band.min) + "-" + std::to_string(band.max);
}

namespace {

std::optional<int64_t> median(std::vector<int64_t> values) {
  if (values.empty()) return std::nullopt;
  std::sort(values.begin(), values.end());
  const size_t mid = values.size() / 2;
  return values.size() % 2 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
}

// "1.2", "1": one decimal, none when it is a whole number.
std::string one_decimal(double v) {
  char buf[32];
  const double rounded = std::round(v * 10) / 10;
  if (rounded == std::floor(rounded)) {
    std::snprintf(buf, sizeof buf, "%.0f", rounded);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f", rounded);
  }
  return buf;
}

// "1 attempt", "1.5 attempts", "0 review rounds".
std::string count_of(double v, const std::string& noun) {
  const std::string n = one_decimal(v);
  return n + " " + noun + (n == "1" ? "" : "s");
}

std::string tokens_text(double tokens) {
  if (tokens >= 1e6) return one_decimal(tokens / 1e6) + "M";
  if (tokens >= 1e3) return one_decimal(tokens / 1e3) + "k";
  return one_decimal(tokens);
}

}  // namespace

std::string human_duration(int64_t ms) {
  if (ms < 60'000) return std::to_string((ms + 500) / 1000) + " s";
  if (ms < 7'200'000) return std::to_string((ms + 30'000) / 60'000) + " min";
  return one_decimal(static_cast<double>(ms) / 3'600'000) + " h";
}

BandOutcomes summarize(const std::string& repo, const ScoreBand& band, const std::vector<TaskOutcome>& rows) {
  BandOutcomes out{repo, band, {}};
  std::map<std::string, std::vector<int64_t>> land_times;
  for (const auto& r : rows) {
    AgentOutcomes& a = out.agents[r.agent];
    ++a.tasks;
    a.landed += r.landed;
    a.attempts += r.attempts;
    a.review_rounds += r.review_rounds;
    if (r.tokens) {
      a.tokens += *r.tokens;
      ++a.tokens_known;
    }
    if (r.cost_usd) {
      a.cost_usd += *r.cost_usd;
      ++a.cost_known;
    }
    if (r.landed && r.landed_at_ms) land_times[r.agent].push_back(*r.landed_at_ms - r.started_at_ms);
  }
  for (auto& [agent, times] : land_times) out.agents[agent].median_land_ms = median(std::move(times));
  return out;
}

std::string describe(const std::string& agent, const AgentOutcomes& a, const ScoreBand& band) {
  std::string line = agent + " landed " + std::to_string(a.landed) + " of " + std::to_string(a.tasks) + " task" +
                     (a.tasks == 1 ? "" : "s") + " scored " + band_text(band) + " here";
  if (a.median_land_ms) line += ", median " + human_duration(*a.median_land_ms) + " to land";
  if (a.tasks > 0) {
    line += ", " + count_of(static_cast<double>(a.attempts) / a.tasks, "attempt") + " and " +
            count_of(static_cast<double>(a.review_rounds) / a.tasks, "review round") + " a task";
  }
  if (a.tokens_known) line += ", " + tokens_text(static_cast<double>(a.tokens) / a.tokens_known) + " tokens a task";
  if (auto cost = a.cost_per_task()) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "$%.2f", *cost);
    line += std::string(", ") + buf + " a task";
  }
  return line;
}

std::vector<std::string> describe(const BandOutcomes& o) {
  std::vector<std::pair<std::string, const AgentOutcomes*>> order;
  for (const auto& [agent, a] : o.agents) order.emplace_back(agent, &a);
  std::stable_sort(order.begin(), order.end(),
                   [](const auto& x, const auto& y) { return x.second->tasks > y.second->tasks; });
  std::vector<std::string> lines;
  for (const auto& [agent, a] : order) lines.push_back(describe(agent, *a, o.band));
  if (lines.empty()) lines.push_back("no finished task scored " + band_text(o.band) + " here yet");
  return lines;
}

}  // namespace polyphony
