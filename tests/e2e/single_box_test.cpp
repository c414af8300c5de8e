// End to end on one machine: real `polyphony` programs, real Docker containers, real bare repos.
#include <catch2/catch.hpp>

#include "single_box.h"

using namespace polyphony;
using namespace polyphony::testing;

namespace {

const std::map<std::string, std::string>& kSampleRepo = sample_repo();

std::string sh_block(const std::string& script) {
  return "Do it.\n\n```sh\n" + script + "\n```\n";
}

std::string origin_file(const SingleBox& box, const std::string& path) {
  return git(box.origin(), {"show", "main:" + path});
}

}  // namespace

TEST_CASE("a task goes from spawn to LANDED in a real container and its commit is on the origin's main") {
  SingleBox box(kSampleRepo);
  const std::string id =
      box.spawn("Add a farewell script", sh_block("echo 'echo \"Bye, $1!\"' > bye.sh\n"
                                                  "echo 'test \"$(sh bye.sh Ada)\" = \"Bye, Ada!\"' > tests/bye.test"));
  CHECK(box.task(id)["state"] == "DISCOVERED");
  box.serve();
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  INFO(box.cli({"logs", id}).out);
  REQUIRE(states[id] == "LANDED");

  auto t = box.task(id);
  CHECK(t["agent"] == "scripted");
  CHECK(t["branch"] == "polyphony/" + id + "-add-a-farewell-script");
  CHECK_FALSE(t["worker"].get<std::string>().empty());
  CHECK(origin_file(box, "bye.sh") == "echo \"Bye, $1!\"\n");
  // The branch was pushed and the base's head is what the task reports.
  CHECK_FALSE(git(box.origin(), {"rev-parse", "refs/heads/" + t["branch"].get<std::string>()}).empty());
  CHECK(git(box.origin(), {"rev-parse", "main"}).substr(0, 40) == t["merged_commit"].get<std::string>());

  // Every transition was recorded, in order, with timestamps.
  auto show = box.cli({"show", id, "--json"});
  REQUIRE(show.exit_code == 0);
  auto history = nlohmann::json::parse(show.out)["events"];
  std::vector<std::string> path;
  for (const auto& e : history) {
    path.push_back(e["to"]);
    CHECK(e["at_ms"].get<int64_t>() > 0);
  }
  CHECK(path ==
        std::vector<std::string>{"DISCOVERED", "CLAIMED", "ROUTED", "PROVISIONED", "RUNNING", "VERIFYING", "LANDED"});

  // Output of the agent and of verify were captured.
  auto logs = box.cli({"logs", id});
  CHECK_THAT(logs.out, Catch::Contains("attempt 1 agent") && Catch::Contains("running sh"));
  CHECK_THAT(logs.out, Catch::Contains("attempt 1 verify"));

  // No container is left behind; cleanup removes the finished task's workspace.
  CHECK(box.no_containers_left(id));
  CHECK(std::filesystem::exists(box.home() / "workspaces/tasks" / id));
  auto cleanup = box.cli({"cleanup"});
  CHECK(cleanup.exit_code == 0);
  CHECK_FALSE(std::filesystem::exists(box.home() / "workspaces/tasks" / id));
}

TEST_CASE(
    "two tasks on one repo both land, and a task whose verify fails the same way twice is BLOCKED with the reason") {
  SingleBox box(kSampleRepo);
  const std::string a = box.spawn("Add one", sh_block("echo one > one.txt"));
  const std::string b = box.spawn("Add two", "```diff\n--- /dev/null\n+++ b/two.txt\n@@ -0,0 +1 @@\n+two\n```\n");
  const std::string bad = box.spawn("Break the greeting", sh_block("sed -i s/Hello/Howdy/ greet.sh"));
  box.serve();
  auto states = box.wait_finished({a, b, bad});
  INFO(box.serve_log());
  CHECK(states[a] == "LANDED");
  CHECK(states[b] == "LANDED");
  CHECK(states[bad] == "BLOCKED");
  CHECK(origin_file(box, "one.txt") == "one\n");
  CHECK(origin_file(box, "two.txt") == "two\n");
  CHECK(origin_file(box, "greet.sh") == "echo \"Hello, $1!\"\n");
  auto t = box.task(bad);
  CHECK(t["failure_kind"] == "verify");
  // The agent is deterministic: an attempt that makes a tree that already failed verify ends it
  // (when the others landed first the base moved, so the second tree can differ from the first).
  CHECK(t["attempt"] <= 3);
  CHECK_THAT(t["reason"].get<std::string>(), (Catch::Contains("same tree") || Catch::Contains("gave up after 3")) &&
                                                 Catch::Contains("exited with status 1"));
  CHECK(box.no_containers_left(bad));
  auto table = box.cli({"status"});
  CHECK_THAT(table.out, Catch::Contains(bad) && Catch::Contains("BLOCKED"));
}

