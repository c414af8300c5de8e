// Footprint: the coordinator's RSS holding 10,000 queued tasks with 200 simulated workers
// connected (each busy with one of them), and an idle polyphony-worker's RSS, connected over
// loopback TCP to a coordinator.
#include <thread>

#include "bench/benchmarks.h"
#include "bench/fleet_sim.h"

namespace polyphony::bench {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr int kSamples = 10;

// RSS samples of `pid`, 300 ms apart.
std::vector<double> sample_rss(int pid) {
  std::vector<double> out;
  for (int i = 0; i < kSamples; ++i) {
    out.push_back(static_cast<double>(rss_bytes(pid)) / 1e6);
    std::this_thread::sleep_for(300ms);
  }
  return out;
}

std::string mb(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB", v);
  return buf;
}

std::vector<Row> coordinator_rss(const BenchOptions& options) {
  const int n = options.smoke ? 200 : 10000;
  const int workers = options.smoke ? 10 : 200;
  const std::string endpoint = "tcp://127.0.0.1:" + std::to_string(free_port());
  Box box(options, options.work_dir / "footprint-coordinator",
          "max_concurrency: " + std::to_string(workers) + "\n" +
              "coordinator:\n  embedded_worker: false\n  worker_endpoint: \"" + endpoint + "\"\n  insecure: true\n");
  const fs::path origin = box.dir() / "origin.git";
  make_origin(origin, {{"README.md", "# Footprint\n"}});
  progress("footprint: enqueueing " + std::to_string(n) + " tasks");
  enqueue_tasks(box.home() / "queue.db", origin, n);
  const double start = steady_now();
  box.serve({"--no-embedded-worker"});
  wait_until([&] { return count_in_state(box.home(), TaskState::kClaimed) == static_cast<size_t>(n); }, 900s,
             std::to_string(n) + " tasks to be claimed", 500ms);
  const double took = steady_now() - start;
  progress("footprint: connecting " + std::to_string(workers) + " simulated workers");
  SimulatedFleet fleet({endpoint, workers, 1, 1000, FleetOptions::Mode::kHold, "fp"});
  wait_until([&] { return fleet.stats().held >= workers; }, 120s,
             std::to_string(workers) + " simulated workers to each hold a task", 50ms);
  std::this_thread::sleep_for(2s);  // a few more turns of the loop: heartbeats, polls of the full queue
  const auto rss = sample_rss(box.server()->pid());
  const double peak = static_cast<double>(rss_bytes(box.server()->pid(), "VmHWM")) / 1e6;
  box.stop_serving();

  Row med;
  med.name = "coordinator RSS, " + std::to_string(n) + " queued tasks, " + std::to_string(workers) + " workers, median";
  med.value = median(rss);
  med.unit = "MB";
  med.target = "<100 MB";
  med.pass = med.value < 100;
  char took_s[32];
  std::snprintf(took_s, sizeof took_s, "%.1f s", took);
  med.note = "`serve --no-embedded-worker`, default poll_interval_ms 500, " + std::to_string(workers) +
             " simulated workers (bench/fleet_sim) on tcp://127.0.0.1 heartbeating every second, each holding one "
             "RUNNING task (max_concurrency " +
             std::to_string(workers) +
             "), the rest CLAIMED. Discovering and "
             "claiming all " +
             std::to_string(n) + " took " + took_s + "; peak RSS (VmHWM) " + mb(peak) + "; " +
             std::to_string(kSamples) + " samples 300 ms apart.";
  Row tail = med;
  tail.name = "coordinator RSS, " + std::to_string(n) + " queued tasks, " + std::to_string(workers) + " workers, p95";
  tail.value = p95(rss);
  tail.target.clear();
  tail.pass.reset();
  tail.note.clear();
  return {med, tail};
}

std::vector<Row> worker_rss(const BenchOptions& options) {
  const std::string endpoint = "tcp://127.0.0.1:" + std::to_string(free_port());
  Box box(options, options.work_dir / "footprint-worker",
          "coordinator:\n  embedded_worker: false\n  worker_endpoint: \"" + endpoint + "\"\n  insecure: true\n" +
              "worker:\n  coordinator: \"" + endpoint + "\"\n  capacity: 4\n  insecure: true\n");
  box.serve({"--no-embedded-worker"});
  auto worker = box.start({options.worker}, "worker.log");
  wait_until([&] { return read_text(box.dir() / "serve.log").find("registered") != std::string::npos; }, 60s,
             "polyphony-worker to register with the coordinator at " + endpoint, 50ms);
  std::this_thread::sleep_for(2s);  // idle: a few heartbeats each way
  const auto rss = sample_rss(worker->pid());
  worker->stop();
  box.stop_serving();

  Row med;
  med.name = "idle polyphony-worker RSS, median";
  med.value = median(rss);
  med.unit = "MB";
  med.target = "<20 MB";
  med.pass = med.value < 20;
  med.note = "registered with a coordinator at " + endpoint + ", no task; " + std::to_string(kSamples) +
             " samples 300 ms apart";
  Row tail = med;
  tail.name = "idle polyphony-worker RSS, p95";
  tail.value = p95(rss);
  tail.target.clear();
  tail.pass.reset();
  tail.note.clear();
  return {med, tail};
}

}  // namespace

std::vector<Row> run_footprint(const BenchOptions& options) {
  auto rows = coordinator_rss(options);
  auto w = worker_rss(options);
  rows.insert(rows.end(), w.begin(), w.end());
  return rows;
}

}  // namespace polyphony::bench
