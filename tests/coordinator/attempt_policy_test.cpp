// The attempt policy on its own: retry, fallback and block decisions, the implementer of each
// attempt, and the RunSpec it is given. Pure: no DB, no sockets; time and randomness by hand.
#include "coordinator/attempt_policy.h"

#include <catch2/catch.hpp>

using namespace polyphony;

namespace {

constexpr int64_t kNow = 1'700'000'000'000;

AgentProfile agent(const std::string& name, const std::string& stdin_template = "") {
  AgentProfile a;
  a.name = name;
  a.command = {name, "-p", "{prompt}"};
  a.stdin_template = stdin_template;
  return a;
}

// codex routes by default, claude and kimi follow it in the chain.
Settings settings() {
  Settings s;
  for (const char* n : {"codex", "claude"}) s.agents[n] = agent(n);
  s.agents["kimi"] = agent("kimi", "{prompt}");
  s.routing.default_agent = "codex";
  s.routing.fallback = {"claude", "kimi"};
  s.config.max_attempts = 3;
  s.config.retry_backoff_base_ms = 1000;
  s.config.retry_backoff_cap_ms = 60000;
  s.config.review_rounds = 2;
  return s;
}

Task task(int attempt, const std::string& agent_name = "codex") {
  Task t;
  t.request.id = "t1";
  t.request.title = "Fix the pager";
  t.request.body = "It skips a line.";
  t.request.repo = "/srv/app.git";
  t.attempt = attempt;
  t.agent = agent_name;
  t.branch = "polyphony/t1-fix-the-pager";
  t.epoch = 9;
  t.failed_trees = {"aaaa111122223333"};
  return t;
}

}  // namespace

TEST_CASE("retry backoff grows exponentially up to the cap, with bounded jitter", "[attempt_policy]") {
  CHECK(retry_backoff_ms(1, 1000, 60000, 0) >= 800);
  CHECK(retry_backoff_ms(1, 1000, 60000, 0) <= 1200);
  for (uint64_t r : {0ull, 7ull, 123456789ull}) {
    int64_t d3 = retry_backoff_ms(3, 1000, 60000, r);
    CHECK(d3 >= 3200);
    CHECK(d3 <= 4800);
    int64_t d20 = retry_backoff_ms(20, 1000, 60000, r);
    CHECK(d20 >= 48000);
    CHECK(d20 <= 72000);
  }
}

TEST_CASE("exactly the transient failure kinds are retried", "[attempt_policy]") {
  const std::vector<std::pair<FailureKind, bool>> rows = {
      {FailureKind::kAgent, false},    {FailureKind::kVerify, true},    {FailureKind::kInfra, true},
      {FailureKind::kTimeout, true},   {FailureKind::kConflict, true},  {FailureKind::kCancelled, false},
      {FailureKind::kConfig, false},   {FailureKind::kReview, false},   {FailureKind::kAgentUnavailable, true},
      {FailureKind::kBudget, false},   {FailureKind::kRepo, false},     {FailureKind::kLanding, false},
      {FailureKind::kIdentity, false}, {FailureKind::kProtocol, false},
  };
  for (const auto& [kind, retried] : rows) {
    INFO(protocol::to_string(kind));
    CHECK(is_retryable(kind) == retried);
  }
}

TEST_CASE("the agent chain is the routed agent then its fallbacks, known agents only, without repeats",
          "[attempt_policy]") {
  const Settings s = settings();
  RouteDecision d;
  d.agent = "codex";
  d.fallback = {"claude", "unknown", "codex", "kimi"};
  const auto chain = agent_chain(d, s.agents);
  CHECK(chain == std::vector<std::string>{"codex", "claude", "kimi"});
  CHECK(next_in_chain(chain, "codex") == std::optional<std::string>("claude"));
  CHECK(next_in_chain(chain, "claude") == std::optional<std::string>("kimi"));
  CHECK_FALSE(next_in_chain(chain, "kimi"));
  CHECK_FALSE(next_in_chain(chain, "scripted"));
}

