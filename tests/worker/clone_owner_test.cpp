// CloneOwner hands what this process wrote to the container user, and only that.
#include "worker-agent/clone_owner.h"

#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "test_support.h"

namespace polyphony::detail {
namespace {

namespace fs = std::filesystem;
using testing::git;
using testing::TempDir;
using testing::write_file;

constexpr int kUser = 1000;

uid_t owner_of(const fs::path& p) {
  struct stat st {};
  REQUIRE(::lstat(p.c_str(), &st) == 0);
  return st.st_uid;
}

// A work tree with a.txt, dir/b.txt and dir/c.txt committed, all root's.
fs::path make_clone(const TempDir& tmp) {
  const fs::path repo = tmp / "repo";
  fs::create_directories(repo / "dir");
  git(tmp.path(), {"init", "-q", "-b", "main", repo.string()});
  write_file(repo / "a.txt", "a\n");
  write_file(repo / "dir" / "b.txt", "b\n");
  write_file(repo / "dir" / "c.txt", "c\n");
  git(repo, {"add", "-A"});
  git(repo, {"-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one"});
  return repo;
}

TEST_CASE("an owner that is not set changes nothing", "[clone_owner]") {
  REQUIRE(::geteuid() == 0);  // the files would not be root's otherwise
  TempDir tmp{"polyphony-owner"};
  const fs::path repo = make_clone(tmp);
  CloneOwner none;
  CHECK_FALSE(none.is_set());
  CHECK(none.give_tree(repo).ok());
  CHECK(none.give_one(repo / "a.txt").ok());
  CHECK(none.give_paths(repo, {"dir/b.txt"}).ok());
  CHECK(owner_of(repo) == 0);
  CHECK(owner_of(repo / "a.txt") == 0);
  CHECK(owner_of(repo / "dir" / "b.txt") == 0);
}

TEST_CASE("give_clone hands the whole clone over, index included", "[clone_owner]") {
  REQUIRE(::geteuid() == 0);
  TempDir tmp{"polyphony-owner"};
  const fs::path repo = make_clone(tmp);
  CloneOwner owner(kUser, kUser);
  REQUIRE(owner.give_clone(repo).ok());
  const fs::path git_dir = repo / ".git";
  for (const auto& p : {repo, repo / "a.txt", repo / "dir" / "c.txt", git_dir / "index", git_dir / "HEAD"}) {
    INFO(p.string());
    CHECK(owner_of(p) == kUser);
  }
  CHECK(git(repo, {"diff-files", "--name-only"}).empty());  // the index learned the new ctimes
}

TEST_CASE("give_paths hands over .git and the named paths with their directories, nothing else", "[clone_owner]") {
  REQUIRE(::geteuid() == 0);
  TempDir tmp{"polyphony-owner"};
  const fs::path repo = make_clone(tmp);
  CloneOwner owner(kUser, kUser);
  REQUIRE(owner.give_paths(repo, {"dir/b.txt", "gone/deleted.txt"}).ok());
  CHECK(owner_of(repo / ".git" / "HEAD") == kUser);
  CHECK(owner_of(repo / "dir") == kUser);
  CHECK(owner_of(repo / "dir" / "b.txt") == kUser);
  CHECK(owner_of(repo / "dir" / "c.txt") == 0);
  CHECK(owner_of(repo / "a.txt") == 0);
  CHECK(owner_of(repo) == 0);
}

TEST_CASE("give_one changes a symlink, not what it points at", "[clone_owner]") {
  REQUIRE(::geteuid() == 0);
  TempDir tmp{"polyphony-owner"};
  write_file(tmp / "target", "t\n");
  fs::create_symlink(tmp / "target", tmp / "link");
  REQUIRE(CloneOwner(kUser, kUser).give_one(tmp / "link").ok());
  CHECK(owner_of(tmp / "link") == kUser);
  CHECK(owner_of(tmp / "target") == 0);
  auto missing = CloneOwner(kUser, kUser).give_one(tmp / "missing");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == "io");
  CHECK(missing.error().where == (tmp / "missing").string());
}

}  // namespace
}  // namespace polyphony::detail
