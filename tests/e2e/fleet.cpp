// A fleet of worker hosts in network namespaces, for end-to-end tests.
#include "fleet.h"

#include <unistd.h>

#include <catch2/catch.hpp>

#include "common/process.h"
#include "coordinator/lifecycle.h"
#include "worker-agent/docker_client.h"

namespace polyphony::testing {

namespace {

constexpr int kPort = 47120;
constexpr const char* kCoordinatorAddress = "10.231.7.1";

void ip(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = run_process(argv);
  std::string joined;
  for (const auto& a : args) joined += " " + a;
  INFO("ip" << joined << ": " << (r.ok() ? r->err : r.error().message));
  REQUIRE(r.ok());
  REQUIRE(r->exit_code == 0);
}

}  // namespace

std::string fleet_endpoint() {
  return "tcp://" + std::string(kCoordinatorAddress) + ":" + std::to_string(kPort);
}

Network::Network(int hosts) : prefix_("pf" + std::to_string(::getpid() % 100000) + "-") {
  ip({"netns", "add", hub()});
  namespaces_.push_back(hub());
  ip({"-n", hub(), "link", "set", "lo", "up"});
  ip({"-n", hub(), "link", "add", "br0", "type", "bridge"});
  ip({"-n", hub(), "addr", "add", std::string(kCoordinatorAddress) + "/24", "dev", "br0"});
  ip({"-n", hub(), "link", "set", "br0", "up"});
  for (int i = 1; i <= hosts; ++i) {
    const std::string ns = host(i);
    ip({"netns", "add", ns});
    namespaces_.push_back(ns);
    ip({"-n", ns, "link", "set", "lo", "up"});
    ip({"-n", hub(), "link", "add", link(i), "type", "veth", "peer", "name", "eth0", "netns", ns});
    ip({"-n", hub(), "link", "set", link(i), "master", "br0"});
    ip({"-n", hub(), "link", "set", link(i), "up"});
    ip({"-n", ns, "addr", "add", "10.231.7." + std::to_string(10 + i) + "/24", "dev", "eth0"});
    ip({"-n", ns, "link", "set", "eth0", "up"});
  }
}

Network::~Network() {
  for (const auto& ns : namespaces_) (void)run_process({"ip", "netns", "del", ns});
}

std::vector<std::string> Network::exec_in(const std::string& ns) const {
  return {find_program("ip"), "netns", "exec", ns};
}

void Network::set_link(int i, bool up) {
  ip({"-n", hub(), "link", "set", link(i), up ? "up" : "down"});
}

const std::map<std::string, std::string>& fleet_repo() {
  static const std::map<std::string, std::string> files{
      {"README.md", "# fleet\n"},
      {".polyphony.yaml", "verify: sh verify.sh\n"},
      {"verify.sh", "set -e\nls done-*.txt >/dev/null\n"},
  };
  return files;
}

Fleet::Fleet(int hosts_, const std::string& extra, bool start, const std::map<std::string, std::string>& repo,
             const std::string& liveness)
    : hosts(hosts_),
      net(hosts_),
      box(repo, "max_concurrency: " + std::to_string(2 * hosts_) +
                    "\ncoordinator: {embedded_worker: false, worker_endpoint: \"" + fleet_endpoint() +
                    "\", heartbeat_interval_ms: 200, " + liveness +
                    "secret_key_file: keys/coordinator.key, allowed_workers_dir: keys/workers}\n" + extra) {
  make_keys();
  if (!start) return;
  serve();
  for (int i = 1; i <= hosts; ++i) start_worker(i);
}

Fleet::~Fleet() {
  workers.clear();
  remove_containers_of_workers(worker_ids());
}

int Fleet::host_of(const std::string& id) const {
  for (int i = 1; i <= hosts; ++i) {
    if (worker_id(i) == id) return i;
  }
  return 0;
}

std::vector<std::string> Fleet::worker_ids() const {
  std::vector<std::string> ids;
  for (int i = 1; i <= hosts; ++i) ids.push_back(worker_id(i));
  return ids;
}

void Fleet::make_keys() {
  auto gen = [&](const std::string& name, const std::filesystem::path& dir) {
    auto r = box.cli({"keys", "gen", "--name", name, "--out", dir.string()});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
  };
  gen("coordinator", box.home() / "keys");
  std::filesystem::create_directories(box.home() / "keys/workers");
  for (int i = 1; i <= hosts; ++i) {
    gen(worker_id(i), worker_home(i) / "keys");
    std::filesystem::copy_file(worker_home(i) / "keys" / (worker_id(i) + ".pub"),
                               box.home() / "keys/workers" / (worker_id(i) + ".pub"));
  }
}

void Fleet::serve(const std::map<std::string, std::string>& env) {
  box.serve(env, net.exec_in(net.hub()));
}

void Fleet::start_worker(int i, const std::map<std::string, std::string>& env) {
  const auto home = worker_home(i);
  if (!std::filesystem::exists(home / "config.yaml")) {
    write_file(home / "config.yaml",
               "workspace_root: " + (home / "workspaces").string() + "\nworker: {coordinator: \"" + fleet_endpoint() +
                   "\", capacity: 2, secret_key_file: keys/" + worker_id(i) +
                   ".key, coordinator_public_key_file: " + (box.home() / "keys/coordinator.pub").string() + "}\n");
  }
  auto argv = net.exec_in(net.host(i));
  argv.insert(argv.end(), {POLYPHONY_WORKER_CLI, "--id", worker_id(i)});
  auto all = env;
  all["POLYPHONY_HOME"] = home.string();
  workers[i] =
      std::make_unique<BackgroundProcess>(argv, all, home / ("worker-" + std::to_string(++starts[i]) + ".log"));
}

std::string Fleet::worker_log(int i) const {
  if (!starts.count(i)) return "";
  const auto f = worker_home(i) / ("worker-" + std::to_string(starts.at(i)) + ".log");
  return std::filesystem::exists(f) ? read_file(f) : "";
}

std::string Fleet::logs() const {
  std::string all = box.serve_log();
  for (const auto& [i, n_starts] : starts) {
    for (int n = 1; n <= n_starts; ++n) {
      const auto f = worker_home(i) / ("worker-" + std::to_string(n) + ".log");
      if (std::filesystem::exists(f))
        all += "\n--- host " + std::to_string(i) + " #" + std::to_string(n) + "\n" + read_file(f);
    }
  }
  return all;
}

std::string Fleet::worker_state(int i) const {
  auto r = box.cli({"workers", "--json"});
  if (r.exit_code != 0) return "";
  const auto table = nlohmann::json::parse(r.out, nullptr, false);
  if (table.is_discarded()) return "";
  for (const auto& w : table["workers"]) {
    if (w["id"] == worker_id(i)) return w["state"].get<std::string>();
  }
  return "";
}

void Fleet::let_go(const std::string& id) const {
  for (int i = 1; i <= hosts; ++i) {
    const auto meta = worker_home(i) / "workspaces" / "tasks" / id / "meta";
    if (std::filesystem::exists(meta)) write_file(meta / "go", "");
  }
}

std::string Fleet::finish(const std::string& id, std::chrono::seconds timeout) const {
  std::string state;
  eventually(
      [&] {
        let_go(id);
        state = box.wait_finished({id}, std::chrono::seconds(1))[id];
        return state == "LANDED" || state == "FAILED" || state == "BLOCKED" || state == "CANCELLED";
      },
      timeout);
  return state;
}

int Fleet::landings_of(const std::string& title) const {
  const std::string log = git(box.origin(), {"log", "--format=%s", "main"});
  int n = 0;
  size_t start = 0;
  for (size_t end; (end = log.find('\n', start)) != std::string::npos; start = end + 1) {
    n += log.compare(start, end - start, title) == 0;
  }
  return n;
}

std::string history_problem(const nlohmann::json& show) {
  const auto& events = show["events"];
  if (events.empty()) return "no events";
  if (events[0]["to"] != "DISCOVERED") return "the first event is not DISCOVERED but " + events[0]["to"].dump();
  int routed = 0;
  for (size_t i = 1; i < events.size(); ++i) {
    const auto& e = events[i];
    const std::string at = "event " + std::to_string(i) + " (" + e.dump() + ")";
    if (e["from"] != events[i - 1]["to"]) return at + " does not start where the one before ended";
    const auto from = parse_task_state(e["from"].get<std::string>());
    const auto to = parse_task_state(e["to"].get<std::string>());
    if (!from || !to) return at + " names an unknown state";
    if (*from != *to && !can_transition(*from, *to)) return at + " is a transition the lifecycle forbids";
    if (*to == TaskState::kRouted && *from != *to) {
      if (e["attempt"].get<int>() != ++routed)
        return at + " dispatches attempt " + e["attempt"].dump() + " after " + std::to_string(routed - 1) +
               " dispatches";
    }
  }
  if (events.back()["to"] != show["state"])
    return "the last event does not end in the task's state " + show["state"].dump();
  if (routed != show["attempt"].get<int>()) {
    return std::to_string(routed) + " dispatches for attempt " + show["attempt"].dump();
  }
  return "";
}

OverlapWatch::OverlapWatch(std::vector<std::string> worker_ids) : worker_ids_(std::move(worker_ids)) {
  thread_ = std::thread([this] {
    while (!stop_.load()) {
      sample();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));  // a sampling period, not a wait
    }
  });
}

