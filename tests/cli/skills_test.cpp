// `polyphony init --skills DIR` installs the shipped agent skills, each a Claude Code skill with
// the front matter that format requires.
#include <catch2/catch.hpp>

#include <yaml-cpp/yaml.h>
#include <regex>

#include "common/process.h"
#include "test_support.h"

using namespace polyphony;
using namespace polyphony::testing;

namespace {

ProcessResult init_skills(const TempDir& dir, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> argv{POLYPHONY_CLI, "init", "--skills", (dir / "skills").string()};
  argv.insert(argv.end(), extra.begin(), extra.end());
  ProcessOptions o;
  o.timeout = std::chrono::seconds(30);
  o.env["POLYPHONY_HOME"] = (dir / "home").string();
  auto r = run_process(argv, o);
  REQUIRE(r.ok());
  return *r;
}

}  // namespace

TEST_CASE("init --skills installs the delegation, team and review skills with valid front matter") {
  TempDir dir;
  auto r = init_skills(dir);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK_FALSE(std::filesystem::exists(dir / "home"));  // POLYPHONY_HOME is left alone
  for (const std::string name : {"polyphony-delegation", "polyphony-team", "polyphony-review"}) {
    INFO(name);
    const std::string text = read_file(dir / "skills" / name / "SKILL.md");
    REQUIRE(text.rfind("---\n", 0) == 0);
    const size_t end = text.find("\n---\n", 4);
    REQUIRE(end != std::string::npos);
    YAML::Node front = YAML::Load(text.substr(4, end - 4));
    // Claude Code: name is lowercase letters, digits and hyphens, at most 64 characters, and
    // names the skill's folder; description says what and when, at most 1024 characters.
    CHECK(front["name"].as<std::string>() == name);
    CHECK(std::regex_match(name, std::regex("[a-z0-9-]{1,64}")));
    const std::string description = front["description"].as<std::string>();
    CHECK(description.size() <= 1024);
    CHECK_THAT(description, Catch::Contains("Use when"));
    CHECK_THAT(front["allowed-tools"].as<std::string>(), Catch::Contains("mcp__polyphony__"));
    CHECK_THAT(text.substr(end), Catch::Contains("wait"));
  }
}

TEST_CASE("init --skills refuses to overwrite installed skills unless --force") {
  TempDir dir;
  REQUIRE(init_skills(dir).exit_code == 0);
  write_file(dir / "skills/polyphony-team/SKILL.md", "edited\n");
  auto again = init_skills(dir);
  CHECK(again.exit_code == 2);
  CHECK_THAT(again.err, Catch::Contains("--skills") && Catch::Contains("--force"));
  CHECK(read_file(dir / "skills/polyphony-team/SKILL.md") == "edited\n");
  CHECK(init_skills(dir, {"--force"}).exit_code == 0);
  CHECK(read_file(dir / "skills/polyphony-team/SKILL.md").rfind("---\nname: polyphony-team\n", 0) == 0);
}
