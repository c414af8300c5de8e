// Routing that learns from outcomes: the outcomes the state DB derives per repo, agent and score
// band, their sums and wording, the learning rule of the router, and routing.yaml's `learning:`.
#include <catch2/catch.hpp>

#include <fstream>

#include "common/sqlite.h"
#include "coordinator/attempt_policy.h"
#include "coordinator/outcomes.h"
#include "coordinator/router.h"
#include "coordinator/state_store.h"
#include "fake_clock.h"
#include "test_support.h"

using namespace polyphony;
using polyphony::testing::FakeClock;
using polyphony::testing::TempDir;

namespace {

constexpr int64_t kMinute = 60'000;

// Drives tasks through the store as the coordinator does, on a fake clock.
struct History {
  StateStore& store;
  FakeClock& clock;

  void claim(const std::string& id, const std::string& repo, int score) {
    TaskRequest r;
    r.id = id;
    r.title = "task " + id;
    r.repo = repo;
    REQUIRE(*store.add(r, clock.now_ms()));
    TransitionUpdate u;
    u.score = score;
    u.reason = "claimed";
    REQUIRE(store.transition(id, TaskState::kDiscovered, TaskState::kClaimed, u, clock.now_ms()).ok());
  }

  // One attempt by `agent` from CLAIMED to VERIFYING, `minutes` long, with `reviews` review notes.
  void attempt(const std::string& id, const std::string& agent, int minutes, int reviews = 0) {
    auto t = **store.get(id);
    TransitionUpdate routed;
    routed.attempt = t.attempt + 1;
    routed.agent = agent;
    routed.worker = "w1";
    routed.epoch = *store.next_epoch();
    routed.reason = "agent " + agent;
    REQUIRE(store
                .advance(t,
                         {{TaskState::kRouted, routed},
                          {TaskState::kProvisioned, {}},
                          {TaskState::kRunning, {}},
                          {TaskState::kVerifying, {}}},
                         clock.now_ms())
                .ok());
    for (int i = 0; i < reviews; ++i) {
      clock.advance(kMinute);
      REQUIRE(
          store.note(id, "review by claude (round " + std::to_string(i + 1) + "): changes requested", clock.now_ms())
              .ok());
    }
    clock.advance((minutes - reviews) * kMinute);
  }

  void land(const std::string& id) {
    REQUIRE(store.transition(id, TaskState::kVerifying, TaskState::kLanded, {}, clock.now_ms()).ok());
  }

  // The attempt failed and another follows (the coordinator's retry: FAILED -> CLAIMED at once).
  void retry(const std::string& id) {
    TransitionUpdate failed;
    failed.reason = "verify failed";
    REQUIRE(store
                .transitions(id, TaskState::kVerifying, {{TaskState::kFailed, failed}, {TaskState::kClaimed, {}}},
                             clock.now_ms())
                .ok());
  }

  void fail(const std::string& id, TaskState to = TaskState::kFailed) {
    REQUIRE(store.transition(id, TaskState::kVerifying, TaskState::kFailed, {}, clock.now_ms()).ok());
    if (to == TaskState::kBlocked) {
      REQUIRE(store.transition(id, TaskState::kFailed, TaskState::kBlocked, {}, clock.now_ms()).ok());
    }
  }
};

const TaskOutcome* row_of(const std::vector<TaskOutcome>& rows, const std::string& task, const std::string& agent) {
  for (const auto& r : rows) {
    if (r.task_id == task && r.agent == agent) return &r;
  }
  return nullptr;
}

// Six finished tasks of /srv/app scored 1-3 and some that must not count.
void record_sample(History& h) {
  h.claim("land1", "/srv/app", 2);  // codex lands at once: 4 min
  h.attempt("land1", "codex", 4);
  h.land("land1");
  h.claim("land2", "/srv/app", 3);  // codex lands at the second attempt: 10 min
  h.attempt("land2", "codex", 3);
  h.retry("land2");
  h.attempt("land2", "codex", 7);
  h.land("land2");
  h.claim("land3", "/srv/app", 1);  // codex lands after two reviews: 6 min
  h.attempt("land3", "codex", 6, 2);
  h.land("land3");
  h.claim("fail1", "/srv/app", 2);  // codex fails for good
  h.attempt("fail1", "codex", 5);
  h.fail("fail1");
  h.claim("fall1", "/srv/app", 2);  // codex fails, claude takes over and lands: 8 min
  h.attempt("fall1", "codex", 2);
  h.retry("fall1");
  h.attempt("fall1", "claude", 8);
  h.land("fall1");
  h.claim("block1", "/srv/app", 3);  // claude is BLOCKED
  h.attempt("block1", "claude", 1);
  h.fail("block1", TaskState::kBlocked);
  // None of these count in /srv/app's band 0-3: another band, another repo, still running,
  // cancelled.
  h.claim("high1", "/srv/app", 8);
  h.attempt("high1", "claude", 1);
  h.land("high1");
  h.claim("other1", "/srv/other", 2);
  h.attempt("other1", "codex", 1);
  h.land("other1");
  h.claim("running1", "/srv/app", 2);
  h.attempt("running1", "codex", 1);
  h.claim("cancel1", "/srv/app", 2);
  h.attempt("cancel1", "codex", 1);
  REQUIRE(h.store.transition("cancel1", TaskState::kVerifying, TaskState::kCancelled, {}, h.clock.now_ms()).ok());
}

StateStore open_store(const std::filesystem::path& path) {
  auto store = StateStore::open(path);
  REQUIRE(store.ok());
  return std::move(*store);
}

// The outcome tests' fixture: a state DB on a fake clock that record_sample has filled.
struct SampleHistory {
  TempDir dir;
  FakeClock clock;
  StateStore store = open_store(dir / "state.db");
  History history{store, clock};

