// docker/scripted-agent, run from the source tree on the host against temporary git repos.
#include <catch2/catch.hpp>

#include <filesystem>

#include "common/process.h"
#include "test_support.h"

namespace fs = std::filesystem;
using namespace polyphony;
using namespace polyphony::testing;

namespace {

const std::string kAgent = std::string(POLYPHONY_SOURCE_DIR) + "/docker/scripted-agent";

// A work tree with one commit holding greeting.txt.
struct Repo {
  TempDir dir{"polyphony-agent"};
  fs::path work = dir / "repo";
  Repo() {
    fs::create_directories(work);
    git(work, {"init", "-q"});
    write_file(work / "greeting.txt", "hello\nworld\n");
    git(work, {"add", "-A"});
    git(work, {"commit", "-q", "-m", "initial commit"});
  }
  std::string last_subject() const { return git(work, {"log", "-1", "--format=%s"}); }
  int commit_count() const { return std::stoi(git(work, {"rev-list", "--count", "HEAD"})); }
  std::string status() const { return git(work, {"status", "--porcelain"}); }
};

// Runs the agent on `task` with the repo as its workspace (through $POLYPHONY_WORKSPACE,
// from another directory) and no user or system git config, as in a bare container.
ProcessResult run_agent(const Repo& repo, const std::string& task) {
  write_file(repo.dir / "task.md", task);
  ProcessOptions options;
  options.cwd = repo.dir.path();
  options.env = {
      {"POLYPHONY_WORKSPACE", repo.work.string()}, {"GIT_CONFIG_GLOBAL", "/dev/null"}, {"GIT_CONFIG_NOSYSTEM", "1"}};
  options.timeout = std::chrono::seconds(60);
  auto r = run_process({"sh", kAgent, (repo.dir / "task.md").string()}, options);
  INFO((r.ok() ? std::string() : r.error().to_string()));
  REQUIRE(r.ok());
  return *r;
}

const std::string kGreetingDiff =
    "```diff\n"
    "--- a/greeting.txt\n"
    "+++ b/greeting.txt\n"
    "@@ -1,2 +1,2 @@\n"
    "-hello\n"
    "+hi\n"
    " world\n"
    "```\n";

}  // namespace

TEST_CASE("the scripted agent applies a diff block and commits it with the task title") {
  Repo repo;
  auto r = run_agent(repo, "# Say hi instead of hello\n\nPlease change the greeting.\n\n" + kGreetingDiff);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("scripted-agent: step 1/1: applying diff"));
  CHECK(read_file(repo.work / "greeting.txt") == "hi\nworld\n");
  CHECK(repo.last_subject() == "Say hi instead of hello\n");
  CHECK(repo.commit_count() == 2);
  CHECK(repo.status().empty());
}

TEST_CASE("the scripted agent runs an sh block in the workspace") {
  Repo repo;
  auto r = run_agent(repo, "Add notes\n\n```sh\nmkdir docs\necho 'some notes' > docs/notes.txt\n```\n");
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("scripted-agent: step 1/1: running sh"));
  CHECK(read_file(repo.work / "docs/notes.txt") == "some notes\n");
  CHECK(repo.last_subject() == "Add notes\n");
  CHECK(repo.status().empty());
}

TEST_CASE("the scripted agent runs diff and sh blocks in document order") {
  Repo repo;
  std::string task = "# Greet then record\n\n" + kGreetingDiff +
                     "\nSome prose, and a block that is not ours:\n\n```python\nprint('no')\n```\n\n"
                     "``` shell\ngrep -q '^hi$' greeting.txt\necho checked > order.txt\n```\n";
  auto r = run_agent(repo, task);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("step 1/2: applying diff") && Catch::Contains("step 2/2: running sh"));
  CHECK(r.out.find("step 1/2") < r.out.find("step 2/2"));
  CHECK(read_file(repo.work / "order.txt") == "checked\n");
  CHECK(repo.commit_count() == 2);
}

TEST_CASE("a failing sh step stops the scripted agent and names the step") {
  Repo repo;
  std::string task =
      "Break\n\n```sh\necho one > one.txt\n```\n\n```sh\nfalse\necho never > never.txt\n```\n\n"
      "```sh\necho three > three.txt\n```\n";
  auto r = run_agent(repo, task);
  CHECK(r.exit_code != 0);
  CHECK_THAT(r.err, Catch::Contains("step 2/3 (sh) failed"));
  CHECK(fs::exists(repo.work / "one.txt"));
  CHECK_FALSE(fs::exists(repo.work / "never.txt"));  // sh -e stopped at `false`
  CHECK_FALSE(fs::exists(repo.work / "three.txt"));
  CHECK(repo.commit_count() == 1);
}

TEST_CASE("a diff that does not apply fails its step and leaves the tree untouched") {
  Repo repo;
  std::string task =
      "Wrong base\n\n```patch\n--- a/greeting.txt\n+++ b/greeting.txt\n@@ -1,2 +1,2 @@\n"
      "-goodbye\n+hi\n world\n```\n";
  auto r = run_agent(repo, task);
  CHECK(r.exit_code != 0);
  CHECK_THAT(r.err, Catch::Contains("step 1/1 (diff) failed"));
  CHECK(read_file(repo.work / "greeting.txt") == "hello\nworld\n");
  CHECK(repo.status().empty());
}

TEST_CASE("an sh step that commits by itself is not an error") {
  Repo repo;
  std::string task =
      "Self commit\n\n```sh\necho x > x.txt\ngit add x.txt\n"
      "git -c user.name=T -c user.email=t@localhost commit -q -m 'from the step'\n```\n";
  auto r = run_agent(repo, task);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(repo.last_subject() == "from the step\n");
  CHECK(repo.commit_count() == 2);
}

TEST_CASE("a task with no diff or sh block makes the scripted agent exit 2") {
  Repo repo;
  auto r = run_agent(repo, "Just words\n\nNo blocks here.\n\n```python\nprint('not ours')\n```\n");
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("the task body has no ```diff or ```sh block; nothing to do"));
  CHECK(repo.commit_count() == 1);
}
