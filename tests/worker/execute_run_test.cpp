// execute_run through fakes of the engine and the workspaces: every way an attempt can go
// (a warm container or not, an unavailable agent, review rounds, land rounds, cancel at each
// phase, verify and infrastructure failures), without Docker or git.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <atomic>
#include <mutex>

#include "fake_clock.h"
#include "fakes/fake_docker_client.h"
#include "fakes/fake_workspaces.h"
#include "test_support.h"
#include "worker-agent/container_pool.h"
#include "worker-agent/task_run.h"

namespace fs = std::filesystem;
using namespace polyphony;
using namespace polyphony::testing;
using Request = runner::RunRequest;

namespace {

// What a process the attempt runs in its task container is: the agent, the step that commits
// and bundles its branch, or verify.
std::string role_of(const Request& r) {
  if (r.argv.size() > 3 && r.argv[0] == "sh" && r.argv[3] == "polyphony-collect") return "collect";
  if (r.argv.size() > 3 && r.argv[0] == "sh" && r.argv[3] == "polyphony-verify") return "verify";
  return "agent";
}

// A process that prints `out` and exits 0.
ProcessReply prints(std::string out) {
  return ProcessReply{std::move(out), "", 0, false};
}

struct RunFixture {
  TempDir tmp{"pf-run"};
  FakeDockerClient docker;
  FakeWorkspaces workspaces{tmp / "w"};
  std::atomic<bool> cancelled{false};
  protocol::RunSpec spec;
  RunContext ctx{"w1", docker, workspaces, 1000, 1000, {}, nullptr, {}, nullptr, "", "", {}, {}};
  // The scripted processes; each sees its request. Defaults: the agent works, its branch is
  // bundled, verify passes.
  std::function<ProcessReply(const Request&)> agent = [](const Request&) { return prints("worked\n"); };
  std::function<ProcessReply(const Request&)> collect = [](const Request&) { return prints("BUNDLE"); };
  std::function<ProcessReply(const Request&)> verify = [](const Request&) { return prints("ok\n"); };
  // Called with every task update the attempt sends.
  std::function<void(const protocol::TaskUpdate&)> on_update;

  mutable std::mutex mutex;
  std::vector<protocol::TaskUpdate> updates;
  std::string log;

  RunFixture() {
    ctx.container_uid = static_cast<int>(::getuid());
    ctx.container_gid = static_cast<int>(::getgid());
    ctx.cancelled = &cancelled;
    ctx.runner = "/fake/polyphony-runner";
    ctx.limits.pids_limit = 0;
    ctx.allowed = {{"polyphony-worker:latest"}, {"none"}, {}};
    ctx.emit = [this](const protocol::Message& m) {
      std::lock_guard lock(mutex);
      if (const auto* u = std::get_if<protocol::TaskUpdate>(&m)) {
        updates.push_back(*u);
        if (on_update) on_update(*u);
      }
      if (const auto* c = std::get_if<protocol::LogChunk>(&m)) log += c->data;
    };
    spec.task_id = "t1";
    spec.epoch = 5;
    spec.title = "Fix the pager";
    spec.body = "It skips a line.";
    spec.repo_url = "/repos/origin.git";
    spec.base_branch = "main";
    spec.branch = "polyphony/t1-fix-the-pager";
    spec.agent.name = "scripted";
    spec.agent.command = {"scripted-agent", "/polyphony/task.md"};
    spec.image = "polyphony-worker:latest";
    spec.network_mode = "none";
    spec.verify_command = "make test";
    spec.run_timeout_s = 60;
    spec.verify_timeout_s = 60;
    docker.on_run = [this](const Request& r) {
      const std::string role = role_of(r);
      return role == "collect" ? collect(r) : role == "verify" ? verify(r) : agent(r);
    };
  }

  protocol::TaskResult run() { return execute_run(spec, ctx); }

