// A single-box setup for end-to-end tests.
#include "single_box.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <fstream>
#include <regex>

#include <yaml-cpp/yaml.h>

#include "worker-agent/container_pool.h"
#include "worker-agent/docker_client.h"

namespace polyphony::testing {

namespace fs = std::filesystem;

namespace {

// The test defaults (network none, short poll interval, small limits, the dashboard on a free
// port) with `extra` laid over them, one level deep: `container:` in `extra` changes only the keys it names.
std::string merged_config(const std::string& extra) {
  YAML::Node base = YAML::Load(
      "poll_interval_ms: 100\n"
      "coordinator: {heartbeat_interval_ms: 200, heartbeat_liveness: 10, http_listen: \"127.0.0.1:0\"}\n"
      "container: {network: none, cpus: 1, memory: 512m, run_timeout_s: 120, verify_timeout_s: 120}\n");
  YAML::Node over = YAML::Load(extra);
  if (over.IsMap()) {
    for (const auto& kv : over) {
      const std::string key = kv.first.as<std::string>();
      if (base[key].IsMap() && kv.second.IsMap()) {
        for (const auto& inner : kv.second) base[key][inner.first.as<std::string>()] = inner.second;
      } else {
        base[key] = kv.second;
      }
    }
  }
  YAML::Emitter out;
  out << base;
  return std::string(out.c_str()) + "\n";
}

}  // namespace

const std::map<std::string, std::string>& sample_repo() {
  static const std::map<std::string, std::string> files{
      {"README.md", "# sample\n"},
      {"greet.sh", "echo \"Hello, $1!\"\n"},
      {"tests/greet.test", "test \"$(sh greet.sh Ada)\" = \"Hello, Ada!\"\n"},
      {".polyphony.yaml", "verify: for t in tests/*.test; do sh \"$t\" || exit 1; done\n"},
  };
  return files;
}

SingleBox::SingleBox(const std::map<std::string, std::string>& files, const std::string& extra_config)
    : dir_("polyphony-e2e"), home_(dir_.path() / "home"), origin_(dir_.path() / "origin.git") {
  auto init = cli({"init"});
  INFO(init.err);
  REQUIRE(init.exit_code == 0);
  write_file(home_ / "config.yaml", merged_config(extra_config));
  make_bare_repo(origin_, files);
}

SingleBox::~SingleBox() {
  stop_serving();
  // Hygiene after the assertions: a serve killed for good (SIGKILL, never restarted) leaves its
  // warm containers behind, as a dead host would; the engine here outlives the test.
  const std::string log = serve_log();
  std::vector<std::string> workers;
  static const std::regex kConnected("worker (\\S+) connecting to");
  for (auto it = std::sregex_iterator(log.begin(), log.end(), kConnected); it != std::sregex_iterator(); ++it) {
    workers.push_back((*it)[1].str());
  }
  remove_containers_of_workers(workers);
}

void remove_containers_of_workers(const std::vector<std::string>& worker_ids) {
  const std::string host = test_docker_host();
  if (host.empty()) return;
  auto docker = make_docker_client(host);
  for (const auto& id : worker_ids) {
    auto left = docker->list_containers({{"polyphony.worker", id}});
    if (!left.ok()) continue;
    for (const auto& c : *left) (void)docker->remove_container(c.id);
  }
}

ProcessResult SingleBox::cli(const std::vector<std::string>& args, const std::string& stdin_data) const {
  std::vector<std::string> argv{POLYPHONY_CLI};
  argv.insert(argv.end(), args.begin(), args.end());
  ProcessOptions o;
  o.env = env_;
  o.env["POLYPHONY_HOME"] = home_.string();
  o.env["POLYPHONY_LOG_LEVEL"] = "warn";
  o.stdin_data = stdin_data;
  o.timeout = std::chrono::seconds(120);
  auto r = run_process(argv, o);
  if (!r.ok()) return ProcessResult{-1, "", r.error().to_string()};
  return *r;
}

std::string SingleBox::spawn(const std::string& title, const std::string& body,
                             const std::vector<std::string>& extra) const {
  std::vector<std::string> with_agent = extra;
  if (std::find(extra.begin(), extra.end(), "--agent") == extra.end()) {
    with_agent.insert(with_agent.end(), {"--agent", "scripted"});
  }
  return spawn_routed(title, body, with_agent);
}

std::string SingleBox::spawn_routed(const std::string& title, const std::string& body,
                                    const std::vector<std::string>& extra) const {
  std::vector<std::string> args{"spawn", title, "--repo", origin_.string(), "--body", body};
  args.insert(args.end(), extra.begin(), extra.end());
  auto r = cli(args);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  std::string id = r.out;
  while (!id.empty() && id.back() == '\n') id.pop_back();
  REQUIRE(id.size() == 8);
  return id;
}

void SingleBox::serve(std::map<std::string, std::string> env, std::vector<std::string> prefix) {
  // Each start writes its own log; serve_log() returns them all.
  for (const auto& [name, value] : env_) env.emplace(name, value);  // set_env's, unless given here
  env["POLYPHONY_HOME"] = home_.string();
  prefix.insert(prefix.end(), {POLYPHONY_CLI, "serve"});
  server_ =
      std::make_unique<BackgroundProcess>(prefix, env, dir_.path() / ("serve-" + std::to_string(++serves_) + ".log"));
  // Clients (polyphony-submit, workers) refuse at once when no coordinator socket exists yet:
  // wait until it listens (a serve that fails to start is seen by the test's own checks).
  eventually([&] { return std::filesystem::exists(home_ / "coordinator.sock") || !server_->running(); },
             std::chrono::seconds(30));
}

void SingleBox::stop_serving() {
  if (server_) server_->stop();
  server_.reset();
}

void SingleBox::kill_serving() {
  if (server_) server_->kill9();
  server_.reset();
}

bool SingleBox::wait_state(const std::string& id, const std::string& state, std::chrono::seconds timeout) const {
  return eventually([&] { return task(id).value("state", "") == state; }, timeout);
}

bool SingleBox::wait_attempt(const std::string& id, int attempt, const std::string& state,
                             std::chrono::seconds timeout) const {
  return eventually(
      [&] {
        const auto t = task(id);
        return t.value("attempt", 0) == attempt && t.value("state", "") == state;
      },
      timeout);
}

void let_agent_go(const SingleBox& box, const std::string& id) {
  const auto meta = box.home() / "workspaces" / "tasks" / id / "meta";
  REQUIRE(eventually([&] { return std::filesystem::exists(meta / "task.md"); }, std::chrono::seconds(120)));
  write_file(meta / "go", "");
}

std::map<std::string, std::string> finish_letting_go(const SingleBox& box, const std::vector<std::string>& ids,
                                                     std::chrono::seconds timeout) {
  std::map<std::string, std::string> states;
  eventually(
      [&] {
        for (const auto& id : ids) {
          const auto meta = box.home() / "workspaces" / "tasks" / id / "meta";
          if (std::filesystem::exists(meta / "task.md")) write_file(meta / "go", "");
        }
        states = box.wait_finished(ids, std::chrono::seconds(1));
        return std::all_of(ids.begin(), ids.end(), [&](const std::string& id) {
          const std::string& s = states[id];
          return s == "LANDED" || s == "FAILED" || s == "BLOCKED" || s == "CANCELLED";
        });
      },
      timeout);
  return states;
}

std::string crash_and_finish(SingleBox& box, const std::string& id, const std::string& state) {
  REQUIRE(box.wait_state(id, state));
  const int attempt = box.task(id).value("attempt", 0);
  box.kill_serving();
  box.serve();
  REQUIRE(box.wait_attempt(id, attempt + 1, state));
  let_agent_go(box, id);
  return box.wait_finished({id})[id];
}

ProcessResult SingleBox::run(const std::string& program, const std::vector<std::string>& args) const {
  std::vector<std::string> argv{program};
  argv.insert(argv.end(), args.begin(), args.end());
  ProcessOptions o;
  o.env["POLYPHONY_HOME"] = home_.string();
  o.timeout = std::chrono::seconds(180);
  auto r = run_process(argv, o);
  if (!r.ok()) return ProcessResult{-1, "", r.error().to_string()};
  return *r;
}

std::string SingleBox::serve_log() const {
  std::string all;
  for (int i = 1; i <= serves_; ++i) {
    std::error_code ec;
    const fs::path log = dir_.path() / ("serve-" + std::to_string(i) + ".log");
    if (fs::exists(log, ec)) all += "--- serve #" + std::to_string(i) + "\n" + read_file(log);
  }
  return all;
}

nlohmann::json SingleBox::status() const {
  auto r = cli({"status", "--json"});
  if (r.exit_code != 0) return nlohmann::json::array();
  auto j = nlohmann::json::parse(r.out, nullptr, false);
  return j.is_array() ? j : nlohmann::json::array();
}

nlohmann::json SingleBox::task(const std::string& id) const {
  for (const auto& t : status()) {
    if (t["id"] == id) return t;
  }
  return nlohmann::json::object();
}

std::map<std::string, std::string> SingleBox::wait_finished(const std::vector<std::string>& ids,
                                                            std::chrono::seconds timeout) const {
  std::map<std::string, std::string> states;
  eventually(
      [&] {
        states.clear();
        for (const auto& t : status()) states[t["id"].get<std::string>()] = t["state"].get<std::string>();
        for (const auto& id : ids) {
          const auto& s = states[id];
          if (s != "LANDED" && s != "FAILED" && s != "BLOCKED" && s != "CANCELLED") return false;
        }
        return true;
      },
      timeout);
  std::map<std::string, std::string> out;
  for (const auto& id : ids) out[id] = states[id];
  return out;
}

size_t SingleBox::containers_of(const std::string& id) const {
  auto docker = make_docker_client(test_docker_host());
  auto list = task_containers(*docker, id);
  REQUIRE(list.ok());
  return list->size();
}

bool SingleBox::no_containers_left(const std::string& id, std::chrono::milliseconds timeout) const {
  // A worker with a warm pool removes a finished attempt's container just after reporting.
  return eventually([&] { return containers_of(id) == 0; }, timeout);
}

}  // namespace polyphony::testing
