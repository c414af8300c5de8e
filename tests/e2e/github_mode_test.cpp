// GitHub mode end to end: real `polyphony serve`, real containers and a real bare origin, and
// the real `gh` (github.gh) talking to the stand-in GitHub REST server (github.host), which
// answers as GitHub would and logs every request.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <ctime>
#include <thread>

#include "coordinator/github_source.h"
#include "fake_github/fake_github.h"
#include "single_box.h"

using namespace polyphony;
using namespace polyphony::testing;
using nlohmann::json;

namespace {

const std::map<std::string, std::string> kRepo{
    {"README.md", "# widgets\n"},
    {".polyphony.yaml", "verify: test -f done.txt\n"},
};

// Issues carry type:scripted so routing.yaml's defaults send them to the scripted agent.
const std::vector<std::string> kLabels{"polyphony", "type:scripted"};

std::string agent_script(const std::string& extra) {
  return "Please.\n\n```sh\n" + extra + "\necho done > done.txt\n```\n";
}

// A box in GitHub mode on acme/widgets, whose git remote is the box's bare origin.
void github_mode(SingleBox& box, const FakeGithub& github) {
  write_file(box.home() / "config.yaml", read_file(box.home() / "config.yaml") + "github:\n" + github.config_yaml() +
                                             "  remote: " + box.origin().string() + "\n  poll_interval_ms: 200\n");
}

bool has_label(const json& issue, const std::string& name) {
  for (const auto& l : issue.value("labels", json::array())) {
    if (l["name"] == name) return true;
  }
  return false;
}

}  // namespace

TEST_CASE(
    "a labelled GitHub issue is claimed, worked in a container, pushed as a branch and opened as a pull request") {
  FakeGithub github;
  github.add_issue(7, "Add done marker", agent_script("echo bye > bye.txt"), kLabels);
  SingleBox box(kRepo);
  github_mode(box, github);
  const std::string main_before = git(box.origin(), {"rev-parse", "main"});
  box.serve();
  const std::string id = github_task_id("acme/widgets", 7);
  REQUIRE(eventually([&] { return !box.task(id).empty(); }, std::chrono::seconds(30)));
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  INFO(box.cli({"logs", id}).out);
  REQUIRE(states[id] == "LANDED");

  // The branch is on the origin; main is untouched: the pull request lands it, not polyphony.
  const std::string branch = box.task(id)["branch"];
  CHECK(git(box.origin(), {"show", "refs/heads/" + branch + ":bye.txt"}) == "bye\n");
  CHECK(git(box.origin(), {"rev-parse", "main"}) == main_before);

  // Claimed visibly, once; the pull request closes the issue; the issue hears of the landing.
  REQUIRE(eventually([&] { return github.comments(7).size() == 2; }, std::chrono::seconds(20)));
  CHECK(has_label(github.issue(7), "polyphony:claimed"));
  CHECK(github.calls_to("POST", "repos/acme/widgets/issues/7/labels").size() == 1);
  auto pulls = github.pulls();
  REQUIRE(pulls.size() == 1);
  CHECK(pulls[0]["head"]["ref"] == branch);
  CHECK(pulls[0]["base"]["ref"] == "main");
  CHECK(pulls[0]["title"] == "Add done marker");
  const std::string body = pulls[0]["body"];
  CHECK_THAT(body, Catch::StartsWith("Closes #7\n") && Catch::Contains("Agent: scripted") &&
                       Catch::Contains("Verify: `test -f done.txt` passed") && Catch::Contains("Score: ") &&
                       Catch::Contains("/10 (") && Catch::Contains("Plan: "));
  auto comments = github.comments(7);
  CHECK_THAT(comments[0]["body"].get<std::string>(), Catch::Contains("claimed") && Catch::Contains(id));
  CHECK_THAT(comments[1]["body"].get<std::string>(),
             Catch::Contains("LANDED") && Catch::Contains(pulls[0]["html_url"].get<std::string>()));
  auto show = box.cli({"show", id, "--json"});
  REQUIRE(show.exit_code == 0);
  CHECK(json::parse(show.out)["pull_request"] == pulls[0]["html_url"]);
  auto status = box.cli({"status"});
  CHECK_THAT(status.out, Catch::Contains("github acme/widgets: ok"));
}

TEST_CASE("closing the GitHub issue mid-run cancels the task: container stopped, workspace removed, reason recorded") {
  FakeGithub github;
  // sleep 60: it never ends by itself; closing the issue ends it.
  github.add_issue(8, "Slow work", agent_script("sleep 60"), kLabels);
  SingleBox box(kRepo);
  github_mode(box, github);
  box.serve();
  const std::string id = github_task_id("acme/widgets", 8);
  REQUIRE(eventually([&] { return !box.task(id).empty(); }, std::chrono::seconds(30)));
  REQUIRE(box.wait_state(id, "RUNNING"));
  github.close_issue(8);
  REQUIRE(box.wait_state(id, "CANCELLED", std::chrono::seconds(30)));
  INFO(box.serve_log());
  CHECK(box.task(id)["reason"] == "GitHub issue acme/widgets#8 was closed");
  CHECK(box.no_containers_left(id, std::chrono::seconds(30)));
  CHECK(eventually([&] { return !std::filesystem::exists(box.home() / "workspaces/tasks" / id); },
                   std::chrono::seconds(30)));
  CHECK(github.pulls().empty());
  CHECK(github.calls_to("GET", "repos/acme/widgets/issues/8").size() >= 1);  // asked why it left the list
}