TEST_CASE("a failed attempt is retried, falls back, blocks or rests failed, by its kind and history",
          "[attempt_policy]") {
  struct Case {
    std::string name;
    Task task;
    TaskState from;
    FailureKind kind;
    std::string tree;
    std::vector<TaskState> states;  // the transitions, in order
    std::string reason;             // the last transition's reason contains this
  };
  Task budget_spent = task(4);
  budget_spent.budget_start = 1;  // a user retried after attempt 1: 3 attempts since
  Task manual_retry = task(4);
  manual_retry.budget_start = 2;
  const std::vector<Case> cases = {
      {"infra is retried",
       task(1),
       TaskState::kRunning,
       FailureKind::kInfra,
       "",
       {TaskState::kFailed, TaskState::kClaimed},
       "retry after infra failure: boom"},
      {"a conflict is retried",
       task(2),
       TaskState::kVerifying,
       FailureKind::kConflict,
       "",
       {TaskState::kFailed, TaskState::kClaimed},
       "retry after conflict failure"},
      {"verify failing on a new tree is retried",
       task(1),
       TaskState::kVerifying,
       FailureKind::kVerify,
       "bbbb111122223333",
       {TaskState::kFailed, TaskState::kClaimed},
       "retry after verify failure"},
      {"verify failing again on the same tree blocks",
       task(1),
       TaskState::kVerifying,
       FailureKind::kVerify,
       "aaaa111122223333",
       {TaskState::kFailed, TaskState::kBlocked},
       "verify failed again on the same tree aaaa11112222"},
      {"the last allowed attempt blocks",
       task(3),
       TaskState::kRunning,
       FailureKind::kTimeout,
       "",
       {TaskState::kFailed, TaskState::kBlocked},
       "gave up after 3 attempts; last: boom"},
      {"attempts count from the last manual retry",
       budget_spent,
       TaskState::kRunning,
       FailureKind::kInfra,
       "",
       {TaskState::kFailed, TaskState::kBlocked},
       "gave up after 3 attempts"},
      {"a manual retry gives new attempts",
       manual_retry,
       TaskState::kRunning,
       FailureKind::kInfra,
       "",
       {TaskState::kFailed, TaskState::kClaimed},
       "retry after infra"},
      {"an unavailable agent falls back to the next in the chain",
       task(1, "codex"),
       TaskState::kRunning,
       FailureKind::kAgentUnavailable,
       "",
       {TaskState::kFailed, TaskState::kClaimed},
       "agent codex unavailable, falling back to claude: boom"},
      {"an unavailable last agent blocks",
       task(1, "kimi"),
       TaskState::kRunning,
       FailureKind::kAgentUnavailable,
       "",
       {TaskState::kFailed, TaskState::kBlocked},
       "no agent left in the fallback chain could run; last (kimi)"},
      {"an agent failure rests failed",
       task(1),
       TaskState::kRunning,
       FailureKind::kAgent,
       "",
       {TaskState::kFailed},
       "boom"},
      {"a review failure rests failed",
       task(1),
       TaskState::kVerifying,
       FailureKind::kReview,
       "",
       {TaskState::kFailed},
       "boom"},
      {"an identity failure rests failed",
       task(1),
       TaskState::kRouted,
       FailureKind::kIdentity,
       "",
       {TaskState::kFailed},
       "boom"},
      {"a task already failed gets only what follows",
       task(1),
       TaskState::kFailed,
       FailureKind::kInfra,
       "",
       {TaskState::kClaimed},
       "retry after infra"},
      {"a task already failed of a final kind gets nothing",
       task(1),
       TaskState::kFailed,
       FailureKind::kRepo,
       "",
       {},
       ""},
  };
  const Settings s = settings();
  for (const Case& c : cases) {
    INFO(c.name);
    const Steps steps = failure_steps(c.task, c.from, c.kind, "boom", c.tree, s, kNow, 0);
    std::vector<TaskState> states;
    for (const auto& step : steps) states.push_back(step.first);
    CHECK(states == c.states);
    if (steps.empty()) continue;
    CHECK_THAT(*steps.back().second.reason, Catch::Contains(c.reason));
    if (c.from != TaskState::kFailed) {
      CHECK(steps.front().second.failure_kind == std::string(protocol::to_string(c.kind)));
      CHECK(steps.front().second.failed_tree.has_value() == (c.kind == FailureKind::kVerify));
    }
  }
}