TEST_CASE("a hostile title becomes a safe branch name and never reaches a shell") {
  SingleBox box(kSampleRepo);
  const std::string marker = (box.home() / "pwned").string();
  const std::string title = "\"; touch " + marker + " #$(touch " + marker + ") ../../x";
  const std::string id = box.spawn(title, sh_block("echo safe > safe.txt"));
  box.serve();
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  REQUIRE(states[id] == "LANDED");
  const std::string branch = box.task(id)["branch"];
  CHECK(branch.rfind("polyphony/" + id + "-touch-", 0) == 0);
  CHECK(branch.find("..") == std::string::npos);
  CHECK_FALSE(std::filesystem::exists(marker));
  auto log = git(box.origin(), {"log", "-1", "--format=%s", "refs/heads/" + branch});
  CHECK_THAT(log, Catch::Contains("touch"));  // the title is the commit message, verbatim
}

TEST_CASE("an agent that does nothing fails with a clear reason") {
  SingleBox box(kSampleRepo);
  const std::string nothing = box.spawn("No instructions", "Just prose, no blocks.");
  box.serve();
  auto states = box.wait_finished({nothing});
  INFO(box.serve_log());
  CHECK(states[nothing] == "FAILED");
  CHECK(box.task(nothing)["failure_kind"] == "agent");
  CHECK_THAT(box.task(nothing)["reason"].get<std::string>(), Catch::Contains("no ```diff or ```sh block"));
}

TEST_CASE("a repo without a verify command fails before the agent runs, saying where to add one") {
  SingleBox box(std::map<std::string, std::string>{{"README.md", "# no verify here\n"}});
  const std::string unverified = box.spawn("Add a file", sh_block("echo x > x.txt"));
  box.serve();
  auto states = box.wait_finished({unverified});
  INFO(box.serve_log());
  CHECK(states[unverified] == "FAILED");
  CHECK(box.task(unverified)["failure_kind"] == "config");
  CHECK_THAT(box.task(unverified)["reason"].get<std::string>(),
             Catch::Contains("no verify command") && Catch::Contains(".polyphony.yaml"));
  CHECK_THAT(box.cli({"logs", unverified}).out, !Catch::Contains("running sh"));  // the agent never ran
  CHECK_THROWS(git(box.origin(), {"show", "main:x.txt"}));
}

TEST_CASE("the verify command can come from config.yaml for a repo without .polyphony.yaml") {
  SingleBox box(std::map<std::string, std::string>{{"README.md", "# configured\n"}});
  // Named in config.yaml by its url; the verify there applies.
  write_file(box.home() / "config.yaml", read_file(box.home() / "config.yaml") + "repos:\n  app:\n    url: " +
                                             box.origin().string() + "\n    verify: test -f added.txt\n");
  const std::string id = box.spawn("Add added.txt", sh_block("echo added > added.txt"));
  box.serve();
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  CHECK(states[id] == "LANDED");
  CHECK(origin_file(box, "added.txt") == "added\n");
}

TEST_CASE("a task without a network has loopback only, and localhost resolves in it") {
  // network: none (the test default) starts containers with the engine's network disabled and
  // the worker's own /etc/hosts mounted.
  SingleBox box(std::map<std::string, std::string>{
      {"README.md", "# offline\n"},
      {".polyphony.yaml", "verify: test \"$(cat net.txt)\" = lo && getent hosts localhost\n"}});
  const std::string id = box.spawn("Record the network", sh_block("ls /sys/class/net > net.txt\n"
                                                                  "getent hosts localhost > hosts.txt"));
  box.serve();
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  INFO(box.cli({"logs", id}).out);
  CHECK(states[id] == "LANDED");
  CHECK(origin_file(box, "net.txt") == "lo\n");
  CHECK_THAT(origin_file(box, "hosts.txt"), Catch::Contains("localhost"));
}

TEST_CASE("a worker that cannot find polyphony-runner says so, and its task fails with that reason, never lost") {
  SingleBox box(kSampleRepo);
  const std::string id = box.spawn("Add a file", sh_block("echo x > x.txt"));
  box.serve({{"POLYPHONY_RUNNER", (box.home() / "no-such-runner").string()}});
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  // A worker's installation, like a missing image: not worth retrying elsewhere on this box.
  REQUIRE(states[id] == "FAILED");
  auto t = box.task(id);
  CHECK(t["failure_kind"] == "config");
  CHECK_THAT(t["reason"].get<std::string>(),
             Catch::Contains("no polyphony-runner") && Catch::Contains("POLYPHONY_RUNNER"));
  CHECK_THAT(box.serve_log(), Catch::Contains("POLYPHONY_RUNNER names no executable program"));
  CHECK(box.no_containers_left(id));
}
