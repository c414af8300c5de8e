// The complexity score: cut-offs, plan thresholds, signals from real fixture repositories, and
// the router's plans and score rules.
#include <catch2/catch.hpp>

#include <algorithm>

#include "coordinator/router.h"
#include "coordinator/scoring.h"
#include "test_support.h"

using namespace polyphony;
using polyphony::testing::TempDir;

namespace {

int value_of(const Score& s, Dimension d) {
  return s.dimensions[static_cast<size_t>(d)].value;
}

std::vector<KeywordHit> keywords(int n) {
  std::vector<KeywordHit> out;
  for (int i = 0; i < n; ++i) out.push_back({"k" + std::to_string(i), {"task"}});
  return out;
}

// A repository with one function called from two other files, auth and locking words, a
// comment that mentions the function, a declaration-only C header, and a binary file.
const std::map<std::string, std::string> kFixture{
    {"src/auth/session.py",
     "import threading\n\n_lock = threading.Lock()\n\n\ndef refresh_session(user):\n    with _lock:\n"
     "        if user.password_expired:\n            return None\n        return user.token\n"},
    {"src/app.py",
     "from auth.session import refresh_session\n\ndef handler(u):\n    s = refresh_session(u)\n"
     "    t = refresh_session(u)\n    return refresh_session(u) or s or t\n"},
    {"src/jobs.py",
     "# refresh_session(x) is not a call\ndef nightly(users):\n    for u in users:\n"
     "        refresh_session(u)\n    return [refresh_session (u) for u in users]\n"},
    {"c/parser.h", "int parse_header(const char* s);\n"},
    {"c/parser.c",
     "#include \"parser.h\"\nint parse_header(const char* s) {\n  if (s) {\n    return 1;\n  }\n  return 0;\n}\n"},
    {"c/main.c", "int main(void) {\n  int a = parse_header(\"x\");\n  return a + parse_header(\"y\");\n}\n"},
    {"docs/guide.md", "How sessions work.\n"},
    {"logo.png", std::string("\x89PNG\0\0binary", 12)},
};

TaskRequest refresh_task() {
  TaskRequest t;
  t.title = "Fix refresh_session token expiry";
  t.body = "The bug is in src/auth/session.py.";
  t.risk = "medium";
  return t;
}

const SymbolUse* symbol(const Signals& s, const std::string& name) {
  auto it = std::find_if(s.symbols.begin(), s.symbols.end(), [&](const SymbolUse& u) { return u.name == name; });
  return it == s.symbols.end() ? nullptr : &*it;
}

const KeywordHit* hit(const std::vector<KeywordHit>& hits, const std::string& k) {
  auto it = std::find_if(hits.begin(), hits.end(), [&](const KeywordHit& h) { return h.keyword == k; });
  return it == hits.end() ? nullptr : &*it;
}

void check_fixture_signals(const Signals& s) {
  const SymbolUse* refresh = symbol(s, "refresh_session");
  REQUIRE(refresh != nullptr);
  CHECK(refresh->call_sites == 5);  // 3 in app.py, 2 in jobs.py; the comment and import are not calls
  CHECK(refresh->files_calling == 2);
  CHECK(refresh->defined_in == std::vector<std::string>{"src/auth/session.py:6-10"});
  CHECK(refresh->why == "identifier in the task");
  REQUIRE(s.files.size() == 1);
  CHECK(s.files[0].path == "src/auth/session.py");
  CHECK(s.files[0].why == "named in the task");
  CHECK(s.files[0].lines_of_code == 7);
  CHECK(s.files[0].nesting == 3);
  for (const char* k : {"token", "session", "password"}) {
    INFO(k);
    CHECK(hit(s.security, k) != nullptr);
  }
  REQUIRE(hit(s.security, "token") != nullptr);
  CHECK(hit(s.security, "token")->found_in == std::vector<std::string>{"task", "src/auth/session.py (1)"});
  CHECK(hit(s.security, "token")->weight == kTaskKeywordWeight);
  CHECK(hit(s.security, "password")->weight == kCodeKeywordWeight);
  CHECK(hit(s.concurrency, "lock") != nullptr);
  CHECK(hit(s.concurrency, "threading") != nullptr);
  CHECK(s.scan_note == "1 binary file(s) skipped");
}

}  // namespace

