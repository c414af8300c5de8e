// What the benchmarks share: their options, a POLYPHONY_HOME driven through the real
// `polyphony` program (a "box"), background processes, clocks, disk usage and RSS.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/process.h"
#include "coordinator/task.h"

namespace polyphony::bench {

// A benchmark that cannot go on (a program failed, a deadline passed).
struct BenchError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct BenchOptions {
  bool smoke = false;              // each benchmark once, on tiny sizes
  std::filesystem::path work_dir;  // scratch space; each benchmark takes a subdirectory
  std::filesystem::path big_repo;  // the generated repository of the provisioning benchmark
  std::string docker_host;         // unix:///... socket
  std::string polyphony;           // the programs measured
  std::string worker;
  std::string image = "polyphony-worker:latest";
};

// Seconds since the epoch, from the realtime clock (comparable with `date +%s.%N` in a
// container on the same host).
double wall_now();
double steady_now();

// Runs argv; throws BenchError when it cannot start, times out or exits non-zero.
ProcessResult must_run(const std::vector<std::string>& argv, const ProcessOptions& options = {});
// Seconds it took to run argv (must succeed).
double timed_run(const std::vector<std::string>& argv, const ProcessOptions& options = {});

// Makes a bare repository at `bare` whose `main` holds `files` in one commit.
void make_origin(const std::filesystem::path& bare, const std::map<std::string, std::string>& files);

void write_text(const std::filesystem::path& path, const std::string& text);
std::string read_text(const std::filesystem::path& path);

// Bytes allocated on disk under `dir` (st_blocks, each inode once), like `du -s`.
// `skip_top` names entries directly under `dir` to leave out (e.g. ".git").
int64_t disk_usage(const std::filesystem::path& dir, const std::vector<std::string>& skip_top = {});
// Sum of the sizes of the regular files under `dir`, like `du -s --apparent-size`.
int64_t apparent_size(const std::filesystem::path& dir, const std::vector<std::string>& skip_top = {});

// A program running in the background, its output in a log file. The destructor stops it.
class Background {
 public:
  Background(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
             const std::filesystem::path& log);
  ~Background();
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;
  int pid() const { return pid_; }
  bool running();
  // SIGTERM, then SIGKILL after `grace`; returns the exit status (or -signal).
  int stop(std::chrono::seconds grace = std::chrono::seconds(15));
  const std::filesystem::path& log() const { return log_; }

 private:
  int pid_ = -1;
  std::optional<int> status_;
  std::filesystem::path log_;
};

// Resident set size of a process, from /proc/<pid>/status (VmRSS or VmHWM), in bytes.
int64_t rss_bytes(int pid, const std::string& field = "VmRSS");

// CPU time (user + system) a process has used so far, in seconds, from /proc/<pid>/stat.
double cpu_seconds(int pid);

// A TCP port on 127.0.0.1 that was free a moment ago.
int free_port();

// Calls `done` every `every` until it returns true; throws BenchError(what) after `timeout`.
void wait_until(const std::function<bool()>& done, std::chrono::milliseconds timeout, const std::string& what,
                std::chrono::milliseconds every = std::chrono::milliseconds(5));

// A POLYPHONY_HOME under `dir`: `polyphony init`, then `config_yaml` as config.yaml and
// `extra_agents_yaml` appended to agents.yaml (indented under `agents:`).
class Box {
 public:
  Box(const BenchOptions& options, const std::filesystem::path& dir, const std::string& config_yaml,
      const std::string& extra_agents_yaml = "");
  ~Box();

  // `polyphony args...` with this home; throws BenchError when it fails.
  ProcessResult cli(const std::vector<std::string>& args) const;
  // `polyphony spawn args...`; returns the task id it printed.
  std::string spawn(const std::vector<std::string>& args) const;
  // `polyphony serve extra...` in the background (log: <dir>/serve.log).
  void serve(const std::vector<std::string>& extra = {});
  void stop_serving();
  Background* server() { return server_.get(); }
  // Another program in the background with this home's environment.
  std::unique_ptr<Background> start(const std::vector<std::string>& argv, const std::string& log_name) const;

  // Read straight from the state DB (read-only): every task, and one task's transitions.
  std::vector<Task> tasks() const;
  std::optional<Task> task(const std::string& id) const;
  std::vector<TaskEvent> events(const std::string& id) const;
  // Waits until every id is LANDED, FAILED, BLOCKED or CANCELLED; returns the tasks.
  std::vector<Task> wait_finished(const std::vector<std::string>& ids, std::chrono::seconds timeout) const;

  const std::filesystem::path& dir() const { return dir_; }
  const std::filesystem::path& home() const { return home_; }
  std::map<std::string, std::string> env() const;

 private:
  const BenchOptions& options_;
  std::filesystem::path dir_;
  std::filesystem::path home_;
  std::unique_ptr<Background> server_;
};

// Appends `n` tasks for `repo` (agent "scripted") to the queue DB at `queue_db`, in order.
void enqueue_tasks(const std::filesystem::path& queue_db, const std::filesystem::path& repo, int n);

// Tasks in `state` in the state DB of `home` (0 while it does not exist yet).
size_t count_in_state(const std::filesystem::path& home, TaskState state);

// config.yaml for the benchmarks that run containers: the private engine has no bridge
// (network none), a short poll interval (kBenchPollIntervalMs), `max_concurrency` as given.
std::string container_config(int max_concurrency, int poll_interval_ms);

// The docker CLI: Debian's /usr/bin/docker (it matches the engine's API), else the one on PATH.
std::string docker_cli();

// Progress lines on stderr ("bench: ...").
void progress(const std::string& line);

}  // namespace polyphony::bench
