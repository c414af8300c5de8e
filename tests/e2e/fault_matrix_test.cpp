// The fault matrix end to end: for each step of a task's life (DISCOVERED, CLAIMED, ROUTED,
// PROVISIONED, RUNNING, VERIFYING, under review, landing), kill -9 of the coordinator, kill -9
// of the worker that holds the task, and a partition of that worker past its lease and back.
// A fleet of two hosts in network namespaces (fleet.h); host 1 takes the first attempt, and a
// hook, not timing, keeps the task in the step until the test releases it:
// POLYPHONY_TEST_HOLD_<STEP>_UNTIL in the worker or the coordinator (DISCOVERED), no live worker
// (CLAIMED), or an agent that waits for the test's go (RUNNING). Each case then checks the invariants: the task lands
// exactly once, its history is whole and never has two attempts at once, no two workers ran it side by side, and no
// container or stale workspace of it is left.
#include <catch2/catch.hpp>

#include <cstdlib>

#include "fleet.h"

using namespace polyphony;
using namespace polyphony::testing;

namespace {

enum class Fault { kKillCoordinator, kKillWorker, kPartition };

// What keeps the task in its step while the fault strikes.
enum class Holder {
  kCoordinator,  // POLYPHONY_TEST_HOLD_DISCOVERED_UNTIL in `serve`
  kNoWorker,     // no live worker: the task waits CLAIMED
  kWorker,       // POLYPHONY_TEST_HOLD_<STEP>_UNTIL in host 1's worker
  kAgent,        // the agent waits for the test's go (kWaitForGo): RUNNING
};

struct Step {
  std::string name;  // the hook's name (REVIEW and LANDING are both VERIFYING to the coordinator)
  Holder holder;
};

const std::vector<Step> kSteps{
    {"DISCOVERED", Holder::kCoordinator}, {"CLAIMED", Holder::kNoWorker}, {"ROUTED", Holder::kWorker},
    {"PROVISIONED", Holder::kWorker},     {"RUNNING", Holder::kAgent},    {"VERIFYING", Holder::kWorker},
    {"REVIEW", Holder::kWorker},          {"LANDING", Holder::kWorker},
};

// Every task is reviewed, so the review step exists in each case: `approver` approves at once.
const std::string kAgents = R"(agents:
  scripted:
    command: [polyphony-scripted-agent, "{task_file}"]
    tier: cheap
  approver:
    command:
      - sh
      - -c
      - |
        printf 'approve\nfine\n' > "$POLYPHONY_VERDICT_FILE"
    tier: strong
)";
const std::string kRouting =
    "rules:\n  - match: {task_type: faulty}\n    agent: scripted\n    plan: review\ndefault:\n  agent: scripted\n";

// The timestamp ("2026-12-03T03:21:10.469") of the first line of `log` that holds `text`, "" when none.
std::string log_time(const std::string& log, const std::string& text) {
  const size_t at = log.find(text);
  if (at == std::string::npos) return "";
  const size_t line = log.rfind('\n', at);
  const size_t start = line == std::string::npos ? 0 : line + 1;
  return log.substr(start, log.find(' ', start) - start);
}

const char* fault_name(Fault f) {
  switch (f) {
    case Fault::kKillCoordinator:
      return "kill -9 of serve";
    case Fault::kKillWorker:
      return "kill -9 of the worker";
    case Fault::kPartition:
      return "partition of the worker";
  }
  return "";
}

class MatrixCase {
 public:
  MatrixCase(const Step& step, Fault fault) : step_(step), fault_(fault), f_(2, "", false) {
    write_file(f_.box.home() / "agents.yaml", kAgents);
    write_file(f_.box.home() / "routing.yaml", kRouting);
    title_ = "Fault in " + step.name + ": " + fault_name(fault);
  }

  void run() {
    start();
    const std::string body =
        std::string("```sh\n") + (step_.holder == Holder::kAgent ? kWaitForGo : "") + "echo x > done-x.txt\n```\n";
    id_ = f_.box.spawn_routed(title_, body, {"--type", "faulty"});
    if (!reach_step()) FAIL("the task never reached " << step_.name << "\n" << f_.logs());
    strike();
    check_invariants();
  }

