// GitHub mode against the stand-in GitHub REST server, through the real GhClient running the
// real `gh`: every assertion is about the HTTP requests GitHub would have received. A fake clock
// drives polls and back-off.
#include <catch2/catch.hpp>

#include <ctime>
#include <map>
#include <tuple>

#include "coordinator/gh_client.h"
#include "coordinator/github_source.h"
#include "fake_github/fake_github.h"
#include "test_support.h"

using namespace polyphony;
using namespace polyphony::testing;
using nlohmann::json;

namespace {

// A state DB, settings with github: acme/widgets on the stand-in server, and a source on gh.
struct Harness {
  TempDir dir{"polyphony-gh-source"};
  FakeGithub github;
  Settings settings;
  std::optional<StateStore> store;
  int64_t clock_ms = static_cast<int64_t>(std::time(nullptr)) * 1000;

  explicit Harness(const std::function<void(GithubConfig&)>& tweak = {}) {
    auto s = load_settings(dir.path());
    REQUIRE(s.ok());
    settings = *s;
    settings.config.state_db = dir / "state.db";
    GithubConfig& g = settings.config.github;
    g = github.config();
    g.remote = "/srv/git/widgets.git";
    g.poll_interval_ms = 1000;
    if (tweak) tweak(g);
    auto st = StateStore::open(settings.config.state_db);
    REQUIRE(st.ok());
    store.emplace(std::move(*st));
  }

  std::unique_ptr<GithubSource> source() {
    auto s = GithubSource::open(settings, make_gh_cli(settings.config.github), [this] { return clock_ms; });
    REQUIRE(s.ok());
    return std::move(*s);
  }

  // One coordinator round: poll (when due), then report and send.
  std::vector<GithubCancel> round(GithubSource& s) {
    auto cancels = s.sync(*store);
    s.report(*store);
    return cancels;
  }

  Task task(int64_t number) {
    auto t = store->get(github_task_id("acme/widgets", number));
    REQUIRE(t.ok());
    REQUIRE(t->has_value());
    return **t;
  }

  // Walks the task to `last` the way a worker's reports would.
  void walk(int64_t number, const std::vector<TaskState>& path, TransitionUpdate last = {}) {
    const std::string id = github_task_id("acme/widgets", number);
    TaskState at = task(number).state;
    for (TaskState to : path) {
      TransitionUpdate u;
      if (to == TaskState::kRouted) {
        u.attempt = 1;
        u.agent = "scripted";
        u.branch = "polyphony/" + id + "-fix";
        u.worker = "w1";
        u.reason = "agent scripted (default), worker w1";
      }
      if (to == TaskState::kVerifying) u.reason = "make test";
      if (to == path.back()) {
        if (last.reason) u.reason = last.reason;
        u.failure_kind = last.failure_kind;
        u.commit = last.commit;
      }
      REQUIRE(store->transition(id, at, to, u, clock_ms).ok());
      at = to;
    }
  }
};

const std::vector<TaskState> kToVerifying{TaskState::kClaimed, TaskState::kRouted, TaskState::kProvisioned,
                                          TaskState::kRunning, TaskState::kVerifying};

}  // namespace

TEST_CASE("gh api -i output parses into status, headers and body, and Link gives the next page") {
  auto r = parse_gh_include_output(
      "HTTP/2.0 200 OK\r\nEtag: W/\"abc\"\r\nLink: <https://api.github.com/repositories/"
      "4242/issues?state=open&page=2>; rel=\"next\", <https://api.github.com/repositories/"
      "4242/issues?state=open&page=3>; rel=\"last\"\r\n\r\n[1,2]");
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->header("etag") == "W/\"abc\"");
  CHECK(r->body == "[1,2]");
  CHECK(next_page_path(r->header("link")) == "https://api.github.com/repositories/4242/issues?state=open&page=2");
  // On GitHub Enterprise the path starts with /api/v3/, which gh adds to a path: the URL is kept whole.
  CHECK(next_page_path("<https://ghe.example.com/api/v3/repositories/7/issues?page=2>; rel=\"next\"") ==
        "https://ghe.example.com/api/v3/repositories/7/issues?page=2");
  GhRequest list;
  list.path = "repos/o/r/issues?state=open";
  list.headers["If-None-Match"] = "W/\"abc\"";
  CHECK(gh_api_argv(list) == std::vector<std::string>{"api", "--method", "GET", "repos/o/r/issues?state=open", "-i",
                                                      "-H", "Accept: application/vnd.github+json", "-H",
                                                      "If-None-Match: W/\"abc\""});
  list.json_body = "{}";
  CHECK(gh_api_argv(list).back() == "-");  // the JSON body goes through stdin, never a shell
  CHECK(next_page_path("<https://api.github.com/x?page=1>; rel=\"prev\"").empty());
  CHECK_FALSE(parse_gh_include_output("gh: not logged in"));
  CHECK(classify_gh_failure(4, "To get started with GitHub CLI, please run:  gh auth login").code == "auth");
  CHECK(classify_gh_failure(1, "error connecting to api.github.com").code == "network");
  CHECK(parse_issue_ref("acme/widgets#12")->number == 12);
  CHECK_FALSE(parse_issue_ref("acme/widgets#x").ok());
  CHECK_FALSE(parse_issue_ref("widgets#3").ok());
}