TEST_CASE("each dimension steps from 0 to 1 to 2 exactly at its cut-offs") {
  ScoringPolicy p;
  p.lines_of_code = {150, 600};
  p.nesting = {4, 6};
  p.call_sites = {4, 12};
  p.security_keywords = {1, 3};
  p.concurrency_keywords = {1, 3};
  struct Case {
    Dimension dim;
    Signals signals;
    int expect;
  };
  auto fn = [](int lines, int nesting, int calls) {
    Signals s;
    s.symbols = {{"f", calls, 1, {"a.c:1-9"}, lines, nesting, 0, "in backticks"}};
    return s;
  };
  auto loc = [&](int n) { return fn(n, 0, 0); };
  auto nest = [&](int n) { return fn(1, n, 0); };
  auto calls = [&](int n) { return fn(1, 0, n); };
  auto sec = [](int n) {
    Signals s;
    s.security = keywords(n);
    return s;
  };
  auto conc = [](int n) {
    Signals s;
    s.concurrency = keywords(n);
    return s;
  };
  const std::vector<Case> cases{
      {Dimension::kCyclomaticDepth, loc(149), 0}, {Dimension::kCyclomaticDepth, loc(150), 1},
      {Dimension::kCyclomaticDepth, loc(599), 1}, {Dimension::kCyclomaticDepth, loc(600), 2},
      {Dimension::kCyclomaticDepth, nest(3), 0},  {Dimension::kCyclomaticDepth, nest(4), 1},
      {Dimension::kCyclomaticDepth, nest(5), 1},  {Dimension::kCyclomaticDepth, nest(6), 2},
      {Dimension::kFanOut, calls(3), 0},          {Dimension::kFanOut, calls(4), 1},
      {Dimension::kFanOut, calls(11), 1},         {Dimension::kFanOut, calls(12), 2},
      {Dimension::kSecurityBoundary, sec(0), 0},  {Dimension::kSecurityBoundary, sec(1), 1},
      {Dimension::kSecurityBoundary, sec(2), 1},  {Dimension::kSecurityBoundary, sec(3), 2},
      {Dimension::kConcurrency, conc(0), 0},      {Dimension::kConcurrency, conc(1), 1},
      {Dimension::kConcurrency, conc(2), 1},      {Dimension::kConcurrency, conc(3), 2},
  };
  for (const auto& c : cases) {
    const Score s = score(c.signals, p);
    INFO(dimension_name(c.dim) << " expecting " << c.expect);
    CHECK(value_of(s, c.dim) == c.expect);
    CHECK(s.total == c.expect);
  }
}

TEST_CASE("domain invariants come from the risk and the task type and are capped at 2") {
  struct Case {
    std::string risk, type;
    int expect;
  };
  const std::vector<Case> cases{
      {"", "", 0},          {"low", "feature", 0},     {"medium", "", 1},      {"high", "", 2},
      {"", "migration", 1}, {"medium", "security", 2}, {"high", "billing", 2}, {"low", "docs", 0},
      {"medium", "docs", 1}};
  for (const auto& c : cases) {
    Signals s;
    s.risk = c.risk;
    s.task_type = c.type;
    INFO(c.risk << "/" << c.type);
    CHECK(value_of(score(s, ScoringPolicy{}), Dimension::kDomainInvariants) == c.expect);
  }
}

TEST_CASE("cut-offs from routing.yaml replace the defaults") {
  ScoringPolicy p;
  p.call_sites = {2, 3};
  Signals s;
  s.symbols = {{"f", 2, 1, {"a.c:1"}, 1, 0, 0, "in backticks"}};
  CHECK(value_of(score(s, p), Dimension::kFanOut) == 1);
  s.symbols[0].call_sites = 3;
  CHECK(value_of(score(s, p), Dimension::kFanOut) == 2);
}

