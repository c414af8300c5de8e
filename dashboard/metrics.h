// The Prometheus metrics of /metrics, in the text exposition format (version 0.0.4). Pure: the
// history goes in event by event, the current standing at each scrape; no I/O. Written by hand
// because prometheus-cpp is not packaged in Debian bookworm; the format is small.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "coordinator/github_source.h"
#include "coordinator/state_store.h"
#include "coordinator/task.h"
#include "protocol/messages.h"

namespace polyphony::dashboard {

// A cumulative histogram with fixed upper bounds (seconds).
struct Histogram {
  std::vector<double> bounds;
  std::vector<uint64_t> counts;  // observations <= bounds[i]; the +Inf bucket is `count`
  double sum = 0;
  uint64_t count = 0;
  void observe(double value);
};

// What is true at the moment of a scrape.
struct MetricsSnapshot {
  int64_t now_ms = 0;
  std::vector<Task> tasks;
  std::vector<AgentRun> runs;                     // every recorded agent run
  std::optional<protocol::WorkersReply> workers;  // nullopt: the coordinator did not answer
  std::optional<GithubHealth> github;             // nullopt: GitHub mode never ran
  GithubUsage github_usage;                       // GitHub calls and rate limits recorded
  std::vector<LandWait> land_waits;               // every grant of a landing slot
};

class MetricsModel {
 public:
  MetricsModel();
  // One event of the state DB, in seq order. Notes (from == to) change nothing but the seq.
  void add(const TaskEvent& event);
  // Everything, in the Prometheus text format.
  std::string render(const MetricsSnapshot& snapshot) const;

 private:
  struct Open {  // a task's current state since `since_ms`
    std::string state;
    int64_t since_ms = 0;
    int64_t claimed_ms = 0;    // when its attempt entered CLAIMED; 0: not waiting for dispatch
    int64_t verifying_ms = 0;  // when it entered VERIFYING; 0: not verifying
  };
  void render_history(std::string& out) const;
  std::map<std::pair<std::string, std::string>, uint64_t> transitions_;
  std::map<std::pair<std::string, std::string>, uint64_t> attempts_;  // (outcome, failure kind)
  uint64_t landings_ = 0;
  std::map<std::string, Histogram> time_in_state_;
  Histogram dispatch_latency_;
  Histogram landing_wait_;
  std::map<std::string, Open> open_;
  int64_t last_seq_ = 0;
};

// A label value escaped for the text format: backslash, double quote and newline.
std::string escape_label(const std::string& value);

}  // namespace polyphony::dashboard
