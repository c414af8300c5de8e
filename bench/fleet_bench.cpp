// Fleet (issue 6): a real `polyphony serve` process with 1,000 simulated workers on real
// ZeroMQ sockets over loopback TCP. Its CPU while they heartbeat every second; the rate at
// which it dispatches queued tasks to them when they answer at once; beside an empty ZeroMQ
// round trip measured in the same run. No Docker: the workers are bench/fleet_sim.
#include <thread>

#include "bench/benchmarks.h"
#include "bench/fleet_sim.h"

namespace polyphony::bench {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

struct Shape {
  int workers;
  int tasks;
  double cpu_window_s;
  double rtt_window_s;
};

Shape shape(const BenchOptions& o) {
  return o.smoke ? Shape{20, 50, 1, 0.2} : Shape{1000, 5000, 10, 2};
}

std::string fleet_config(const std::string& endpoint, int max_concurrency) {
  return "max_concurrency: " + std::to_string(max_concurrency) + "\n" +
         "coordinator:\n  embedded_worker: false\n  worker_endpoint: \"" + endpoint + "\"\n  insecure: true\n";
}

std::string fixed(double v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// Percent of one core the process used over `seconds`.
double cpu_percent(int pid, double seconds) {
  const double cpu0 = cpu_seconds(pid), t0 = steady_now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  return 100 * (cpu_seconds(pid) - cpu0) / (steady_now() - t0);
}

void wait_welcomed(const SimulatedFleet& fleet, int n) {
  wait_until([&] { return fleet.stats().welcomed >= n; }, 120s, std::to_string(n) + " simulated workers to be welcomed",
             20ms);
}

Row heartbeat_cpu(const BenchOptions& options, const Shape& s) {
  const std::string endpoint = "tcp://127.0.0.1:" + std::to_string(free_port());
  Box box(options, options.work_dir / "fleet-heartbeat", fleet_config(endpoint, s.workers));
  box.serve({"--no-embedded-worker"});
  wait_until([&] { return fs::exists(box.home() / "state.db"); }, 60s, "serve to start");
  std::this_thread::sleep_for(1s);
  const double idle = cpu_percent(box.server()->pid(), s.cpu_window_s / 2);
  SimulatedFleet fleet({endpoint, s.workers, 1, 1000, FleetOptions::Mode::kLand, "hb"});
  wait_welcomed(fleet, s.workers);
  std::this_thread::sleep_for(2s);  // every worker has heartbeated at least once
  const FleetStats before = fleet.stats();
  const double busy = cpu_percent(box.server()->pid(), s.cpu_window_s);
  const FleetStats after = fleet.stats();
  const double rss = static_cast<double>(rss_bytes(box.server()->pid())) / 1e6;
  box.stop_serving();

  Row r;
  r.name = "coordinator CPU, " + std::to_string(s.workers) + " workers heartbeating at 1 s";
  r.value = busy;
  r.unit = "%";
  r.target = "<10% of one core";
  r.pass = busy < 10;
  const double in = static_cast<double>(after.heartbeats_out - before.heartbeats_out) / s.cpu_window_s;
  const double out = static_cast<double>(after.heartbeats_in - before.heartbeats_in) / s.cpu_window_s;
  r.note = "`serve --no-embedded-worker`, " + std::to_string(s.workers) +
           " simulated workers (bench/fleet_sim, one "
           "thread, real codec) on tcp://127.0.0.1; utime+stime of the serve process over " +
           fixed(s.cpu_window_s, 0) + " s: " + fixed(in, 0) + " heartbeats/s in, " + fixed(out, 0) +
           " out; the same process with no worker " + "used " + fixed(idle, 2) +
           "% (default poll_interval_ms 500); RSS " + fixed(rss, 1) + " MB.";
  return r;
}

struct DispatchRun {
  double rate = 0;         // RunSpecs received per second, first -> last
  double landed_rate = 0;  // results acknowledged per second, first dispatch -> last ack
  double claim_s = 0;      // serve start -> every task CLAIMED
  double db_bytes = 0;     // state DB (+ WAL) after serve stopped
  double cpu_s = 0;        // serve's CPU time, workers connected -> last result acknowledged
  double wall_s = 0;
  size_t landed = 0;
};

DispatchRun dispatch_run(const BenchOptions& options, const Shape& s) {
  const std::string endpoint = "tcp://127.0.0.1:" + std::to_string(free_port());
  Box box(options, options.work_dir / "fleet-dispatch", fleet_config(endpoint, s.workers));
  const fs::path origin = box.dir() / "origin.git";
  make_origin(origin, {{"README.md", "# Fleet\n"}});
  progress("fleet: enqueueing " + std::to_string(s.tasks) + " tasks");
  enqueue_tasks(box.home() / "queue.db", origin, s.tasks);
  DispatchRun d;
  const double start = steady_now();
  box.serve({"--no-embedded-worker"});
  wait_until([&] { return count_in_state(box.home(), TaskState::kClaimed) == static_cast<size_t>(s.tasks); }, 900s,
             std::to_string(s.tasks) + " tasks to be claimed", 200ms);
  d.claim_s = steady_now() - start;
  progress("fleet: " + std::to_string(s.tasks) + " claimed in " + fixed(d.claim_s, 1) + " s; connecting " +
           std::to_string(s.workers) + " workers");
  const double cpu0 = cpu_seconds(box.server()->pid()), wall0 = steady_now();
  SimulatedFleet fleet({endpoint, s.workers, 1, 1000, FleetOptions::Mode::kLand, "sim"});
  wait_until(
      [&] { return fleet.stats().acks >= s.tasks; }, 900s,
      std::to_string(s.tasks) + " results to be acknowledged (serve log: " + (box.dir() / "serve.log").string() + ")",
      20ms);
  const FleetStats st = fleet.stats();
  d.cpu_s = cpu_seconds(box.server()->pid()) - cpu0;
  d.wall_s = steady_now() - wall0;
  box.stop_serving();
  d.rate = static_cast<double>(st.dispatches - 1) / std::max(st.last_dispatch - st.first_dispatch, 1e-6);
  d.landed_rate = static_cast<double>(st.acks) / std::max(st.last_ack - st.first_dispatch, 1e-6);
  for (const char* name : {"state.db", "state.db-wal"}) {
    std::error_code ec;
    const auto size = fs::file_size(box.home() / name, ec);
    if (!ec) d.db_bytes += static_cast<double>(size);
  }
  d.landed = count_in_state(box.home(), TaskState::kLanded);
  if (d.landed != static_cast<size_t>(s.tasks)) {
    throw BenchError(std::to_string(d.landed) + " of " + std::to_string(s.tasks) +
                     " tasks LANDED (serve log: " + (box.dir() / "serve.log").string() + ")");
  }
  return d;
}

}  // namespace

std::vector<Row> run_fleet(const BenchOptions& options) {
  const Shape s = shape(options);
  progress("fleet: empty ZeroMQ round trips");
  const double rtt = zmq_round_trip_rate(s.rtt_window_s);
  Row base;
  base.name = "empty ZeroMQ round trip (baseline)";
  base.value = rtt;
  base.unit = "/s";
  base.note = "one DEALER -> ROUTER echo -> DEALER over tcp://127.0.0.1, one at a time, for " +
              fixed(s.rtt_window_s, 1) + " s; mean latency " + fixed(1e6 / rtt, 0) + " us.";
  progress("fleet: coordinator CPU with " + std::to_string(s.workers) + " heartbeating workers");
  Row cpu = heartbeat_cpu(options, s);
  progress("fleet: dispatching " + std::to_string(s.tasks) + " tasks to " + std::to_string(s.workers) + " workers");
  const DispatchRun d = dispatch_run(options, s);

  Row rate = compare(
      "dispatch rate, " + std::to_string(s.tasks) + " queued tasks to " + std::to_string(s.workers) + " idle workers",
      d.rate, rtt, "/s");
  rate.target = ">=2000/s";
  rate.pass = d.rate >= 2000;
  rate.note =
      "RunSpecs received by the simulated workers per second, first to last; each worker (capacity 1) "
      "answers at once with PROVISIONED, RUNNING, VERIFYING and a landed result, so a task ends LANDED " +
      std::string("with its 7 transitions recorded. Landed (result acknowledged) ") + fixed(d.landed_rate, 0) +
      "/s. Before that, discovering and claiming the queue took " + fixed(d.claim_s, 1) + " s. The coordinator used " +
      fixed(d.cpu_s, 1) + " s of CPU in the " + fixed(d.wall_s, 1) +
      " s from connecting the workers to the last acknowledgement (" + fixed(100 * d.cpu_s / d.wall_s, 0) +
      "% of one core), i.e. " + fixed(s.tasks / std::max(d.cpu_s, 1e-3), 0) +
      " tasks dispatched and landed per CPU-second of the coordinator. Baseline: the empty round trip above; default "
      "poll_interval_ms 500, max_concurrency " +
      std::to_string(s.workers) + ".";
  Row db;
  db.name = "state DB per landed task, " + std::to_string(s.tasks) + " tasks through the protocol";
  db.value = d.db_bytes / static_cast<double>(s.tasks);
  db.unit = "B";
  db.target = "<2048 B";
  db.pass = db.value < 2048;
  db.note = "bytes of state.db (+ WAL) after serve stopped, over " + std::to_string(s.tasks) +
            " tasks each landed at its first attempt (the same transitions and detail texts as a real worker's).";
  return {base, cpu, rate, db};
}

}  // namespace polyphony::bench
