// Dispatch latency: `polyphony spawn` returning -> the agent process starting in its
// container, on a warm worker. The agent is a profile whose command prints `date +%s.%N`
// (the realtime clock, shared with the host), read back from the task's agent log.
#include <cstdlib>
#include <fstream>

#include "bench/benchmarks.h"

namespace polyphony::bench {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr const char* kStampAgent = R"(  bench-stamp:
    # The benchmark's agent: prints the moment it starts, changes nothing.
    command: [sh, -c, "date +%s.%N"]
    tier: cheap
)";

// When the agent of `id` started, from the first line of its log (seconds since the epoch).
double wait_for_stamp(const Box& box, const std::string& id) {
  const fs::path log = box.home() / "logs" / id / "1-agent.log";
  double stamp = 0;
  wait_until(
      [&] {
        std::ifstream in(log);
        std::string line;
        if (!std::getline(in, line) || in.eof()) return false;  // no complete first line yet
        stamp = std::strtod(line.c_str(), nullptr);
        return stamp > 0;
      },
      60s, "the agent of task " + id + " to start (" + log.string() + ")");
  return stamp;
}

// Milliseconds at which the task first entered `state` (0 when it never did).
double entered_ms(const std::vector<TaskEvent>& events, const std::string& state) {
  for (const auto& e : events) {
    if (e.to == state) return static_cast<double>(e.at_ms);
  }
  return 0;
}

struct Sample {
  double latency = 0;         // seconds, spawn returned -> agent started
  double to_routed = 0;       // spawn returned -> ROUTED (queue poll, discover, claim, route, send)
  double to_provisioned = 0;  // ROUTED -> PROVISIONED (worker: leftovers, warm container, spare brought to the base)
  double to_agent =
      0;  // PROVISIONED -> agent started (verify command read, the runner starts it in the task container)
};

Sample one_dispatch(const Box& box, const fs::path& origin) {
  const std::string id = box.spawn({"Dispatch latency probe", "--repo", origin.string(), "--agent", "bench-stamp"});
  const double returned = wall_now();
  const double started = wait_for_stamp(box, id);
  box.wait_finished({id}, 120s);
  const auto events = box.events(id);
  Sample s;
  s.latency = started - returned;
  s.to_routed = entered_ms(events, "ROUTED") / 1000 - returned;
  s.to_provisioned = (entered_ms(events, "PROVISIONED") - entered_ms(events, "ROUTED")) / 1000;
  s.to_agent = started - entered_ms(events, "PROVISIONED") / 1000;
  return s;
}

fs::path only_mirror(const Box& box) {
  for (const auto& e : fs::directory_iterator(box.home() / "workspaces" / "mirrors")) {
    if (e.is_directory() && e.path().extension() == ".git") return e.path();
  }
  throw BenchError("no reference mirror under " + (box.home() / "workspaces" / "mirrors").string());
}

struct Baseline {
  std::vector<double> total, docker, clone;
};

Baseline run_baseline(const BenchOptions& options, const Box& box, const fs::path& origin, int n) {
  const fs::path mirror = only_mirror(box);
  ProcessOptions env;
  env.env["DOCKER_HOST"] = options.docker_host;
  Baseline b;
  for (int i = 0; i < n; ++i) {
    const fs::path dest = box.dir() / ("baseline-clone-" + std::to_string(i));
    const double d = timed_run({docker_cli(), "run", "--rm", "--network", "none", options.image, "true"}, env);
    const double c = timed_run({"git", "clone", "-q", "--reference", mirror.string(), origin.string(), dest.string()});
    fs::remove_all(dest);
    b.docker.push_back(d);
    b.clone.push_back(c);
    b.total.push_back(d + c);
  }
  return b;
}

std::string ms(double seconds) {
  return std::to_string(static_cast<long>(seconds * 1000 + 0.5)) + " ms";
}

std::vector<double> field(const std::vector<Sample>& s, double Sample::*f) {
  std::vector<double> out;
  for (const auto& x : s) out.push_back(x.*f);
  return out;
}

}  // namespace

std::vector<Row> run_dispatch(const BenchOptions& options) {
  const int n = options.smoke ? 1 : 15;
  Box box(options, options.work_dir / "dispatch", container_config(4, kBenchPollIntervalMs), kStampAgent);
  const fs::path origin = box.dir() / "origin.git";
  make_origin(origin, {{"README.md", "# Dispatch latency\n"}, {".polyphony.yaml", "verify: \"true\"\n"}});
  box.serve();
  progress("dispatch: warming the worker (first task makes the reference mirror)");
  for (int i = 0; i < 2; ++i) one_dispatch(box, origin);
  std::vector<Sample> samples;
  for (int i = 0; i < n; ++i) {
    samples.push_back(one_dispatch(box, origin));
    progress("dispatch: " + std::to_string(i + 1) + "/" + std::to_string(n) + " " + ms(samples.back().latency));
  }
  box.stop_serving();
  progress("dispatch: baseline (docker run --rm IMAGE true + git clone --reference)");
  const Baseline base = run_baseline(options, box, origin, n);

  const auto lat = field(samples, &Sample::latency);
  Row med = compare("dispatch latency, median", median(lat) * 1000, median(base.total) * 1000, "ms");
  med.target = "<=1.25x and <1000 ms";
  med.pass = med.ratio && *med.ratio <= 1.25 && med.value < 1000;
  med.note = std::to_string(n) + " spawns, one at a time, warm worker, poll_interval_ms " +
             std::to_string(kBenchPollIntervalMs) + ". Median split: spawn->ROUTED " +
             ms(median(field(samples, &Sample::to_routed))) + ", ROUTED->PROVISIONED " +
             ms(median(field(samples, &Sample::to_provisioned))) + ", PROVISIONED->agent start " +
             ms(median(field(samples, &Sample::to_agent))) +
             " (spawn->ROUTED can be negative: the coordinator may route the task before spawn has returned). Baseline "
             "median: docker run " +
             ms(median(base.docker)) + " + git clone --reference " + ms(median(base.clone)) + ".";
  Row tail = compare("dispatch latency, p95", p95(lat) * 1000, p95(base.total) * 1000, "ms");
  return {med, tail};
}

}  // namespace polyphony::bench
