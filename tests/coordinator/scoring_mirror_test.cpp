// Scoring reads a URL repository through the host's one mirror store: the same mirror the
// workspaces borrow from, bounded by the mirror timeout and the scoring job's cancel flag.
#include <catch2/catch.hpp>

#include "coordinator/task_scoring.h"
#include "git/mirror.h"
#include "test_support.h"

using namespace polyphony;
using namespace polyphony::testing;

namespace fs = std::filesystem;

TEST_CASE("scoring a URL repository mirrors it once, where the workspaces keep theirs", "[scoring]") {
  TempDir tmp;
  const fs::path bare = tmp.path() / "app.git";
  make_bare_repo(bare, {{"src/main.c", "int main(void) { return 0; }\n"}});
  const std::string url = "file://" + bare.string();
  Config config;
  config.home = tmp.path() / "home";
  config.workspace_root = tmp.path() / "workspaces";
  TaskRequest task;
  task.repo = url;

  auto where = scoring_source(task, config, nullptr);
  INFO((where.ok() ? "" : where.error().to_string()));
  REQUIRE(where.ok());
  auto origin = detail::resolve_origin(url);
  REQUIRE(origin.ok());
  const detail::MirrorStore workspaces_store(config.workspace_root / "mirrors");
  CHECK(where->first == workspaces_store.mirror_of(*origin));
  CHECK(fs::exists(where->first / "HEAD"));
  CHECK_FALSE(fs::exists(config.home / "mirrors"));

  // The workspaces' sync finds it current: still one mirror of the origin on this host.
  auto synced = workspaces_store.sync(*origin, workspaces_store.mirror_of(*origin));
  REQUIRE(synced.ok());
  int mirrors = 0;
  for (const auto& e : fs::directory_iterator(config.workspace_root / "mirrors")) {
    if (e.path().extension() == ".git") ++mirrors;
  }
  CHECK(mirrors == 1);
}

TEST_CASE("a scoring mirror sync waiting for a busy mirror stops when its job is cancelled", "[scoring]") {
  TempDir tmp;
  const fs::path bare = tmp.path() / "app.git";
  make_bare_repo(bare, {{"README", "x\n"}});
  const std::string url = "file://" + bare.string();
  Config config;
  config.home = tmp.path() / "home";
  config.workspace_root = tmp.path() / "workspaces";
  config.mirror_timeout_s = 600;
  TaskRequest task;
  task.repo = url;
  REQUIRE(scoring_source(task, config, nullptr).ok());
  commit_to_bare(bare, {{"README", "y\n"}}, "moves on");  // the next sync must update, so lock

  // Another process's update holds the mirror's file lock.
  auto origin = detail::resolve_origin(url);
  REQUIRE(origin.ok());
  const fs::path mirror = detail::MirrorStore(config.workspace_root / "mirrors").mirror_of(*origin);
  auto held = detail::lock_mirror_file(mirror);
  REQUIRE(held.ok());

  // The job was cancelled (the coordinator stopping, the task cancelled) while it waited.
  std::atomic<bool> cancel{true};
  auto result = scoring_source(task, config, &cancel);
  REQUIRE_FALSE(result.ok());
  CHECK(result.error().message.find("cancelled") != std::string::npos);
}
