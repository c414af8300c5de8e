// polyphony-bench: runs the benchmarks of issue 8 and prints one table (or --json).
// bench/run builds it, makes sure Docker, the image and the generated repository exist,
// and calls it; see bench/README.md.
#include <spdlog/spdlog.h>
#include <cstdlib>

#include <algorithm>
#include <iostream>
#include <set>
#include <sstream>

#include "bench/benchmarks.h"
#include "common/process.h"

namespace {

using namespace polyphony::bench;
namespace fs = std::filesystem;

constexpr const char* kUsage =
    R"(usage: polyphony-bench --big-repo PATH [--docker-host unix:///SOCK (default: $DOCKER_HOST)] [options]
       polyphony-bench --only fleet [--smoke] [--json]   (simulated workers: needs no Docker)
  --json             print a JSON list instead of the table
  --smoke            each benchmark once, on tiny sizes
  --only LIST        comma-separated: dispatch,provision,parallel,footprint,fleet,score (default: all)
  --work-dir DIR     scratch space (default: a new directory under $TMPDIR, removed at the end)
  --keep             keep the scratch space
  --polyphony PATH   the polyphony program (default: the one built beside this program)
  --worker PATH      the polyphony-worker program
)";

struct Flags {
  BenchOptions options;
  bool json = false;
  bool keep = false;
  std::set<std::string> only;
};

std::set<std::string> split(const std::string& list) {
  std::set<std::string> out;
  std::stringstream ss(list);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (!item.empty()) out.insert(item);
  }
  return out;
}

Flags parse(int argc, char** argv) {
  Flags f;
  f.options.polyphony = POLYPHONY_BENCH_CLI;
  f.options.worker = POLYPHONY_BENCH_WORKER;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw BenchError(a + " needs a value\n" + kUsage);
      return argv[++i];
    };
    if (a == "--json")
      f.json = true;
    else if (a == "--smoke")
      f.options.smoke = true;
    else if (a == "--keep")
      f.keep = true;
    else if (a == "--only")
      f.only = split(value());
    else if (a == "--work-dir")
      f.options.work_dir = value();
    else if (a == "--big-repo")
      f.options.big_repo = value();
    else if (a == "--docker-host")
      f.options.docker_host = value();
    else if (a == "--polyphony")
      f.options.polyphony = value();
    else if (a == "--worker")
      f.options.worker = value();
    else
      throw BenchError("unknown argument '" + a + "'\n" + kUsage);
  }
  for (const auto& b : f.only) {
    if (b != "dispatch" && b != "provision" && b != "parallel" && b != "footprint" && b != "fleet" && b != "score") {
      throw BenchError("--only: unknown benchmark '" + b +
                       "' (dispatch, provision, parallel, footprint, fleet, score)");
    }
  }
  // No container in fleet or score.
  const bool docker_free = !f.only.empty() && std::all_of(f.only.begin(), f.only.end(), [](const std::string& b) {
    return b == "fleet" || b == "score";
  });
  if (f.options.docker_host.empty()) {
    if (const char* env = std::getenv("DOCKER_HOST"); env != nullptr) f.options.docker_host = env;
  }
  if (f.options.docker_host.empty() && !docker_free) {
    throw BenchError(std::string("--docker-host is required\n") + kUsage);
  }
  if (f.options.big_repo.empty() && (f.only.empty() || f.only.count("provision"))) {
    throw BenchError(std::string("--big-repo is required for the provisioning benchmark\n") + kUsage);
  }
  return f;
}

fs::path make_work_dir() {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/polyphony-bench.XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) throw BenchError("cannot make a scratch directory " + pattern);
  return pattern;
}

int run(int argc, char** argv) {
  Flags f = parse(argc, argv);
  const bool own_dir = f.options.work_dir.empty();
  if (own_dir) f.options.work_dir = make_work_dir();
  fs::create_directories(f.options.work_dir);
  progress("scratch space " + f.options.work_dir.string());
  const std::vector<std::pair<std::string, std::vector<Row> (*)(const BenchOptions&)>> benchmarks{
      {"dispatch", run_dispatch},   {"provision", run_provision}, {"parallel", run_parallel},
      {"footprint", run_footprint}, {"fleet", run_fleet},         {"score", run_score}};
  std::vector<Row> rows;
  int failures = 0;
  const double start = steady_now();
  for (const auto& [name, fn] : benchmarks) {
    if (!f.only.empty() && !f.only.count(name)) continue;
    const double t = steady_now();
    try {
      auto r = fn(f.options);
      rows.insert(rows.end(), r.begin(), r.end());
    } catch (const std::exception& e) {
      // The table stays truthful: a benchmark that could not run says so in its row.
      ++failures;
      Row r;
      r.name = name + " (did not complete)";
      r.pass = false;
      r.note = e.what();
      rows.push_back(r);
    }
    progress(name + " took " + std::to_string(static_cast<int>(steady_now() - t)) + " s");
  }
  progress("all benchmarks took " + std::to_string(static_cast<int>(steady_now() - start)) + " s");
  std::cout << (f.json ? format_json(rows) : format_table(rows)) << std::flush;
  if (own_dir && !f.keep) {
    std::error_code ec;
    fs::remove_all(f.options.work_dir, ec);
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);  // the Workspaces log each provision at info
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "polyphony-bench: " << e.what() << "\n";
    return 2;
  }
}