TEST_CASE("totals up to 3 are solo and 4 to 6 review and 7 and above strong") {
  const ScoringPolicy p;
  const std::vector<std::pair<int, Plan>> cases{{0, Plan::kSolo},   {3, Plan::kSolo},   {4, Plan::kReview},
                                                {6, Plan::kReview}, {7, Plan::kStrong}, {10, Plan::kStrong}};
  for (const auto& [total, plan] : cases) {
    INFO(total);
    CHECK(plan_for(total, p) == plan);
  }
  ScoringPolicy custom;
  custom.solo_max = 1;
  custom.review_max = 2;
  CHECK(plan_for(1, custom) == Plan::kSolo);
  CHECK(plan_for(2, custom) == Plan::kReview);
  CHECK(plan_for(3, custom) == Plan::kStrong);
}

TEST_CASE("the evidence names the definitions and counts and keywords behind each value") {
  Signals s;
  s.files = {{"src/auth.py", "code", 200, 2, "defines login()"}};
  s.symbols = {{"login", 5, 2, {"src/auth.py:10-40"}, 28, 3, 6, "written login()"}};
  s.security = {{"password", {"task", "src/auth.py (2)"}, kTaskKeywordWeight}};
  ScoringPolicy p;
  p.call_sites = {4, 12};
  p.security_keywords = {4, 8};
  const Score sc = score(s, p);
  const auto& depth = sc.dimensions[0].evidence;
  CHECK(std::find(depth.begin(), depth.end(),
                  "login(): src/auth.py:10-40, 28 lines, nesting 3, 6 branch(es) (written login())") != depth.end());
  const auto& fan = sc.dimensions[1].evidence;
  CHECK(std::find(fan.begin(), fan.end(), "login(): 5 call site(s) in 2 file(s)") != fan.end());
  CHECK(sc.dimensions[1].value == 1);
  const auto& sec = sc.dimensions[2].evidence;
  CHECK(std::find(sec.begin(), sec.end(), "'password' 4: task, src/auth.py (2)") != sec.end());
  CHECK(sc.dimensions[2].value == 1);
}

TEST_CASE("a password in the task outweighs lock in a comment") {
  const ScoringPolicy p;
  Signals password;
  password.security = {{"password", {"task"}, kTaskKeywordWeight}};
  Signals lock;
  lock.concurrency = {{"lock", {"a.c comments (1)"}, kCommentKeywordWeight}};
  CHECK(value_of(score(password, p), Dimension::kSecurityBoundary) > value_of(score(lock, p), Dimension::kConcurrency));
}

TEST_CASE("signals from a bare repository count callers and find keywords at a commit") {
  TempDir dir;
  testing::make_bare_repo(dir / "origin.git", kFixture);
  auto text = read_repo_at(dir / "origin.git", "main");
  REQUIRE(text.ok());
  CHECK(text->files.size() == kFixture.size() - 1);
  check_fixture_signals(collect_signals(refresh_task(), *text));
}

TEST_CASE("signals from a work tree equal those from the commit") {
  TempDir dir;
  for (const auto& [path, content] : kFixture) testing::write_file(dir / "wt" / path, content);
  testing::write_file(dir / "wt" / ".git" / "config", "refresh_session(x)\n");  // never scanned
  auto text = read_work_tree(dir / "wt");
  REQUIRE(text.ok());
  check_fixture_signals(collect_signals(refresh_task(), *text));
}

TEST_CASE("C declarations are neither definitions nor calls") {
  TempDir dir;
  testing::make_bare_repo(dir / "origin.git", kFixture);
  auto text = read_repo_at(dir / "origin.git", "HEAD");
  REQUIRE(text.ok());
  TaskRequest t;
  t.title = "Make parse_header reject empty input";
  const Signals s = collect_signals(t, *text);
  const SymbolUse* parse = symbol(s, "parse_header");
  REQUIRE(parse != nullptr);
  CHECK(parse->call_sites == 2);
  CHECK(parse->defined_in == std::vector<std::string>{"c/parser.c:2-7"});
  CHECK(parse->lines == 6);
  CHECK(parse->nesting == 2);
  CHECK(parse->branches == 1);
  REQUIRE(s.files.size() == 1);  // parser.h only declares it
  CHECK(s.files[0].path == "c/parser.c");
  CHECK(s.files[0].why == "defines parse_header()");
  CHECK(s.files[0].nesting == 2);
}

