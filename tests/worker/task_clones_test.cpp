// TaskClones on its own: request checks, the pinned branch every reader starts from, and a
// pinned repository that is not this process's.
#include "worker-agent/task_clones.h"

#include <unistd.h>

#include <catch2/catch.hpp>

#include "test_support.h"

namespace polyphony::detail {
namespace {

namespace fs = std::filesystem;
using testing::commit_to_bare;
using testing::git;
using testing::make_bare_repo;
using testing::TempDir;
using testing::write_file;

struct Clones {
  TempDir tmp{"polyphony-clones"};
  fs::path origin = tmp / "origin.git";
  std::string base_commit = make_bare_repo(origin, {{"README.md", "hello\n"}});
  MirrorStore mirrors{tmp / "mirrors"};
  TaskClones clones{tmp / "tasks", mirrors, CommitIdentity{"Poly Bot", "bot@example.com"}, CloneOwner()};

  WorkspaceRequest request(const std::string& id, const std::string& branch, const std::string& base = "main") const {
    return WorkspaceRequest{id, origin.string(), base, branch};
  }
  Workspace provision(const std::string& id) {
    auto ws = clones.provision(request(id, "polyphony/" + id));
    REQUIRE(ws.ok());
    return *ws;
  }
};

TEST_CASE("a request is refused for a bad id, a bad branch or a task that has a workspace", "[task_clones]") {
  Clones c;
  c.provision("taken");
  struct Case {
    std::string id, branch, base;
    std::string code;  // empty: accepted
    std::string mentions;
  };
  const auto k = GENERATE(values<Case>({
      {"t1", "polyphony/t1", "main", "", ""},
      {"t1", "polyphony/t1", "", "", ""},
      {"../t1", "polyphony/t1", "main", "usage", "task id '../t1' is not valid"},
      {"t1", "bad..branch", "main", "usage", "'bad..branch' is not a valid branch name"},
      {"t1", "polyphony/t1", "ma in", "usage", "'ma in' is not a valid base branch name"},
      {"taken", "polyphony/taken", "main", "exists", "already has a workspace"},
  }));
  const Status checked = c.clones.check_request(c.request(k.id, k.branch, k.base));
  if (k.code.empty()) {
    CHECK(checked.ok());
  } else {
    REQUIRE_FALSE(checked.ok());
    CHECK(checked.error().code == k.code);
    CHECK_THAT(checked.error().message, Catch::Contains(k.mentions));
  }
}

TEST_CASE("the pinned branch is the base until something is pinned, then the pinned commit", "[task_clones]") {
  Clones c;
  Workspace ws = c.provision("t1");
  auto before = c.clones.pinned_branch(ws);
  REQUIRE(before.ok());
  CHECK(oid_hex(before->head) == c.base_commit);
  CHECK(oid_hex(before->base) == c.base_commit);
  CHECK(before->repo.path() == pinned_dir(ws));
  CHECK(fs::is_regular_file(pinned_dir(ws) / "HEAD"));  // made on first use, bare

  write_file(ws.repo_dir / "new.txt", "x\n");
  auto committed = c.clones.commit_all(ws, "work");
  REQUIRE(committed.ok());
  REQUIRE(committed->has_value());
  auto after = c.clones.pinned_branch(ws);
  REQUIRE(after.ok());
  CHECK(oid_hex(after->head) == **committed);
  CHECK(oid_hex(after->base) == c.base_commit);
  CHECK(*c.clones.head_commit(ws) == **committed);
  CHECK(*c.clones.commits_ahead(ws) == 1);
}

TEST_CASE("a pinned.git that is not a directory of this process is refused, not opened", "[task_clones]") {
  Clones c;
  Workspace ws = c.provision("t1");
  fs::create_directories(c.tmp / "elsewhere.git");
  fs::create_directory_symlink(c.tmp / "elsewhere.git", pinned_dir(ws));
  auto repo = c.clones.pinned_repo(ws);
  REQUIRE_FALSE(repo.ok());
  CHECK(repo.error().code == "io");
  CHECK_THAT(repo.error().message, Catch::Contains("not a directory of this worker's"));
  auto head = c.clones.head_commit(ws);
  REQUIRE_FALSE(head.ok());
  CHECK(head.error().code == "io");
  CHECK(fs::is_empty(c.tmp / "elsewhere.git"));
}

TEST_CASE("open reads back what provision and a rebase wrote", "[task_clones]") {
  Clones c;
  Workspace ws = c.provision("t1");
  write_file(ws.repo_dir / "mine.txt", "x\n");
  REQUIRE(c.clones.commit_all(ws, "work").ok());
  const std::string moved = commit_to_bare(c.origin, {{"theirs.txt", "y\n"}}, "meanwhile");
  auto rebased = c.clones.rebase_onto_origin(ws);
  REQUIRE(rebased.ok());
  REQUIRE(rebased->has_value());
  CHECK(**rebased == moved);
  auto reopened = c.clones.open("t1");
  REQUIRE(reopened.ok());
  CHECK(reopened->base_commit == moved);
  CHECK(reopened->mirror_dir == ws.mirror_dir);
  CHECK(reopened->branch == "polyphony/t1");
  CHECK(reopened->repo_dir == c.tmp / "tasks" / "t1" / "repo");
}

}  // namespace
}  // namespace polyphony::detail