  // The review plan with a reviewer that answers each review with the next of `verdicts`
  // (the last one again when they run out).
  void review_plan(std::vector<std::string> verdicts, int rounds) {
    spec.plan = "review";
    spec.reviewer.name = "critic";
    spec.reviewer.command = {"review-agent"};
    spec.review_rounds = rounds;
    spec.rework_command = {"scripted-agent", "--rework"};
    auto next = std::make_shared<size_t>(0);
    docker.on_container = [verdicts, next](const ContainerSpec& cs) {
      for (const auto& m : cs.mounts) {
        if (m.container_path == fs::path(protocol::kVerdictFile).parent_path().string()) {
          write_file(fs::path(m.host_path) / "verdict.md", verdicts[std::min(*next, verdicts.size() - 1)]);
        }
      }
      ++*next;
      return ContainerReply{"reviewed\n", 0, false};
    };
  }

  std::vector<std::string> states() const {
    std::lock_guard lock(mutex);
    std::vector<std::string> out;
    for (const auto& u : updates) out.push_back(u.state);
    return out;
  }

  std::string logged() const {
    std::lock_guard lock(mutex);
    return log;
  }

  int runs(const std::string& role) const {
    int n = 0;
    for (const auto& r : docker.runs()) n += role_of(r) == role ? 1 : 0;
    return n;
  }

  std::vector<Request> runs_of(const std::string& role) const {
    std::vector<Request> out;
    for (const auto& r : docker.runs()) {
      if (role_of(r) == role) out.push_back(r);
    }
    return out;
  }

  WarmKey key() const {
    return warm_key(spec, ctx.container_uid, ctx.container_gid, ctx.hosts_file, ctx.runner, ctx.limits);
  }
};

void require_landed(const protocol::TaskResult& r) {
  INFO(r.failure_kind << ": " << r.reason);
  REQUIRE(r.outcome == "landed");
}

void require_failed(const protocol::TaskResult& r, const std::string& kind, const std::string& reason_part) {
  INFO(r.outcome << " " << r.failure_kind << ": " << r.reason);
  REQUIRE(r.outcome == "failed");
  CHECK(r.failure_kind == kind);
  CHECK(r.reason.find(reason_part) != std::string::npos);
}

ProcessReply exits(int status, std::string err = {}) {
  return ProcessReply{"", std::move(err), status, false};
}

}  // namespace

TEST_CASE("execute_run without a warm container creates the task container, runs agent and verify, and lands") {
  RunFixture f;
  auto r = f.run();
  require_landed(r);
  CHECK(r.commit == "pinned1");
  CHECK(r.merged_commit == "pinned1");
  CHECK(r.tree == "tree-of-pinned1");
  CHECK(f.states() == std::vector<std::string>{"PROVISIONED", "RUNNING", "VERIFYING"});
  CHECK(f.workspaces.count("provision") == 1);
  CHECK(f.workspaces.count("provision_from") == 0);
  auto created = f.docker.created();
  REQUIRE(created.size() == 1);
  CHECK(created[0].name == task_container_name("t1", 5));
  CHECK(created[0].labels.at("polyphony.task") == "t1");
  CHECK(created[0].labels.at("polyphony.role") == "task");
  // The agent, then the branch taken in as a bundle, then verify of the pinned commit.
  auto runs = f.docker.runs();
  REQUIRE(runs.size() == 3);
  CHECK(runs[0].argv == f.spec.agent.command);
  CHECK(role_of(runs[1]) == "collect");
  CHECK(role_of(runs[2]) == "verify");
  CHECK(runs[2].argv.back() == "make test");
  CHECK(runs[2].argv[5] == "pinned1");
  CHECK(f.workspaces.imported() == "BUNDLE");
  CHECK(read_file(f.workspaces.root() / "tasks/t1/meta/task.md") == "Fix the pager\n\nIt skips a line.\n");
  // Without a pool the attempt removes its container itself.
  CHECK(f.docker.live().empty());
  CHECK(f.workspaces.count("land") == 1);
}

