// The worker's end of polyphony-runner (runner/runner.h), PID 1 of every task container: a
// socket in the task's meta directory that the runner connects to as its container starts, then
// a channel that runs the agent and verify in the container, one process at a time.
//
// Compared with `docker exec`, a run costs no engine calls and no runc process: on the 2-core
// bench machine an exec took about 0.38 CPU-seconds, two per task.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"
#include "worker-agent/docker_client.h"

namespace polyphony {

// Where a task container has the runner (mounted read-only) and the socket it connects to (in
// the meta directory, mounted at /polyphony).
inline constexpr const char* kRunnerInContainer = "/.polyphony-runner";
inline constexpr const char* kRunnerSocketName = "runner.sock";
inline constexpr const char* kRunnerSocketInContainer = "/polyphony/runner.sock";

class RunnerChannel {
 public:
  RunnerChannel(int fd, std::string container);
  // Closes the socket: the runner exits, and its container stops with everything in it.
  ~RunnerChannel();
  RunnerChannel(const RunnerChannel&) = delete;
  RunnerChannel& operator=(const RunnerChannel&) = delete;

  // Runs `spec.cmd` in the container as the container's user (`spec.user` must be empty or that
  // user: the runner cannot switch), with `spec.env` over the container's environment, in
  // `spec.working_dir`. Output goes to `on_chunk` (1: stdout, 2: stderr); returns the exit status
  // (126/127 with the reason on stderr when it cannot start, 128 + N when killed by signal N).
  // Error "runner" when the runner is gone (its container stopped, hang_up()) or breaks the wire.
  Result<int> run(const ExecSpec& spec, const std::function<bool(int, std::string_view)>& on_chunk);

  // Ends the channel from any thread: a run() in progress returns, the runner exits.
  void hang_up();

 private:
  friend class RunnerListener;  // reads the hello
  Result<char> read_frame(std::string& payload);

  int fd_;
  std::string container_;
  std::string buffered_;
  std::atomic<bool> hung_up_{false};
};

// A listening socket <dir>/runner.sock for one runner, open to the container's user.
class RunnerListener {
 public:
  static Result<std::unique_ptr<RunnerListener>> open(const std::filesystem::path& dir);
  // Closes the socket and removes its file.
  ~RunnerListener();
  RunnerListener(const RunnerListener&) = delete;
  RunnerListener& operator=(const RunnerListener&) = delete;

  // Waits for the runner of `container` to connect and say hello; the socket file is gone then,
  // so nothing else in the container can connect. `expected_pid` (the container's PID 1 as the
  // host sees it; 0: any) must be the peer, or whoever connected is refused: a process on the
  // host that reached the socket first is never taken for the runner. Error "runner" on
  // timeout, a wrong peer or a wrong hello.
  Result<std::shared_ptr<RunnerChannel>> accept(const std::string& container, std::chrono::milliseconds timeout,
                                                const std::function<Result<int>()>& expected_pid = {});

 private:
  RunnerListener(int fd, std::filesystem::path path) : fd_(fd), path_(std::move(path)) {}
  void close_and_unlink();

  int fd_;
  std::filesystem::path path_;
};

struct RunnerContainer {
  std::string id;
  std::shared_ptr<RunnerChannel> runner;
};

// Creates and starts `cs` with the runner as its PID 1 (`cs` must mount it at kRunnerInContainer
// and `meta_dir` at /polyphony) and connects to it, checking that the peer is that container's
// PID 1. Nothing is left behind on failure.
Result<RunnerContainer> start_with_runner(DockerClient& docker, const ContainerSpec& cs,
                                          const std::filesystem::path& meta_dir,
                                          std::chrono::milliseconds connect_timeout = std::chrono::seconds(30));

// The runner program: $POLYPHONY_RUNNER, else polyphony-runner beside this program, else the one
// this build made. Error "not_found" naming the places looked at.
Result<std::filesystem::path> find_runner();

// Copies the runner into `dir` (the workspace root: the engine may not see where this program
// lives, but it mounts the workspaces from there) and returns the copy's path.
Result<std::filesystem::path> install_runner(const std::filesystem::path& dir);

}  // namespace polyphony
