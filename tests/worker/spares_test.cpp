// SparePool on its own: which directories count as spares, and a spare's way into a task.
#include "worker-agent/spares.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "test_support.h"

namespace polyphony::detail {
namespace {

namespace fs = std::filesystem;
using testing::commit_to_bare;
using testing::git;
using testing::make_bare_repo;
using testing::read_file;
using testing::TempDir;
using testing::trim;

ino_t inode_of(const fs::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_ino;
}

struct Pool {
  TempDir tmp{"polyphony-spares"};
  fs::path root = tmp / "root";
  fs::path origin = tmp / "origin.git";
  std::string base_commit = make_bare_repo(origin, {{"README.md", "hello\n"}});
  MirrorStore mirrors{root / "mirrors"};
  TaskClones clones{root / "tasks", mirrors, CommitIdentity{}, CloneOwner()};
  SparePool spares{root, clones, mirrors};
};

TEST_CASE("only a directory right under spares/ not starting with a dot is a spare", "[spares]") {
  Pool p;
  struct Case {
    std::string dir;  // under the temporary directory
    bool spare;
  };
  const auto c = GENERATE(values<Case>({
      {"root/spares/app-0123456789ab-deadbeef", true},
      {"root/spares/x", true},
      {"root/spares/.hidden", false},
      {"root/spares", false},
      {"root/spares/a/b", false},
      {"root/tasks/t1", false},
      {"elsewhere", false},
  }));
  INFO(c.dir);
  CHECK(p.spares.is_spare_dir(p.tmp / c.dir) == c.spare);
}

TEST_CASE("a spare becomes the task's workspace in place, at the base as it is now", "[spares]") {
  Pool p;
  auto spare = p.spares.make_spare(p.origin.string(), "main");
  REQUIRE(spare.ok());
  CHECK(p.spares.is_spare_dir(spare->dir));
  CHECK(spare->mirror_dir == p.mirrors.mirror_of(*resolve_origin(p.origin.string())));
  CHECK(trim(git(spare->dir / "repo", {"rev-parse", "HEAD"})) == p.base_commit);
  const ino_t repo_inode = inode_of(spare->dir / "repo");
  const ino_t meta_inode = inode_of(spare->dir / "meta");
  const std::string moved = commit_to_bare(p.origin, {{"new.txt", "n\n"}}, "meanwhile");

  auto ws = p.spares.provision_from(WorkspaceRequest{"t1", p.origin.string(), "main", "polyphony/t1"}, *spare);
  REQUIRE(ws.ok());
  CHECK_FALSE(fs::exists(spare->dir));
  CHECK(ws->task_dir == p.root / "tasks" / "t1");
  CHECK(inode_of(ws->repo_dir) == repo_inode);  // the very directories a container may have mounted
  CHECK(inode_of(ws->task_dir / "meta") == meta_inode);
  CHECK(ws->base_commit == moved);
  CHECK(trim(git(ws->repo_dir, {"symbolic-ref", "HEAD"})) == "refs/heads/polyphony/t1");
  CHECK(read_file(ws->repo_dir / "new.txt") == "n\n");
  auto reopened = p.clones.open("t1");
  REQUIRE(reopened.ok());
  CHECK(reopened->base_commit == moved);
}

TEST_CASE("discard refuses what is not a spare, and clear deletes every spare and no task", "[spares]") {
  Pool p;
  auto first = p.spares.make_spare(p.origin.string(), "");
  auto second = p.spares.make_spare(p.origin.string(), "main");
  REQUIRE(first.ok());
  REQUIRE(second.ok());
  REQUIRE(p.clones.provision(WorkspaceRequest{"t1", p.origin.string(), "main", "polyphony/t1"}).ok());

  Spare not_one{p.root / "tasks" / "t1", first->mirror_dir, first->repo_url, ""};
  auto refused = p.spares.discard_spare(not_one);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.error().code == "usage");
  CHECK(fs::exists(p.root / "tasks" / "t1"));

  REQUIRE(p.spares.discard_spare(*first).ok());
  CHECK_FALSE(fs::exists(first->dir));
  auto cleared = p.spares.clear_spares();
  REQUIRE(cleared.ok());
  CHECK(*cleared == 1);
  CHECK_FALSE(fs::exists(second->dir));
  CHECK(fs::exists(p.root / "tasks" / "t1" / "repo" / ".git"));
}

}  // namespace
}  // namespace polyphony::detail
