// The real `polyphony route --explain` and `polyphony config check` on a fixture repository and
// home: evidence-backed scores, the rule and agents they lead to, problems with file:line.
#include <catch2/catch.hpp>

#include "single_box.h"

using namespace polyphony;
using namespace polyphony::testing;

namespace {

// refresh_session() is defined once (5 lines) and called 5 times in 2 files; session.py holds
// auth and locking words.
const std::map<std::string, std::string> kAuthRepo{
    {"src/auth/session.py",
     "import threading\n\n_lock = threading.Lock()\n\n\ndef refresh_session(user):\n    with _lock:\n"
     "        if user.password_expired:\n            return None\n        return user.token\n"},
    {"src/app.py",
     "from auth.session import refresh_session\n\ndef handler(u):\n    s = refresh_session(u)\n"
     "    t = refresh_session(u)\n    return refresh_session(u) or s or t\n"},
    {"src/jobs.py",
     "def nightly(users):\n    for u in users:\n        refresh_session(u)\n"
     "    return [refresh_session(u) for u in users]\n"},
    {"README.md", "# app\n"},
};

std::vector<std::string> explain_args(const SingleBox& box, const std::string& risk) {
  return {"route",
          "--explain",
          "Fix refresh_session token expiry",
          "--repo",
          box.origin().string(),
          "--body",
          "The bug is in src/auth/session.py.",
          "--type",
          "bugfix",
          "--risk",
          risk};
}

}  // namespace

TEST_CASE("route --explain shows every dimension with its evidence and the plan and agents it leads to") {
  SingleBox box(kAuthRepo);
  auto r = box.cli(explain_args(box, "medium"));
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("index:       universal-ctags"));
  CHECK_THAT(
      r.out,
      Catch::Contains(
          "refresh_session(): src/auth/session.py:6-10, 5 lines, nesting 3, 1 branch(es) (identifier in the task)"));
  CHECK_THAT(r.out, Catch::Contains("fan_out             1  5 call site(s) of 1 touched definition(s)"));
  CHECK_THAT(r.out, Catch::Contains("refresh_session(): 5 call site(s) in 2 file(s)"));
  CHECK_THAT(r.out, Catch::Contains("security_boundary   2  14 weighted point(s) from 4 auth/PII keyword(s)"));
  CHECK_THAT(r.out, Catch::Contains("'password' 2: src/auth/session.py (1)"));
  CHECK_THAT(r.out, Catch::Contains("concurrency         2  4 weighted point(s) from 2 concurrency keyword(s)"));
  CHECK_THAT(r.out, Catch::Contains("domain_invariants   1  risk medium, task type bugfix"));
  CHECK_THAT(r.out, Catch::Contains("total               6 / 10"));
  CHECK_THAT(r.out, Catch::Contains("plan:        review (score 6"));
  CHECK_THAT(r.out, Catch::Contains("rule:        none matched"));
  CHECK_THAT(r.out, Catch::Contains("implementer: codex (cheap)"));
  CHECK_THAT(r.out, Catch::Contains("reviewer:    claude (strong)"));
  CHECK(box.status().empty());  // nothing was queued
}

TEST_CASE("route --explain after the base moved says the index was updated from the previous base's") {
  SingleBox box(kAuthRepo);
  auto first = box.cli(explain_args(box, "medium"));
  INFO(first.err);
  REQUIRE(first.exit_code == 0);
  CHECK_THAT(first.out, !Catch::Contains("updated from the index of"));
  const std::string before = trim(git(box.origin(), {"rev-parse", "main"}));
  commit_to_bare(box.origin(),
                 {{"src/jobs.py", "def nightly(users):\n    return [refresh_session(u) for u in users]\n"}},
                 "one caller fewer");
  auto moved = box.cli(explain_args(box, "medium"));
  INFO(moved.err);
  REQUIRE(moved.exit_code == 0);
  CHECK_THAT(moved.out, Catch::Contains("; built in "));
  CHECK_THAT(moved.out,
             Catch::Contains("updated from the index of " + before.substr(0, 12) + " (1 changed code file(s) parsed)"));
  CHECK_THAT(moved.out, Catch::Contains("refresh_session(): 4 call site(s) in 2 file(s)"));  // the update counted
  auto again = box.cli(explain_args(box, "medium"));
  REQUIRE(again.exit_code == 0);
  CHECK_THAT(again.out, Catch::Contains("read from the cache in "));
  CHECK_THAT(again.out, Catch::Contains("; it was updated from the index of " + before.substr(0, 12)));
}

TEST_CASE("route --explain --json carries the same decision and names the matching rule by line") {
  SingleBox box(kAuthRepo);
  auto args = explain_args(box, "high");
  args.push_back("--json");
  auto r = box.cli(args);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  auto j = nlohmann::json::parse(r.out);
  CHECK(j["total"] == 7);
  CHECK(j["dimensions"][1]["name"] == "fan_out");
  CHECK(j["dimensions"][1]["value"] == 1);
  CHECK(j["dimensions"][4]["value"] == 2);
  CHECK(j["plan"] == "strong");
  CHECK(j["because"] == "routing.yaml:13 (rule 3)");  // the default file's `risk: high` rule
  CHECK(j["rule"]["line"] == 13);
  CHECK(j["implementer"]["name"] == "claude");  // the rule's agent implements
  CHECK(j["reviewer"].is_null());               // strong: the strongest agent alone
}

TEST_CASE("route --explain refuses a URL and bad task flags and says what is wrong") {
  SingleBox box(kAuthRepo);
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<Case> cases{
      {{"route", "--explain", "t", "--repo", "https://example.com/app.git"}, "local path"},
      {{"route", "--explain", "t", "--repo", box.origin().string(), "--base", "nope"}, "no branch or commit 'nope'"},
      {{"route", "--explain", "t"}, "a repo is required"},
      {{"route", "t", "--repo", box.origin().string()}, "--explain"},
      {{"route", "--explain", "t", "--repo", box.origin().string(), "--agent", "gpt-99"}, "--agent"},
  };
  for (const auto& c : cases) {
    auto r = box.cli(c.args);
    INFO(r.err);
    CHECK(r.exit_code != 0);
    CHECK(r.out.empty());
    CHECK_THAT(r.err, Catch::Contains(c.says));
  }
}

TEST_CASE("config check passes the default files and lists shadowed rules and unknown agents with lines") {
  SingleBox box(kAuthRepo);
  auto clean = box.cli({"config", "check"});
  INFO(clean.err);
  CHECK(clean.exit_code == 0);
  CHECK_THAT(clean.out, Catch::Contains("consistent"));
  write_file(box.home() / "routing.yaml",
             "rules:\n  - match: {task_type: bugfix}\n    agent: codex\n"
             "  - match: {task_type: bugfix, risk: high}\n    agent: claude\n"
             "  - match: {labels: [docs]}\n    agent: gpt-99\n");
  auto bad = box.cli({"config", "check"});
  CHECK(bad.exit_code == 2);
  const std::string routing = (box.home() / "routing.yaml").string();
  CHECK_THAT(bad.out, Catch::Contains(routing + ":4: rule 2 can never match"));
  CHECK_THAT(bad.out, Catch::Contains(routing + ":6: rule 3 names agent 'gpt-99'"));
}
