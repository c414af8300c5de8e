// Provisioning: the real Workspaces on the generated repository with a warm mirror, as a warm
// worker does it (provision_from a spare made beforehand, untimed) and cold (provision), beside
// plain `git clone`, `git clone --reference` and `git worktree add`, interleaved round by round
// so each sees the same machine.
#include <unistd.h>

#include "bench/benchmarks.h"
#include "worker-agent/workspaces.h"

namespace polyphony::bench {

namespace fs = std::filesystem;

namespace {

struct Method {
  std::vector<double> seconds;
  std::vector<double> disk;      // bytes allocated by the new checkout (and its metadata)
  std::vector<double> checkout;  // bytes allocated by the checked-out files alone
};

double median_of(const std::vector<double>& v) {
  return median(v);
}

std::string mb(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB", bytes / 1e6);
  return buf;
}

std::string ms(double seconds) {
  return std::to_string(static_cast<long>(seconds * 1000 + 0.5)) + " ms";
}

class ProvisionBench {
 public:
  explicit ProvisionBench(const BenchOptions& options) : dir_(options.work_dir / "provision") {
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    origin_ = options.big_repo;
    origin_url_ = "file://" + origin_.string();
    // As `polyphony serve` does when it runs as root: the clone goes to the container user.
    const bool root = ::geteuid() == 0;
    workspaces_ = make_git_workspaces(dir_ / "workspaces", {}, root ? 1000 : -1, root ? 1000 : -1);
  }

  void warm() {
    auto ws = provision("warm");
    mirror_ = ws.mirror_dir;
    check(workspaces_->remove("warm"));
    must_run({"git", "clone", "-q", "--bare", origin_.string(), (dir_ / "host.git").string()});
  }

  void round(int i, bool with_plain_clone) {
    const std::string id = "p" + std::to_string(i);
    // The spare is made ahead of the task, like the baselines' setup: not timed.
    auto spare = workspaces_->make_spare(origin_.string(), "main");
    if (!spare.ok()) throw BenchError("make_spare: " + spare.error().to_string());
    double start = steady_now();
    auto ws = workspaces_->provision_from(request(id), *spare);
    if (!ws.ok()) throw BenchError("provision_from: " + ws.error().to_string());
    record(polyphony_, steady_now() - start, ws->task_dir, ws->repo_dir);
    check(workspaces_->remove(id));

    const std::string cold_id = "c" + std::to_string(i);
    start = steady_now();
    auto cold = provision(cold_id);
    record(cold_, steady_now() - start, cold.task_dir, cold.repo_dir);
    check(workspaces_->remove(cold_id));

    const fs::path ref = dir_ / ("reference-" + id);
    start = steady_now();
    must_run({"git", "clone", "-q", "--reference", mirror_.string(), origin_url_, ref.string()});
    record(reference_, steady_now() - start, ref, ref);
    fs::remove_all(ref);

    const fs::path wt = dir_ / ("worktree-" + id);
    const std::string host = (dir_ / "host.git").string();
    start = steady_now();
    must_run({"git", "-C", host, "worktree", "add", "-q", "-b", "bench-" + id, wt.string(), "main"});
    const double wt_seconds = steady_now() - start;
    const fs::path admin = dir_ / "host.git" / "worktrees" / wt.filename();
    record(worktree_, wt_seconds, wt, wt, disk_usage(admin));
    must_run({"git", "-C", host, "worktree", "remove", "--force", wt.string()});
    must_run({"git", "-C", host, "branch", "-q", "-D", "bench-" + id});

    if (!with_plain_clone) return;
    const fs::path plain = dir_ / ("plain-" + id);
    start = steady_now();
    must_run({"git", "clone", "-q", origin_url_, plain.string()});
    record(plain_, steady_now() - start, plain, plain);
    fs::remove_all(plain);
  }