TEST_CASE("execute_run takes a warm container and its spare when one fits") {
  RunFixture f;
  ContainerPool pool(f.docker, f.workspaces, {"w1", 1, 1});
  f.ctx.pool = &pool;
  CHECK_FALSE(pool.take(f.key()));
  REQUIRE(pool.settle(std::chrono::seconds(30)));
  REQUIRE(pool.ready(f.key()) == 1);
  const std::string warm = f.docker.live().at(0);

  auto r = f.run();
  require_landed(r);
  CHECK(f.workspaces.count("provision_from") == 1);
  CHECK(f.workspaces.count("provision") == 0);
  auto renames = f.docker.calls_of("rename_container");
  REQUIRE(renames.size() == 1);
  CHECK(renames[0].target == warm);
  CHECK(renames[0].detail == task_container_name("t1", 5));
  CHECK(f.logged().find("took warm container " + warm.substr(0, 12)) != std::string::npos);
  CHECK(f.runs("agent") == 1);
  // The taken container goes back to the pool to be removed, and a replacement is made.
  REQUIRE(pool.settle(std::chrono::seconds(30)));
  auto live = f.docker.live();
  CHECK(std::find(live.begin(), live.end(), warm) == live.end());
  CHECK(pool.ready(f.key()) == 1);
}

TEST_CASE("execute_run provisions afresh when no warm container fits its key") {
  RunFixture f;
  ContainerPool pool(f.docker, f.workspaces, {"w1", 1, 1});
  f.ctx.pool = &pool;
  WarmKey other = f.key();
  other.repo_url = "/repos/other.git";
  CHECK_FALSE(pool.take(other));
  REQUIRE(pool.settle(std::chrono::seconds(30)));
  REQUIRE(pool.ready(other) == 1);

  require_landed(f.run());
  CHECK(f.workspaces.count("provision") == 1);
  CHECK(f.workspaces.count("provision_from") == 0);
  CHECK(f.docker.calls_of("rename_container").empty());
  // The attempt created a container of its own, named for the task.
  auto created = f.docker.created();
  CHECK(std::count_if(created.begin(), created.end(),
                      [](const ContainerSpec& cs) { return cs.name == task_container_name("t1", 5); }) == 1);
}

TEST_CASE("execute_run clones afresh when provisioning from the spare fails, and gives up the warm container") {
  RunFixture f;
  ContainerPool pool(f.docker, f.workspaces, {"w1", 1, 1});
  f.ctx.pool = &pool;
  (void)pool.take(f.key());
  REQUIRE(pool.settle(std::chrono::seconds(30)));
  REQUIRE(pool.ready(f.key()) == 1);
  const std::string warm = f.docker.live().at(0);
  f.workspaces.fail_next("provision_from", make_error("git", "cannot fetch the mirror"));

  require_landed(f.run());
  CHECK(f.workspaces.count("provision_from") == 1);
  CHECK(f.workspaces.count("provision") == 1);
  CHECK(f.logged().find("took warm container") == std::string::npos);
  REQUIRE(pool.settle(std::chrono::seconds(30)));
  auto live = f.docker.live();
  CHECK(std::find(live.begin(), live.end(), warm) == live.end());
}

TEST_CASE("execute_run creates a container when the warm one cannot be renamed for the task") {
  RunFixture f;
  ContainerPool pool(f.docker, f.workspaces, {"w1", 1, 1});
  f.ctx.pool = &pool;
  (void)pool.take(f.key());
  REQUIRE(pool.settle(std::chrono::seconds(30)));
  f.docker.fail_next("rename_container", make_error("docker", "Conflict. The container name is already in use"));

  require_landed(f.run());
  CHECK(f.workspaces.count("provision_from") == 1);
  auto created = f.docker.created();
  CHECK(std::count_if(created.begin(), created.end(),
                      [](const ContainerSpec& cs) { return cs.name == task_container_name("t1", 5); }) == 1);
}

TEST_CASE("execute_run tells an agent that cannot run (fallback) from one that failed the task") {
  struct Case {
    ProcessReply reply;
    std::string kind;
    std::string reason;
  };
  const Case c = GENERATE(values<Case>({
      {exits(127, "sh: 1: scripted-agent: not found\n"), "agent_unavailable", "exited with status 127"},
      {exits(1, "Error: 429 Too Many Requests\n"), "agent_unavailable", "429 Too Many Requests"},
      {exits(139), "agent_unavailable", "exited with status 139"},
      {exits(1, "test_pager FAILED\n"), "agent", "exited with status 1: test_pager FAILED"},
      {exits(137), "infra", "killed: out of memory, or stopped from outside"},
  }));
  RunFixture f;
  f.agent = [&](const Request&) { return c.reply; };
  auto r = f.run();
  require_failed(r, c.kind, c.reason);
  CHECK(f.runs("verify") == 0);
  CHECK(f.workspaces.count("land") == 0);
  REQUIRE(r.usage.size() == 1);
  CHECK(r.usage[0].role == "implementer");
  CHECK(r.usage[0].agent == "scripted");
  CHECK(f.docker.live().empty());
}