  SampleHistory() { record_sample(history); }
};

}  // namespace

TEST_CASE_METHOD(SampleHistory,
                 "the state DB derives per task and agent how finished tasks of a repo and score band ended") {
  REQUIRE(store
              .record_agent_runs("land1", 1,
                                 {protocol::AgentUsage{"implementer", "codex", "gpt", 3, 1000, 200, 0.25, "done"}})
              .ok());

  auto rows = store.task_outcomes("/srv/app", 0, 3);
  REQUIRE(rows.ok());
  CHECK(rows->size() == 7);  // land1-3, fail1, fall1 twice (codex and claude), block1
  const TaskOutcome* land1 = row_of(*rows, "land1", "codex");
  REQUIRE(land1);
  CHECK(land1->landed);
  CHECK(land1->attempts == 1);
  CHECK(land1->score == 2);
  CHECK(land1->tokens == std::optional<int64_t>(1200));
  CHECK(land1->cost_usd == std::optional<double>(0.25));
  REQUIRE(land1->landed_at_ms);
  CHECK(*land1->landed_at_ms - land1->started_at_ms == 4 * kMinute);
  const TaskOutcome* land2 = row_of(*rows, "land2", "codex");
  REQUIRE(land2);
  CHECK(land2->attempts == 2);
  CHECK(*land2->landed_at_ms - land2->started_at_ms == 10 * kMinute);
  CHECK_FALSE(land2->tokens);  // its runs reported nothing
  CHECK(row_of(*rows, "land3", "codex")->review_rounds == 2);
  CHECK_FALSE(row_of(*rows, "fail1", "codex")->landed);
  CHECK_FALSE(row_of(*rows, "fall1", "codex")->landed);  // its attempt failed; claude's landed
  CHECK(row_of(*rows, "fall1", "claude")->landed);
  CHECK_FALSE(row_of(*rows, "block1", "claude")->landed);
  CHECK(row_of(*rows, "high1", "claude") == nullptr);
  CHECK(row_of(*rows, "running1", "codex") == nullptr);
  CHECK(row_of(*rows, "cancel1", "codex") == nullptr);

  auto high = store.task_outcomes("/srv/app", 7, 10);
  REQUIRE(high.ok());
  REQUIRE(high->size() == 1);
  CHECK(high->front().task_id == "high1");
}