TEST_CASE("the real gh against the stand-in server: 304 Not Modified to a matching If-None-Match") {
  FakeGithub github;
  github.add_issue(7, "Fix the pager", "It skips a line.", {"polyphony"});
  auto gh = make_gh_cli(github.config());
  GhRequest req;
  req.path = "repos/acme/widgets/issues?labels=polyphony&state=open&per_page=100";
  auto first = gh->api(req);
  REQUIRE(first.ok());
  REQUIRE(first->status == 200);
  REQUIRE_FALSE(first->header("etag").empty());
  req.headers["If-None-Match"] = first->header("etag");
  auto second = gh->api(req);
  REQUIRE(second.ok());
  CHECK(second->status == 304);
  CHECK(second->body.empty());
}

TEST_CASE("an open labelled issue becomes one task, claimed on GitHub with a label and a comment") {
  Harness h;
  h.github.add_issue(7, "Fix the pager", "It skips a line.", {"polyphony", "type:bugfix", "risk:high"});
  h.github.add_issue(8, "Not for us", "", {"question"});
  auto source = h.source();
  h.round(*source);

  const Task t = h.task(7);
  CHECK(t.state == TaskState::kDiscovered);
  CHECK(t.request.title == "Fix the pager");
  CHECK(t.request.body == "It skips a line.\n\nGitHub issue: https://" + h.github.host() + "/acme/widgets/issues/7\n");
  CHECK(t.request.task_type == "bugfix");
  CHECK(t.request.risk == "high");
  CHECK(t.request.repo == "/srv/git/widgets.git");
  CHECK(t.request.source == "github");
  CHECK(h.store->list()->size() == 1);

  // The real calls: one list, one label, one comment.
  auto lists = h.github.calls_to("GET", "repos/acme/widgets/issues?");
  REQUIRE(lists.size() == 1);
  CHECK(lists[0]["path"] == "repos/acme/widgets/issues?labels=polyphony&state=open&per_page=100");
  CHECK(lists[0]["headers"]["Accept"] == "application/vnd.github+json");
  auto labels = h.github.calls_to("POST", "repos/acme/widgets/issues/7/labels");
  REQUIRE(labels.size() == 1);
  CHECK(json::parse(labels[0]["body"].get<std::string>()) == json{{"labels", {"polyphony:claimed"}}});
  REQUIRE(h.github.calls_to("POST", "repos/acme/widgets/issues/7/comments").size() == 1);

  // Visible on GitHub.
  bool claimed = false;
  const json issue = h.github.issue(7);
  for (const auto& l : issue["labels"]) claimed |= l["name"] == "polyphony:claimed";
  CHECK(claimed);
  auto comments = h.github.comments(7);
  REQUIRE(comments.size() == 1);
  CHECK_THAT(comments[0]["body"].get<std::string>(), Catch::Contains(t.request.id));

  // The claim changed the issue (a label), not the ask: the task keeps its labels.
  h.clock_ms += 1000;
  h.round(*source);
  CHECK(h.task(7).request.labels == std::vector<std::string>{"polyphony", "type:bugfix", "risk:high"});
}

TEST_CASE("a restart never claims an issue twice nor makes a second task for it") {
  Harness h;
  h.github.add_issue(7, "Fix the pager", "", {"polyphony"});
  {
    auto first = h.source();
    h.round(*first);
  }
  h.clock_ms += 5000;
  auto second = h.source();  // a new coordinator life on the same state DB
  h.round(*second);
  h.clock_ms += 5000;
  h.round(*second);
  CHECK(h.github.calls_to("GET", "repos/acme/widgets/issues?").size() == 3);
  CHECK(h.github.calls_to("POST", "repos/acme/widgets/issues/7/labels").size() == 1);
  CHECK(h.github.calls_to("POST", "repos/acme/widgets/issues/7/comments").size() == 1);
  CHECK(h.store->list()->size() == 1);
  CHECK(h.github.comments(7).size() == 1);
}