  std::vector<Row> rows(int rounds) const {
    const double p = median_of(polyphony_.seconds);
    Row vs_worktree = compare("provision time (from a spare) vs git worktree add, median", p * 1000,
                              median_of(worktree_.seconds) * 1000, "ms");
    vs_worktree.target = "<=1.2x";
    vs_worktree.pass = vs_worktree.ratio && *vs_worktree.ratio <= 1.2;
    vs_worktree.note = std::to_string(rounds) + " rounds on " + origin_.filename().string() +
                       ": provision_from a spare made beforehand (make_spare, not timed, as a warm worker "
                       "keeps one per repo), mirror warm (the origin does not move, so no provision fetches), clone "
                       "chowned to 1000:1000 as serve does when root. git clone --reference " +
                       ms(median_of(reference_.seconds)) + ". Extra disk: provision " + mb(median_of(polyphony_.disk)) +
                       ", cold provision " + mb(median_of(cold_.disk)) + ", worktree add " +
                       mb(median_of(worktree_.disk)) + ", clone --reference " + mb(median_of(reference_.disk)) +
                       ", plain clone " + mb(median_of(plain_.disk)) + "; checked-out files " +
                       mb(median_of(polyphony_.checkout)) + " on disk (" + mb(checked_out_apparent_) + " apparent).";
    Row tail = compare("provision time (from a spare) vs git worktree add, p95", p95(polyphony_.seconds) * 1000,
                       p95(worktree_.seconds) * 1000, "ms");
    Row vs_plain = compare("provision time (from a spare) vs plain git clone, median", p * 1000,
                           median_of(plain_.seconds) * 1000, "ms");
    vs_plain.target = "<=0.10x (10x faster)";
    vs_plain.pass = vs_plain.ratio && *vs_plain.ratio <= 0.10;
    vs_plain.note = std::to_string(plain_.seconds.size()) +
                    " plain clones over file:// (the pack protocol, as from a "
                    "server; a local-path clone would hardlink the objects instead)";
    Row plain_tail = compare("provision time (from a spare) vs plain git clone, p95", p95(polyphony_.seconds) * 1000,
                             p95(plain_.seconds) * 1000, "ms");
    const double c = median_of(cold_.seconds);
    Row cold_worktree = compare("cold provision (no spare) vs git worktree add, median", c * 1000,
                                median_of(worktree_.seconds) * 1000, "ms");
    cold_worktree.target = "-";
    cold_worktree.note =
        "provision() as when no spare fits: mirror fetch, clone, a checkout of every file "
        "(git checkout), chown; p95 " +
        ms(p95(cold_.seconds)) + " against worktree add " + ms(p95(worktree_.seconds));
    Row cold_plain = compare("cold provision (no spare) vs plain git clone, median", c * 1000,
                             median_of(plain_.seconds) * 1000, "ms");
    cold_plain.target = "-";
    Row disk = compare("provision extra disk vs checked-out files", median_of(polyphony_.disk) / 1e6,
                       median_of(polyphony_.checkout) / 1e6, "MB");
    disk.target = "<=1.05x";
    disk.pass = disk.ratio && *disk.ratio <= 1.05;
    disk.note =
        "allocated blocks (du) of the whole task directory provisioned from a spare against those of "
        "its work tree without .git (cold provision: " +
        mb(median_of(cold_.disk)) + " against " + mb(median_of(cold_.checkout)) + ")";
    return {vs_worktree, tail, vs_plain, plain_tail, cold_worktree, cold_plain, disk};
  }

 private:
  WorkspaceRequest request(const std::string& id) const { return {id, origin_.string(), "main", "bench/" + id}; }

  Workspace provision(const std::string& id) {
    auto ws = workspaces_->provision(request(id));
    if (!ws.ok()) throw BenchError("provision: " + ws.error().to_string());
    return *ws;
  }

  static void check(const Status& s) {
    if (!s.ok()) throw BenchError(s.error().to_string());
  }

  void record(Method& m, double seconds, const fs::path& whole, const fs::path& work_tree, int64_t extra = 0) {
    m.seconds.push_back(seconds);
    m.disk.push_back(static_cast<double>(disk_usage(whole) + extra));
    m.checkout.push_back(static_cast<double>(disk_usage(work_tree, {".git"})));
    checked_out_apparent_ = static_cast<double>(apparent_size(work_tree, {".git"}));
  }

  fs::path dir_;
  fs::path origin_;
  std::string origin_url_;
  fs::path mirror_;
  std::unique_ptr<Workspaces> workspaces_;
  Method polyphony_, cold_, reference_, worktree_, plain_;
  double checked_out_apparent_ = 0;
};

}  // namespace

std::vector<Row> run_provision(const BenchOptions& options) {
  const int rounds = options.smoke ? 1 : 5;
  const int plain_rounds = options.smoke ? 1 : 2;
  ProvisionBench bench(options);
  progress("provision: warming the mirror of " + options.big_repo.string());
  bench.warm();
  for (int i = 0; i < rounds; ++i) {
    bench.round(i, i < plain_rounds);
    progress("provision: round " + std::to_string(i + 1) + "/" + std::to_string(rounds));
  }
  auto rows = bench.rows(rounds);
  fs::remove_all(options.work_dir / "provision");
  return rows;
}

}  // namespace polyphony::bench
