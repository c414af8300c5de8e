// Parallel overhead: N tasks whose scripted agent sleeps and commits one file, through the
// real `polyphony serve` (embedded worker) at max_concurrency C, against the ideal
// N x sleep / C. Then the state DB's bytes per finished task, from the same home.
#include <cmath>
#include <future>
#include <mutex>
#include <thread>

#include "bench/benchmarks.h"
#include "worker-agent/docker_client.h"
#include "worker-agent/runner_channel.h"

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

// The Docker work of the same tasks with no orchestrator at all: `concurrency` lanes, each
// taking its tasks one after another, a task being what a worker asks of the engine: a
// container on the image (started while the lane's previous task runs, as the warm pool does;
// a lane's first one before the clock, as the warm-up fills the pool), the agent's step and
// verify, the container removed (off the lane's path). What this costs above the ideal is the
// engine's share on this machine. `through_runner`: the step and verify run through
// polyphony-runner as the container's PID 1, as the worker runs them; else as two `docker exec`
// in a `sleep infinity` container, as the worker ran them before the runner.
double bare_docker_lanes(const BenchOptions& options, const Shape& shape, bool through_runner) {
  const std::string what = through_runner ? "bare Docker lanes (runner)" : "bare Docker lanes (docker exec)";
  auto host = resolve_docker_host(options.docker_host);
  if (!host.ok()) throw BenchError(what + ": " + host.error().to_string());
  auto docker = make_docker_client(*host);
  const fs::path sockets = options.work_dir / "parallel" / "lanes";
  fs::create_directories(sockets);
  fs::permissions(sockets, fs::perms::all);
  std::string runner;
  if (through_runner) {
    auto installed = install_runner(sockets);
    if (!installed.ok()) throw BenchError(what + ": " + installed.error().to_string());
    runner = installed->string();
  }
  ContainerSpec cs;
  cs.image = options.image;
  cs.user = "1000:1000";
  cs.working_dir = "/tmp";
  cs.network_mode = "none";
  cs.nano_cpus = 1000000000;
  cs.memory_bytes = 512LL << 20;
  cs.cmd = {"sleep", "infinity"};
  cs.labels = {{"polyphony.bench", "parallel-floor"}};
  const std::string step = "sleep " + std::to_string(shape.sleep_s) + "; echo done > /tmp/done.txt";
  std::vector<std::string> failures;
  std::mutex failures_mutex;
  auto failed = [&](const Error& e) {
    std::lock_guard lock(failures_mutex);
    failures.push_back(e.to_string());
  };
  std::atomic<int> made{0};
  auto started = [&]() -> Result<RunnerContainer> {
    if (!through_runner) {
      auto id = docker->create_container(cs);
      if (!id.ok()) return id.error();
      if (auto s = docker->start_container(*id); !s.ok()) {
        (void)docker->remove_container(*id);
        return s.error();
      }
      return RunnerContainer{*id, nullptr};
    }
    const fs::path meta = sockets / std::to_string(made++);
    std::error_code ec;
    fs::create_directories(meta, ec);
    fs::permissions(meta, fs::perms::all, ec);
    ContainerSpec with = cs;
    with.mounts = {{meta.string(), "/polyphony", true}, {runner, kRunnerInContainer, true}};
    with.cmd = {kRunnerInContainer, kRunnerSocketInContainer};
    return start_with_runner(*docker, with, meta);
  };
  auto lane = [&](std::future<Result<RunnerContainer>> next, int tasks) {
    auto ignore = [](int, std::string_view) { return true; };
    std::vector<std::future<void>> removals;
    for (int i = 0; i < tasks; ++i) {
      auto c = next.get();
      if (i + 1 < tasks) next = std::async(std::launch::async, started);
      if (!c.ok()) {
        failed(c.error());
        continue;
      }
      auto run = [&](std::vector<std::string> cmd) {
        return through_runner ? c->runner->run({std::move(cmd), {}, "", ""}, ignore)
                              : docker->exec(c->id, {std::move(cmd), {}, "", ""}, ignore);
      };
      auto agent = run({"sh", "-c", step});
      auto verify = agent.ok() ? run({"true"}) : agent;
      if (!verify.ok()) failed(verify.error());
      removals.push_back(std::async(std::launch::async, [&docker, c = std::move(*c)]() mutable {
        if (c.runner) c.runner->hang_up();
        (void)docker->remove_container(c.id);
      }));
    }
    for (auto& r : removals) r.get();
  };
  std::vector<std::future<Result<RunnerContainer>>> first;
  for (int l = 0; l < shape.concurrency; ++l) {
    std::promise<Result<RunnerContainer>> ready;
    ready.set_value(started());
    first.push_back(ready.get_future());
  }
  const double start = steady_now();
  std::vector<std::thread> lanes;
  for (int l = 0; l < shape.concurrency; ++l) {
    lanes.emplace_back(lane, std::move(first[l]),
                       shape.tasks / shape.concurrency + (l < shape.tasks % shape.concurrency ? 1 : 0));
  }
  for (auto& t : lanes) t.join();
  const double wall = steady_now() - start;
  if (!failures.empty()) throw BenchError(what + ": " + failures.front());
  return wall;
}

