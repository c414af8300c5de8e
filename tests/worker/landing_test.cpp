// Landing on its own: what it refuses, and each path the origin decides (a plain bare origin
// in-process, a working clone through its own git), with the mirror taught what landed.
#include "worker-agent/landing.h"

#include <catch2/catch.hpp>

#include "test_support.h"

namespace polyphony::detail {
namespace {

namespace fs = std::filesystem;
using testing::git;
using testing::make_bare_repo;
using testing::read_file;
using testing::TempDir;
using testing::trim;
using testing::write_file;

struct Lands {
  TempDir tmp{"polyphony-landing"};
  fs::path origin = tmp / "origin.git";
  std::string base_commit = make_bare_repo(origin, {{"README.md", "hello\n"}});
  MirrorStore mirrors{tmp / "mirrors"};
  TaskClones clones{tmp / "tasks", mirrors, CommitIdentity{"Poly Bot", "bot@example.com"}, CloneOwner()};
  Landing landing{clones};

  Workspace provision(const std::string& id, const fs::path& repo) {
    auto ws = clones.provision(WorkspaceRequest{id, repo.string(), "main", "polyphony/" + id});
    REQUIRE(ws.ok());
    return *ws;
  }
  std::string pin_change(const Workspace& ws, const std::string& file) {
    write_file(ws.repo_dir / file, file + "\n");
    auto committed = clones.commit_all(ws, "add " + file);
    REQUIRE(committed.ok());
    REQUIRE(committed->has_value());
    return **committed;
  }
};

TEST_CASE("landing or pushing with nothing pinned is usage and leaves no scratch repository", "[landing]") {
  Lands l;
  Workspace ws = l.provision("t1", l.origin);
  for (auto result : {l.landing.land(ws), l.landing.push_branch(ws)}) {
    REQUIRE_FALSE(result.ok());
    CHECK(result.error().code == "usage");
    CHECK_THAT(result.error().message, Catch::Contains("nothing is pinned for branch 'polyphony/t1'"));
  }
  CHECK_FALSE(fs::exists(ws.task_dir / "land.git"));
  CHECK(trim(git(l.origin, {"rev-parse", "main"})) == l.base_commit);
}

TEST_CASE("a landing on a plain bare origin moves base and branch there and in the mirror", "[landing]") {
  Lands l;
  Workspace ws = l.provision("t1", l.origin);
  const std::string head = l.pin_change(ws, "a.txt");
  auto landed = l.landing.land(ws);
  REQUIRE(landed.ok());
  CHECK(landed->branch_commit == head);
  CHECK(landed->merged_commit == head);
  CHECK(landed->fast_forward);
  CHECK(landed->note.empty());
  for (const auto& repo : {l.origin, ws.mirror_dir}) {
    INFO(repo.string());
    CHECK(trim(git(repo, {"rev-parse", "refs/heads/main"})) == head);
    CHECK(trim(git(repo, {"rev-parse", "refs/heads/polyphony/t1"})) == head);
  }
  CHECK_FALSE(fs::exists(ws.task_dir / "land.git"));
  CHECK(mirror_state(ws.mirror_dir).landings.load() == 0);
}

TEST_CASE("a landing on a working clone fast-forwards its checked-out base, files and all", "[landing]") {
  Lands l;
  const fs::path work = l.tmp / "work";
  git(l.tmp.path(), {"clone", "-q", l.origin.string(), work.string()});
  Workspace ws = l.provision("t1", work);
  const std::string head = l.pin_change(ws, "b.txt");
  auto landed = l.landing.land(ws);
  REQUIRE(landed.ok());
  CHECK(landed->merged_commit == head);
  CHECK(trim(git(work, {"rev-parse", "HEAD"})) == head);
  CHECK(read_file(work / "b.txt") == "b.txt\n");
  CHECK(trim(git(ws.mirror_dir, {"rev-parse", "refs/heads/main"})) == head);
}

TEST_CASE("push_branch moves only the task branch, on the origin and not in the mirror's base", "[landing]") {
  Lands l;
  Workspace ws = l.provision("t1", l.origin);
  const std::string head = l.pin_change(ws, "c.txt");
  auto pushed = l.landing.push_branch(ws);
  REQUIRE(pushed.ok());
  CHECK(pushed->branch_commit == head);
  CHECK(pushed->merged_commit.empty());
  CHECK_FALSE(pushed->fast_forward);
  CHECK(trim(git(l.origin, {"rev-parse", "refs/heads/polyphony/t1"})) == head);
  CHECK(trim(git(l.origin, {"rev-parse", "refs/heads/main"})) == l.base_commit);
  CHECK(trim(git(ws.mirror_dir, {"rev-parse", "refs/heads/main"})) == l.base_commit);
}

}  // namespace
}  // namespace polyphony::detail
