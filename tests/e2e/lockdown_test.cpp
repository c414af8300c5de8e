// The agent is hostile: each test here carries out an attack from inside a real task container
// (the scripted agent runs the task's ```sh blocks) and checks the worker holds: a fork bomb, a
// disk filler, a look at its own privileges, a RunSpec outside the worker's allow-list, a
// reviewer's evil verdict file, a flood of output, and a secret echoed into the failure reason.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <thread>

#include "coordinator/github_source.h"
#include "fake_github/fake_github.h"
#include "single_box.h"
#include "worker-agent/lockdown.h"

using namespace polyphony;
using namespace polyphony::testing;
namespace fs = std::filesystem;

namespace {

const std::map<std::string, std::string> kRepo{
    {"README.md", "# lockdown\n"},
    {".polyphony.yaml", "verify: test -f done.txt\n"},
};

std::string sh_block(const std::string& script) {
  return "```sh\n" + script + "```\n";
}

std::string reason_of(const SingleBox& box, const std::string& id) {
  return box.task(id)["reason"].get<std::string>();
}

int64_t tree_bytes(const fs::path& dir) {
  return fs::exists(dir) ? disk_usage(dir) : 0;
}

}  // namespace

TEST_CASE(
    "a fork bomb in the task hits the container's process limit: the host stays responsive and the task fails saying "
    "so") {
  SingleBox box(kRepo, "container: {pids_limit: 64, cpus: 0.5}\n");
  const std::string id =
      box.spawn("Fork bomb", sh_block("bomb() { bomb | bomb & }; bomb\nsleep 30\necho done > done.txt\n"));
  box.serve();
  // The host keeps answering while the bomb goes off: every status call returns promptly.
  using Clock = std::chrono::steady_clock;
  auto slowest = Clock::duration::zero();
  std::map<std::string, std::string> states;
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  while (Clock::now() < deadline) {
    const auto asked = Clock::now();
    auto t = box.task(id);
    slowest = std::max(slowest, Clock::now() - asked);
    const std::string state = t.empty() ? "" : t["state"].get<std::string>();
    if (state == "FAILED" || state == "BLOCKED" || state == "LANDED") {
      states[id] = state;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  INFO(box.serve_log());
  REQUIRE(states[id] == "FAILED");
  CHECK(box.task(id)["failure_kind"] == "agent");
  CHECK_THAT(reason_of(box, id), Catch::Contains("limit of 64 processes (container.pids_limit"));
  CHECK(std::chrono::duration_cast<std::chrono::seconds>(slowest).count() < 10);
  CHECK(box.no_containers_left(id, std::chrono::seconds(30)));
}

TEST_CASE("a task that writes 10 GiB fails at the workspace limit without filling the disk") {
  SingleBox box(kRepo, "container: {workspace_limit: 64m}\n");
  // One huge file (stopped by the file size limit at once), and many files of 8 MiB each
  // (stopped by the worker's watchdog).
  const std::string one =
      box.spawn("One huge file", sh_block("dd if=/dev/zero of=big bs=1M count=10240\necho done > done.txt\n"));
  const std::string many = box.spawn(
      "Many files",
      sh_block("i=0\nwhile [ $i -lt 1280 ]; do dd if=/dev/zero of=f$i bs=1M count=8 2>/dev/null; i=$((i+1)); done\n"
               "echo done > done.txt\n"));
  box.serve();
  auto states = box.wait_finished({one, many});
  INFO(box.serve_log());
  for (const auto& id : {one, many}) {
    INFO(id);
    REQUIRE(states[id] == "FAILED");
    CHECK(box.task(id)["failure_kind"] == "agent");
    CHECK_THAT(reason_of(box, id),
               Catch::Contains("the workspace grew past its limit of 64 MiB (container.workspace_limit)"));
    // Whatever the workspace still holds is near the limit, nowhere near 10 GiB.
    CHECK(tree_bytes(box.home() / "workspaces/tasks" / id) < (1LL << 30));
  }
  CHECK_THROWS(git(box.origin(), {"show", "main:done.txt"}));
}

TEST_CASE("the agent's container has no capabilities, no-new-privileges, a read-only root and writable /tmp and home") {
  SingleBox box(kRepo);
  const std::string id = box.spawn(
      "Look at privileges", sh_block("grep -E '^(CapEff|CapPrm|CapBnd|NoNewPrivs):' /proc/self/status > caps.txt\n"
                                     "if touch /etc/owned 2>/dev/null; then echo root-writable >> caps.txt; fi\n"
                                     "touch /tmp/scratch \"$HOME/scratch\"\n"
                                     "git config --global user.name 'Hostile Agent'\n"
                                     "echo done > done.txt\n"));
  box.serve();
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  INFO(box.cli({"logs", id}).out);
  REQUIRE(states[id] == "LANDED");
  const std::string caps = git(box.origin(), {"show", "main:caps.txt"});
  INFO(caps);
  CHECK_THAT(caps, Catch::Contains("CapEff:\t0000000000000000") && Catch::Contains("CapPrm:\t0000000000000000") &&
                       Catch::Contains("CapBnd:\t0000000000000000") && Catch::Contains("NoNewPrivs:\t1"));
  CHECK_THAT(caps, !Catch::Contains("root-writable"));
}

TEST_CASE("a RunSpec whose network mode is outside the worker's allow-list is refused naming the field") {
  SingleBox box(kRepo, "container: {network: host, allowed_networks: [none]}\n");
  const std::string id = box.spawn("Host network", sh_block("echo done > done.txt\n"));
  box.serve();
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  REQUIRE(states[id] == "FAILED");
  CHECK(box.task(id)["failure_kind"] == "config");
  CHECK_THAT(reason_of(box, id),
             Catch::Contains("refuses this RunSpec: network_mode: host is not a network this worker allows"));
  CHECK(box.containers_of(id) == 0);
}

TEST_CASE("an identity mounting a host path outside the worker's mount roots is refused naming the field") {
  SingleBox box(kRepo, "container: {allowed_mount_roots: [/nonexistent/identities]}\n");
  write_file(box.home() / "identities.yaml",
             "identities:\n  greedy:\n    mounts:\n      - host: /etc\n        container: /home/agent/etc\n");
  write_file(box.home() / "agents.yaml",
             "agents:\n  greedy:\n    identity: greedy\n    command: [polyphony-scripted-agent, \"{task_file}\"]\n");
  write_file(box.home() / "routing.yaml", "default:\n  agent: greedy\n");
  const std::string id = box.spawn_routed("Read the host", sh_block("cat /home/agent/etc/shadow > done.txt\n"));
  box.serve();
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  REQUIRE(states[id] == "FAILED");
  CHECK(box.task(id)["failure_kind"] == "config");
  CHECK_THAT(reason_of(box, id),
             Catch::Contains("agent.mounts[0].host_path: /etc is outside this worker's mount roots"));
}

TEST_CASE("a reviewer's verdict that is a symlink, a FIFO or huge is no verdict, and the task fails saying why") {
  SingleBox box(kRepo);
  // The reviewer picks its attack from the task's title (the first line of its task file).
  write_file(box.home() / "agents.yaml",
             "agents:\n  scripted:\n    command: [polyphony-scripted-agent, \"{task_file}\"]\n    tier: cheap\n"
             "  reviewer:\n    tier: strong\n    command:\n      - sh\n      - -c\n      - |\n"
             "        f=\"$POLYPHONY_VERDICT_FILE\"\n"
             "        case \"$(head -n 1 /polyphony/task.md)\" in\n"
             "          *shadow*) ln -s /etc/shadow \"$f\" ;;\n"
             "          *zero*) ln -s /dev/zero \"$f\" ;;\n"
             "          *fifo*) mkfifo \"$f\" ;;\n"
             "          *huge*) { echo approve; yes x | head -c 200000; } > \"$f\" ;;\n"
             "        esac\n");
  write_file(
      box.home() / "routing.yaml",
      "rules:\n  - match: {task_type: reviewed}\n    agent: scripted\n    plan: review\ndefault:\n  agent: scripted\n");
  const std::map<std::string, std::string> attacks{
      {"shadow", "is refused: it is a symbolic link"},
      {"zero", "is refused: it is a symbolic link"},
      {"fifo", "is refused: it is a FIFO"},
      {"huge", "is refused: it is 200008 bytes, more than the 64 KiB allowed"}};
  std::map<std::string, std::string> ids;
  for (const auto& [attack, why] : attacks) {
    ids[attack] = box.spawn_routed("Review " + attack, sh_block("echo done > done.txt\n"), {"--type", "reviewed"});
  }
  box.serve();
  std::vector<std::string> all;
  for (const auto& [attack, id] : ids) all.push_back(id);
  auto states = box.wait_finished(all);
  INFO(box.serve_log());
  for (const auto& [attack, why] : attacks) {
    const std::string& id = ids[attack];
    INFO(attack);
    REQUIRE(states[id] == "FAILED");
    CHECK(box.task(id)["failure_kind"] == "agent");
    CHECK_THAT(reason_of(box, id),
               Catch::Contains("reviewer reviewer left no verdict: /polyphony-review/verdict.md " + why));
  }
  CHECK_THROWS(git(box.origin(), {"show", "main:done.txt"}));
}

TEST_CASE(
    "output past the attempt's limit is dropped with a note, the task ends normally, and the stored log stays "
    "bounded") {
  SingleBox box(kRepo, "container: {output_limit: 1m}\n");
  const std::string id =
      box.spawn("Flood", sh_block("yes 'flooding the log' | head -c 60000000\necho done > done.txt\n"));
  box.serve();
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  REQUIRE(states[id] == "LANDED");
  const std::string note = "output past 1 MiB for this attempt is dropped (container.output_limit)";
  CHECK_THAT(box.cli({"logs", id}).out, Catch::Contains(note));
  CHECK_THAT(box.cli({"show", id, "--json"}).out, Catch::Contains(note));
  const int64_t stored = tree_bytes(box.home() / "logs" / id);
  CHECK(stored < (2LL << 20));
  CHECK(stored > (1LL << 20) - 4096);
}

TEST_CASE("a secret the agent echoes is in no stored reason, history, log, show output or GitHub comment") {
  const std::string secret = "lit-secret-5b21e7c0";
  FakeGithub github;
  github.add_issue(11, "Leak it", "Please.\n", {"polyphony", "type:leaky"});
  SingleBox box(kRepo, "max_attempts: 1\n");
  write_file(box.home() / "config.yaml", read_file(box.home() / "config.yaml") + "github:\n" + github.config_yaml() +
                                             "  remote: " + box.origin().string() + "\n  poll_interval_ms: 200\n");
  write_file(box.home() / "identities.yaml", "identities:\n  vault:\n    env:\n      SECRET_VAR: " + secret + "\n");
  write_file(
      box.home() / "agents.yaml",
      "agents:\n  leaky:\n    identity: vault\n    command: [sh, -c, 'echo \"$SECRET_VAR\"; "
      "echo \"https://bot:$SECRET_VAR@example.com/x.git\"; "
      // The secret again, in two chunks a second apart.
      "printf %s \"${SECRET_VAR%??????????}\"; sleep 1; printf \"%s\\n\" \"${SECRET_VAR#?????????}\"; exit 1']\n");
  write_file(box.home() / "routing.yaml", "default:\n  agent: leaky\n");
  box.serve();
  const std::string id = github_task_id("acme/widgets", 11);
  REQUIRE(eventually([&] { return !box.task(id).empty(); }, std::chrono::seconds(30)));
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  REQUIRE((states[id] == "FAILED" || states[id] == "BLOCKED"));
  REQUIRE(eventually([&] { return github.comments(11).size() >= 2; }, std::chrono::seconds(20)));
  CHECK_THAT(reason_of(box, id), Catch::Contains("***"));
  for (const auto& c : github.comments(11)) CHECK(c["body"].get<std::string>().find(secret) == std::string::npos);
  for (const auto& call : github.calls()) CHECK(call.dump().find(secret) == std::string::npos);
  CHECK(box.cli({"show", id, "--json"}).out.find(secret) == std::string::npos);
  CHECK(box.cli({"show", id}).out.find(secret) == std::string::npos);
  CHECK(box.cli({"status", "--json"}).out.find(secret) == std::string::npos);
  CHECK(box.cli({"status"}).out.find(secret) == std::string::npos);
  const std::string logs = box.cli({"logs", id}).out;
  CHECK_THAT(logs, Catch::Contains("https://bot:***@example.com/x.git\n***"));
  CHECK(logs.find("lit-secre") == std::string::npos);  // not even the first half of the split one
  CHECK(logs.find(secret) == std::string::npos);
  CHECK(box.serve_log().find(secret) == std::string::npos);
  box.stop_serving();
  for (const char* db : {"state.db", "state.db-wal", "queue.db", "queue.db-wal"}) {
    if (fs::exists(box.home() / db)) CHECK(read_file(box.home() / db).find(secret) == std::string::npos);
  }
}

TEST_CASE("POLYPHONY_HOME and what Polyphony creates in it are private after a task, even with umask 022") {
  const mode_t old = ::umask(022);
  SingleBox box(kRepo);
  const std::string id = box.spawn("Private", sh_block("echo done > done.txt\n"));
  box.serve();
  auto states = box.wait_finished({id});
  ::umask(old);
  INFO(box.serve_log());
  REQUIRE(states[id] == "LANDED");
  auto mode = [](const fs::path& p) {
    struct stat st {};
    REQUIRE(::lstat(p.c_str(), &st) == 0);
    return static_cast<int>(st.st_mode & 0777);
  };
  const fs::path home = box.home();
  CHECK(mode(home) == 0700);
  for (const char* f : {"config.yaml", "identities.yaml", "agents.yaml", "routing.yaml", "state.db", "queue.db"}) {
    INFO(f);
    CHECK(mode(home / f) == 0600);
  }
  for (const char* f : {"state.db-wal", "state.db-shm", "queue.db-wal", "queue.db-shm", "coordinator.sock"}) {
    INFO(f);
    if (fs::exists(home / f)) CHECK(mode(home / f) == 0600);
  }
  CHECK(mode(home / "logs") == 0700);
  CHECK(mode(home / "logs" / id) == 0700);
  for (const auto& e : fs::directory_iterator(home / "logs" / id)) {
    INFO(e.path());
    CHECK(mode(e.path()) == 0600);
  }
  CHECK(mode(home / "workspaces") == 0700);
}