TEST_CASE("an issue claimed by someone else is left alone") {
  Harness h;
  h.github.add_issue(3, "Theirs", "", {"polyphony", "polyphony:claimed"});
  auto source = h.source();
  h.round(*source);
  CHECK(h.store->list()->empty());
  CHECK(h.github.calls_to("POST", "repos/").empty());
}

TEST_CASE("the list is read page by page through Link headers, and an unchanged list is asked with If-None-Match") {
  Harness h;
  h.github.page_size(2);
  for (int n = 1; n <= 5; ++n) h.github.add_issue(n, "Issue " + std::to_string(n), "", {"polyphony"});
  auto source = h.source();
  h.round(*source);
  CHECK(h.store->list()->size() == 5);
  auto lists = h.github.calls();
  REQUIRE(lists.size() >= 3);  // page 1 by name, pages 2 and 3 as GitHub's Link names them
  CHECK(lists[0]["path"] == "repos/acme/widgets/issues?labels=polyphony&state=open&per_page=100");
  CHECK(lists[1]["path"] == "repositories/4242/issues?labels=polyphony&state=open&per_page=100&page=2");
  CHECK(lists[2]["path"] == "repositories/4242/issues?labels=polyphony&state=open&per_page=100&page=3");

  h.clock_ms += 1000;
  h.round(*source);  // the claims changed the issues: fresh pages
  h.github.clear_calls();
  h.clock_ms += 1000;
  h.round(*source);
  auto again = h.github.calls();
  REQUIRE(again.size() == 3);
  for (const auto& c : again) {
    CHECK_THAT(c["headers"].value("If-None-Match", ""), Catch::StartsWith("W/\""));
    CHECK(c["status"] == 304);
  }
  CHECK(h.store->list()->size() == 5);
  CHECK(source->health().state == "ok");
}

TEST_CASE("closing, deleting or unlabelling an issue cancels its unfinished task with the reason") {
  Harness h;
  h.github.add_issue(1, "One", "", {"polyphony"});
  h.github.add_issue(2, "Two", "", {"polyphony"});
  h.github.add_issue(3, "Three", "", {"polyphony"});
  h.github.add_issue(4, "Four", "", {"polyphony"});
  auto source = h.source();
  h.round(*source);
  h.walk(1, {TaskState::kClaimed, TaskState::kRouted, TaskState::kProvisioned, TaskState::kRunning});
  h.github.close_issue(1);
  h.github.delete_issue(2);
  h.github.remove_label(3, "polyphony");
  h.clock_ms += 1000;
  auto cancels = source->sync(*h.store);
  std::map<std::string, std::string> why;
  for (const auto& c : cancels) why[c.task_id] = c.reason;
  CHECK(why.size() == 3);
  CHECK(why[github_task_id("acme/widgets", 1)] == "GitHub issue acme/widgets#1 was closed");
  CHECK(why[github_task_id("acme/widgets", 2)] == "GitHub issue acme/widgets#2 was deleted");
  CHECK(why[github_task_id("acme/widgets", 3)] == "GitHub issue acme/widgets#3 lost its label polyphony");
  CHECK(h.github.calls_to("GET", "repos/acme/widgets/issues/1").size() == 1);
}

TEST_CASE("an issue edited before its run starts updates the task, and after it the run keeps what it was given") {
  Harness h;
  h.github.add_issue(1, "Old title", "old body", {"polyphony"});
  h.github.add_issue(2, "Running", "as given", {"polyphony"});
  auto source = h.source();
  h.round(*source);
  h.walk(2, {TaskState::kClaimed, TaskState::kRouted});
  h.github.edit_issue(1, "New title", "new body");
  h.github.edit_issue(2, "Changed", "changed");
  h.clock_ms += 1000;
  h.round(*source);
  CHECK(h.task(1).request.title == "New title");
  CHECK_THAT(h.task(1).request.body, Catch::StartsWith("new body\n"));
  CHECK(h.task(2).request.title == "Running");
}

