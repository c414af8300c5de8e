// Validating a submission's repository path: checked in-process (no `git` is started), with the
// answers `git rev-parse --git-dir` would give.
#include <catch2/catch.hpp>

#include "coordinator/submission.h"
#include "fleet_support.h"
#include "test_support.h"

using namespace polyphony;
using namespace polyphony::testing;

namespace {

Result<std::string> validate_repo(const Settings& settings, const std::filesystem::path& repo) {
  TaskRequest r;
  r.title = "A task";
  r.repo = repo.string();
  r.agent = "scripted";  // needs no credentials
  POLY_TRY(validate_submission(r, settings));
  return r.repo;
}

}  // namespace

TEST_CASE("a submitted path is a repository when git would take it for one, and is made canonical") {
  TempDir dir;
  write_file(dir / "home/config.yaml", "poll_interval_ms: 500\n");
  auto settings = load_settings(dir / "home");
  REQUIRE(settings.ok());
  make_bare_repo(dir / "origin.git", {{"README.md", "x\n"}, {"src/main.c", "int main;\n"}});
  git(dir.path(), {"clone", "-q", (dir / "origin.git").string(), "clone"});
  git(dir / "clone", {"worktree", "add", "-q", (dir / "linked").string()});

  SECTION("a bare repository, a clone, a directory inside a clone and a linked worktree") {
    for (const auto& [given, canonical] :
         std::vector<std::pair<std::filesystem::path, std::filesystem::path>>{{dir / "origin.git", dir / "origin.git"},
                                                                              {dir / "clone", dir / "clone"},
                                                                              {dir / "clone/src/", dir / "clone/src"},
                                                                              {dir / "clone/src/../.", dir / "clone"},
                                                                              {dir / "linked", dir / "linked"}}) {
      auto r = validate_repo(*settings, given);
      INFO(given);
      REQUIRE(r.ok());
      CHECK(*r == std::filesystem::canonical(canonical).string());
    }
  }
  SECTION("a plain directory, a file, a half-made repository and a missing path are refused, naming the field") {
    std::filesystem::create_directories(dir / "plain/sub");
    write_file(dir / "plain/file.txt", "x\n");
    write_file(dir / "clone/notes.txt", "a file in a clone is not a repository\n");
    std::filesystem::create_directories(dir / "half/objects");  // no HEAD, no refs
    for (const auto& path :
         {dir / "plain", dir / "plain/sub", dir / "plain/file.txt", dir / "half", dir / "clone/notes.txt"}) {
      auto r = validate_repo(*settings, path);
      INFO(path);
      REQUIRE_FALSE(r.ok());
      CHECK(r.error().code == "usage");
      CHECK(r.error().where == "repo");
      CHECK_THAT(r.error().message, Catch::Contains("is not a git repository"));
    }
    auto missing = validate_repo(*settings, dir / "nowhere");
    REQUIRE_FALSE(missing.ok());
    CHECK_THAT(missing.error().message, Catch::Contains("does not exist"));
  }
}

TEST_CASE("a client may name a local-path repo only under repos.allowed_roots, when that is set") {
  TempDir repos;
  make_bare_repo(repos / "allowed/app.git", {{"README.md", "x\n"}});
  make_bare_repo(repos / "elsewhere/secret.git", {{"README.md", "x\n"}});
  std::filesystem::create_directory_symlink(repos / "elsewhere", repos / "allowed/link");
  FleetCoordinator c("  allowed_roots: [" + (repos / "allowed").string() + "]\ncoordinator: {insecure: true}\n");
  c.start();
  REQUIRE_FALSE(c.start_error());
  auto submit_repo = [&](const std::string& repo) {
    protocol::Submit s;
    s.title = "Local path";
    s.repo = repo;
    s.agent = "scripted";
    auto reply = ask(c.context(), c.client_endpoint(), s);
    REQUIRE(reply);
    const auto* r = std::get_if<protocol::ClientReply>(&*reply);
    REQUIRE(r != nullptr);
    return *r;
  };
  CHECK(submit_repo((repos / "allowed/app.git").string()).ok);
  CHECK(submit_repo("app").ok);  // a repos: name
  for (const auto& outside : {repos / "elsewhere/secret.git", repos / "allowed/link/secret.git"}) {
    INFO(outside);
    auto refused = submit_repo(outside.string());
    CHECK_FALSE(refused.ok);
    CHECK_THAT(refused.error,
               Catch::Contains("outside the directories clients may name") && Catch::Contains("repos.allowed_roots"));
  }
}
