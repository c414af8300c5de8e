// The mirror unit: origin resolution, mirror names, base picking, and syncs against real bare
// repositories.
#include "git/mirror.h"

#include <catch2/catch.hpp>

#include "test_support.h"

namespace polyphony::detail {
namespace {

namespace fs = std::filesystem;
using testing::commit_to_bare;
using testing::git;
using testing::make_bare_repo;
using testing::TempDir;
using testing::trim;

TEST_CASE("remote URLs are told from local paths", "[mirror]") {
  struct Case {
    std::string url;
    bool remote;
  };
  const auto c = GENERATE(values<Case>({
      {"https://github.com/acme/app.git", true},
      {"ssh://git@host/app", true},
      {"git@github.com:acme/app.git", true},
      {"host:app", true},
      {"file:///srv/app.git", false},
      {"/srv/app.git", false},
      {"relative/dir", false},
      {"./with:colon", false},
  }));
  INFO(c.url);
  CHECK(is_remote_url(c.url) == c.remote);
}

TEST_CASE("mirror names keep the repository's name and differ for different origins", "[mirror]") {
  struct Case {
    Origin origin;
    std::string prefix;
  };
  const auto c = GENERATE(values<Case>({
      {{"https://github.com/acme/app.git", false}, "app-"},
      {{"https://github.com/acme/app", false}, "app-"},
      {{"git@github.com:acme/app.git", false}, "app-"},
      {{"/srv/repos/app.git", true}, "app-"},
      {{"/srv/repos/my.app/", true}, "my.app-"},
      {{"https://host/x/we ird$name", false}, "we_ird_name-"},
      {{"https://host/x/.hidden", false}, "repo.hidden-"},
  }));
  const std::string name = mirror_name(c.origin);
  INFO(c.origin.url << " -> " << name);
  CHECK(name.starts_with(c.prefix));
  CHECK(name.size() == c.prefix.size() + 12);
  CHECK(name.find('/') == std::string::npos);
}

TEST_CASE("a remote URL with and without .git shares a mirror, two origins of one name do not", "[mirror]") {
  CHECK(mirror_name({"https://github.com/acme/app.git", false}) == mirror_name({"https://github.com/acme/app", false}));
  CHECK(mirror_name({"https://github.com/acme/app", false}) != mirror_name({"https://github.com/other/app", false}));
  CHECK(mirror_name({"/a/app.git", true}) != mirror_name({"/b/app.git", true}));
}

TEST_CASE("resolve_origin refuses what is not a repository and names it", "[mirror]") {
  TempDir tmp{"polyphony-mirror"};
  fs::create_directories(tmp / "plain");
  struct Case {
    std::string url;  // under tmp when it starts with '@'
    std::string code;
    std::string mentions;
  };
  const auto c = GENERATE(values<Case>({
      {"", "usage", "not a repository path or URL"},
      {"--upload-pack=evil", "usage", "--upload-pack=evil"},
      {"@missing", "not_found", "missing' does not exist"},
      {"@plain", "not_found", "is not a git repository"},
  }));
  const std::string url = c.url.starts_with("@") ? (tmp / c.url.substr(1)).string() : c.url;
  auto origin = resolve_origin(url);
  REQUIRE_FALSE(origin.ok());
  CHECK(origin.error().code == c.code);
  CHECK_THAT(origin.error().message, Catch::Contains(c.mentions));
}

TEST_CASE("resolve_origin makes a local path canonical and keeps a remote URL as given", "[mirror]") {
  TempDir tmp{"polyphony-mirror"};
  make_bare_repo(tmp / "origin.git", {{"a", "1\n"}});
  auto local = resolve_origin("file://" + (tmp / "x" / ".." / "origin.git").string());
  REQUIRE(local.ok());
  CHECK(local->local);
  CHECK(local->url == fs::canonical(tmp / "origin.git").string());
  auto remote = resolve_origin("https://user:secret@example.com/app.git");
  REQUIRE(remote.ok());
  CHECK_FALSE(remote->local);
  CHECK(remote->url == "https://user:secret@example.com/app.git");
}

TEST_CASE("pick_base finds the requested or default branch, or says which exist", "[mirror]") {
  git_oid one{};
  git_oid_fromstr(&one, "1111111111111111111111111111111111111111");
  BranchSnapshot branches{"main", {{"main", one}, {"dev", one}}};
  BranchSnapshot headless{"", {{"dev", one}}};
  struct Case {
    BranchSnapshot snapshot;
    std::string requested;
    std::string found;  // empty: an error mentioning `mentions`
    std::string mentions;
  };
  const auto c = GENERATE_REF(values<Case>({
      {branches, "", "main", ""},
      {branches, "dev", "dev", ""},
      {branches, "gone", "", "base branch 'gone' does not exist"},
      {headless, "", "", "has no default branch"},
      {headless, "dev", "dev", ""},
      {BranchSnapshot{}, "main", "", "has no branches"},
  }));
  auto base = pick_base(c.snapshot, c.requested, "https://user:secret@example.com/app.git");
  if (c.found.empty()) {
    REQUIRE_FALSE(base.ok());
    CHECK(base.error().code == "not_found");
    CHECK_THAT(base.error().message, Catch::Contains(c.mentions));
    CHECK_THAT(base.error().message, !Catch::Contains("secret"));
  } else {
    REQUIRE(base.ok());
    CHECK(base->name == c.found);
  }
}

TEST_CASE("sync creates a mirror on first use and fetches what the origin gained since", "[mirror]") {
  TempDir tmp{"polyphony-mirror"};
  const std::string first = make_bare_repo(tmp / "origin.git", {{"a", "1\n"}});
  auto origin = resolve_origin((tmp / "origin.git").string());
  REQUIRE(origin.ok());
  MirrorStore store(tmp / "mirrors");
  const fs::path mirror = store.mirror_of(*origin);
  CHECK(mirror.parent_path() == tmp / "mirrors");

  auto created = store.sync(*origin, mirror);
  REQUIRE(created.ok());
  CHECK(created->default_branch == "main");
  REQUIRE(created->find("main") != nullptr);
  CHECK(oid_hex(created->find("main")->commit) == first);
  CHECK(trim(git(mirror, {"config", "gc.pruneExpire"})) == "never");
  CHECK_FALSE(fs::exists(fs::path(mirror.string() + ".partial")));

  const std::string second = commit_to_bare(tmp / "origin.git", {{"a", "2\n"}}, "two");
  commit_to_bare(tmp / "origin.git", {{"b", "1\n"}}, "topic", "topic");
  auto fetched = store.sync(*origin, mirror);
  REQUIRE(fetched.ok());
  CHECK(oid_hex(fetched->find("main")->commit) == second);
  CHECK(fetched->find("topic") != nullptr);
}

TEST_CASE("sync of an origin that cannot be reached is a git error without credentials", "[mirror]") {
  TempDir tmp{"polyphony-mirror"};
  MirrorStore store(tmp / "mirrors");
  Origin origin{"https://user:secret@127.0.0.1:9/nothing.git", false};
  auto synced = store.sync(origin, store.mirror_of(origin));
  REQUIRE_FALSE(synced.ok());
  CHECK(synced.error().code == "git");
  CHECK_THAT(synced.error().message, !Catch::Contains("secret"));
  CHECK_FALSE(fs::exists(store.mirror_of(origin)));
}

TEST_CASE("one mirror's lock and state are shared, another mirror's are its own", "[mirror]") {
  TempDir tmp{"polyphony-mirror"};
  CHECK(&mirror_state(tmp / "a.git") == &mirror_state(tmp / "a.git"));
  CHECK(&mirror_state(tmp / "a.git") != &mirror_state(tmp / "b.git"));
  {
    auto lock = lock_mirror_file(tmp / "a.git");
    REQUIRE(lock.ok());
    CHECK(fs::exists(tmp / "a.lock"));
    auto other = lock_mirror_file(tmp / "b.git");  // a different mirror does not wait
    CHECK(other.ok());
  }
  CHECK(lock_mirror_file(tmp / "a.git").ok());  // released on destruction
}

}  // namespace
}  // namespace polyphony::detail