TEST_CASE("a LANDED task opens a pull request that closes the issue, then comments with its link") {
  Harness h([](GithubConfig& g) { g.auto_merge = "squash"; });
  h.github.add_issue(7, "Fix the pager", "", {"polyphony"});
  auto source = h.source();
  h.round(*source);
  TransitionUpdate landed;
  landed.reason = "pushed 0123456789ab to polyphony/x";
  landed.commit = std::string(40, 'a');
  h.walk(7,
         {TaskState::kClaimed, TaskState::kRouted, TaskState::kProvisioned, TaskState::kRunning, TaskState::kVerifying,
          TaskState::kLanded},
         landed);
  source->report(*h.store);
  source->report(*h.store);  // idempotent

  auto pulls = h.github.calls_to("POST", "repos/acme/widgets/pulls");
  REQUIRE(pulls.size() == 1);
  json body = json::parse(pulls[0]["body"].get<std::string>());
  const std::string id = github_task_id("acme/widgets", 7);
  CHECK(body["title"] == "Fix the pager");
  CHECK(body["head"] == "polyphony/" + id + "-fix");
  CHECK(body["base"] == "main");  // GitHub's default branch, asked once
  CHECK(h.github.calls_to("GET", "repos/acme/widgets").size() >= 1);
  const std::string text = body["body"];
  CHECK_THAT(text, Catch::StartsWith("Closes #7\n"));
  CHECK_THAT(text, Catch::Contains("Agent: scripted") && Catch::Contains("Plan: ") &&
                       Catch::Contains("Score: not computed") && Catch::Contains("Verify: `make test` passed") &&
                       Catch::Contains(std::string(40, 'a')));
  REQUIRE(h.github.pulls().size() == 1);
  const std::string pr_url = h.github.pulls()[0]["html_url"];
  auto comments = h.github.comments(7);
  REQUIRE(comments.size() == 2);
  CHECK_THAT(comments[1]["body"].get<std::string>(), Catch::Contains("LANDED") && Catch::Contains(pr_url));
  auto merges = h.github.calls_to("PUT", "repos/acme/widgets/pulls/");
  REQUIRE(merges.size() == 1);
  CHECK(json::parse(merges[0]["body"].get<std::string>()) == json{{"merge_method", "squash"}});
  CHECK(h.github.pulls()[0]["merged"] == true);
  CHECK(*read_github_pull_url(h.settings.config.state_db, id) == pr_url);
}

TEST_CASE("a pull request already open for the branch is adopted, not opened twice") {
  Harness h;
  h.github.add_issue(7, "Fix the pager", "", {"polyphony"});
  auto source = h.source();
  h.round(*source);
  const std::string id = github_task_id("acme/widgets", 7);
  // Opened by an earlier life that crashed before recording it.
  auto gh = make_gh_cli(h.settings.config.github);
  GhRequest req;
  req.method = "POST";
  req.path = "repos/acme/widgets/pulls";
  req.json_body = json{{"title", "x"}, {"head", "polyphony/" + id + "-fix"}, {"base", "main"}}.dump();
  REQUIRE(gh->api(req)->status == 201);
  h.walk(7, {TaskState::kClaimed, TaskState::kRouted, TaskState::kProvisioned, TaskState::kRunning,
             TaskState::kVerifying, TaskState::kLanded});
  source->report(*h.store);
  CHECK(h.github.pulls().size() == 1);
  CHECK(h.github.calls_to("GET", "repos/acme/widgets/pulls?head=acme%3Apolyphony%2F" + id + "-fix&state=all").size() ==
        1);
  CHECK(*read_github_pull_url(h.settings.config.state_db, id) == h.github.pulls()[0]["html_url"].get<std::string>());
}

TEST_CASE("FAILED and BLOCKED are reported on the issue with the reason, once each") {
  Harness h;
  h.github.add_issue(7, "Fix the pager", "", {"polyphony"});
  auto source = h.source();
  h.round(*source);
  TransitionUpdate failed;
  failed.reason = "verify `make test` exited with status 2";
  failed.failure_kind = "verify";
  h.walk(7,
         {TaskState::kClaimed, TaskState::kRouted, TaskState::kProvisioned, TaskState::kRunning, TaskState::kVerifying,
          TaskState::kFailed},
         failed);
  source->report(*h.store);
  source->report(*h.store);
  auto comments = h.github.comments(7);
  REQUIRE(comments.size() == 2);
  CHECK_THAT(comments[1]["body"].get<std::string>(),
             Catch::Contains("FAILED") && Catch::Contains("(verify)") && Catch::Contains("exited with status 2"));
  TransitionUpdate blocked;
  blocked.reason = "gave up after 3 attempts";
  REQUIRE(
      h.store
          ->transition(github_task_id("acme/widgets", 7), TaskState::kFailed, TaskState::kBlocked, blocked, h.clock_ms)
          .ok());
  source->report(*h.store);
  comments = h.github.comments(7);
  REQUIRE(comments.size() == 3);
  CHECK_THAT(comments[2]["body"].get<std::string>(),
             Catch::Contains("BLOCKED") && Catch::Contains("gave up after 3 attempts"));
}