TEST_CASE("execute_run reports an agent whose CLI is missing from the image as unavailable") {
  RunFixture f;
  f.docker.fail_next("start_container",
                     make_error("docker", "exec: \"/.polyphony-runner\": executable file not found in $PATH"));
  require_failed(f.run(), "agent_unavailable", "its CLI is missing from image polyphony-worker:latest");
}

TEST_CASE("execute_run fails the agent when it left no changes or left the branch") {
  RunFixture f;
  const int code = GENERATE(5, 3);
  f.collect = [&](const Request&) { return exits(code); };
  require_failed(f.run(), "agent", code == 5 ? "made no changes" : "left the workspace off branch");
  CHECK(f.runs("verify") == 0);
}

TEST_CASE("execute_run fails the agent when the bundle of its branch is refused") {
  RunFixture f;
  f.workspaces.fail_next("pin_import", make_error("bad_bundle", "not a v2 bundle"));
  require_failed(f.run(), "agent", "taking in the agent's branch");
}

TEST_CASE("execute_run fails verify with its first failing line and the tree it verified") {
  RunFixture f;
  f.verify = [](const Request&) {
    return ProcessReply{"test_a ok\nFAILED tests/test_pager.py::test_skip - assert 2 == 1\ntest_c ok\n", "", 1, false};
  };
  auto r = f.run();
  require_failed(r, "verify", "verify `make test` exited with status 1: ");
  CHECK(r.reason.find("FAILED tests/test_pager.py::test_skip") != std::string::npos);
  CHECK(r.tree == "tree-of-pinned1");
  CHECK(f.workspaces.count("land") == 0);
}

TEST_CASE("execute_run takes the verify command from the repo's base, and fails config without one") {
  RunFixture f;
  SECTION("the repo names one") {
    f.workspaces.set_repo_file("verify: ./check.sh --all\n");
    require_landed(f.run());
    REQUIRE(f.runs("verify") == 1);
    CHECK(f.runs_of("verify")[0].argv.back() == "./check.sh --all");
  }
  SECTION("neither the repo nor the config names one") {
    f.spec.verify_command.clear();
    require_failed(f.run(), "config", "no verify command");
    CHECK(f.runs("agent") == 0);
  }
  SECTION("the repo's file is malformed") {
    f.workspaces.set_repo_file("verify: [unclosed\n");
    require_failed(f.run(), "config", "cannot read the repo's verify command");
  }
}

TEST_CASE("execute_run lands once the reviewer approves") {
  RunFixture f;
  f.review_plan({"approve\nLooks right.\n"}, 1);
  auto r = f.run();
  require_landed(r);
  CHECK(f.runs("agent") == 1);
  auto reviewers = f.docker.created();
  REQUIRE(reviewers.size() == 2);
  CHECK(reviewers[1].labels.at("polyphony.role") == "reviewer");
  CHECK(reviewers[1].cmd == std::vector<std::string>{"review-agent"});
  REQUIRE(r.usage.size() == 2);
  CHECK(r.usage[1].role == "reviewer");
  CHECK(f.workspaces.count("make_review_clone") == 1);
  bool said = false;
  for (const auto& u : f.updates) {
    said = said || u.detail.find("(round 1): approved: Looks right.") != std::string::npos;
  }
  CHECK(said);
}

TEST_CASE("execute_run sends the work back while the reviewer requests changes, then lands on approval") {
  RunFixture f;
  f.review_plan({"changes requested\nAdd a test.\n", "approve\n"}, 2);
  require_landed(f.run());
  auto agents = f.runs_of("agent");
  REQUIRE(agents.size() == 2);
  CHECK(agents[0].argv == f.spec.agent.command);
  CHECK(agents[1].argv == f.spec.rework_command);
  CHECK(f.runs("verify") == 2);
  CHECK(read_file(f.workspaces.root() / "tasks/t1/meta/review.md") ==
        "Review by critic: changes requested\n\nAdd a test.\n");
}

