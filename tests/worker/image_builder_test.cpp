// The worker image build: the apt mirror lookup on fixture files, and the built image at work.
#include <catch2/catch.hpp>

#include <filesystem>

#include "common/process.h"
#include "docker_test_support.h"

namespace fs = std::filesystem;
using namespace polyphony;
using namespace polyphony::testing;

namespace {

struct SourcesCase {
  std::string description;
  std::map<std::string, std::string> files;  // path under etc/apt -> content
  std::string expected;                      // "" : not_found
};

const std::string kDeb822Bookworm =
    "Types: deb\n"
    "# http://snapshot.debian.org/archive/debian/20250520T000000Z\n"
    "URIs: http://deb.debian.org/debian\n"
    "Suites: bookworm bookworm-updates\n"
    "Components: main\n"
    "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    "\n"
    "Types: deb\n"
    "URIs: http://deb.debian.org/debian-security\n"
    "Suites: bookworm-security\n"
    "Components: main\n";

}  // namespace

TEST_CASE("apt_mirror_from_sources finds the Debian archive in apt's sources") {
  auto c = GENERATE(values<SourcesCase>({
      {"deb822 .sources as on a Debian 12 host", {{"sources.list.d/debian.sources", kDeb822Bookworm}},
       "http://deb.debian.org/debian"},
      {"one-line sources.list skipping security, deb-src and comments",
       {{"sources.list",
         "# deb http://commented.example/debian bookworm main\n"
         "deb-src http://src.example/debian bookworm main\n"
         "deb http://security.debian.org/debian-security bookworm-security main\n"
         "deb http://ftp.example.org/debian/ bookworm main contrib\n"}},
       "http://ftp.example.org/debian"},
      {"options in brackets",
       {{"sources.list.d/mirror.list", "deb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main\n"}},
       "http://m.example/debian"},
      {"a bookworm entry is preferred over another Debian suite seen first",
       {{"sources.list", "deb http://trixie.example/debian trixie main\n"},
        {"sources.list.d/z.sources", "Types: deb\nURIs: http://bookworm.example/debian\nSuites: bookworm\n"}},
       "http://bookworm.example/debian"},
      {"a Debian archive without bookworm is still used",
       {{"sources.list", "deb http://trixie.example/debian trixie main\n"}}, "http://trixie.example/debian"},
      {"disabled stanzas, deb-src types and other file names are ignored",
       {{"sources.list.d/a.sources", "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n\n"
                                     "Types: deb\nEnabled: no\nURIs: http://off.example/debian\nSuites: bookworm\n"},
        {"sources.list.d/b.list.disabled", "deb http://disabled.example/debian bookworm main\n"},
        {"sources.list.d/c.sources", "types: deb\nuris: http://on.example/debian\nsuites: bookworm\n"}},
       "http://on.example/debian"},
      {"only non-Debian archives",
       {{"sources.list", "deb http://archive.ubuntu.com/ubuntu jammy main\n"},
        {"sources.list.d/node.sources", "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\n"}},
       ""},
      {"no sources at all", {}, ""},
  }));
  TempDir dir;
  fs::create_directories(dir / "apt/sources.list.d");
  for (const auto& [path, content] : c.files) write_file(dir / ("apt/" + path), content);
  auto mirror = apt_mirror_from_sources(dir / "apt");
  INFO(c.description);
  if (c.expected.empty()) {
    REQUIRE_FALSE(mirror.ok());
    CHECK(mirror.error().code == "not_found");
  } else {
    INFO((mirror.ok() ? std::string() : mirror.error().to_string()));
    REQUIRE(mirror.ok());
    CHECK(*mirror == c.expected);
  }
}

TEST_CASE("the image version carries the hash of the scripted agent in the source tree") {
  auto sum = run_checked({"sha256sum", std::string(POLYPHONY_SOURCE_DIR) + "/docker/scripted-agent"});
  REQUIRE(sum.ok());
  auto dash = kImageVersion.find('-');
  REQUIRE(dash != std::string::npos);
  CHECK(kImageVersion.substr(dash + 1) == sum->out.substr(0, 12));
}

TEST_CASE("the worker image runs the scripted agent as agent on a mounted repository") {
  auto docker = docker_for_tests();
  require_worker_image(*docker);
  ContainerJanitor janitor(*docker);
  TempDir dir;
  fs::path repo = dir / "repo";
  fs::create_directories(repo);
  git(repo, {"init", "-q"});
  write_file(repo / "greeting.txt", "hello\n");
  git(repo, {"add", "-A"});
  git(repo, {"commit", "-q", "-m", "initial commit"});
  write_file(dir / "task.md",
             "# Greet in the container\n\n```diff\n--- a/greeting.txt\n+++ b/greeting.txt\n"
             "@@ -1 +1 @@\n-hello\n+hi\n```\n\n```sh\nwhoami > who.txt\n```\n");
  // The repo is owned by the host user; the image's gitconfig trusts every directory.
  fs::permissions(dir.path(), fs::perms::all, fs::perm_options::add);
  for (const auto& e : fs::recursive_directory_iterator(dir.path())) {
    fs::permissions(e.path(), fs::perms::all, fs::perm_options::add);
  }
  ContainerSpec spec = janitor.spec({"polyphony-scripted-agent", "/task/task.md"});
  spec.mounts = {{repo.string(), "/workspace", false}, {dir.path().string(), "/task", true}};
  auto id = docker->create_container(spec);
  REQUIRE(id.ok());
  REQUIRE(docker->start_container(*id).ok());
  auto code = docker->wait_container(*id, std::chrono::seconds(60));
  REQUIRE(code.ok());
  std::string out, err;
  REQUIRE(docker->stream_logs(*id, false, [&](int stream, std::string_view d) {
    (stream == 2 ? err : out).append(d);
    return true;
  }).ok());
  INFO(out << err);
  REQUIRE(*code == 0);
  CHECK(read_file(repo / "greeting.txt") == "hi\n");
  CHECK(read_file(repo / "who.txt") == "agent\n");
  CHECK(git(repo, {"log", "-1", "--format=%s|%an|%ae"}) ==
        "Greet in the container|Polyphony Agent|agent@polyphony.local\n");
}