TEST_CASE("a 403 rate limit backs off until the reset time, is recorded for status, and loses nothing") {
  Harness h;
  h.github.add_issue(7, "Fix the pager", "", {"polyphony"});
  const int64_t reset_s = h.clock_ms / 1000 + 600;
  h.github.rate_limit_until(reset_s);
  auto source = h.source();
  h.round(*source);
  CHECK(h.store->list()->empty());
  CHECK(h.github.calls().size() == 1);
  auto health = source->health();
  CHECK(health.state == "rate_limited");
  CHECK(health.until_ms == reset_s * 1000 + 1000);
  CHECK_THAT(health.message, Catch::Contains("rate limit") && Catch::Contains("403"));
  auto recorded = read_github_health(h.settings.config.state_db);
  REQUIRE(recorded.ok());
  REQUIRE(recorded->has_value());
  CHECK((*recorded)->state == "rate_limited");

  // No call at all before the reset, however often the coordinator asks, even after a restart.
  for (int i = 0; i < 5; ++i) {
    h.clock_ms += 60 * 1000;
    h.round(*source);
  }
  auto restarted = h.source();
  h.round(*restarted);
  CHECK(h.github.calls().size() == 1);

  h.github.rate_limit_until(0);
  h.clock_ms = reset_s * 1000 + 1000;
  h.round(*restarted);
  CHECK(h.store->list()->size() == 1);
  CHECK(restarted->health().state == "ok");
  CHECK(h.github.calls_to("POST", "repos/acme/widgets/issues/7/labels").size() == 1);
}

TEST_CASE("a rate limit while reporting keeps the report queued and sends it once after the reset") {
  Harness h;
  h.github.add_issue(7, "Fix the pager", "", {"polyphony"});
  auto source = h.source();
  h.round(*source);
  h.walk(7, {TaskState::kClaimed, TaskState::kRouted, TaskState::kProvisioned, TaskState::kRunning,
             TaskState::kVerifying, TaskState::kLanded});
  const int64_t reset_s = h.clock_ms / 1000 + 120;
  h.github.rate_limit_until(reset_s);
  source->report(*h.store);
  CHECK(h.github.pulls().empty());
  h.github.rate_limit_until(0);
  h.clock_ms = reset_s * 1000 + 1000;
  source->report(*h.store);
  source->report(*h.store);
  CHECK(h.github.pulls().size() == 1);
  CHECK(h.github.comments(7).size() == 2);
}

TEST_CASE("gh not logged in or GitHub unreachable is reported, and retried with a growing back-off") {
  Harness h;
  h.github.add_issue(7, "Fix the pager", "", {"polyphony"});
  h.github.fail("auth");
  auto source = h.source();
  h.round(*source);
  // The real gh sends an enterprise host's call without a token when it has none: a 401.
  CHECK(source->health().state == "error");
  CHECK_THAT(source->health().message, Catch::Contains("gh auth login --hostname " + h.github.host()) &&
                                           Catch::Contains("GH_ENTERPRISE_TOKEN") && Catch::Contains("401"));
  CHECK(h.github.calls()[0]["status"] == 401);
  h.clock_ms += 500;  // within the first wait (one poll interval): no call
  h.round(*source);
  CHECK(h.github.calls().size() == 1);
  h.github.fail("network");
  h.clock_ms += 500;
  h.round(*source);  // gh ran and could not connect: nothing reached the server
  CHECK(h.github.calls().size() == 1);
  CHECK_THAT(source->health().message, Catch::Contains("cannot be reached") && Catch::Contains("connection refused"));
  h.github.fail("");
  h.clock_ms += 1000;  // the second wait is twice as long
  h.round(*source);
  CHECK(h.github.calls().size() == 1);
  h.clock_ms += 1000;
  h.round(*source);
  CHECK(source->health().state == "ok");
  CHECK(h.store->list()->size() == 1);
}

