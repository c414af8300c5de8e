// The router: first match wins, explicit agents, the default; and the RunSpec it leads to.
#include <catch2/catch.hpp>

#include "coordinator/coordinator.h"
#include "coordinator/router.h"

using namespace polyphony;

namespace {

RoutingPolicy sample_policy() {
  RoutingPolicy p;
  RouteRule docs;
  docs.match.labels = {"docs"};
  docs.agent = "kimi";
  docs.line = 3;
  RouteRule high;
  high.match.risk = "high";
  high.agent = "claude";
  high.line = 5;
  RouteRule bug_app;
  bug_app.match.task_type = "bugfix";
  bug_app.match.repo = "app";
  bug_app.agent = "codex";
  bug_app.line = 7;
  p.rules = {docs, high, bug_app};
  p.default_agent = "scripted";
  p.fallback = {"codex", "claude"};
  return p;
}

std::map<std::string, AgentProfile> sample_agents() {
  std::map<std::string, AgentProfile> a;
  for (const char* n : {"scripted", "kimi", "claude", "codex"}) a[n].name = n;
  return a;
}

}  // namespace

TEST_CASE("rules are evaluated top-down and the first match wins") {
  struct Case {
    std::string type, risk, repo, agent;
    std::vector<std::string> labels;
    std::string expect, because;
  };
  const std::vector<Case> cases{
      {"", "", "", "", {"docs"}, "kimi", "routing.yaml:3 (rule 1)"},
      {"", "high", "", "", {"docs"}, "kimi", "routing.yaml:3 (rule 1)"},  // earlier rule wins
      {"", "high", "", "", {}, "claude", "routing.yaml:5 (rule 2)"},
      {"bugfix", "", "app", "", {}, "codex", "routing.yaml:7 (rule 3)"},
      {"bugfix", "", "other", "", {}, "scripted", "default"},  // every condition must hold
      {"", "low", "", "", {"ui"}, "scripted", "default"},
      {"", "high", "", "kimi", {}, "kimi", "--agent"},  // explicit agent wins
  };
  for (const auto& c : cases) {
    TaskRequest t;
    t.task_type = c.type;
    t.risk = c.risk;
    t.repo = c.repo;
    t.agent = c.agent;
    t.labels = c.labels;
    auto d = route(t, sample_policy(), sample_agents());
    REQUIRE(d.ok());
    INFO(c.expect << " " << c.because);
    CHECK(d->agent == c.expect);
    CHECK(d->because == c.because);
  }
}

TEST_CASE("the default carries the fallback chain, and an explicit agent has none") {
  TaskRequest t;
  auto d = route(t, sample_policy(), sample_agents());
  REQUIRE(d.ok());
  CHECK(d->fallback == std::vector<std::string>{"codex", "claude"});
  t.agent = "claude";
  d = route(t, sample_policy(), sample_agents());
  REQUIRE(d.ok());
  CHECK(d->fallback.empty());
}

TEST_CASE("an unknown explicit agent is refused naming the flag") {
  TaskRequest t;
  t.agent = "gpt-99";
  auto d = route(t, sample_policy(), sample_agents());
  REQUIRE_FALSE(d.ok());
  CHECK(d.error().where == "--agent");
  CHECK_THAT(d.error().message, Catch::Contains("gpt-99") && Catch::Contains("scripted"));
}

TEST_CASE("score ranges match only when a score is known and inside them") {
  RouteMatch m;
  m.score_min = 4;
  m.score_max = 6;
  TaskRequest t;
  CHECK_FALSE(rule_matches(m, t));
  CHECK_FALSE(rule_matches(m, t, 3));
  CHECK(rule_matches(m, t, 4));
  CHECK(rule_matches(m, t, 6));
  CHECK_FALSE(rule_matches(m, t, 7));
}