OverlapWatch::~OverlapWatch() {
  stop_ = true;
  thread_.join();
}

std::map<std::string, std::set<std::string>> OverlapWatch::overlaps() const {
  std::lock_guard lock(mutex_);
  return overlaps_;
}

void OverlapWatch::sample() {
  static const auto docker = make_docker_client(test_docker_host());
  std::map<std::string, std::set<std::string>> running;  // task -> workers running a container of it
  for (const auto& worker : worker_ids_) {
    auto list = docker->list_containers({{"polyphony.worker", worker}});
    if (!list.ok()) return;
    for (const auto& c : *list) {
      if (c.state != "running") continue;
      std::string task = c.labels.count("polyphony.task") ? c.labels.at("polyphony.task") : "";
      // A warm container a run took carries the task in its name only: polyphony.<task>.e<epoch>.
      if (task.empty() && c.name.rfind("polyphony.", 0) == 0 && c.name.find(".e", 10) != std::string::npos) {
        task = c.name.substr(10, c.name.find('.', 10) - 10);
      }
      if (!task.empty()) running[task].insert(worker);
    }
  }
  ++samples_;
  std::lock_guard lock(mutex_);
  for (const auto& [task, workers] : running) {
    if (workers.size() > 1) overlaps_[task].insert(workers.begin(), workers.end());
  }
}

}  // namespace polyphony::testing