TEST_CASE("spawn --issue adopts an unlabelled issue, labelling and claiming it, once") {
  Harness h;
  h.github.add_issue(9, "Do this one", "", {});
  auto source = h.source();
  auto id = source->adopt(*h.store, 9);
  REQUIRE(id.ok());
  CHECK(*id == github_task_id("acme/widgets", 9));
  CHECK(*source->adopt(*h.store, 9) == *id);
  auto labels = h.github.calls_to("POST", "repos/acme/widgets/issues/9/labels");
  REQUIRE(labels.size() == 1);
  CHECK(json::parse(labels[0]["body"].get<std::string>()) == json{{"labels", {"polyphony", "polyphony:claimed"}}});
  // Now labelled, it stays a task on the next poll rather than being cancelled.
  h.clock_ms += 1000;
  CHECK(h.round(*source).empty());
  CHECK(h.store->list()->size() == 1);
  CHECK(source->adopt(*h.store, 404).error().code == "not_found");
}

TEST_CASE("a label, comment, pull request or merge sent just before a crash is found on GitHub and not sent again") {
  Harness h([](GithubConfig& g) { g.auto_merge = "merge"; });
  h.github.add_issue(7, "Fix the pager", "", {"polyphony"});
  auto source = h.source();
  h.round(*source);
  h.walk(7, {TaskState::kClaimed, TaskState::kRouted, TaskState::kProvisioned, TaskState::kRunning,
             TaskState::kVerifying, TaskState::kLanded});
  source->report(*h.store);
  REQUIRE(h.github.comments(7).size() == 2);
  // The sends happened, but their outcome was never recorded (a kill -9 in between).
  {
    auto db = Database::open(h.settings.config.state_db, kStateDbApplicationId, false);
    REQUIRE(db.ok());
    REQUIRE(db->exec("UPDATE github_outbox SET done=0").ok());
    REQUIRE(db->exec("UPDATE github_issues SET pr_number=0, pr_url=''").ok());
  }
  h.github.page_size(1);  // one comment a page: the second is found through the Link header
  auto restarted = h.source();
  restarted->report(*h.store);
  CHECK(h.github.comments(7).size() == 2);
  CHECK(h.github.calls_to("GET", "repositories/4242/issues/7/comments?per_page=100&page=2").size() == 1);
  CHECK(h.github.calls_to("POST", "repos/acme/widgets/issues/7/comments").size() == 2);
  CHECK(h.github.calls_to("PUT", "repos/acme/widgets/pulls/").size() == 1);
  CHECK(h.github.calls_to("POST", "repos/acme/widgets/issues/7/labels").size() == 1);
  CHECK(h.github.calls_to("POST", "repos/acme/widgets/pulls").size() == 1);
  CHECK(h.github.pulls().size() == 1);
  CHECK(h.github.calls_to("GET", "repos/acme/widgets/issues/7/comments?per_page=100").size() == 2);
  CHECK_THAT(h.github.comments(7)[0]["body"].get<std::string>(),
             Catch::EndsWith("<!-- polyphony:claim-comment:acme/widgets#7 -->"));
}

namespace {

// The outbox row of `kind`: {done, last_error}.
std::pair<int64_t, std::string> outbox_row(const Harness& h, const std::string& kind) {
  auto db = Database::open(h.settings.config.state_db, kStateDbApplicationId, false, true);
  REQUIRE(db.ok());
  auto st = db->prepare("SELECT done, last_error FROM github_outbox WHERE kind=?");
  REQUIRE(st.ok());
  st->bind(1, kind);
  auto row = st->step();
  REQUIRE(row.ok());
  REQUIRE(*row);
  return {st->int64(0), st->text(1)};
}

const std::vector<TaskState> kToLanded{TaskState::kClaimed, TaskState::kRouted,    TaskState::kProvisioned,
                                       TaskState::kRunning, TaskState::kVerifying, TaskState::kLanded};

}  // namespace

TEST_CASE("a pull request in the issues list, even with the trigger label, never becomes a task") {
  Harness h;
  h.github.add_issue(7, "Fix the pager", "", {"polyphony"});
  h.github.add_pull(8, "Someone's change", "feature", {"polyphony"});
  auto source = h.source();
  h.round(*source);
  auto listed = h.github.calls_to("GET", "repos/acme/widgets/issues?");
  REQUIRE(listed.size() == 1);
  CHECK(listed[0]["status"] == 200);
  CHECK(h.store->list()->size() == 1);
  CHECK(h.task(7).request.title == "Fix the pager");
  CHECK(h.github.calls_to("POST", "repos/acme/widgets/issues/8").empty());
  auto adopted = source->adopt(*h.store, 8);
  REQUIRE_FALSE(adopted.ok());
  CHECK_THAT(adopted.error().message, Catch::Contains("is a pull request"));
}

