// The soak test (hidden: `[.soak]`, not in ctest's default run; bench/soak runs it): many tasks
// over a fleet of three worker hosts in network namespaces while workers are killed -9 and cut
// off past their lease at random, then the invariants over every task: it ended once (LANDED
// exactly once on the origin, or BLOCKED with a reason), its history is whole, no two workers
// ran it side by side, and no container of it or stale workspace is left. Prints one summary
// line. POLYPHONY_SOAK_TASKS (default 500), POLYPHONY_SOAK_SECONDS (default 1200: the time the
// tasks get to finish, faults included) and POLYPHONY_SOAK_SEED (default: from the clock) set it.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <iostream>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include "fleet.h"
#include "worker-agent/docker_client.h"

using namespace polyphony;
using namespace polyphony::testing;

namespace {

int64_t env_int(const char* name, int64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoll(v) : fallback;
}

// Like eventually(), checking once a second: `polyphony status --json` over hundreds of tasks
// is not cheap.
bool within(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(std::chrono::seconds(1));  // a polling period, not a wait for an effect
  }
  return true;
}

struct Chaos {
  int kills = 0;
  int partitions = 0;
};

// One fault on a random host: kill -9 and restart, or a partition until both sides noticed
// (longer than the lease), then the link back.
void strike(Fleet& f, std::mt19937_64& rng, Chaos& chaos) {
  const int host = std::uniform_int_distribution<int>(1, f.hosts)(rng);
  const bool kill = std::uniform_int_distribution<int>(0, 1)(rng) == 0;
  if (std::getenv("SOAK_LOST_LINES") != nullptr) {
    std::cout << "soak-fault: " << (kill ? "kill " : "partition ") << f.worker_id(host) << " at "
              << std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::system_clock::now().time_since_epoch())
                     .count()
              << std::endl;
  }
  if (kill) {
    f.workers[host]->kill9();
    f.start_worker(host);
    ++chaos.kills;
    return;
  }
  f.net.set_link(host, false);
  ++chaos.partitions;
  const bool noticed = eventually([&] { return f.worker_state(host) == "lost"; }, std::chrono::seconds(30)) &&
                       eventually([&] { return f.worker_log(host).find("coordinator silent") != std::string::npos; },
                                  std::chrono::seconds(30));
  f.net.set_link(host, true);
  REQUIRE(noticed);
}

// Subject -> how many commits on the origin's main carry it.
std::map<std::string, int> landings(const Fleet& f) {
  std::map<std::string, int> n;
  const std::string log = git(f.box.origin(), {"log", "--format=%s", "main"});
  size_t start = 0;
  for (size_t end; (end = log.find('\n', start)) != std::string::npos; start = end + 1) {
    ++n[log.substr(start, end - start)];
  }
  return n;
}

// Containers labelled with a task on the fleet's workers.
size_t task_containers_left(const Fleet& f) {
  auto docker = make_docker_client(test_docker_host());
  size_t n = 0;
  for (const auto& w : f.worker_ids()) {
    auto list = docker->list_containers({{"polyphony.worker", w}});
    if (!list.ok()) return SIZE_MAX;
    for (const auto& c : *list) n += c.labels.count("polyphony.task");
  }
  return n;
}

}  // namespace

