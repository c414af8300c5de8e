// Parallel overhead: N tasks whose scripted agent sleeps and commits one file, through the
// real `polyphony serve` (embedded worker) at max_concurrency C, against the ideal
// N x sleep / C. Then the state DB's bytes per finished task, from the same home.
#include <cmath>

#include "bench/benchmarks.h"

namespace polyphony::bench {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

struct Shape {
  int tasks = 24;
  int concurrency = 4;
  int sleep_s = 2;
  int runs = 3;
};

std::string body(int run, int i, int sleep_s) {
  return "```sh\nsleep " + std::to_string(sleep_s) + "\necho " + std::to_string(run) + "-" + std::to_string(i) +
         " > bench-" + std::to_string(run) + "-" + std::to_string(i) + ".txt\n```\n";
}

double state_ms(const std::vector<TaskEvent>& events, const std::string& state) {
  for (const auto& e : events) {
    if (e.to == state) return static_cast<double>(e.at_ms);
  }
  return 0;
}

struct RunResult {
  double wall = 0;  // seconds, first spawn started -> last task finished
  int landed = 0;
  int attempts = 0;
  std::vector<double> overhead;  // per task: ROUTED -> LANDED minus the agent's sleep
};

RunResult one_run(const Box& box, const fs::path& origin, const Shape& shape, int run) {
  const double start = wall_now();
  std::vector<std::string> ids;
  for (int i = 0; i < shape.tasks; ++i) {
    ids.push_back(box.spawn({"Parallel task " + std::to_string(run) + "-" + std::to_string(i), "--repo",
                             origin.string(), "--agent", "scripted", "--body", body(run, i, shape.sleep_s)}));
  }
  const auto tasks = box.wait_finished(ids, 600s);
  RunResult r;
  double end = start;
  for (const auto& t : tasks) {
    end = std::max(end, static_cast<double>(t.updated_at_ms) / 1000);
    r.landed += t.state == TaskState::kLanded ? 1 : 0;
    r.attempts += t.attempt;
    const auto events = box.events(t.request.id);
    const double routed = state_ms(events, "ROUTED"), landed = state_ms(events, "LANDED");
    if (routed > 0 && landed > 0) r.overhead.push_back((landed - routed) / 1000 - shape.sleep_s);
  }
  r.wall = end - start;
  return r;
}

// Bytes of the state DB (with its WAL, if any is left) once serve has stopped.
double state_db_bytes(const Box& box) {
  double total = 0;
  for (const char* name : {"state.db", "state.db-wal"}) {
    std::error_code ec;
    const auto size = fs::file_size(box.home() / name, ec);
    if (!ec) total += static_cast<double>(size);
  }
  return total;
}

std::string fixed(double v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

}  // namespace

std::vector<Row> run_parallel(const BenchOptions& options) {
  Shape shape;
  if (options.smoke) shape = Shape{4, 2, 2, 1};
  Box box(options, options.work_dir / "parallel", container_config(shape.concurrency, kBenchPollIntervalMs));
  const fs::path origin = box.dir() / "origin.git";
  make_origin(origin, {{"README.md", "# Parallel overhead\n"}, {".polyphony.yaml", "verify: \"true\"\n"}});
  box.serve();
  progress("parallel: warming the worker");
  box.wait_finished({box.spawn({"Warm up", "--repo", origin.string(), "--agent", "scripted", "--body",
                                "```sh\necho warm > warm.txt\n```\n"})},
                    180s);
  std::vector<double> walls, overhead;
  int landed = 0, attempts = 0;
  for (int run = 0; run < shape.runs; ++run) {
    const RunResult r = one_run(box, origin, shape, run);
    walls.push_back(r.wall);
    landed += r.landed;
    attempts += r.attempts;
    overhead.insert(overhead.end(), r.overhead.begin(), r.overhead.end());
    progress("parallel: run " + std::to_string(run + 1) + "/" + std::to_string(shape.runs) + " " + fixed(r.wall, 2) +
             " s, " + std::to_string(r.landed) + "/" + std::to_string(shape.tasks) + " landed");
  }
  box.stop_serving();

  const double ideal = static_cast<double>(shape.tasks) * shape.sleep_s / shape.concurrency;
  const int expected = shape.tasks * shape.runs;
  Row med = compare("parallel wall time, median", median(walls), ideal, "s");
  med.target = "<=1.15x";
  med.pass = med.ratio && *med.ratio <= 1.15 && landed == expected;
  med.note = std::to_string(shape.runs) + " runs of " + std::to_string(shape.tasks) + " tasks (agent: sleep " +
             std::to_string(shape.sleep_s) + " s, commit one file; verify `true`), max_concurrency " +
             std::to_string(shape.concurrency) + ", poll_interval_ms " + std::to_string(kBenchPollIntervalMs) +
             "; baseline = ideal " + std::to_string(shape.tasks) + " x " + std::to_string(shape.sleep_s) + " s / " +
             std::to_string(shape.concurrency) + ". " + std::to_string(landed) + "/" + std::to_string(expected) +
             " landed in " + std::to_string(attempts) + " attempts. Per task, ROUTED->LANDED beyond the sleep: median " +
             fixed(median(overhead), 2) + " s, p95 " + fixed(p95(overhead), 2) + " s.";
  Row tail = compare("parallel wall time, p95", p95(walls), ideal, "s");

  const auto all = box.tasks();
  int finished = 0;
  for (const auto& t : all) finished += is_finished(t.state) ? 1 : 0;
  Row db;
  db.name = "state DB per finished task";
  db.unit = "B";
  db.value = finished > 0 ? state_db_bytes(box) / finished : 0;
  db.target = "<2048 B";
  db.pass = finished > 0 && db.value < 2048;
  db.note = fixed(state_db_bytes(box), 0) + " bytes of state.db after serve stopped, " + std::to_string(finished) +
            " finished tasks (the parallel runs and a warm-up); single measurement";
  return {med, tail, db};
}

}  // namespace polyphony::bench
