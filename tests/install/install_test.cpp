// `cmake --install` of this build tree into a temporary DESTDIR: every file the systemd units and
// the READMEs name is installed, and the installed programs find their data under the prefix.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <regex>
#include <set>

#include "common/process.h"
#include "test_support.h"

using namespace polyphony;
using polyphony::testing::read_file;
using polyphony::testing::TempDir;
namespace fs = std::filesystem;

namespace {

// The prefix the units and READMEs name.
const fs::path kPrefix = "/usr/local";

// Installs the build tree under <destdir>/usr/local; returns <destdir>/usr/local.
fs::path install_into(const TempDir& destdir) {
  ProcessOptions po;
  po.env["DESTDIR"] = destdir.path().string();
  po.timeout = std::chrono::minutes(2);
  auto r = run_checked({CMAKE_COMMAND, "--install", POLYPHONY_BUILD_DIR, "--prefix", kPrefix.string()}, po);
  if (!r.ok()) FAIL("cmake --install failed: " << r.error().to_string());
  return destdir.path() / kPrefix.relative_path();
}

// Every absolute path under /usr/local in `text` (`file:///usr/local/...` included).
std::set<fs::path> prefix_paths(const std::string& text) {
  static const std::regex path_re("/usr/local/[A-Za-z0-9._/+-]*[A-Za-z0-9_+-]");
  std::set<fs::path> out;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), path_re); it != std::sregex_iterator(); ++it) {
    out.insert(it->str());
  }
  return out;
}

// The README's install section: from its "## Installing" heading to the next "## " heading.
std::string install_section(const std::string& readme) {
  const auto start = readme.find("\n## Installing");
  REQUIRE(start != std::string::npos);
  const auto end = readme.find("\n## ", start + 1);
  return readme.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

std::set<fs::path> named_paths() {
  const fs::path src = POLYPHONY_SOURCE_DIR;
  std::set<fs::path> named = prefix_paths(install_section(read_file(src / "README.md")));
  named.merge(prefix_paths(read_file(src / "deploy/README.md")));
  for (const auto& unit : fs::directory_iterator(src / "deploy/systemd")) named.merge(prefix_paths(read_file(unit)));
  return named;
}

bool executable(const fs::path& p) {
  return fs::is_regular_file(p) && ::access(p.c_str(), X_OK) == 0;
}

}  // namespace

TEST_CASE("cmake --install puts every file the systemd units and the READMEs name under the prefix") {
  const auto named = named_paths();
  // The units start these; the README names the rest.
  REQUIRE(named.count(kPrefix / "bin/polyphony") == 1);
  REQUIRE(named.count(kPrefix / "bin/polyphony-worker") == 1);
  TempDir destdir("polyphony-install");
  const fs::path root = install_into(destdir);
  for (const auto& path : named) {
    CAPTURE(path);
    CHECK(fs::exists(destdir.path() / path.relative_path()));
  }
  for (const char* program : {"polyphony", "polyphony-worker", "polyphony-submit", "polyphony-runner"}) {
    CAPTURE(program);
    CHECK(executable(root / "bin" / program));
  }
  CHECK(executable(root / "share/polyphony/docker/scripted-agent"));
}

TEST_CASE("the installed docker files are the source tree's, so the worker image they make is the same") {
  TempDir destdir("polyphony-install");
  const fs::path docker = install_into(destdir) / "share/polyphony/docker";
  const fs::path src = fs::path(POLYPHONY_SOURCE_DIR) / "docker";
  for (const char* file : {"Dockerfile", "scripted-agent", "agents.lock"}) {
    CAPTURE(file);
    REQUIRE(fs::is_regular_file(docker / file));
    CHECK(read_file(docker / file) == read_file(src / file));
  }
}

TEST_CASE("the installed polyphony finds its data files under its own prefix, not in the source tree") {
  TempDir destdir("polyphony-install");
  const fs::path root = install_into(destdir);
  auto r = run_checked({(root / "bin/polyphony").string(), "version"});
  REQUIRE(r.ok());
  CHECK(r->out.find("polyphony " POLYPHONY_VERSION "\n") == 0);
  const fs::path data = fs::canonical(root / "share/polyphony");
  CHECK(r->out.find("data: " + data.string() + "\n") != std::string::npos);
}
