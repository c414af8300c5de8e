// The benchmarks of issues 6 and 8; each returns the rows it adds to the table.
#pragma once

#include <vector>

#include "bench/bench_box.h"
#include "bench/report.h"

namespace polyphony::bench {

// `polyphony spawn` returning -> the agent's first instruction in its container, on a warm
// worker, beside `docker run --rm IMAGE true` + `git clone --reference`.
std::vector<Row> run_dispatch(const BenchOptions& options);

// Workspaces::provision_from a spare (as a warm worker) and Workspaces::provision (cold) on the
// generated repository, beside plain `git clone`, `git clone --reference` and `git worktree
// add`: time and extra disk.
std::vector<Row> run_provision(const BenchOptions& options);

// 24 tasks of a 2 s scripted agent at max_concurrency 4 through `polyphony serve`, against the
// ideal 24 x 2 s / 4; then the state DB's bytes per finished task.
std::vector<Row> run_parallel(const BenchOptions& options);

// Coordinator RSS with 10,000 queued tasks and 200 simulated workers connected (busy); an idle
// polyphony-worker's RSS.
std::vector<Row> run_footprint(const BenchOptions& options);

// A real `serve` with 1,000 simulated workers: its CPU while they heartbeat, the rate at which
// it dispatches 5,000 queued tasks to them, the state DB per landed task; beside an empty
// ZeroMQ round trip.
std::vector<Row> run_fleet(const BenchOptions& options);

// Scoring a task on a generated 5,000-file repository: nothing cached, the index cached on disk
// and in memory, beside `ctags -R` over the same files.
std::vector<Row> run_score(const BenchOptions& options);

// The poll interval the Docker benchmarks configure: the shipped default (spawn nudges the
// coordinator and a freed slot is refilled at once, so the interval bounds no figure).
inline constexpr int kBenchPollIntervalMs = 500;

}  // namespace polyphony::bench
