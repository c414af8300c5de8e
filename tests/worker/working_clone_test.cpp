// Landing into a working clone: each way the base can be found there.
#include <catch2/catch.hpp>

#include "test_support.h"
#include "worker-agent/working_clone.h"

using namespace polyphony;
using namespace polyphony::testing;
namespace fs = std::filesystem;

namespace {

// A working clone of a bare origin, and the task's commit made elsewhere (in `work`), handed
// over as a bundle the way a worker hands over the pinned branch.
struct CloneFixture {
  TempDir dir{"polyphony-wc-unit"};
  fs::path origin = dir.path() / "origin.git";
  fs::path clone = dir.path() / "clone";
  fs::path work = dir.path() / "work";
  std::string base;
  std::string head;
  const std::string branch = "polyphony/abcd1234-add-b";

  CloneFixture() {
    base = make_bare_repo(origin, {{"a.txt", "a\n"}});
    git(dir.path(), {"clone", "--quiet", origin.string(), clone.string()});
    git(dir.path(), {"clone", "--quiet", origin.string(), work.string()});
    git(work, {"checkout", "--quiet", "-b", branch});
    write_file(work / "b.txt", "b\n");
    git(work, {"add", "b.txt"});
    git(work, {"commit", "--quiet", "-m", "add b"});
    head = trim(git(work, {"rev-parse", "HEAD"}));
  }

  Result<CloneLanding> land() {
    return land_in_working_clone(
        clone,
        [&](const fs::path& bundle) -> Status {
          git(work, {"bundle", "create", "--quiet", bundle.string(), "refs/heads/" + branch, "^" + base});
          return ok_status();
        },
        head, branch, "main");
  }

  std::string rev(const std::string& ref) { return trim(git(clone, {"rev-parse", ref})); }
};

}  // namespace

TEST_CASE("a clean working clone with the base checked out fast-forwards it and its files follow") {
  CloneFixture f;
  auto landed = f.land();
  REQUIRE(landed.ok());
  CHECK(landed->merged_commit == f.head);
  CHECK(landed->note.empty());
  CHECK(f.rev("HEAD") == f.head);
  CHECK(read_file(f.clone / "b.txt") == "b\n");
  CHECK(f.rev("refs/heads/" + f.branch) == f.head);
}

TEST_CASE("a working clone on another branch has its base moved as a ref and its work tree left alone") {
  CloneFixture f;
  git(f.clone, {"checkout", "--quiet", "-b", "dev"});
  auto landed = f.land();
  REQUIRE(landed.ok());
  CHECK(landed->merged_commit == f.head);
  CHECK(f.rev("refs/heads/main") == f.head);
  CHECK(trim(git(f.clone, {"symbolic-ref", "HEAD"})) == "refs/heads/dev");
  CHECK_FALSE(fs::exists(f.clone / "b.txt"));
}

TEST_CASE("a working clone with staged changes keeps its base and the note says the branch landed alone") {
  CloneFixture f;
  write_file(f.clone / "a.txt", "a, edited\n");
  git(f.clone, {"add", "a.txt"});
  auto landed = f.land();
  REQUIRE(landed.ok());
  CHECK(landed->merged_commit.empty());
  CHECK_THAT(landed->note, Catch::Contains("landed as branch " + f.branch) && Catch::Contains("local changes"));
  CHECK(f.rev("refs/heads/main") == f.base);
  CHECK(f.rev("refs/heads/" + f.branch) == f.head);
}

TEST_CASE("an untracked file in the way keeps the base where it is, with git's reason") {
  CloneFixture f;
  write_file(f.clone / "b.txt", "mine\n");  // untracked: status stays clean, the merge would overwrite it
  auto landed = f.land();
  REQUIRE(landed.ok());
  CHECK(landed->merged_commit.empty());
  CHECK_THAT(landed->note, Catch::Contains("git would not move 'main'") && Catch::Contains("b.txt"));
  CHECK(read_file(f.clone / "b.txt") == "mine\n");
  CHECK(f.rev("refs/heads/main") == f.base);
}

TEST_CASE("a base that moved in the working clone is base_moved, for the worker to rebase and verify again") {
  CloneFixture f;
  write_file(f.clone / "c.txt", "c\n");
  git(f.clone, {"add", "c.txt"});
  git(f.clone, {"commit", "--quiet", "-m", "the user's own commit"});
  const std::string users = f.rev("HEAD");
  auto landed = f.land();
  REQUIRE_FALSE(landed.ok());
  CHECK(landed.error().code == "base_moved");
  CHECK(f.rev("refs/heads/main") == users);
}

TEST_CASE("a working clone that has the task branch checked out refuses it, saying why") {
  CloneFixture f;
  git(f.clone, {"checkout", "--quiet", "-b", f.branch});
  auto landed = f.land();
  REQUIRE_FALSE(landed.ok());
  CHECK(landed.error().code == "push_refused");
  CHECK_THAT(landed.error().message, Catch::Contains("did not take branch " + f.branch));
}