TEST_CASE_METHOD(SampleHistory, "outcomes sum up per agent with the median time to land and read as a sentence") {
  const ScoreBand band = score_band(2, ScoringPolicy{});
  CHECK(band.min == 0);
  CHECK(band.max == 3);
  const BandOutcomes o = summarize("/srv/app", band, *store.task_outcomes("/srv/app", band.min, band.max));
  REQUIRE(o.agents.size() == 2);
  const AgentOutcomes& codex = o.agents.at("codex");
  CHECK(codex.tasks == 5);
  CHECK(codex.landed == 3);
  CHECK(codex.attempts == 6);
  CHECK(codex.review_rounds == 2);
  CHECK(codex.median_land_ms == std::optional<int64_t>(6 * kMinute));  // of 4, 6 and 10 min
  CHECK(o.agents.at("claude").landed == 1);
  CHECK(o.agents.at("claude").tasks == 2);
  const auto lines = describe(o);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0] ==
        "codex landed 3 of 5 tasks scored 0-3 here, median 6 min to land, "
        "1.2 attempts and 0.4 review rounds a task");
  CHECK(lines[1] ==
        "claude landed 1 of 2 tasks scored 0-3 here, median 8 min to land, "
        "1 attempt and 0 review rounds a task");
  CHECK(describe(summarize("/srv/none", band, {})) == std::vector<std::string>{"no finished task scored 0-3 here yet"});
}

