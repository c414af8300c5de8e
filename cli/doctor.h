// `polyphony doctor`'s checks of this host: each looks at one thing and says it is fine, or
// what is wrong and what to do. `polyphony serve` runs them at start and logs what is not fine.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/config.h"

namespace polyphony::cli {

enum class Health {
  kOk,
  kSkipped,  // could not be looked at (the reason is the message); not a problem by itself
  kWarning,  // works, but worth fixing
  kProblem,  // something will fail until it is fixed
};

// "ok", "skipped", "warning", "problem".
const char* health_name(Health health);

struct Finding {
  std::string check;  // "keys", "docker", "image", "agent claude", "identity anthropic", "network", "disk", "clock"
  Health health = Health::kOk;
  std::string message;  // one line: what was found and, unless it is fine, what to do
  std::string where;    // the file:line, config key or socket it concerns; "" when none
};

struct DoctorOptions {
  // Look at what a worker on this host needs: the Docker engine, the image and its agent CLIs,
  // the network, the disk. Off for a serve without an embedded worker.
  bool worker_host = true;
  // Ask a running `polyphony serve` of this home for its workers' clocks.
  bool measure_clocks = true;
  int64_t min_free_disk_bytes = int64_t{2} << 30;
  int64_t max_clock_skew_ms = 2000;
};

// Runs every check against `settings` (loaded from `settings.config.home`) and this host, in a
// fixed order: keys, docker, image, agents, network, identities, disk, clock, gh. Never fails: what it
// cannot look at is a finding too. Starts one short-lived container (no network, removed after;
// labelled polyphony.doctor=probe with its pid, so one a killed doctor left is removed by the
// next) to list the agent CLIs the image holds.
std::vector<Finding> run_doctor(const Settings& settings, const DoctorOptions& options);

// The gh versions GitHub mode is tested with and supports.
inline constexpr const char* kGhSupported = "2.x (tested with 2.23.0, Debian bookworm's)";

// GitHub mode's checks (run_doctor runs them when github.repo is set): "gh", the version of
// github.gh (a problem when it does not run, a warning before 2.0), and "gh login", whether
// `gh auth status --hostname <github.host>` finds a working token for that host.
std::vector<Finding> check_github(const GithubConfig& config);

// True when any finding is a problem.
bool has_problem(const std::vector<Finding>& findings);

}  // namespace polyphony::cli