TEST_CASE("the scan skips large files and samples at the file cap") {
  TempDir dir;
  testing::make_bare_repo(dir / "origin.git", kFixture);
  ScanLimits limits;
  limits.max_file_bytes = 100;
  limits.max_files = 3;
  auto text = read_repo_at(dir / "origin.git", "main", limits);
  REQUIRE(text.ok());
  const auto large =
      std::count_if(kFixture.begin(), kFixture.end(), [](const auto& f) { return f.second.size() > 100; });
  REQUIRE(large >= 2);
  CHECK(text->skipped_large == large);
  CHECK(text->files.size() + static_cast<size_t>(text->skipped_binary) == 3);
  CHECK(text->skipped_over_cap == static_cast<int>(kFixture.size() - large) - 3);
  CHECK(text->unread_paths.size() == static_cast<size_t>(text->skipped_over_cap + text->skipped_large));
}

TEST_CASE("a repeated read at an unchanged branch is the same, and a new commit is read afresh") {
  TempDir dir;
  testing::make_bare_repo(dir / "origin.git", {{"a.txt", "one\n"}});
  auto first = read_repo_at(dir / "origin.git", "main");
  auto again = read_repo_at(dir / "origin.git", "main");
  REQUIRE(first.ok());
  REQUIRE(again.ok());
  CHECK(again->source == first->source);
  REQUIRE(again->files.size() == 1);
  CHECK(again->files[0].content == "one\n");
  // Other limits give their own read, not the cached one.
  ScanLimits none;
  none.max_files = 0;
  auto capped = read_repo_at(dir / "origin.git", "main", none);
  REQUIRE(capped.ok());
  CHECK(capped->files.empty());
  CHECK(capped->skipped_over_cap == 1);
  // The branch moves: the next read sees the new commit's files.
  testing::commit_to_bare(dir / "origin.git", {{"a.txt", "two\n"}, {"b.txt", "new\n"}}, "second");
  auto moved = read_repo_at(dir / "origin.git", "main");
  REQUIRE(moved.ok());
  CHECK(moved->source != first->source);
  REQUIRE(moved->files.size() == 2);
  CHECK(moved->files[0].content == "two\n");
}

TEST_CASE("a read from inside a work tree finds its repository, lists nested files and skips symlinks") {
  TempDir dir;
  const auto wt = dir / "wt";
  testing::write_file(wt / "src" / "deep" / "auth.py", "def login(user):\n    return check(user)\n");
  testing::write_file(wt / "README.md", "# readme\n");
  std::filesystem::create_symlink("src/deep/auth.py", wt / "link.py");
  testing::git(dir.path(), {"init", "-q", "-b", "main", wt.string()});
  testing::git(wt, {"add", "-A"});
  testing::git(wt, {"-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", "first"});
  // Uncommitted changes are not what a revision holds.
  testing::write_file(wt / "README.md", "# changed\n");
  auto text = read_repo_at(wt / "src", "main");
  REQUIRE(text.ok());
  REQUIRE(text->files.size() == 2);
  CHECK(text->files[0].path == "README.md");
  CHECK(text->files[0].content == "# readme\n");
  CHECK(text->files[1].path == "src/deep/auth.py");
  CHECK_THAT(text->source, Catch::Contains("main"));
}

TEST_CASE("an unknown revision is an error naming the repository and the revision") {
  TempDir dir;
  testing::make_bare_repo(dir / "origin.git", kFixture);
  auto text = read_repo_at(dir / "origin.git", "no-such-branch");
  REQUIRE_FALSE(text.ok());
  CHECK(text.error().code == "git");
  CHECK_THAT(text.error().message, Catch::Contains("no-such-branch") && Catch::Contains("origin.git"));
}