TEST_CASE("a retry waits its backoff from now, a fallback starts at once without spending an attempt",
          "[attempt_policy]") {
  const Settings s = settings();
  const Steps retry = failure_steps(task(2), TaskState::kRunning, FailureKind::kInfra, "boom", "", s, kNow, 0);
  REQUIRE(retry.size() == 2);
  CHECK(*retry[1].second.next_attempt_at_ms == kNow + retry_backoff_ms(2, 1000, 60000, 0));
  CHECK(*retry[1].second.worker == "");
  CHECK_FALSE(retry[1].second.budget_start);
  const Steps fallback =
      failure_steps(task(2), TaskState::kRunning, FailureKind::kAgentUnavailable, "boom", "", s, kNow, 0);
  REQUIRE(fallback.size() == 2);
  CHECK(*fallback[1].second.next_attempt_at_ms == 0);
  CHECK(*fallback[1].second.budget_start == 1);
}

TEST_CASE("the last attempt lost after its land grant gets one more attempt to find out whether it landed, once",
          "[attempt_policy]") {
  const Settings s = settings();  // max_attempts 3
  auto states = [](const Steps& steps) {
    std::vector<TaskState> out;
    for (const auto& step : steps) out.push_back(step.first);
    return out;
  };
  const Steps granted = failure_steps(task(3), TaskState::kVerifying, FailureKind::kInfra, "lost", "", s, kNow, 0,
                                      nullptr, /*may_have_landed=*/true);
  CHECK(states(granted) == std::vector<TaskState>{TaskState::kFailed, TaskState::kClaimed});
  CHECK_THAT(*granted.back().second.reason, Catch::Contains("may have pushed"));
  // Without a grant, of another kind, or past the one extra attempt: BLOCKED as ever.
  CHECK(states(failure_steps(task(3), TaskState::kVerifying, FailureKind::kInfra, "lost", "", s, kNow, 0)) ==
        std::vector<TaskState>{TaskState::kFailed, TaskState::kBlocked});
  CHECK(states(failure_steps(task(3), TaskState::kVerifying, FailureKind::kConflict, "raced", "", s, kNow, 0, nullptr,
                             true)) == std::vector<TaskState>{TaskState::kFailed, TaskState::kBlocked});
  CHECK(states(failure_steps(task(4), TaskState::kVerifying, FailureKind::kInfra, "lost", "", s, kNow, 0, nullptr,
                             true)) == std::vector<TaskState>{TaskState::kFailed, TaskState::kBlocked});
}

TEST_CASE("the implementer is the chain's first, the last one on a retry, the next after an unavailable one",
          "[attempt_policy]") {
  const Settings s = settings();
  RouteDecision d;
  d.agent = "codex";
  d.fallback = {"claude", "kimi"};
  struct Case {
    std::string name;
    int attempt;
    std::string agent;         // of the last attempt
    std::string failure_kind;  // of the last attempt
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"a first attempt takes the routed agent", 0, "", "", "codex"},
      {"a retry keeps the agent that ran", 1, "claude", "infra", "claude"},
      {"after an unavailable agent, the next one", 1, "codex", "agent_unavailable", "claude"},
      {"after the last agent was unavailable, it again", 1, "kimi", "agent_unavailable", "kimi"},
      {"an agent no longer in the chain gives way to the routed one", 1, "gone", "infra", "codex"},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    Task t = task(c.attempt, c.agent);
    t.failure_kind = c.failure_kind;
    CHECK(implementer(t, d, s.agents) == c.expected);
  }
}

