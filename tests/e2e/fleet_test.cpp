// A fleet end to end: one coordinator and three worker hosts, each in a network namespace of
// its own with its own address and workspace root, joined by a bridge this test makes. They
// share nothing but the coordinator's endpoint (and the Docker engine's unix socket, which
// stands for each host's own engine). A partition is a link set down. Traffic goes only to the
// addresses made here; every namespace is deleted at the end. The endpoint is not loopback, so
// it runs CURVE: each host has its own key pair, allowed by the coordinator.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <set>

#include "common/process.h"
#include "single_box.h"

using namespace polyphony;
using namespace polyphony::testing;

namespace {

const std::map<std::string, std::string> kRepo{
    {"README.md", "# fleet\n"},
    {".polyphony.yaml", "verify: sh verify.sh\n"},
    {"verify.sh", "set -e\nls done-*.txt >/dev/null\n"},
};

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

// The namespaces, the bridge and the links; torn down in the destructor.
class Network {
 public:
  explicit Network(int workers) : prefix_("pf" + std::to_string(::getpid() % 100000) + "-") {
    ip({"netns", "add", hub()});
    namespaces_.push_back(hub());
    ip({"-n", hub(), "link", "set", "lo", "up"});
    ip({"-n", hub(), "link", "add", "br0", "type", "bridge"});
    ip({"-n", hub(), "addr", "add", std::string(kCoordinatorAddress) + "/24", "dev", "br0"});
    ip({"-n", hub(), "link", "set", "br0", "up"});
    for (int i = 1; i <= workers; ++i) {
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
  ~Network() {
    for (const auto& ns : namespaces_) (void)run_process({"ip", "netns", "del", ns});
  }
  Network(const Network&) = delete;
  Network& operator=(const Network&) = delete;

  std::string hub() const { return prefix_ + "hub"; }
  std::string host(int i) const { return prefix_ + "w" + std::to_string(i); }
  std::string link(int i) const { return "v" + std::to_string(i); }
  std::vector<std::string> exec_in(const std::string& ns) const { return {find_program("ip"), "netns", "exec", ns}; }
  // Cuts or restores host i's only link.
  void set_link(int i, bool up) { ip({"-n", hub(), "link", "set", link(i), up ? "up" : "down"}); }

 private:
  std::string prefix_;
  std::vector<std::string> namespaces_;
};

std::string endpoint() { return "tcp://" + std::string(kCoordinatorAddress) + ":" + std::to_string(kPort); }

struct Fleet {
  Network net{3};
  SingleBox box;
  std::map<int, std::unique_ptr<BackgroundProcess>> workers;
  std::map<int, int> starts;

  explicit Fleet(const std::string& extra = "")
      : box(kRepo, "max_concurrency: 6\ncoordinator: {embedded_worker: false, worker_endpoint: \"" +
                       endpoint() + "\", heartbeat_interval_ms: 200, heartbeat_liveness: 10, "
                       "secret_key_file: keys/coordinator.key, allowed_workers_dir: keys/workers}\n" + extra) {
    make_keys();
    box.serve({}, net.exec_in(net.hub()));
    for (int i = 1; i <= 3; ++i) start_worker(i);
  }

  std::filesystem::path worker_home(int i) const { return box.home().parent_path() / ("host" + std::to_string(i)); }
  // Unique per test run: tests run side by side on one engine, and a worker reaps containers
  // labelled with its id.
  std::string worker_id(int i) const { return net.host(i); }

  // A host killed for good leaves its warm containers on the engine the hosts share.
  ~Fleet() {
    workers.clear();
    remove_containers_of_workers({worker_id(1), worker_id(2), worker_id(3)});
  }

  // `polyphony keys gen` for the coordinator and each host; each host's .pub is allowed.
  void make_keys() {
    auto gen = [&](const std::string& name, const std::filesystem::path& dir) {
      auto r = box.cli({"keys", "gen", "--name", name, "--out", dir.string()});
      INFO(r.err);
      REQUIRE(r.exit_code == 0);
    };
    gen("coordinator", box.home() / "keys");
    std::filesystem::create_directories(box.home() / "keys/workers");
    for (int i = 1; i <= 3; ++i) {
      gen(worker_id(i), worker_home(i) / "keys");
      std::filesystem::copy_file(worker_home(i) / "keys" / (worker_id(i) + ".pub"),
                                 box.home() / "keys/workers" / (worker_id(i) + ".pub"));
    }
  }

  void start_worker(int i) {
    const auto home = worker_home(i);
    if (!std::filesystem::exists(home / "config.yaml")) {
      write_file(home / "config.yaml", "workspace_root: " + (home / "workspaces").string() +
                                           "\nworker: {coordinator: \"" + endpoint() +
                                           "\", capacity: 2, secret_key_file: keys/" + worker_id(i) +
                                           ".key, coordinator_public_key_file: " +
                                           (box.home() / "keys/coordinator.pub").string() + "}\n");
    }
    auto argv = net.exec_in(net.host(i));
    argv.insert(argv.end(), {POLYPHONY_WORKER_CLI, "--id", worker_id(i)});
    workers[i] = std::make_unique<BackgroundProcess>(
        argv, std::map<std::string, std::string>{{"POLYPHONY_HOME", home.string()}},
        home / ("worker-" + std::to_string(++starts[i]) + ".log"));
  }

  std::string logs() const {
    std::string all = box.serve_log();
    for (int i = 1; i <= 3; ++i) {
      for (int n = 1; n <= starts.at(i); ++n) {
        const auto f = worker_home(i) / ("worker-" + std::to_string(n) + ".log");
        if (std::filesystem::exists(f)) all += "\n--- host " + std::to_string(i) + " #" + std::to_string(n) + "\n" + read_file(f);
      }
    }
    return all;
  }

  int landings_of(const std::string& title) const {
    const std::string log = git(box.origin(), {"log", "--format=%s", "main"});
    int n = 0;
    for (size_t pos = 0; (pos = log.find(title + "\n", pos)) != std::string::npos; pos += title.size()) ++n;
    return n;
  }
};

// An agent that waits (two minutes at most) until the test writes /polyphony/go, the task's
// meta directory on whichever host runs it (let_go).
std::string agent_waiting_for_go(const std::string& name) {
  return "```sh\ni=0; while [ ! -e /polyphony/go ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done\n"
         "echo " + name + " > done-" + name + ".txt\n```\n";
}

// Lets the agent of task `id` go on, on every host that has (or gets) a workspace for it.
void let_go(const Fleet& f, const std::string& id) {
  for (int i = 1; i <= 3; ++i) {
    const auto meta = f.worker_home(i) / "workspaces" / "tasks" / id / "meta";
    if (std::filesystem::exists(meta)) write_file(meta / "go", "");
  }
}

std::string agent(const std::string& name, int sleep_s) {
  return "```sh\nsleep " + std::to_string(sleep_s) + "\necho " + name + " > done-" + name + ".txt\n```\n";
}

}  // namespace

TEST_CASE("twelve tasks spread over three worker hosts in their own namespaces, and each lands once") {
  Fleet f;
  std::vector<std::string> ids;
  for (int i = 0; i < 12; ++i) ids.push_back(f.box.spawn("Fleet task " + std::to_string(i), agent("t" + std::to_string(i), 1)));
  auto states = f.box.wait_finished(ids, std::chrono::seconds(300));
  INFO(f.logs());
  std::set<std::string> used;
  for (const auto& id : ids) {
    CHECK(states[id] == "LANDED");
    used.insert(f.box.task(id)["worker"].get<std::string>());
  }
  CHECK(used == std::set<std::string>{f.worker_id(1), f.worker_id(2), f.worker_id(3)});
  for (int i = 0; i < 12; ++i) CHECK(f.landings_of("Fleet task " + std::to_string(i)) == 1);
  // Each host worked in its own workspace root.
  for (int i = 1; i <= 3; ++i) CHECK(std::filesystem::exists(f.worker_home(i) / "workspaces/mirrors"));
}

TEST_CASE("a worker host killed mid-run: its task lands on another host, once") {
  Fleet f;
  // The agent waits for the test, so the host dies with the attempt still running.
  const std::string id = f.box.spawn("Orphaned by a dead host", agent_waiting_for_go("dead"));
  REQUIRE(f.box.wait_state(id, "RUNNING"));
  const std::string first = f.box.task(id)["worker"];
  const int victim = first.back() - '0';
  f.workers[victim]->kill9();
  std::map<std::string, std::string> states;
  REQUIRE(eventually(
      [&] {
        let_go(f, id);
        states = f.box.wait_finished({id}, std::chrono::seconds(1));
        return states[id] == "LANDED" || states[id] == "FAILED" || states[id] == "BLOCKED";
      },
      std::chrono::seconds(180)));
  INFO(f.logs());
  REQUIRE(states[id] == "LANDED");
  CHECK(f.box.task(id)["worker"] != first);
  CHECK(f.landings_of("Orphaned by a dead host") == 1);
}

TEST_CASE("a worker host cut off mid-run comes back after its lease expired: its late landing is refused, the task lands once") {
  Fleet f;
  // The agent waits for the test: the cut-off host's attempt is still running when it comes back.
  const std::string id = f.box.spawn("Partitioned task", agent_waiting_for_go("cut"));
  REQUIRE(f.box.wait_state(id, "RUNNING"));
  const std::string first = f.box.task(id)["worker"];
  const int cut = first.back() - '0';
  f.net.set_link(cut, false);
  // The lease expires (2 s without heartbeats) and another host gets the task.
  REQUIRE(eventually([&] { return f.box.task(id)["worker"] != first && f.box.task(id)["attempt"] == 2; },
                     std::chrono::seconds(60)));
  f.net.set_link(cut, true);
  std::map<std::string, std::string> states;
  REQUIRE(eventually(
      [&] {
        let_go(f, id);
        states = f.box.wait_finished({id}, std::chrono::seconds(1));
        return states[id] == "LANDED" || states[id] == "FAILED" || states[id] == "BLOCKED";
      },
      std::chrono::seconds(180)));
  REQUIRE(states[id] == "LANDED");
  // The cut-off host comes back with its stale attempt: what it sends is refused, it never lands.
  REQUIRE(eventually([&] { return f.logs().find("stale lease epoch") != std::string::npos; },
                     std::chrono::seconds(60)));
  INFO(f.logs());
  CHECK(f.landings_of("Partitioned task") == 1);
  CHECK(f.box.task(id)["worker"] != first);
}