TEST_CASE("execute_run fails review when the reviewer still requests changes after its last round") {
  RunFixture f;
  f.review_plan({"changes requested\nStill wrong.\n"}, 1);
  require_failed(f.run(), "review", "still requests changes after 2 reviews: Still wrong.");
  CHECK(f.runs("agent") == 2);
  CHECK(f.workspaces.count("land") == 0);
}

TEST_CASE("execute_run fails the reviewer that leaves no verdict") {
  RunFixture f;
  f.review_plan({"I think it is fine\n"}, 1);
  require_failed(f.run(), "agent", "left no verdict");
}

TEST_CASE("execute_run rebases onto a base that moved while the agent worked, before verify") {
  RunFixture f;
  f.workspaces.base_moves({"base1111"});
  require_landed(f.run());
  CHECK(f.runs("verify") == 1);
  CHECK(f.runs_of("verify")[0].argv[5] == "rebased-onto-base1111");
  CHECK(f.logged().find("moved to base1111 while the agent worked") != std::string::npos);
}

TEST_CASE("execute_run verifies again when the base moved at landing, and lands the rebased commit") {
  RunFixture f;
  f.workspaces.base_moves({std::nullopt, "base2222"});
  auto r = f.run();
  require_landed(r);
  CHECK(r.commit == "rebased-onto-base2222");
  auto verifies = f.runs_of("verify");
  REQUIRE(verifies.size() == 2);
  CHECK(verifies[0].argv[5] == "pinned1");
  CHECK(verifies[1].argv[5] == "rebased-onto-base2222");
  CHECK(f.logged().find("verifying again before landing") != std::string::npos);
}

TEST_CASE("execute_run does not land a rebased tree that fails verify") {
  RunFixture f;
  f.workspaces.base_moves({std::nullopt, "base3333"});
  f.verify = [](const Request& r) { return r.argv[5] == "pinned1" ? prints("ok\n") : exits(2, "FAILED x\n"); };
  auto r = f.run();
  require_failed(r, "verify", "exited with status 2");
  CHECK(r.tree == "tree-of-rebased-onto-base3333");
  CHECK(f.workspaces.count("land") == 0);
}

TEST_CASE("execute_run lands after losing a race to another landing, and gives up as a conflict after five") {
  RunFixture f;
  const int races = GENERATE(1, 5);
  for (int i = 0; i < races; ++i) f.workspaces.fail_next("land", make_error("base_moved", "main moved"));
  auto r = f.run();
  if (races < 5) {
    require_landed(r);
    CHECK(f.workspaces.count("land") == races + 1);
  } else {
    require_failed(r, "conflict", "landing: ");
    CHECK(f.workspaces.count("land") == 5);
  }
}

TEST_CASE("execute_run reports a refused push once, a rebase conflict and a git failure as what they are") {
  struct Case {
    std::string method;
    std::string code;
    std::string kind;
    std::string reason;
  };
  const Case c = GENERATE(values<Case>({
      {"land", "push_refused", "landing", "landing: "},
      {"land", "git", "infra", "landing: "},
      {"rebase_onto_origin", "conflict", "conflict", "rebasing onto main"},
  }));
  RunFixture f;
  f.workspaces.fail_next(c.method, make_error(c.code, "the origin says no"));
  require_failed(f.run(), c.kind, c.reason);
}

TEST_CASE("execute_run in branch mode pushes the task branch only") {
  RunFixture f;
  f.spec.land_mode = "branch";
  SECTION("pushed") {
    auto r = f.run();
    require_landed(r);
    CHECK(r.commit == "pinned1");
    CHECK(r.merged_commit.empty());
    CHECK(f.workspaces.count("land") == 0);
    CHECK(f.workspaces.count("push_branch") == 1);
  }
  SECTION("rejected") {
    f.workspaces.fail_next("push_branch", make_error("push_rejected", "stale info"));
    require_failed(f.run(), "conflict", "pushing polyphony/t1-fix-the-pager");
  }
}

