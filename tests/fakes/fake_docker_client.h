// A DockerClient that keeps containers in memory: it records every call, returns what the test
// scripted, and plays polyphony-runner for task containers (an in-process peer on the real
// runner socket, answering each run request with the test's scripted process).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "runner/wire.h"
#include "worker-agent/docker_client.h"

namespace polyphony::testing {

// What a process run through a fake runner does: prints `out` and `err`, then exits `status`;
// or, `until_stopped`, keeps running after printing until its container is stopped or the
// worker hangs up (it reports no status then, like a killed container).
struct ProcessReply {
  std::string out;
  std::string err;
  int status = 0;
  bool until_stopped = false;
};

// What a container without the runner (a reviewer's) does once started: prints `logs`, then exits
// `exit_code`; or, `until_stopped`, runs until it is stopped (exit code 137 then).
struct ContainerReply {
  std::string logs;
  int exit_code = 0;
  bool until_stopped = false;
};

class FakeDockerClient final : public DockerClient {
 public:
  struct Call {
    std::string method;  // "create_container", "start_container", "rename_container", ...
    std::string target;  // the container id (the name for create_container, the ref for images)
    std::string detail;  // rename_container: the new name
  };

  FakeDockerClient();
  // Stops every fake runner still connected.
  ~FakeDockerClient() override;
  FakeDockerClient(const FakeDockerClient&) = delete;
  FakeDockerClient& operator=(const FakeDockerClient&) = delete;

  // Scripting. Set before the code under test runs; the handlers run on the thread that runs
  // the process (on_run: the fake runner's) and may block or write files.
  // A process a task container's runner is asked to run. Unset: prints nothing, exits 0.
  std::function<ProcessReply(const runner::RunRequest&)> on_run;
  // A container without the runner, when it starts. Unset: prints nothing, exits 0.
  std::function<ContainerReply(const ContainerSpec&)> on_container;
  // The next call of `method` fails with `error` (errors queue up per method).
  void fail_next(const std::string& method, Error error);

  // What was asked, in order.
  std::vector<Call> calls() const;
  // The calls of `method`.
  std::vector<Call> calls_of(const std::string& method) const;
  // Every container spec create_container was given (including failed ones).
  std::vector<ContainerSpec> created() const;
  // Every request a fake runner received.
  std::vector<runner::RunRequest> runs() const;
  // Ids of containers created and not removed.
  std::vector<std::string> live() const;

  Status ping() override;
  Result<EngineVersion> engine_version() override;
  Result<bool> network_exists(const std::string& name) override;
  Result<bool> image_exists(const std::string& ref) override;
  Result<std::map<std::string, std::string>> image_labels(const std::string& ref) override;
  Result<std::string> create_container(const ContainerSpec& spec) override;
  Status start_container(const std::string& id) override;
  Result<int> container_pid(const std::string& id) override;
  Result<int> wait_container(const std::string& id, std::chrono::milliseconds timeout) override;
  Status stream_logs(const std::string& id, bool follow,
                     const std::function<bool(int, std::string_view)>& on_chunk) override;
  Status stop_container(const std::string& id, int grace_seconds) override;
  Result<int> exec(const std::string& id, const ExecSpec& spec,
                   const std::function<bool(int, std::string_view)>& on_chunk) override;
  Status rename_container(const std::string& id, const std::string& name) override;
  Status remove_container(const std::string& id) override;
  Result<std::vector<ContainerInfo>> list_containers(const std::map<std::string, std::string>& labels) override;
  Status import_image(const std::filesystem::path& tarball, const std::string& repo_tag,
                      const std::vector<std::string>& changes) override;
  Status remove_image(const std::string& ref) override;
  std::string endpoint() const override { return "fake"; }

 private:
  struct Container {
    ContainerSpec spec;
    std::string name;
    std::string state = "created";
    ContainerReply reply;
    int runner_fd = -1;  // the fake runner's end of the runner socket
    std::thread runner;
  };

  // Records the call and takes a scripted failure for it, if any.
  std::optional<Error> enter(const std::string& method, const std::string& target, const std::string& detail = {});
  Status start_runner(const std::string& id, Container& c);
  void serve(int fd);
  // Marks it exited and ends its runner's connection (the lock held).
  void stop_locked(Container& c);

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, std::shared_ptr<Container>> containers_;
  std::map<std::string, std::deque<Error>> failures_;
  std::vector<Call> calls_;
  std::vector<ContainerSpec> created_;
  std::vector<runner::RunRequest> runs_;
  int next_id_ = 1;
};

}  // namespace polyphony::testing
