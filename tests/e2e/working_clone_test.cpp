// A user's working clone as --repo: what lands there, as whom, and what a refused push does.
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include "single_box.h"

using namespace polyphony;
using namespace polyphony::testing;
namespace fs = std::filesystem;

namespace {

const std::map<std::string, std::string>& kSampleRepo = sample_repo();

// A user who is not root, as the owner of a clone (no password entry is needed to own files).
constexpr unsigned kUser = 4242;

const std::string kFarewell =
    "Do it.\n\n```sh\necho 'echo \"Bye, $1!\"' > bye.sh\n"
    "echo 'test \"$(sh bye.sh Ada)\" = \"Bye, Ada!\"' > tests/bye.test\n```\n";

// A working clone of the box's origin, owned by kUser.
fs::path make_working_clone(const SingleBox& box, const TempDir& dir) {
  const fs::path clone = dir.path() / "app";
  git(dir.path(), {"clone", "--quiet", box.origin().string(), clone.string()});
  for (const auto& entry : fs::recursive_directory_iterator(clone)) {
    REQUIRE(::lchown(entry.path().c_str(), kUser, kUser) == 0);
  }
  REQUIRE(::lchown(clone.c_str(), kUser, kUser) == 0);
  return clone;
}

std::string spawn_into(const SingleBox& box, const std::vector<std::string>& repo_flags) {
  std::vector<std::string> args{"spawn", "Add a farewell script", "--agent", "scripted", "--body", kFarewell};
  args.insert(args.end(), repo_flags.begin(), repo_flags.end());
  auto r = box.cli(args);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  return trim(r.out);
}

// Paths under `dir` that do not belong to kUser.
std::vector<std::string> not_owned_by_user(const fs::path& dir) {
  std::vector<std::string> wrong;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    struct stat st {};
    if (::lstat(entry.path().c_str(), &st) == 0 && st.st_uid != kUser) wrong.push_back(entry.path().string());
  }
  return wrong;
}

}  // namespace

TEST_CASE(
    "spawn into a working clone lands into its checked-out branch, its files follow, and all it writes is the clone "
    "owner's") {
  SingleBox box(kSampleRepo);
  TempDir dir("polyphony-wc");
  const fs::path clone = make_working_clone(box, dir);
  const std::string id = spawn_into(box, {"--repo", clone.string()});
  box.serve();
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  REQUIRE(states[id] == "LANDED");

  auto t = box.task(id);
  const std::string merged = t["merged_commit"];
  CHECK(trim(git(clone, {"rev-parse", "HEAD"})) == merged);
  CHECK(trim(git(clone, {"symbolic-ref", "HEAD"})) == "refs/heads/main");
  // The work tree followed, as receive.denyCurrentBranch=updateInstead would have it.
  CHECK(read_file(clone / "bye.sh") == "echo \"Bye, $1!\"\n");
  CHECK(git(clone, {"--no-optional-locks", "status", "--porcelain"}).empty());
  CHECK(trim(git(clone, {"rev-parse", "refs/heads/" + t["branch"].get<std::string>()})) == merged);
  CHECK(not_owned_by_user(clone) == std::vector<std::string>{});
  CHECK_THAT(t["reason"].get<std::string>(), Catch::StartsWith("landed " + merged.substr(0, 12)));
  // The bare origin the clone came from is untouched.
  CHECK(git(box.origin(), {"ls-tree", "--name-only", "main"}).find("bye.sh") == std::string::npos);
}

TEST_CASE("a working clone with local changes gets the branch, keeps its checked-out branch, and the reason says so") {
  SingleBox box(kSampleRepo);
  TempDir dir("polyphony-wc");
  const fs::path clone = make_working_clone(box, dir);
  write_file(clone / "README.md", "# sample, being edited\n");
  const std::string before = trim(git(clone, {"rev-parse", "HEAD"}));
  const std::string id = spawn_into(box, {"--repo", clone.string()});
  box.serve();
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  REQUIRE(states[id] == "LANDED");

  auto t = box.task(id);
  const std::string reason = t["reason"];
  CHECK_THAT(reason, Catch::Contains("landed as branch " + t["branch"].get<std::string>()) &&
                         Catch::Contains("'main' has local changes") && Catch::Contains("git merge --ff-only"));
  CHECK(t["merged_commit"] == "");
  CHECK(trim(git(clone, {"rev-parse", "HEAD"})) == before);
  CHECK(read_file(clone / "README.md") == "# sample, being edited\n");
  CHECK_FALSE(fs::exists(clone / "bye.sh"));
  CHECK(trim(git(clone, {"rev-parse", "refs/heads/" + t["branch"].get<std::string>()})) == t["commit"]);
  CHECK(git(clone, {"show", t["commit"].get<std::string>() + ":bye.sh"}) == "echo \"Bye, $1!\"\n");
  CHECK(not_owned_by_user(clone) == std::vector<std::string>{});
}

TEST_CASE("spawn --land-to origin sends the task to the working clone's upstream and leaves the clone alone") {
  SingleBox box(kSampleRepo);
  TempDir dir("polyphony-wc");
  const fs::path clone = make_working_clone(box, dir);

  auto bad = box.cli({"spawn", "x", "--repo", clone.string(), "--land-to", "upstream", "--agent", "scripted"});
  CHECK(bad.exit_code == 2);
  CHECK_THAT(bad.err, Catch::Contains("--land-to") && Catch::Contains("no remote 'upstream'"));

  const std::string before = trim(git(clone, {"rev-parse", "HEAD"}));
  const std::string id = spawn_into(box, {"--repo", clone.string(), "--land-to", "origin"});
  CHECK(box.task(id)["repo"] == box.origin().string());
  box.serve();
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  REQUIRE(states[id] == "LANDED");
  CHECK(git(box.origin(), {"show", "main:bye.sh"}) == "echo \"Bye, $1!\"\n");
  CHECK(trim(git(clone, {"rev-parse", "HEAD"})) == before);
}

TEST_CASE("a push the origin refuses fails the task once as a landing failure with the origin's reason") {
  SingleBox box(kSampleRepo);
  const fs::path hook = box.origin() / "hooks" / "pre-receive";
  write_file(hook, "#!/bin/sh\necho 'main is protected: changes go through review' >&2\nexit 1\n");
  fs::permissions(hook, fs::perms::owner_all | fs::perms::group_read | fs::perms::others_read);
  const std::string id = box.spawn("Add a farewell script", kFarewell);
  box.serve();
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  REQUIRE(states[id] == "FAILED");
  auto t = box.task(id);
  CHECK(t["failure_kind"] == "landing");
  CHECK(t["attempt"] == 1);
  const std::string reason = t["reason"];
  CHECK_THAT(reason, Catch::Contains("main is protected: changes go through review") &&
                         Catch::Contains("pre-receive hook declined"));
  // Said once, not a page of git's output.
  CHECK(reason.size() < 1200);
}