TEST_CASE("execute_run lands only when the coordinator grants it") {
  RunFixture f;
  const std::string code = GENERATE(as<std::string>{}, "", "refused", "cancelled");
  int asked = 0;
  f.ctx.request_land = [&]() -> Status {
    ++asked;
    if (code.empty()) return ok_status();
    return make_error(code, "the lease is stale");
  };
  auto r = f.run();
  CHECK(asked == 1);
  if (code.empty()) {
    require_landed(r);
  } else {
    require_failed(r, code == "cancelled" ? "cancelled" : "infra", "did not let this attempt land");
    CHECK(f.workspaces.count("land") == 0);
  }
}

TEST_CASE("execute_run asks for its landing again when the grant grew old before the push") {
  // The coordinator holds a grant for protocol::kLandGrantLifetimeMs (across its restarts too);
  // past that it may have given the task to another attempt, so a push must not rest on it.
  RunFixture f;
  FakeClock clock;
  f.ctx.clock = &clock;
  int asked = 0;
  f.ctx.request_land = [&]() -> Status {
    ++asked;
    return ok_status();
  };
  const bool always_slow = GENERATE(false, true);
  // A rebase after the grant that outlasts it: the first one only, or every one.
  f.workspaces.on_call = [&](const std::string& method) {
    if (method == "rebase_onto_origin" && (always_slow || asked == 1)) clock.advance(protocol::kLandGrantLifetimeMs);
  };
  auto r = f.run();
  if (!always_slow) {
    require_landed(r);
    CHECK(asked == 2);
    CHECK(f.workspaces.count("land") == 1);
  } else {
    require_failed(r, "infra", "the grant was too old to push on");
    CHECK(asked == 5);
    CHECK(f.workspaces.count("land") == 0);
  }
}

TEST_CASE("execute_run stops at each phase when cancelled there") {
  struct Case {
    std::string phase;
    std::string reason;
  };
  const Case c = GENERATE(values<Case>({
      {"provisioned", "cancelled before the agent started"},
      {"agent", "cancelled while the agent ran"},
      {"collect", "cancelled while the agent's work was committed"},
      {"verify", "cancelled during verify"},
      {"review", "cancelled during review"},
      {"approved", "cancelled before landing"},
  }));
  RunFixture f;
  f.review_plan({"approve\n"}, 1);
  // The phase's process sets the flag and runs until the attempt stops it.
  auto hang = [&](const Request&) {
    f.cancelled = true;
    return ProcessReply{"working\n", "", 0, true};
  };
  if (c.phase == "agent") f.agent = hang;
  if (c.phase == "collect") f.collect = hang;
  if (c.phase == "verify") f.verify = hang;
  if (c.phase == "review") {
    f.docker.on_container = [&](const ContainerSpec&) {
      f.cancelled = true;
      return ContainerReply{"reading\n", 0, true};
    };
  }
  f.on_update = [&](const protocol::TaskUpdate& u) {
    if (c.phase == "provisioned" && u.state == "PROVISIONED") f.cancelled = true;
    if (c.phase == "approved" && u.detail.find("approved") != std::string::npos) f.cancelled = true;
  };
  require_failed(f.run(), "cancelled", c.reason);
  CHECK(f.workspaces.count("land") == 0);
  CHECK(f.docker.live().empty());
}