 private:
  std::string hold_var() const { return "POLYPHONY_TEST_HOLD_" + step_.name + "_UNTIL"; }
  std::map<std::string, std::string> hold() const { return {{hold_var(), release_.string()}}; }
  // The hold ends (the worker's or the coordinator's hook sees the file).
  void release() const { write_file(release_, ""); }

  // Fails the case with `what` and every log when `condition` does not hold within `timeout`.
  void require_within(const std::function<bool()>& condition, std::chrono::seconds timeout, const std::string& what) {
    if (eventually(condition, timeout)) return;
    FAIL(what << " within " << timeout.count() << " s\n" << f_.logs());
  }
  bool ready(int host) const { return f_.worker_state(host) == "ready"; }
  bool lost(int host) const { return f_.worker_state(host) == "lost"; }
  // Host 1's current life noticed its coordinator's silence (longer than the lease).
  bool silent_noticed() const { return f_.worker_log(1).find("coordinator silent") != std::string::npos; }

  // Serve and the workers that must be up before the task comes; with no live worker (CLAIMED)
  // host 1 suffers the fault first and the task then arrives.
  void start() {
    f_.serve(step_.holder == Holder::kCoordinator ? hold() : std::map<std::string, std::string>{});
    if (step_.holder == Holder::kNoWorker) {
      if (fault_ == Fault::kKillCoordinator) return;
      f_.start_worker(1);
      require_within([&] { return ready(1); }, std::chrono::seconds(60), "host 1 registers");
      if (fault_ == Fault::kKillWorker) f_.workers[1]->kill9();
      if (fault_ == Fault::kPartition) f_.net.set_link(1, false);
      require_within([&] { return lost(1); }, std::chrono::seconds(60), "the coordinator finds host 1 lost");
      return;
    }
    f_.start_worker(1, step_.holder == Holder::kWorker ? hold() : std::map<std::string, std::string>{});
    if (step_.holder == Holder::kCoordinator) {
      f_.start_worker(2);
      require_within([&] { return ready(1) && ready(2); }, std::chrono::seconds(60), "both hosts register");
    }
  }

  bool reach_step() {
    switch (step_.holder) {
      case Holder::kCoordinator:
        return f_.box.wait_state(id_, "DISCOVERED");
      case Holder::kNoWorker:
        return f_.box.wait_state(id_, "CLAIMED");
      case Holder::kAgent:
        break;
      case Holder::kWorker:
        if (!eventually(
                [&] { return f_.worker_log(1).find("test hold in " + step_.name + " starts") != std::string::npos; },
                std::chrono::seconds(120))) {
          return false;
        }
        break;
    }
    if (step_.holder == Holder::kAgent && !f_.box.wait_state(id_, "RUNNING")) return false;
    // The first attempt is on host 1; host 2 can take the next.
    f_.start_worker(2);
    require_within([&] { return ready(2); }, std::chrono::seconds(60), "host 2 registers");
    return true;
  }

  // The task moved on without host 1: an attempt runs on host 2 (or it ended); the next one,
  // when host 1 had the first.
  bool moved_on() const {
    const auto t = f_.box.task(id_);
    if (!t.contains("state") || !t["worker"].is_string()) return false;
    const std::string state = t["state"];
    if (state == "LANDED" || state == "BLOCKED") return true;
    const int attempt = step_.holder == Holder::kCoordinator ? 1 : 2;
    return t["attempt"].get<int>() >= attempt && f_.host_of(t["worker"].get<std::string>()) == 2 &&
           (state == "RUNNING" || state == "VERIFYING");
  }