TEST_CASE("score bands follow the scoring thresholds") {
  ScoringPolicy s;
  s.solo_max = 2;
  s.review_max = 5;
  struct Case {
    int score, min, max;
    Plan plan;
  };
  for (const auto& c : std::vector<Case>{{0, 0, 2, Plan::kSolo},
                                         {2, 0, 2, Plan::kSolo},
                                         {3, 3, 5, Plan::kReview},
                                         {5, 3, 5, Plan::kReview},
                                         {6, 6, 10, Plan::kStrong},
                                         {10, 6, 10, Plan::kStrong}}) {
    const ScoreBand b = score_band(c.score, s);
    INFO(c.score);
    CHECK(b.min == c.min);
    CHECK(b.max == c.max);
    CHECK(b.plan == c.plan);
  }
  CHECK(band_text({7, 7, Plan::kStrong}) == "7");
  CHECK(human_duration(42'000) == "42 s");
  CHECK(human_duration(4 * kMinute) == "4 min");
  CHECK(human_duration(150 * kMinute) == "2.5 h");
}

TEST_CASE("an older state DB gets its events' agents on open and its outcomes are derived") {
  TempDir dir;
  FakeClock clock;
  {
    StateStore store = open_store(dir / "state.db");
    History h{store, clock};
    h.claim("old1", "/srv/app", 2);
    h.attempt("old1", "codex", 3);
    h.land("old1");
  }
  {  // As a DB from before: events without the failure_kind and agent columns, no outcome views.
    auto db = Database::open(dir / "state.db", kStateDbApplicationId, false, false);
    REQUIRE(db.ok());
    REQUIRE(db->exec("DROP VIEW task_outcomes; DROP VIEW attempt_outcomes; ALTER TABLE events DROP COLUMN agent; "
                     "ALTER TABLE events DROP COLUMN failure_kind")
                .ok());
  }
  {
    auto read_only = StateStore::open(dir / "state.db", true);
    REQUIRE(read_only.ok());
    auto none = read_only->task_outcomes("/srv/app", 0, 3);
    REQUIRE(none.ok());
    CHECK(none->empty());  // not migrated: nothing to read, and no error
  }
  auto rows = open_store(dir / "state.db").task_outcomes("/srv/app", 0, 3);
  REQUIRE(rows.ok());
  REQUIRE(rows->size() == 1);
  CHECK(rows->front().agent == "codex");
  CHECK(rows->front().landed);
  CHECK(*rows->front().landed_at_ms - rows->front().started_at_ms == 3 * kMinute);
  auto db = Database::open(dir / "state.db", kStateDbApplicationId, false, true);
  REQUIRE(db.ok());
  auto cols = db->prepare("SELECT count(*) FROM pragma_table_info('events') WHERE name IN ('agent', 'failure_kind')");
  REQUIRE(cols.ok());
  REQUIRE(cols->step().ok());
  CHECK(cols->int64(0) == 2);
}

namespace {

std::map<std::string, AgentProfile> learning_agents() {
  std::map<std::string, AgentProfile> a;
  for (const char* n : {"scripted", "kimi", "codex", "claude", "opus"}) a[n].name = n;
  a["claude"].tier = "strong";
  a["opus"].tier = "strong";
  return a;
}

RoutingPolicy learning_policy() {
  RoutingPolicy p;
  p.default_agent = "codex";
  p.fallback = {"claude", "kimi"};
  RouteRule docs;
  docs.match.task_type = "docs";
  docs.agent = "kimi";
  docs.line = 3;
  p.rules = {docs};
  p.learning.enabled = true;
  p.learning.min_tasks = 4;
  p.learning.min_landing_rate = 0.75;
  p.learning.line = 9;
  return p;
}

AgentOutcomes record(int tasks, int landed, std::optional<double> cost_per_task = std::nullopt) {
  AgentOutcomes a;
  a.tasks = tasks;
  a.landed = landed;
  a.attempts = tasks;
  if (cost_per_task) {
    a.cost_usd = *cost_per_task * tasks;
    a.cost_known = tasks;
  }
  return a;
}

}  // namespace

TEST_CASE("the learning rule picks the cheapest agent proven in the band and says why and what it replaced") {
  struct Case {
    std::string name;
    std::map<std::string, AgentOutcomes> agents;
    int score = 2;
    std::string type, requested;
    bool enabled = true;
    std::string agent;
    bool learned;
    std::string says;
    std::vector<std::string> fallback;
  };
  const std::vector<Case> cases{
      {"a proven cheap agent replaces the default",
       {{"kimi", record(4, 4)}, {"codex", record(10, 5)}},
       2,
       "",
       "",
       true,
       "kimi",
       true,
       "learning (routing.yaml:9) picked kimi, the cheapest agent that landed at least 75% of at least 4 tasks "
       "scored 0-3 here (kimi landed 4 of 4 tasks scored 0-3 here, 1 attempt and 0 review rounds a task); "
       "otherwise codex (default)",
       {"codex", "claude"}},  // what it replaced first; kimi is not its own fallback
      {"too few tasks do not count",
       {{"kimi", record(3, 3)}},
       2,
       "",
       "",
       true,
       "codex",
       false,
       "did not decide: no agent landed at least 75% of at least 4 tasks scored 0-3 here; routing as configured "
       "picks codex",
       {"claude", "kimi"}},
      {"too low a landing rate does not count",
       {{"kimi", record(8, 5)}},
       2,
       "",
       "",
       true,
       "codex",
       false,
       "did not decide",
       {"claude", "kimi"}},
      {"exactly the threshold counts", {{"kimi", record(4, 3)}}, 2, "", "", true, "kimi", true, "picked kimi", {}},
      {"tier cheap before strong",
       {{"claude", record(9, 9, 0.01)}, {"kimi", record(5, 4, 0.50)}},
       2,
       "",
       "",
       true,
       "kimi",
       true,
       "picked kimi",
       {}},
      {"the lower cost a task among cheap agents",
       {{"kimi", record(5, 5, 0.40)}, {"scripted", record(5, 5, 0.10)}},
       2,
       "",
       "",
       true,
       "scripted",
       true,
       "picked scripted",
       {}},
      {"without costs, the default's order",
       {{"kimi", record(5, 5)}, {"codex", record(5, 5)}},
       2,
       "",
       "",
       true,
       "codex",
       true,
       "a task); routing as configured picks it too",
       {"claude", "kimi"}},
      {"the strong plan takes only strong agents",
       {{"kimi", record(9, 9)}, {"opus", record(4, 4)}},
       8,
       "",
       "",
       true,
       "opus",
       true,
       "picked opus, the cheapest strong agent",
       {"claude", "kimi"}},
      {"a rule's agent stays",
       {{"scripted", record(9, 9)}},
       2,
       "docs",
       "",
       true,
       "kimi",
       false,
       "not used: routing.yaml:3 names the agent",
       {"claude", "kimi"}},
      {"--agent stays",
       {{"scripted", record(9, 9)}},
       2,
       "",
       "claude",
       true,
       "claude",
       false,
       "not used: --agent names the agent",
       {}},
      {"off by default", {{"scripted", record(9, 9)}}, 2, "", "", false, "codex", false, "", {"claude", "kimi"}},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    RoutingPolicy p = learning_policy();
    p.learning.enabled = c.enabled;
    TaskRequest t;
    t.task_type = c.type;
    t.agent = c.requested;
    BandOutcomes o{"/srv/app", score_band(c.score, p.scoring), c.agents};
    auto d = route(t, p, learning_agents(), c.score, &o);
    REQUIRE(d.ok());
    INFO(d->learning);
    CHECK(d->agent == c.agent);
    CHECK(d->learned == c.learned);
    if (c.says.empty()) {
      CHECK(d->learning.empty());
    } else {
      CHECK_THAT(d->learning, Catch::Contains(c.says));
    }
    if (!c.fallback.empty()) CHECK(d->fallback == c.fallback);
  }
}

TEST_CASE(
    "a learned implementer gets a reviewer other than itself, and without outcomes or a score nothing is learned") {
  RoutingPolicy p = learning_policy();
  BandOutcomes o{"/srv/app", score_band(5, p.scoring), {{"claude", record(6, 6)}}};
  auto review = route(TaskRequest{}, p, learning_agents(), 5, &o);
  REQUIRE(review.ok());
  CHECK(review->plan == Plan::kReview);
  CHECK(review->agent == "claude");  // the only proven agent, though strong
  CHECK(review->reviewer == "opus");
  CHECK_THAT(dispatch_reason(*review, review->agent, "w1"),
             Catch::Contains("; learning (routing.yaml:9) picked claude"));

  auto no_outcomes = route(TaskRequest{}, p, learning_agents(), 2, nullptr);
  REQUIRE(no_outcomes.ok());
  CHECK(no_outcomes->agent == "codex");
  CHECK_THAT(no_outcomes->learning, Catch::Contains("not used: no outcomes were recorded"));
  auto no_score = route(TaskRequest{}, p, learning_agents(), std::nullopt, &o);
  REQUIRE(no_score.ok());
  CHECK_THAT(no_score->learning, Catch::Contains("not used: the task has no score"));
}

TEST_CASE("an unavailable learned agent falls back to the agent routing would have picked otherwise") {
  RoutingPolicy p = learning_policy();
  Settings s;
  s.routing = p;
  s.agents = learning_agents();
  BandOutcomes o{"/srv/app", score_band(2, p.scoring), {{"kimi", record(5, 5)}}};
  Task t;
  t.request.id = "t1";
  t.score = 2;
  t.attempt = 1;
  t.agent = "kimi";
  const Steps steps = failure_steps(t, TaskState::kRunning, FailureKind::kAgentUnavailable, "no kimi", "", s, 0, 0, &o);
  REQUIRE(steps.size() == 2);
  CHECK(steps.back().first == TaskState::kClaimed);
  CHECK_THAT(*steps.back().second.reason, Catch::Contains("falling back to codex"));
  auto d = route(t.request, p, s.agents, 2, &o);
  REQUIRE(d.ok());
  t.failure_kind = "agent_unavailable";
  CHECK(implementer(t, *d, s.agents) == "codex");
}

TEST_CASE("routing.yaml learning: loads, is off by default, and its errors name file:line") {
  TempDir dir;
  const auto file = dir / "routing.yaml";
  auto write = [&](const std::string& text) { std::ofstream(file) << text; };
  write("default: {agent: codex}\n");
  auto defaults = load_routing(file);
  REQUIRE(defaults.ok());
  CHECK_FALSE(defaults->learning.enabled);
  CHECK(defaults->learning.min_tasks == 5);
  CHECK(defaults->learning.min_landing_rate == Approx(0.8));

  write("default: {agent: codex}\nlearning:\n  enabled: true\n  min_tasks: 3\n  min_landing_rate: 0.9\n");
  auto on = load_routing(file);
  REQUIRE(on.ok());
  CHECK(on->learning.enabled);
  CHECK(on->learning.min_tasks == 3);
  CHECK(on->learning.min_landing_rate == Approx(0.9));
  CHECK(on->learning.line == 3);

  struct Case {
    std::string text, where, says;
  };
  const std::vector<Case> cases{
      {"learning:\n  enabled: maybe\n", ":2:", "learning.enabled"},
      {"learning:\n  min_tasks: 0\n", ":2:", "learning.min_tasks must be a whole number of tasks from 1"},
      {"learning:\n  min_tasks: many\n", ":2:", "learning.min_tasks"},
      {"learning:\n  min_landing_rate: 80\n", ":2:", "at most 1 (0.8 for 80%), got 80"},
      {"learning:\n  min_landing_rate: 0\n", ":2:", "above 0"},
      {"learning:\n  threshold: 0.5\n", ":2:", "unknown key 'threshold'"},
      {"learning: yes\n", ":1:", "learning must be a map"},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    write(c.text);
    auto r = load_routing(file);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == "config");
    CHECK_THAT(r.error().where,
               Catch::StartsWith(file.string() + c.where) || Catch::Contains("routing.yaml" + c.where));
    CHECK_THAT(r.error().message, Catch::Contains(c.says));
  }
}
