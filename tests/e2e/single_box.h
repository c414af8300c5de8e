// A single-box setup for end-to-end tests: a POLYPHONY_HOME, a bare origin repository, and the
// real `polyphony` program run against the real Docker engine.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/process.h"
#include "test_support.h"

namespace polyphony::testing {

// The sample repository most end-to-end tests start from: greet.sh, its test, and a verify
// command that runs tests/*.test.
const std::map<std::string, std::string>& sample_repo();

class SingleBox {
 public:
  // Writes the default config files, then `config_yaml` over config.yaml (network none, a
  // short poll interval), and makes a bare origin whose main holds `files`.
  explicit SingleBox(const std::map<std::string, std::string>& files, const std::string& extra_config = "");
  ~SingleBox();

  // Sets an environment variable for every program the box runs from now on (e.g. PATH with a
  // stand-in gh first).
  void set_env(const std::string& name, const std::string& value) { env_[name] = value; }
  // Runs `polyphony args...` with this home; never throws.
  ProcessResult cli(const std::vector<std::string>& args, const std::string& stdin_data = "") const;
  // `polyphony spawn TITLE --repo ORIGIN --agent scripted --body BODY ...`; returns the id.
  std::string spawn(const std::string& title, const std::string& body,
                    const std::vector<std::string>& extra = {}) const;
  // Like spawn, without --agent: routing.yaml decides.
  std::string spawn_routed(const std::string& title, const std::string& body,
                           const std::vector<std::string>& extra = {}) const;
  // Starts `polyphony serve` in the background.
  // `env` is added to the server's environment (e.g. POLYPHONY_TEST_HOLD_PROVISIONED_UNTIL).
  // `prefix` runs it under another program (e.g. `ip netns exec NS`).
  void serve(std::map<std::string, std::string> env = {}, std::vector<std::string> prefix = {});
  void stop_serving();
  // kill -9 of `polyphony serve` (coordinator and embedded worker at once).
  void kill_serving();
  // Polls until the task is in `state` (or the deadline); returns whether it got there.
  bool wait_state(const std::string& id, const std::string& state,
                  std::chrono::seconds timeout = std::chrono::seconds(120)) const;
  // Polls until the task's attempt number `attempt` is in `state` (e.g. the retry after a restart).
  bool wait_attempt(const std::string& id, int attempt, const std::string& state,
                    std::chrono::seconds timeout = std::chrono::seconds(120)) const;
  // Runs `program args...` (e.g. polyphony-submit) with this home.
  ProcessResult run(const std::string& program, const std::vector<std::string>& args) const;
  // `polyphony status --json`, parsed.
  nlohmann::json status() const;
  nlohmann::json task(const std::string& id) const;
  // Polls until every id is in a finished state (or the deadline); returns their states.
  std::map<std::string, std::string> wait_finished(const std::vector<std::string>& ids,
                                                   std::chrono::seconds timeout = std::chrono::seconds(180)) const;
  // Containers on the engine labelled with this task id.
  size_t containers_of(const std::string& id) const;
  // True once the task has no container left (waiting up to `timeout` for it).
  bool no_containers_left(const std::string& id, std::chrono::milliseconds timeout = std::chrono::seconds(20)) const;

  const std::filesystem::path& home() const { return home_; }
  const std::filesystem::path& origin() const { return origin_; }
  std::string serve_log() const;

 private:
  TempDir dir_;
  std::filesystem::path home_;
  std::filesystem::path origin_;
  std::unique_ptr<BackgroundProcess> server_;
  int serves_ = 0;
  std::map<std::string, std::string> env_;
};

// Agent script lines that wait (two minutes at most) until the test writes /polyphony/go, which
// is the task's meta directory on the host (let_agent_go): the agent holds its state for as long
// as the test needs, with no timer to race.
inline constexpr const char* kWaitForGo =
    "i=0; while [ ! -e /polyphony/go ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done\n";

// Lets the agent of task `id` (waiting in kWaitForGo) go on, once its workspace exists.
void let_agent_go(const SingleBox& box, const std::string& id);

// Waits until every id is finished, letting each attempt's agent (waiting in kWaitForGo) go as
// its workspace appears: a retry waits for the test's go too. Returns their states.
std::map<std::string, std::string> finish_letting_go(const SingleBox& box, const std::vector<std::string>& ids,
                                                     std::chrono::seconds timeout = std::chrono::seconds(300));

// kill -9 of `box`'s serve while task `id` waits for the test's go in `state` (kWaitForGo), a
// restart, and the go once the next attempt waits in `state` again; returns the task's finished
// state.
std::string crash_and_finish(SingleBox& box, const std::string& id, const std::string& state);

// Removes every container labelled with one of these worker ids (test hygiene, after the checks).
void remove_containers_of_workers(const std::vector<std::string>& worker_ids);

}  // namespace polyphony::testing
