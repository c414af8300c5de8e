// `config check`: shadowed rules, unknown agents, empty score ranges; and routing.yaml's plan and
// scoring sections, parsed with file:line errors.
#include <catch2/catch.hpp>

#include "coordinator/policy_check.h"
#include "test_support.h"

using namespace polyphony;
using polyphony::testing::TempDir;

namespace {

RouteMatch match(std::optional<std::string> type, std::vector<std::string> labels = {},
                 std::optional<int> min = std::nullopt, std::optional<int> max = std::nullopt) {
  RouteMatch m;
  m.task_type = std::move(type);
  m.labels = std::move(labels);
  m.score_min = min;
  m.score_max = max;
  return m;
}

std::map<std::string, AgentProfile> agents() {
  std::map<std::string, AgentProfile> a;
  for (const char* n : {"codex", "claude"}) a[n].name = n;
  return a;
}

RouteRule rule(RouteMatch m, std::string agent, int line) {
  RouteRule r;
  r.match = std::move(m);
  r.agent = std::move(agent);
  r.line = line;
  return r;
}

Result<RoutingPolicy> parse_routing(const TempDir& dir, const std::string& text) {
  testing::write_file(dir / "routing.yaml", text);
  return load_routing(dir / "routing.yaml");
}

}  // namespace

TEST_CASE("an earlier rule shadows a later one when its conditions are a subset and its score range covers") {
  struct Case {
    const char* name;
    RouteMatch earlier, later;
    bool shadowed;
  };
  const std::vector<Case> cases{
      {"same task type, nothing else", match("bugfix"), match("bugfix"), true},
      {"earlier matches everything", match(std::nullopt), match("docs", {"x"}, 4, 6), true},
      {"later adds a label", match("bugfix"), match("bugfix", {"ui"}), true},
      {"earlier needs a label later lacks", match("bugfix", {"ui"}), match("bugfix"), false},
      {"different task types", match("bugfix"), match("feature"), false},
      {"earlier names a type, later none", match("bugfix"), match(std::nullopt), false},
      {"score range covers", match("bugfix", {}, 4, 10), match("bugfix", {}, 7, 9), true},
      {"open score range covers", match(std::nullopt, {}, 4), match(std::nullopt, {}, 4, 6), true},
      {"score range overlaps only", match("bugfix", {}, 4, 6), match("bugfix", {}, 6, 8), false},
      {"later has no score condition", match("bugfix", {}, 0, 10), match("bugfix"), false},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    CHECK(shadows(c.earlier, c.later) == c.shadowed);
  }
}

TEST_CASE("config check names each unknown agent and shadowed rule with its line") {
  RoutingPolicy p;
  p.rules = {rule(match("bugfix"), "codex", 3), rule(match("bugfix", {"ui"}), "claude", 5),
             rule(match("docs"), "gpt-99", 7), rule(match(std::nullopt, {}, 6, 4), "codex", 9)};
  p.default_agent = "codex";
  p.fallback = {"claude", "nobody"};
  p.default_line = 11;
  const auto problems = check_policy(p, agents(), {});
  REQUIRE(problems.size() == 4);
  CHECK(problems[0].line == 5);
  CHECK_THAT(problems[0].message, Catch::Contains("rule 2 can never match") && Catch::Contains("rule 1 (line 3)"));
  CHECK(problems[1].line == 7);
  CHECK_THAT(problems[1].message, Catch::Contains("'gpt-99'") && Catch::Contains("claude, codex"));
  CHECK(problems[2].line == 9);
  CHECK_THAT(problems[2].message, Catch::Contains("score range 6-4 is empty"));
  CHECK(problems[3].line == 11);
  CHECK_THAT(problems[3].message, Catch::Contains("fallback chain") && Catch::Contains("'nobody'"));
  for (const auto& pr : problems) CHECK(pr.file == "routing.yaml");
}

TEST_CASE("config check finds nothing in a consistent policy") {
  RoutingPolicy p;
  p.rules = {rule(match("bugfix", {"ui"}), "claude", 3), rule(match("bugfix"), "codex", 5),
             rule(match(std::nullopt, {}, 7), "claude", 7)};
  p.default_agent = "codex";
  CHECK(check_policy(p, agents(), {}).empty());
}

TEST_CASE("config check reports an agent whose identity is not defined") {
  auto a = agents();
  a["claude"].identity = "anthropic";
  a["claude"].line = 4;
  RoutingPolicy p;
  p.default_agent = "codex";
  const auto problems = check_policy(p, a, {});
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].file == "agents.yaml");
  CHECK(problems[0].line == 4);
}

TEST_CASE("routing.yaml rules may name a plan with or without an agent") {
  TempDir dir;
  auto p = parse_routing(dir,
                         "rules:\n  - match: {score: {min: 7}}\n    plan: strong\n"
                         "  - match: {task_type: docs}\n    agent: kimi\n    plan: review\n");
  REQUIRE(p.ok());
  REQUIRE(p->rules.size() == 2);
  CHECK(p->rules[0].plan == Plan::kStrong);
  CHECK(p->rules[0].agent.empty());
  CHECK(p->rules[1].plan == Plan::kReview);
  CHECK(p->rules[1].agent == "kimi");
}

TEST_CASE("routing.yaml scoring overrides the thresholds and cut-offs") {
  TempDir dir;
  auto p = parse_routing(dir,
                         "scoring:\n  thresholds: {solo_max: 2, review_max: 5}\n"
                         "  cutoffs:\n    call_sites: [2, 8]\n");
  REQUIRE(p.ok());
  CHECK(p->scoring.solo_max == 2);
  CHECK(p->scoring.review_max == 5);
  CHECK(p->scoring.call_sites.one == 2);
  CHECK(p->scoring.call_sites.two == 8);
  CHECK(p->scoring.lines_of_code.one == ScoringPolicy{}.lines_of_code.one);
}

TEST_CASE("bad plans and scoring sections are refused with file and line") {
  struct Case {
    std::string text, where, what;
  };
  const std::vector<Case> cases{
      {"rules:\n  - match: {risk: high}\n    plan: careful\n", "routing.yaml:3:11", "solo, review or strong"},
      {"rules:\n  - match: {risk: high}\n", "routing.yaml:2:5", "needs an agent or a plan"},
      {"scoring:\n  thresholds: {solo_max: 7, review_max: 6}\n", "routing.yaml:2:15", "solo_max <= review_max"},
      {"scoring:\n  cutoffs:\n    nesting: [5, 3]\n", "routing.yaml:3:14", "1 <= one <= two"},
      {"scoring:\n  cutoffs:\n    nesting: 4\n", "routing.yaml:3:14", "two integers"},
      {"scoring:\n  cutoffs:\n    depth: [1, 2]\n", "routing.yaml:3:5", "unknown key 'depth'"},
  };
  for (const auto& c : cases) {
    TempDir dir;
    auto p = parse_routing(dir, c.text);
    REQUIRE_FALSE(p.ok());
    INFO(p.error().to_string());
    CHECK_THAT(p.error().where, Catch::EndsWith(c.where));
    CHECK_THAT(p.error().message, Catch::Contains(c.what));
  }
}