TEST_CASE("soak: many tasks over three worker hosts killed and cut off at random all end once", "[.soak]") {
  const int tasks = static_cast<int>(env_int("POLYPHONY_SOAK_TASKS", 500));
  const auto budget = std::chrono::seconds(env_int("POLYPHONY_SOAK_SECONDS", 1200));
  const uint64_t seed = static_cast<uint64_t>(
      env_int("POLYPHONY_SOAK_SEED", std::chrono::steady_clock::now().time_since_epoch().count()));
  std::mt19937_64 rng(seed);
  const auto started = std::chrono::steady_clock::now();
  const auto deadline = started + budget;

  Fleet f(3, "max_attempts: 5\n");
  OverlapWatch watch(f.worker_ids());
  std::vector<std::string> ids;
  std::map<std::string, std::string> titles;
  for (int i = 0; i < tasks; ++i) {
    const std::string title = "Soak task " + std::to_string(i);
    const std::string id =
        f.box.spawn(title, "```sh\necho " + std::to_string(i) + " > done-" + std::to_string(i) + ".txt\n```\n");
    ids.push_back(id);
    titles[id] = title;
  }

  // Faults at random intervals while tasks remain, stopping a minute before the deadline so
  // that the last retries can finish.
  Chaos chaos;
  std::map<std::string, std::string> states;
  auto all_finished = [&] {
    int n = 0;
    states.clear();
    for (const auto& t : f.box.status()) {
      const std::string s = t["state"];
      states[t["id"]] = s;
      n += s == "LANDED" || s == "BLOCKED" || s == "CANCELLED" || s == "FAILED";
    }
    return n == tasks;
  };
  while (std::chrono::steady_clock::now() < deadline - std::chrono::seconds(60)) {
    const auto pause = std::chrono::milliseconds(std::uniform_int_distribution<int>(3000, 10000)(rng));
    if (within(all_finished, pause)) break;  // between faults, or done
    strike(f, rng, chaos);
  }
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  within(all_finished, std::max(left, std::chrono::milliseconds(60000)));

  // The invariants over every task.
  const auto landed_on_origin = landings(f);
  int landed = 0, blocked = 0, lost = 0, duplicates = 0, attempts = 0, history_errors = 0, stale_workspaces = 0;
  std::string problems;
  std::map<std::string, int> ended_by;  // attempts that did not land, by failure kind
  std::map<std::string, int> ended_why;
  const std::regex ids_and_numbers("[0-9a-f-]{6,}|[0-9]+");  // the same, by kind and the start of the reason
  for (const auto& id : ids) {
    const auto show = nlohmann::json::parse(f.box.cli({"show", id, "--json"}).out);
    attempts += show["attempt"].get<int>();
    for (const auto& e : show["events"]) {
      const std::string kind = e.value("failure_kind", "");
      if (kind.empty()) continue;
      ++ended_by[kind];
      // The reason's first words, without ids and numbers, say which fault it was.
      std::string why = std::regex_replace(e.value("reason", "").substr(0, 48), ids_and_numbers, "#");
      ++ended_why[kind + ": " + why];
    }
    const auto it = landed_on_origin.find(titles[id]);
    const int on_origin = it == landed_on_origin.end() ? 0 : it->second;
    if (states[id] == "LANDED" && on_origin == 1) {
      ++landed;
    } else if (states[id] == "BLOCKED" && !show["reason"].get<std::string>().empty() && on_origin == 0) {
      ++blocked;
    } else if (on_origin > 1) {
      ++duplicates;
      problems += id + ": landed " + std::to_string(on_origin) + " times\n";
    } else {
      ++lost;
      problems += id + ": " + states[id] + ", " + std::to_string(on_origin) + " commits on the origin\n";
    }
    if (auto why = history_problem(show); !why.empty()) {
      ++history_errors;
      problems += id + ": history: " + why + "\n";
    }
    // The last attempt's workspace stays until `polyphony cleanup`; no other host keeps one.
    const std::string last = show["worker"].is_string() ? show["worker"].get<std::string>() : "";
    for (int i = 1; i <= f.hosts; ++i) {
      if (f.worker_id(i) != last && std::filesystem::exists(f.worker_home(i) / "workspaces/tasks" / id)) {
        ++stale_workspaces;
        problems += id + ": a stale workspace on host " + std::to_string(i) + "\n";
      }
    }
  }
  const bool containers_gone = eventually([&] { return task_containers_left(f) == 0; }, std::chrono::seconds(60));
  const auto overlaps = watch.overlaps();
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started);
  std::cout << "soak: tasks " << tasks << ", landed " << landed << ", blocked " << blocked << ", attempts " << attempts
            << ", kills " << chaos.kills << ", partitions " << chaos.partitions << ", duplicates " << duplicates
            << ", lost " << lost << ", overlaps " << overlaps.size() << ", history errors " << history_errors
            << ", stale workspaces " << stale_workspaces << ", containers left " << (containers_gone ? 0 : 1)
            << ", seconds " << seconds.count() << ", seed " << seed << std::endl;
  std::cout << "soak: attempts that failed, by kind:";
  for (const auto& [kind, n] : ended_by) std::cout << " " << kind << " " << n;
  std::cout << std::endl;
  for (const auto& [why, n] : ended_why) std::cout << "soak:   " << n << " x " << why << std::endl;
  if (std::getenv("SOAK_LOST_LINES") != nullptr) {
    std::istringstream log(f.logs());
    for (std::string line; std::getline(log, line);) {
      if (line.find(" lost (") != std::string::npos || line.find("SOAK") != std::string::npos ||
          line.find("requeue") != std::string::npos) {
        std::cout << "soak-log: " << line.substr(0, 300) << std::endl;
      }
    }
  }
  INFO(problems);
  CHECK(duplicates == 0);
  CHECK(lost == 0);
  CHECK(history_errors == 0);
  CHECK(overlaps.empty());
  CHECK(stale_workspaces == 0);
  CHECK(containers_gone);
  CHECK(landed + blocked == tasks);
}
