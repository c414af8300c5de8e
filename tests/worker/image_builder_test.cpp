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
      {"deb822 .sources as on a Debian 12 host",
       {{"sources.list.d/debian.sources", kDeb822Bookworm}},
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
       {{"sources.list", "deb http://trixie.example/debian trixie main\n"}},
       "http://trixie.example/debian"},
      {"disabled stanzas, deb-src types and other file names are ignored",
       {{"sources.list.d/a.sources",
         "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n\n"
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
  std::string version = image_version({});
  auto first = version.find('-');
  auto second = version.find('-', first + 1);
  REQUIRE(second != std::string::npos);
  CHECK(version.substr(first + 1, second - first - 1) == sum->out.substr(0, 12));
}

namespace {

const std::string kTwoPins =
    "# comment\n"
    "\n"
    "claude  @anthropic-ai/claude-code  2.1.332  @anthropic-ai/claude-code-linux-x64/claude\n"
    "codex @openai/codex 0.171.0 @openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex  # trailing\n";

std::vector<AgentPin> two_pins() {
  auto pins = parse_agents_lock(kTwoPins, "agents.lock");
  REQUIRE(pins.ok());
  return *pins;
}

struct BadLockCase {
  std::string text;
  std::string where;
  std::string says;
};

struct SelectCase {
  std::string spec;
  std::vector<std::string> names;  // empty with `error` set: an error
  std::string error;
};

}  // namespace

TEST_CASE("the lock file parses into one pin a line, skipping comments and blank lines") {
  auto pins = two_pins();
  REQUIRE(pins.size() == 2);
  CHECK(pins[0] ==
        AgentPin{"claude", "@anthropic-ai/claude-code", "2.1.332", "@anthropic-ai/claude-code-linux-x64/claude"});
  CHECK(pins[0].native_package_dir() == "@anthropic-ai/claude-code-linux-x64");
  CHECK(pins[1].name == "codex");
  CHECK(pins[1].version == "0.171.0");
  CHECK(pins[1].native_package_dir() == "@openai/codex-linux-x64");
  CHECK(AgentPin{"x", "pkg", "1.0.0", "pkg/bin/x"}.native_package_dir() == "pkg");
}

TEST_CASE("a malformed lock file line is an error naming the file and line") {
  auto c = GENERATE(values<BadLockCase>({
      {"# pins\nclaude @anthropic-ai/claude-code 2.1.332\n", "agents.lock:2", "expected 4 fields"},
      {"a pkg 1.0.0 pkg/a extra\n", "agents.lock:1", "found 5"},
      {"\n\nClaude pkg 1.0.0 pkg/c\n", "agents.lock:3", "agent name 'Claude'"},
      {"all pkg 1.0.0 pkg/a\n", "agents.lock:1", "not be 'all' or 'none'"},
      {"a @Scope/Pkg 1.0.0 @Scope/Pkg/a\n", "agents.lock:1", "not an npm package name"},
      {"a pkg ^1.0.0 pkg/a\n", "agents.lock:1", "must be exact"},
      {"a pkg latest pkg/a\n", "agents.lock:1", "must be exact"},
      {"a pkg 1.0 pkg/a\n", "agents.lock:1", "must be exact"},
      {"a pkg 1.0.0 /usr/bin/a\n", "agents.lock:1", "not absolute"},
      {"a pkg 1.0.0 pkg/../../a\n", "agents.lock:1", "'..'"},
      {"a pkg 1.0.0 pkg\n", "agents.lock:1", "inside an npm package"},
      {"a @scope/pkg 1.0.0 @scope/pkg\n", "agents.lock:1", "inside an npm package"},
      {"a pkg 1.0.0 pkg/a\nb pkg 1.0.0 pkg/b\na other 2.0.0 other/a\n", "agents.lock:3", "pinned twice"},
  }));
  auto pins = parse_agents_lock(c.text, "agents.lock");
  INFO(c.text);
  REQUIRE_FALSE(pins.ok());
  CHECK(pins.error().code == "config");
  CHECK(pins.error().where == c.where);
  CHECK_THAT(pins.error().message, Catch::Contains(c.says));
}

TEST_CASE("the compiled-in lock file is docker/agents.lock and pins the claude and codex CLIs") {
  CHECK(std::string(kAgentsLockText) == read_file(fs::path(POLYPHONY_SOURCE_DIR) / "docker/agents.lock"));
  auto pins = builtin_agents_lock();
  INFO((pins.ok() ? std::string() : pins.error().to_string()));
  REQUIRE(pins.ok());
  REQUIRE(pins->size() == 2);
  CHECK((*pins)[0].canonical() ==
        "claude @anthropic-ai/claude-code 2.1.332 @anthropic-ai/claude-code-linux-x64/claude");
  CHECK((*pins)[1].canonical() ==
        "codex @openai/codex 0.171.0 @openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex");
}

TEST_CASE("the --agents flag selects all, none, or named agents from the lock in lock order") {
  auto c = GENERATE(values<SelectCase>({
      {"all", {"claude", "codex"}, ""},
      {"none", {}, ""},
      {"codex", {"codex"}, ""},
      {"codex,claude", {"claude", "codex"}, ""},
      {" claude , codex ", {"claude", "codex"}, ""},
      {"claude,claude", {"claude"}, ""},
      {"kimi", {}, "unknown agent 'kimi' in --agents kimi; docker/agents.lock pins: claude, codex"},
      {"claude,kimi", {}, "unknown agent 'kimi'"},
      {"", {}, "--agents needs all, none, or agent names"},
      {"claude,,codex", {}, "an empty agent name in --agents"},
  }));
  auto selected = select_agents(two_pins(), c.spec);
  INFO("--agents '" << c.spec << "'");
  if (!c.error.empty()) {
    REQUIRE_FALSE(selected.ok());
    CHECK(selected.error().code == "usage");
    CHECK(selected.error().where == "--agents");
    CHECK_THAT(selected.error().message, Catch::Contains(c.error));
    return;
  }
  REQUIRE(selected.ok());
  std::vector<std::string> names;
  for (const auto& pin : *selected) names.push_back(pin.name);
  CHECK(names == c.names);
}

TEST_CASE("the image version changes with the pinned agents and the selection, not with comments") {
  auto pins = two_pins();
  std::string all = image_version(pins);
  CHECK(all != image_version({}));
  CHECK(all != image_version({pins[0]}));
  CHECK(image_version({pins[0]}) != image_version({pins[1]}));
  auto bumped = parse_agents_lock(
      "claude @anthropic-ai/claude-code 2.1.333 @anthropic-ai/claude-code-linux-x64/claude\n"
      "codex @openai/codex 0.171.0 @openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex\n",
      "bumped.lock");
  REQUIRE(bumped.ok());
  CHECK(image_version(*bumped) != all);
  auto recommented = parse_agents_lock("# other words\n" + kTwoPins + "\n# more\n", "recommented.lock");
  REQUIRE(recommented.ok());
  CHECK(image_version(*recommented) == all);
  CHECK(image_version(pins) == image_version(pins));
}

TEST_CASE("the agents digest is what the Dockerfile's shell pipeline computes from the lock file") {
  std::string lock = std::string(POLYPHONY_SOURCE_DIR) + "/docker/agents.lock";
  auto lines = run_checked({"awk", "!/^[[:space:]]*(#|$)/ {print $1, $2, $3, $4}", lock});
  REQUIRE(lines.ok());
  ProcessOptions po;
  po.stdin_data = lines->out;
  auto sum = run_checked({"sha256sum"}, po);
  REQUIRE(sum.ok());
  auto pins = builtin_agents_lock();
  REQUIRE(pins.ok());
  CHECK(agents_digest(*pins) == sum->out.substr(0, 12));
  CHECK(image_version(*pins).substr(image_version(*pins).rfind('-') + 1) == sum->out.substr(0, 12));
}

TEST_CASE("a pinned version npm cannot install is an error naming it, and no image is tagged") {
  auto docker = docker_for_tests();
  TempDir dir;
  // A stand-in npm that fails the way the real one does for a version that does not exist.
  write_file(dir / "npm",
             "#!/bin/sh\n"
             "echo 'npm error code ETARGET' >&2\n"
             "echo 'npm error notarget No matching version found for @openai/codex@0.0.1.' >&2\n"
             "exit 1\n");
  fs::permissions(dir / "npm", fs::perms(0755));
  ImageBuildOptions options;
  options.tag = "polyphony-worker:test-" + random_suffix();
  options.cache_dir = dir / "cache";
  options.npm = (dir / "npm").string();
  options.agents = std::vector<AgentPin>{
      {"codex", "@openai/codex", "0.0.1", "@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex"}};
  auto built = build_worker_image(*docker, options);
  REQUIRE_FALSE(built.ok());
  CHECK(built.error().code == "process");
  CHECK_THAT(built.error().message, Catch::Contains("npm could not install @openai/codex@0.0.1"));
  CHECK_THAT(built.error().message, Catch::Contains("No matching version found"));
  auto exists = docker->image_exists(options.tag);
  REQUIRE(exists.ok());
  CHECK_FALSE(*exists);
  std::vector<fs::path> left;
  for (const auto& e : fs::directory_iterator(dir / "cache/agents")) left.push_back(e.path());
  CHECK(left.empty());
}

TEST_CASE("the worker image runs the pinned claude and codex as agent without network") {
  auto docker = docker_for_tests();
  // Not require_worker_image's once-per-process check: a build of another version (another
  // checkout sharing the engine) may have replaced the image since; this one is a no-op when
  // the image is current, as it is after scripts/setup.sh.
  auto current = build_worker_image(*docker, ImageBuildOptions{});
  INFO((current.ok() ? std::string() : current.error().to_string()));
  REQUIRE(current.ok());
  ContainerJanitor janitor(*docker);
  auto pins = builtin_agents_lock();
  REQUIRE(pins.ok());
  REQUIRE(pins->size() == 2);
  for (const auto& pin : *pins) {
    ContainerSpec spec = janitor.spec({pin.name, "--version"});  // network none
    spec.user = "1000:1000";
    auto id = docker->create_container(spec);
    INFO((id.ok() ? std::string() : id.error().to_string()));
    REQUIRE(id.ok());
    auto started = docker->start_container(*id);
    INFO((started.ok() ? std::string() : started.error().to_string()));
    REQUIRE(started.ok());
    auto code = docker->wait_container(*id, std::chrono::seconds(60));
    REQUIRE(code.ok());
    std::string out;
    REQUIRE(docker
                ->stream_logs(*id, false,
                              [&](int, std::string_view d) {
                                out.append(d);
                                return true;
                              })
                .ok());
    INFO(pin.name << " --version printed: " << out);
    CHECK(*code == 0);
    CHECK_THAT(out, Catch::Contains(pin.version));
  }
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
  REQUIRE(docker
              ->stream_logs(*id, false,
                            [&](int stream, std::string_view d) {
                              (stream == 2 ? err : out).append(d);
                              return true;
                            })
              .ok());
  INFO(out << err);
  REQUIRE(*code == 0);
  CHECK(read_file(repo / "greeting.txt") == "hi\n");
  CHECK(read_file(repo / "who.txt") == "agent\n");
  CHECK(git(repo, {"log", "-1", "--format=%s|%an|%ae"}) ==
        "Greet in the container|Polyphony Agent|agent@polyphony.local\n");
}