TEST_CASE("feedback is the last failure's reason, unless the agent never ran", "[attempt_policy]") {
  Task first = task(0);
  first.reason = "claimed by c1";
  Task failed = task(1);
  failed.reason = "2 tests failed";
  failed.failure_kind = "verify";
  Task unavailable = task(1);
  unavailable.reason = "rate limited";
  unavailable.failure_kind = "agent_unavailable";
  CHECK(feedback_for(first).empty());
  CHECK(feedback_for(failed) == "2 tests failed");
  CHECK(feedback_for(unavailable).empty());
}

TEST_CASE("the run spec is assembled whole: plan, land mode, feedback, budget and review", "[attempt_policy]") {
  const Settings s = settings();
  const ResolvedIdentity none;
  RouteDecision solo;
  solo.agent = "codex";
  RouteDecision review = solo;
  review.plan = Plan::kReview;
  review.reviewer = "kimi";
  RouteDecision self_review = review;
  self_review.reviewer = "codex";
  RouteDecision budgeted = solo;
  budgeted.budget = Budget{};
  budgeted.budget->max_turns = 4;

  SECTION("a first solo attempt runs the agent's own command for the task") {
    const auto spec = run_spec({task(1), solo, none, nullptr, ""}, s);
    CHECK(spec.task_id == "t1");
    CHECK(spec.attempt == 1);
    CHECK(spec.epoch == 9);
    CHECK(spec.plan == "solo");
    CHECK(spec.land_mode == "merge");
    CHECK(spec.feedback.empty());
    CHECK(spec.agent.command == std::vector<std::string>{"codex", "-p", "Fix the pager\n\nIt skips a line."});
    CHECK(spec.reviewer.name.empty());
  }
  SECTION("a retry tells the agent what went wrong, in its argv and stdin") {
    Task t = task(2, "kimi");
    const auto spec = run_spec({t, solo, none, nullptr, "2 tests failed"}, s);
    CHECK(spec.feedback == "2 tests failed");
    CHECK(spec.agent.name == "kimi");
    CHECK_THAT(spec.agent.command[2], Catch::Contains("2 tests failed"));
    CHECK_THAT(spec.agent.stdin_text, Catch::Contains("2 tests failed"));
  }
  SECTION("a GitHub task lands on its branch, for a pull request") {
    Task t = task(1);
    t.request.source = "github";
    CHECK(run_spec({t, solo, none, nullptr, ""}, s).land_mode == "branch");
  }
  SECTION("the route's budget reaches the spec") {
    CHECK(run_spec({task(1), budgeted, none, nullptr, ""}, s).max_turns == 4);
  }
  SECTION("the review plan adds the reviewer and the implementer's rework") {
    const auto spec = run_spec({task(1), review, none, &none, "x"}, s);
    CHECK(spec.plan == "review");
    CHECK(spec.reviewer.name == "kimi");
    CHECK(spec.review_rounds == 2);
    REQUIRE(spec.rework_command.size() == 3);
    CHECK(spec.rework_command[0] == "codex");
    CHECK(spec.rework_stdin.empty());  // codex reads no stdin
  }
  SECTION("a reviewer that is the implementer itself adds no review") {
    CHECK_FALSE(has_reviewer(self_review, "codex"));
    const auto spec = run_spec({task(1), self_review, none, nullptr, ""}, s);
    CHECK(spec.reviewer.name.empty());
    CHECK(spec.rework_command.empty());
  }
}

TEST_CASE("a dispatch's history line names the agent, why, the plan, the reviewer and the worker", "[attempt_policy]") {
  RouteDecision d;
  d.agent = "codex";
  d.because = "default";
  d.plan = Plan::kReview;
  d.reviewer = "kimi";
  CHECK(dispatch_reason(d, "codex", "w1") == "agent codex (default), plan review with reviewer kimi, worker w1");
  d.reviewer.clear();
  d.plan = Plan::kSolo;
  CHECK(dispatch_reason(d, "claude", "w2") == "agent claude (default), plan solo, worker w2");
}
