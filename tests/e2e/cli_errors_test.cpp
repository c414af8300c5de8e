// Bad input to the CLI: every error names the place that is wrong, and nothing is queued.
#include <catch2/catch.hpp>

#include "single_box.h"

using namespace polyphony;
using namespace polyphony::testing;

namespace {
const std::map<std::string, std::string> kOneFile{{"README.md", "x\n"}};
}  // namespace

TEST_CASE("spawn refuses bad input, naming the flag, and queues nothing") {
  SingleBox box(kOneFile);
  TempDir plain;
  struct Case {
    std::vector<std::string> args;
    std::string where;
  };
  const std::vector<Case> cases{
      {{"spawn", "t", "--repo", "/nonexistent/repo"}, "--repo"},
      {{"spawn", "t", "--repo", plain.path().string()}, "not a git repository"},
      {{"spawn", "t", "--repo", box.origin().string(), "--agent", "gpt-99"}, "--agent"},
      {{"spawn", "", "--repo", box.origin().string()}, "title is empty"},
      {{"spawn", std::string(100000, 'a'), "--repo", box.origin().string()}, "TITLE"},  // argv caps one argument at 128 KiB
      {{"spawn", "bad \xff utf8", "--repo", box.origin().string()}, "UTF-8"},
      {{"spawn", "t", "--repo", box.origin().string(), "--colour", "red"}, "--colour"},
      {{"spawn", "t", "--repo"}, "--repo needs a value"},
      {{"spawn", "t"}, "--repo: a repo is required"},
      {{"spawn", "t", "--repo", box.origin().string(), "--base", "a..b"}, "--base"},
      {{"spawn", "t", "--repo", box.origin().string(), "--body-file", "/nonexistent"}, "--body-file"},
  };
  for (const auto& c : cases) {
    auto r = box.cli(c.args);
    INFO(r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.out.empty());
    CHECK_THAT(r.err, Catch::Contains(c.where));
  }
  CHECK(box.status().empty());
}

TEST_CASE("a malformed config file is reported with file and line") {
  SingleBox box(kOneFile);
  write_file(box.home() / "routing.yaml", "rules:\n  - match: {risk: high}\n    agnet: claude\n");
  auto r = box.cli({"status"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("routing.yaml:3:5") && Catch::Contains("unknown key 'agnet'"));
}

TEST_CASE("init refuses to overwrite existing files unless forced") {
  SingleBox box(kOneFile);
  auto again = box.cli({"init"});
  CHECK(again.exit_code == 2);
  CHECK_THAT(again.err, Catch::Contains("refusing to overwrite") && Catch::Contains("--force"));
  auto forced = box.cli({"init", "--force"});
  CHECK(forced.exit_code == 0);
  CHECK_THAT(forced.err, Catch::Contains("Docker engine") && Catch::Contains("worker image"));
}

TEST_CASE("serve names the command that builds a missing image") {
  SingleBox box(kOneFile);
  write_file(box.home() / "config.yaml", "container:\n  image: polyphony-no-such-image:latest\n");
  auto r = box.cli({"serve"});
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("polyphony image build"));
}

TEST_CASE("image build refuses an unknown agent in --agents, naming the flag and the pinned ones") {
  SingleBox box(kOneFile);
  for (const std::string spec : {"kimi", "claude,kimi", ""}) {
    auto r = box.cli({"image", "build", "--agents", spec});
    INFO(r.err);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("--agents"));
    CHECK_THAT(r.err, Catch::Contains(spec.empty() ? "needs all, none, or agent names" : "docker/agents.lock pins: claude, codex"));
  }
}

TEST_CASE("no Docker engine is a clear error") {
  SingleBox box(kOneFile);
  write_file(box.home() / "config.yaml", "docker_host: unix:///nonexistent/docker.sock\n");
  auto r = box.cli({"serve"});
  CHECK(r.exit_code != 0);
  CHECK_THAT(r.err, Catch::Contains("/nonexistent/docker.sock"));
}