// Waits until the worker of the box holds `n` warm containers not yet taken by a task (started,
// role "warm", not renamed for a task), as an idle worker does once its pool is full. A
// worker's pool learns a repo from its first task, so right after the warm-up task it is still
// filling; the first timed run would otherwise find it short.
void wait_for_warm_pool(const BenchOptions& options, int n) {
  auto host = resolve_docker_host(options.docker_host);
  if (!host.ok()) throw BenchError("parallel: " + host.error().to_string());
  auto docker = make_docker_client(*host);
  wait_until(
      [&] {
        auto warm = docker->list_containers({{"polyphony.role", "warm"}});
        if (!warm.ok()) throw BenchError("parallel: listing warm containers: " + warm.error().to_string());
        const auto ready = std::count_if(warm->begin(), warm->end(), [](const ContainerInfo& c) {
          return c.state == "running" && c.name.rfind("polyphony.", 0) != 0;
        });
        return ready >= n;
      },
      std::chrono::seconds(120), "parallel: the worker's warm pool did not fill (" + std::to_string(n) + ")",
      std::chrono::milliseconds(100));
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
  wait_for_warm_pool(options, shape.concurrency);
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
  progress("parallel: the same containers and steps on bare Docker lanes");
  std::vector<double> bare, bare_exec;
  for (int run = 0; run < shape.runs; ++run) {
    bare.push_back(bare_docker_lanes(options, shape, true));
    bare_exec.push_back(bare_docker_lanes(options, shape, false));
  }

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
             " landed in " + std::to_string(attempts) +
             " attempts. Per task, ROUTED->LANDED beyond the sleep: median " + fixed(median(overhead), 2) + " s, p95 " +
             fixed(p95(overhead), 2) + " s.";
  Row tail = compare("parallel wall time, p95", p95(walls), ideal, "s");
  Row floor = compare("bare Docker lanes (no orchestrator), median", median(bare), ideal, "s");
  floor.note = "the Docker work alone of the same " + std::to_string(shape.tasks) + " tasks in " +
               std::to_string(shape.concurrency) + " lanes: per task a container (started during the task before; " +
               "the first ones before the clock) whose PID 1 is polyphony-runner, `sh -c 'sleep " +
               std::to_string(shape.sleep_s) + "; echo ...'` and `true` run through it, the container removed " +
               "(off the lane's path); " + std::to_string(shape.runs) +
               " runs; baseline = the same ideal. Polyphony's median is " +
               fixed(median(walls) / std::max(median(bare), 1e-9), 2) + "x this.";
  Row exec_floor = compare("bare Docker lanes with docker exec, median", median(bare_exec), ideal, "s");
  exec_floor.note =
      "the same lanes with the two steps as `docker exec` in a `sleep infinity` container, as the "
      "worker ran them before polyphony-runner; " +
      fixed(median(bare_exec) / std::max(median(bare), 1e-9), 2) + "x the runner's lanes.";

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
  return {med, tail, floor, exec_floor, db};
}

}  // namespace polyphony::bench