TEST_CASE("placeholders become whole argv elements and task text is never re-expanded") {
  TaskRequest t;
  t.title = "\"; rm -rf / # {branch}";
  t.body = "body with {title}";
  auto argv = expand_command({"agent", "-p", "{prompt}", "--file={task_file}", "{branch}"}, t, "polyphony/x-y");
  REQUIRE(argv.size() == 5);
  CHECK(argv[2] == "\"; rm -rf / # {branch}\n\nbody with {title}");
  CHECK(argv[3] == "--file=/polyphony/task.md");
  CHECK(argv[4] == "polyphony/x-y");
}

TEST_CASE("the run spec carries repo settings, limits and identity") {
  Config c;
  RepoConfig rc;
  rc.name = "app";
  rc.url = "/srv/app.git";
  rc.base_branch = "develop";
  rc.verify = "make test";
  c.repos["app"] = rc;
  c.container.network = "none";
  Task task;
  task.request.id = "ab12cd34";
  task.request.title = "Fix auth bug";
  task.request.repo = "app";
  AgentProfile agent;
  agent.name = "claude";
  agent.command = {"claude", "-p", "{prompt}"};
  agent.env = {{"MODE", "x"}};
  ResolvedIdentity id;
  id.env = {{"API_KEY", "secret"}};
  id.mounts = {{"/home/u/.claude", "/home/agent/.claude", true}};
  auto s = make_run_spec(task, agent, id, c, 2, 17);
  CHECK(s.repo_url == "/srv/app.git");
  CHECK(s.base_branch == "develop");
  CHECK(s.verify_command == "make test");
  CHECK(s.branch == "polyphony/ab12cd34-fix-auth-bug");
  CHECK(s.attempt == 2);
  CHECK(s.epoch == 17);
  CHECK(s.network_mode == "none");
  CHECK(s.agent.command == std::vector<std::string>{"claude", "-p", "Fix auth bug"});
  CHECK(s.agent.env.at("MODE") == "x");
  CHECK(s.agent.env.at("API_KEY") == "secret");
  REQUIRE(s.agent.mounts.size() == 1);
  CHECK(s.agent.mounts[0].read_only);
}

TEST_CASE("a placeholder too large for one argv element becomes a pointer to the task file, and stdin takes any size") {
  TaskRequest t;
  t.title = "Big";
  t.body = std::string(1 << 20, 'x');
  auto argv = expand_command({"agent", "-p", "{prompt}", "{branch}"}, t, "polyphony/a-big");
  REQUIRE(argv.size() == 4);
  CHECK(argv[2] == kTooLongForArgv);
  CHECK(argv[3] == "polyphony/a-big");
  CHECK(expand_text("{prompt}", t, "b").size() == 3 + 2 + t.body.size());
}

TEST_CASE(
    "the agent spec carries its stdin, output format, config variable and identity files, "
    "and budgets reach the run spec") {
  Config c;
  c.budget.max_turns = 7;
  c.budget.max_tokens = 5000;
  c.budget.max_wall_s = 120;
  Task task;
  task.request.id = "ab12cd34";
  task.request.title = "Fix auth bug";
  task.request.body = "in {branch}";
  task.request.repo = "/srv/app.git";
  AgentProfile agent;
  agent.name = "claude";
  agent.command = {"claude", "-p"};
  agent.stdin_template = "{prompt}";
  agent.output_format = "claude-stream-json";
  agent.config_dir_env = "CLAUDE_CONFIG_DIR";
  ResolvedIdentity id;
  id.files = {{".credentials.json", "{\"token\":\"t\"}", 0600}};
  auto s = make_run_spec(task, agent, id, c, 1, 3);
  CHECK(s.agent.stdin_text == "Fix auth bug\n\nin {branch}");
  CHECK(s.agent.output_format == "claude-stream-json");
  CHECK(s.agent.config_env == "CLAUDE_CONFIG_DIR");
  REQUIRE(s.agent.files.size() == 1);
  CHECK(s.agent.files[0].path == ".credentials.json");
  CHECK(s.max_turns == 7);
  CHECK(s.max_tokens == 5000);
  CHECK(s.run_timeout_s == 120);
  CHECK(s.run_timeout_is_budget);
  Budget rule;
  rule.max_turns = 2;
  apply_budget(s, rule);
  CHECK(s.max_turns == 2);
  CHECK(s.max_tokens == 0);
}