namespace {

// The issue was claimed once, worked as one task, and reported with one pull request and two
// comments: counted in the requests GitHub received, so a repeated write shows even when its
// effect would be the same.
void check_reported_once(const FakeGithub& github, const SingleBox& box, int64_t number) {
  const std::string id = github_task_id("acme/widgets", number);
  const std::string issue = "repos/acme/widgets/issues/" + std::to_string(number);
  REQUIRE(eventually([&] { return github.pulls().size() == 1 && github.comments(number).size() == 2; },
                     std::chrono::seconds(20)));
  // A few more polls of the second life change nothing.
  const size_t lists = github.calls_to("GET", "repos/acme/widgets/issues?").size();
  REQUIRE(eventually([&] { return github.calls_to("GET", "repos/acme/widgets/issues?").size() >= lists + 3; },
                     std::chrono::seconds(20)));
  CHECK(github.calls_to("POST", issue + "/labels").size() == 1);
  CHECK(github.calls_to("POST", issue + "/comments").size() == 2);
  CHECK(github.calls_to("POST", "repos/acme/widgets/pulls").size() == 1);
  CHECK(github.comments(number).size() == 2);
  CHECK(has_label(github.issue(number), "polyphony:claimed"));
  int tasks = 0;
  for (const auto& t : box.status()) tasks += t["id"] == id ? 1 : 0;
  CHECK(box.status().size() == 1);
  CHECK(tasks == 1);
}

}  // namespace

TEST_CASE("kill -9 of serve mid-run and a restart: the issue is claimed once, one task, one pull request") {
  FakeGithub github;
  github.add_issue(9, "Survive a crash", agent_script(kWaitForGo), kLabels);
  SingleBox box(kRepo);
  github_mode(box, github);
  box.serve();
  const std::string id = github_task_id("acme/widgets", 9);
  REQUIRE(eventually([&] { return !box.task(id).empty(); }, std::chrono::seconds(30)));
  const std::string state = crash_and_finish(box, id, "RUNNING");
  INFO(box.serve_log());
  REQUIRE(state == "LANDED");
  check_reported_once(github, box, 9);
}

TEST_CASE(
    "kill -9 of serve after a GitHub write was sent but before it was recorded: a restart does not send it again") {
  // The outbox key of the write the first life dies after (coordinator/github_source.cpp).
  const std::string key = GENERATE(as<std::string>{}, "claim-label:", "claim-comment:", "pull:", "landed:");
  INFO("killed after sending " << key);
  FakeGithub github;
  github.add_issue(12, "Sent before a crash", agent_script(""), kLabels);
  SingleBox box(kRepo);
  github_mode(box, github);
  TempDir gate("polyphony-gate");
  box.serve({{"POLYPHONY_TEST_HOLD_GITHUB_SENT_KEY", key},
             {"POLYPHONY_TEST_HOLD_GITHUB_SENT_UNTIL", (gate.path() / "release").string()}});
  REQUIRE(eventually([&] { return box.serve_log().find("test hold after sending " + key) != std::string::npos; },
                     std::chrono::seconds(180)));
  box.kill_serving();
  box.serve();
  const std::string id = github_task_id("acme/widgets", 12);
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  REQUIRE(states[id] == "LANDED");
  check_reported_once(github, box, 12);
}

TEST_CASE("a GitHub rate limit shows in polyphony status, no call is made until the reset, and then work resumes") {
  FakeGithub github;
  github.add_issue(10, "After the reset", agent_script("true"), kLabels);
  // Far enough ahead that a slow start under a loaded CI still meets the limit on its first call.
  const int64_t reset = static_cast<int64_t>(std::time(nullptr)) + 12;
  github.rate_limit_until(reset);
  SingleBox box(kRepo);
  github_mode(box, github);
  box.serve();
  REQUIRE(eventually([&] { return box.cli({"status"}).out.find("RATE LIMITED") != std::string::npos; },
                     std::chrono::seconds(20)));
  auto status = box.cli({"status"}).out;
  INFO(status);
  CHECK_THAT(status, Catch::Contains("github acme/widgets: RATE LIMITED, backing off until") &&
                         Catch::Contains("API rate limit exceeded"));
  // Polled every 200 ms otherwise; while limited, the one call that met the 403 is all (serve's
  // start-up doctor asks `gh auth status`, which calls the API root and GraphQL, not the repo).
  auto repo_calls = [&] { return github.calls_to("GET", "repos/").size() + github.calls_to("POST", "repos/").size(); };
  while (static_cast<int64_t>(std::time(nullptr)) < reset) {
    CHECK(repo_calls() == 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  const std::string id = github_task_id("acme/widgets", 10);
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  CHECK(states[id] == "LANDED");
  CHECK_THAT(box.cli({"status"}).out, Catch::Contains("github acme/widgets: ok"));
  CHECK(github.calls_to("POST", "repos/acme/widgets/issues/10/labels").size() == 1);
}

TEST_CASE("polyphony spawn --issue adopts an issue without the label and prints its task id") {
  FakeGithub github;
  github.add_issue(11, "Adopt me", agent_script("true"), {"type:scripted"});
  SingleBox box(kRepo);
  github_mode(box, github);
  auto bad = box.cli({"spawn", "--issue", "other/repo#11"});
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.err, Catch::Contains("acme/widgets"));
  auto missing = box.cli({"spawn", "--issue", "acme/widgets#99"});
  CHECK(missing.exit_code != 0);
  CHECK_THAT(missing.err, Catch::Contains("no issue"));
  auto r = box.cli({"spawn", "--issue", "acme/widgets#11"});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  const std::string id = github_task_id("acme/widgets", 11);
  CHECK(r.out == id + "\n");
  box.serve();
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  CHECK(states[id] == "LANDED");
  CHECK(has_label(github.issue(11), "polyphony"));
  CHECK(has_label(github.issue(11), "polyphony:claimed"));
  CHECK(eventually([&] { return github.pulls().size() == 1; }, std::chrono::seconds(20)));
}