TEST_CASE("a secondary rate limit (403 or 429 with Retry-After) backs off for exactly that long") {
  const int status = GENERATE(403, 429);
  Harness h;
  h.github.add_issue(7, "Fix the pager", "", {"polyphony"});
  h.github.fail_next("GET repos/acme/widgets/issues?", status, 1, 120);
  auto source = h.source();
  h.round(*source);
  CHECK(h.store->list()->empty());
  CHECK(source->health().state == "rate_limited");
  CHECK(source->health().until_ms == h.clock_ms + 120 * 1000);
  CHECK_THAT(source->health().message,
             Catch::Contains("secondary rate limit") && Catch::Contains("HTTP " + std::to_string(status)));
  h.clock_ms += 119 * 1000;
  h.round(*source);
  CHECK(h.github.calls().size() == 1);
  h.clock_ms += 1000;
  h.round(*source);
  CHECK(h.store->list()->size() == 1);
  CHECK(source->health().state == "ok");
}

TEST_CASE("a 5xx answer (JSON or GitHub's HTML page) backs off, and the next poll recovers") {
  const int status = GENERATE(500, 502);
  Harness h;
  h.github.add_issue(7, "Fix the pager", "", {"polyphony"});
  h.github.fail_next("GET repos/acme/widgets/issues?", status);
  auto source = h.source();
  h.round(*source);
  CHECK(source->health().state == "error");
  CHECK_THAT(source->health().message, Catch::Contains("GitHub answered HTTP " + std::to_string(status)));
  CHECK(h.store->list()->empty());
  h.clock_ms += 1000;
  h.round(*source);
  CHECK(source->health().state == "ok");
  CHECK(h.store->list()->size() == 1);
}

TEST_CASE("a renamed repository is followed: gh follows 301 for reads, GhClient follows 307 for writes") {
  Harness h;
  h.github.add_issue(7, "Fix the pager", "", {"polyphony"});
  h.github.move_repo("acme/gadgets");
  auto source = h.source();
  h.round(*source);
  REQUIRE(h.store->list()->size() == 1);
  auto list = h.github.calls_to("GET", "repos/acme/widgets/issues?");
  REQUIRE(list.size() == 1);
  CHECK(list[0]["status"] == 301);
  CHECK(h.github.calls_to("GET", "repositories/4242/issues?").size() == 1);
  auto label = h.github.calls_to("POST", "repos/acme/widgets/issues/7/labels");
  REQUIRE(label.size() == 1);
  CHECK(label[0]["status"] == 307);
  auto moved = h.github.calls_to("POST", "repositories/4242/issues/7/labels");
  REQUIRE(moved.size() == 1);
  CHECK(moved[0]["status"] == 200);
  CHECK(moved[0]["body"] == label[0]["body"]);
  CHECK(h.github.comments(7).size() == 1);
  CHECK(source->health().state == "ok");
}

TEST_CASE("a merge GitHub refuses (405 not mergeable, 409 head modified) fails for good with its words, once") {
  const auto [status, words] =
      GENERATE(table<int, std::string>({{405, "Pull Request is not mergeable"}, {409, "Head branch was modified"}}));
  Harness h([](GithubConfig& g) { g.auto_merge = "merge"; });
  h.github.add_issue(7, "Fix the pager", "", {"polyphony"});
  h.github.fail_next("PUT repos/acme/widgets/pulls/", status);
  auto source = h.source();
  h.round(*source);
  h.walk(7, kToLanded);
  source->report(*h.store);
  source->report(*h.store);
  CHECK(h.github.calls_to("PUT", "repos/acme/widgets/pulls/").size() == 1);
  CHECK(h.github.pulls()[0]["merged"] == false);
  const auto [done, error] = outbox_row(h, "merge");
  CHECK(done == 2);
  CHECK_THAT(error, Catch::Contains("HTTP " + std::to_string(status)) && Catch::Contains(words));
  CHECK(h.github.comments(7).size() == 2);  // the landing is still reported
  CHECK(source->health().state == "ok");
}