  void strike() {
    switch (fault_) {
      case Fault::kKillCoordinator:
        f_.box.kill_serving();
        f_.serve();
        if (step_.holder == Holder::kNoWorker) f_.start_worker(1);
        release();
        break;
      case Fault::kKillWorker:
        if (step_.holder != Holder::kNoWorker) f_.workers[1]->kill9();
        f_.start_worker(1);
        release();
        break;
      case Fault::kPartition:
        if (step_.holder != Holder::kNoWorker) {
          f_.net.set_link(1, false);
          // Longer than the lease: both sides have noticed, and the task went on without host 1
          // (a landing keeps its lease: host 1 pushes while cut off).
          require_within([&] { return lost(1) && silent_noticed(); }, std::chrono::seconds(60),
                         "both sides notice the partition");
          release();
          if (step_.name == "LANDING") {
            require_within([&] { return f_.worker_log(1).find("landing round 1") != std::string::npos; },
                           std::chrono::seconds(60), "host 1 lands while cut off");
          } else {
            require_within([&] { return moved_on(); }, std::chrono::seconds(120), "the task moves on to host 2");
          }
        }
        f_.net.set_link(1, true);
        release();
        break;
    }
  }

  void check_invariants() {
    const std::string state = f_.finish(id_);  // lets each attempt's agent go (RUNNING)
    INFO(f_.logs());
    REQUIRE(state == "LANDED");
    CHECK(f_.landings_of(title_) == 1);
    const auto show = nlohmann::json::parse(f_.box.cli({"show", id_, "--json"}).out);
    INFO(show["events"].dump(1));
    CHECK(history_problem(show) == "");
    CHECK(watch_.samples() > 0);
    CHECK(watch_.overlaps().empty());
    if (fault_ == Fault::kPartition && step_.holder != Holder::kNoWorker && step_.holder != Holder::kCoordinator &&
        step_.name != "LANDING") {
      // Host 1, cut off, stopped its attempt before host 2 started the next: the hosts share
      // one engine here, where host 2 would remove host 1's containers anyway, so their logs
      // (one clock) are the witness, not the containers.
      const std::string fenced = log_time(f_.worker_log(1), "task " + id_ + ": coordinator silent");
      const std::string next = log_time(f_.worker_log(2), "task " + id_ + ": starting attempt 2");
      INFO("host 1 stopped its attempt at '" << fenced << "', host 2 started the next at '" << next << "'");
      CHECK(!fenced.empty());
      CHECK(!next.empty());
      CHECK(fenced < next);
    }
    CHECK(f_.box.no_containers_left(id_, std::chrono::seconds(30)));
    // The landed attempt's workspace stays (until `polyphony cleanup`); no other host keeps one.
    const int last = f_.host_of(f_.box.task(id_)["worker"].get<std::string>());
    for (int i = 1; i <= f_.hosts; ++i) {
      if (i == last) continue;
      INFO("host " << i);
      CHECK(eventually([&] { return !std::filesystem::exists(f_.worker_home(i) / "workspaces/tasks" / id_); },
                       std::chrono::seconds(30)));
    }
  }

  Step step_;
  Fault fault_;
  Fleet f_;
  OverlapWatch watch_{f_.worker_ids()};
  std::string title_;
  std::string id_;
  std::filesystem::path release_ = f_.box.home() / "release-hold";
};

void run_case(Fault fault, const Step& step) {
  INFO(fault_name(fault) << " in " << step.name);
  // POLYPHONY_FAULT_STEPS=RUNNING,LANDING runs only those steps (when chasing one case).
  if (const char* only = std::getenv("POLYPHONY_FAULT_STEPS");
      only != nullptr && ("," + std::string(only) + ",").find("," + step.name + ",") == std::string::npos) {
    return;
  }
  MatrixCase(step, fault).run();
}

}  // namespace

TEST_CASE("fault matrix: kill -9 of serve in each step of a task's life, and the task lands exactly once") {
  run_case(Fault::kKillCoordinator, GENERATE(from_range(kSteps)));
}

TEST_CASE("fault matrix: kill -9 of the worker in each step of a task's life, and the task lands exactly once") {
  run_case(Fault::kKillWorker, GENERATE(from_range(kSteps)));
}

TEST_CASE("fault matrix: a partition of the worker past its lease in each step, and the task lands exactly once") {
  run_case(Fault::kPartition, GENERATE(from_range(kSteps)));
}