namespace {

std::map<std::string, AgentProfile> tiered_agents() {
  std::map<std::string, AgentProfile> a;
  for (const char* n : {"scripted", "kimi", "codex"}) a[n].name = n;
  a["claude"].name = "claude";
  a["claude"].tier = "strong";
  return a;
}

RoutingPolicy score_policy() {
  RoutingPolicy p;
  RouteRule high;
  high.match.score_min = 7;
  high.plan = Plan::kStrong;
  high.line = 3;
  RouteRule docs;
  docs.match.task_type = "docs";
  docs.agent = "kimi";
  docs.line = 5;
  RouteRule mid;
  mid.match.score_min = 4;
  mid.match.score_max = 6;
  mid.agent = "scripted";
  mid.plan = Plan::kReview;
  mid.line = 7;
  p.rules = {high, docs, mid};
  p.default_agent = "codex";
  p.fallback = {"claude", "kimi"};
  return p;
}

}  // namespace

TEST_CASE("without rules the score picks the plan at every threshold boundary") {
  RoutingPolicy p;
  p.default_agent = "codex";
  struct Case {
    int total;
    Plan plan;
    std::string agent, reviewer;
  };
  const std::vector<Case> cases{{0, Plan::kSolo, "codex", ""},         {3, Plan::kSolo, "codex", ""},
                                {4, Plan::kReview, "codex", "claude"}, {6, Plan::kReview, "codex", "claude"},
                                {7, Plan::kStrong, "claude", ""},      {10, Plan::kStrong, "claude", ""}};
  for (const auto& c : cases) {
    auto d = route(TaskRequest{}, p, tiered_agents(), c.total);
    REQUIRE(d.ok());
    INFO(c.total << ": " << d->plan_because);
    CHECK(d->plan == c.plan);
    CHECK(d->agent == c.agent);
    CHECK(d->reviewer == c.reviewer);
    CHECK(d->because == "default");
  }
}

TEST_CASE("score rules take part in first-match order") {
  struct Case {
    std::string type;
    std::optional<int> total;
    std::string because, agent, reviewer;
    Plan plan;
  };
  const std::vector<Case> cases{
      {"docs", 8, "routing.yaml:3 (rule 1)", "claude", "", Plan::kStrong},      // the score rule comes first
      {"docs", 5, "routing.yaml:5 (rule 2)", "kimi", "claude", Plan::kReview},  // rule's agent, score's plan
      {"docs", std::nullopt, "routing.yaml:5 (rule 2)", "kimi", "", Plan::kSolo},
      {"bugfix", 4, "routing.yaml:7 (rule 3)", "scripted", "claude", Plan::kReview},
      {"bugfix", 3, "default", "codex", "", Plan::kSolo},
      {"bugfix", std::nullopt, "default", "codex", "", Plan::kSolo},  // score rules need a score
  };
  for (const auto& c : cases) {
    TaskRequest t;
    t.task_type = c.type;
    auto d = route(t, score_policy(), tiered_agents(), c.total);
    REQUIRE(d.ok());
    INFO(c.type << " " << c.total.value_or(-1) << ": " << d->because << ", " << d->plan_because);
    CHECK(d->because == c.because);
    CHECK(d->agent == c.agent);
    CHECK(d->reviewer == c.reviewer);
    CHECK(d->plan == c.plan);
  }
}

TEST_CASE("a strong implementer is reviewed by a different agent") {
  RoutingPolicy p;
  p.default_agent = "claude";
  auto d = route(TaskRequest{}, p, tiered_agents(), 5);
  REQUIRE(d.ok());
  CHECK(d->agent == "claude");
  CHECK(d->plan == Plan::kReview);
  CHECK(d->reviewer == "codex");  // no other strong agent: the first other one by name
}

TEST_CASE("plans degrade and say why when the agents cannot staff them") {
  std::map<std::string, AgentProfile> only;
  only["codex"].name = "codex";
  RoutingPolicy p;
  p.default_agent = "codex";
  auto strong = route(TaskRequest{}, p, only, 9);
  REQUIRE(strong.ok());
  CHECK(strong->agent == "codex");
  CHECK_THAT(strong->plan_because, Catch::Contains("no agent has tier strong"));
  auto review = route(TaskRequest{}, p, only, 5);
  REQUIRE(review.ok());
  CHECK(review->plan == Plan::kSolo);
  CHECK_THAT(review->plan_because, Catch::Contains("no second agent"));
}