TEST_CASE("a 422 opening the pull request, with no open one to adopt, fails for good with GitHub's validation words") {
  Harness h;
  h.github.add_issue(7, "Fix the pager", "", {"polyphony"});
  h.github.fail_next("POST repos/acme/widgets/pulls", 422);
  auto source = h.source();
  h.round(*source);
  h.walk(7, kToLanded);
  source->report(*h.store);
  source->report(*h.store);
  CHECK(h.github.pulls().empty());
  CHECK(h.github.calls_to("POST", "repos/acme/widgets/pulls").size() == 1);
  const auto [done, error] = outbox_row(h, "pull");
  CHECK(done == 2);
  CHECK_THAT(error, Catch::Contains("HTTP 422 Validation Failed; body is too long") &&
                        Catch::Contains("; PullRequest.base invalid"));
}

TEST_CASE("the real gh exits 1 on a 4xx yet prints the answer, which is read with its headers") {
  Harness h;
  auto gh = make_gh_cli(h.settings.config.github);
  GhRequest req;
  req.method = "POST";
  req.path = "repos/acme/widgets/pulls";
  req.json_body = json{{"head", "x"}, {"base", "main"}}.dump();
  auto r = gh->api(req);
  REQUIRE(r.ok());
  CHECK(r->status == 422);
  CHECK(json::parse(r->body)["errors"][0]["code"] == "missing_field");
  CHECK(r->header("x-ratelimit-remaining") == "4999");  // gh prints it as X-Ratelimit-Remaining
}

TEST_CASE("a GitHub call's endpoint kind keeps the method and the path's shape, never its numbers or names") {
  const std::vector<std::tuple<std::string, std::string, std::string>> cases{
      {"GET", "repos/acme/widgets/issues?labels=polyphony&state=open&per_page=100", "GET issues"},
      {"GET", "https://api.github.com/repositories/123/issues?page=2", "GET issues"},
      {"GET", "https://ghe.example.com/api/v3/repos/acme/widgets/issues?page=3", "GET issues"},
      {"GET", "repos/acme/widgets/issues/7", "GET issues/{n}"},
      {"POST", "repos/acme/widgets/issues/7/comments", "POST issues/{n}/comments"},
      {"POST", "repos/acme/widgets/issues/7/labels", "POST issues/{n}/labels"},
      {"PUT", "repos/acme/widgets/pulls/12/merge", "PUT pulls/{n}/merge"},
      {"GET", "repos/acme/widgets/pulls?head=acme%3Apolyphony%2Fx&state=open", "GET pulls"},
      {"GET", "repos/acme/widgets", "GET repo"},
      {"DELETE", "repos/acme/widgets/issues/7/labels/polyphony:claimed", "DELETE other"},
      {"GET", "user", "GET other"},
  };
  for (const auto& [method, path, kind] : cases) {
    INFO(method << " " << path);
    CHECK(github_endpoint_kind(method, path) == kind);
  }
}

TEST_CASE("every GitHub call is counted by endpoint kind and status, with the rate limit GitHub last reported") {
  Harness h;
  h.github.add_issue(7, "Fix the pager", "", {"polyphony"});
  auto source = h.source();
  h.round(*source);
  REQUIRE(h.store->list()->size() == 1);
  auto usage = read_github_usage(h.settings.config.state_db);
  REQUIRE(usage.ok());
  std::map<std::pair<std::string, std::string>, int64_t> counted;
  int64_t total = 0;
  for (const auto& c : usage->calls) {
    counted[{c.endpoint, c.status}] = c.count;
    total += c.count;
  }
  CHECK(total == static_cast<int64_t>(h.github.calls().size()));
  CHECK(counted[{"GET issues", "200"}] == 1);
  CHECK(counted[{"POST issues/{n}/labels", "200"}] == 1);
  CHECK(counted[{"POST issues/{n}/comments", "201"}] == 1);
  REQUIRE(usage->rate_limits.size() == 1);
  CHECK(usage->rate_limits[0].resource == "core");
  CHECK(usage->rate_limits[0].limit == 5000);
  CHECK(usage->rate_limits[0].remaining == 4999);

  // A rate-limited poll: counted as a 403, and the exhausted window is what is kept.
  const int64_t reset_s = h.clock_ms / 1000 + 600;
  h.github.rate_limit_until(reset_s);
  h.clock_ms += 60 * 1000;
  h.round(*source);
  usage = read_github_usage(h.settings.config.state_db);
  REQUIRE(usage.ok());
  bool limited = false;
  for (const auto& c : usage->calls) limited |= c.endpoint == "GET issues" && c.status == "403" && c.count == 1;
  CHECK(limited);
  REQUIRE(usage->rate_limits.size() == 1);
  CHECK(usage->rate_limits[0].remaining == 0);
  CHECK(usage->rate_limits[0].reset_at_ms == reset_s * 1000);
}