TEST_CASE("execute_run reports the engine's and the workspaces' failures by whose they are") {
  struct Case {
    std::string target;  // "docker:<method>" or "workspaces:<method>"
    Error error;
    std::string kind;
    std::string reason;
  };
  const Case c = GENERATE(values<Case>({
      {"docker:create_container", make_error("docker", "engine overloaded"), "infra", "agent container: "},
      {"docker:create_container", make_error("not_found", "No such image: polyphony-worker:latest"), "config",
       "is missing on this worker: run `polyphony image build`"},
      {"docker:create_container", make_error("not_found", "network none not found"), "config",
       "the Docker engine says: network none not found"},
      {"workspaces:provision", make_error("git", "cannot fetch /repos/origin.git"), "infra", "provisioning failed"},
      {"workspaces:provision", make_error("not_found", "no branch main"), "repo", "provisioning failed"},
      {"workspaces:import_branch", make_error("io", "disk full"), "infra", "taking in the agent's branch"},
      {"workspaces:write_pinned_bundle", make_error("git", "cannot write"), "infra", "writing the pinned branch"},
  }));
  RunFixture f;
  const auto colon = c.target.find(':');
  const std::string method = c.target.substr(colon + 1);
  if (c.target.rfind("docker:", 0) == 0) {
    f.docker.fail_next(method, c.error);
  } else {
    f.workspaces.fail_next(method, c.error);
  }
  require_failed(f.run(), c.kind, c.reason);
  CHECK(f.workspaces.count("land") == 0);
  CHECK(f.docker.live().empty());
}

TEST_CASE("execute_run refuses a RunSpec outside the worker's allow-list before making anything") {
  RunFixture f;
  f.spec.image = "someone-elses:latest";
  require_failed(f.run(), "config", "refuses this RunSpec: image: someone-elses:latest");
  CHECK(f.workspaces.calls().empty());
  CHECK(f.docker.calls().empty());
}

TEST_CASE("execute_run of a later attempt clears the earlier one's containers and finds an earlier landing") {
  RunFixture f;
  f.spec.attempt = 2;
  ContainerSpec leftover;
  leftover.image = "polyphony-worker:latest";
  leftover.labels = {{"polyphony.task", "t1"}, {"polyphony.worker", "w1"}};
  auto old = f.docker.create_container(leftover);
  REQUIRE(old.ok());
  SECTION("the earlier attempt landed: nothing runs again") {
    f.workspaces.set_landed_earlier("base4444");
    auto r = f.run();
    require_landed(r);
    CHECK(r.merged_commit == "base4444");
    CHECK(f.docker.runs().empty());
    CHECK(f.states() == std::vector<std::string>{"PROVISIONED", "RUNNING", "VERIFYING"});
  }
  SECTION("it did not: the attempt runs") {
    require_landed(f.run());
    CHECK(f.runs("agent") == 1);
  }
  CHECK(f.docker.live().empty());  // the leftover went first
}

TEST_CASE("execute_run stops an agent that passes its budget of turns") {
  RunFixture f;
  f.spec.agent.output_format = "claude-stream-json";
  f.spec.max_turns = 1;
  // Two model turns, then it would go on until stopped.
  f.agent = [](const Request&) {
    return ProcessReply{R"({"type":"assistant","message":{"id":"m1","content":[],"usage":{"output_tokens":1}}})"
                        "\n"
                        R"({"type":"assistant","message":{"id":"m2","content":[],"usage":{"output_tokens":1}}})"
                        "\n",
                        "", 0, true};
  };
  auto r = f.run();
  require_failed(r, "budget", "agent scripted passed its budget of 1 turns and was stopped");
  REQUIRE(r.usage.size() == 1);
  CHECK(r.usage[0].turns == 2);
  CHECK(f.runs("collect") == 0);
  CHECK(f.docker.live().empty());
}

TEST_CASE("execute_run reports a structured agent the model API refused as unavailable") {
  RunFixture f;
  f.spec.agent.output_format = "claude-stream-json";
  f.agent = [](const Request&) {
    return ProcessReply{R"({"type":"result","subtype":"success","is_error":true,"num_turns":1,)"
                        R"("result":"API Error: 429 {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\"}}"})"
                        "\n",
                        "", 1, false};
  };
  require_failed(f.run(), "agent_unavailable", "the model API refused agent scripted");
}

TEST_CASE("execute_run keeps an attempt's output up to the worker's limit and says that the rest is dropped") {
  RunFixture f;
  f.ctx.limits.output_limit_bytes = 64;
  f.agent = [](const Request&) { return prints(std::string(200, 'x') + "\n"); };
  require_landed(f.run());
  const std::string log = f.logged();
  CHECK(log.find(std::string(40, 'x')) != std::string::npos);
  CHECK(log.find(std::string(100, 'x')) == std::string::npos);
  CHECK(log.find("is dropped (container.output_limit)") != std::string::npos);
}
