// `polyphony completion bash` prints a script that bash loads and that completes commands and
// flags from the programs' definitions; driven as bash drives it (COMP_WORDS, COMP_CWORD).
#include <catch2/catch.hpp>

#include "cli/cli.h"
#include "common/process.h"
#include "test_support.h"

using namespace polyphony;
using namespace polyphony::testing;

namespace {

// What the completion function `function` offers for `words`, the last one being completed.
std::string complete(const std::filesystem::path& script, const std::string& function, const std::string& words) {
  const std::string program = "source " + script.string() + " && COMP_WORDS=(" + words +
                              ") && COMP_CWORD=$((${#COMP_WORDS[@]} - 1)) && " + function +
                              " && for w in \"${COMPREPLY[@]}\"; do echo \"$w\"; done";
  auto r = run_process({"bash", "--norc", "--noprofile", "-c", program});
  REQUIRE(r.ok());
  INFO(r->err);
  REQUIRE(r->exit_code == 0);
  return r->out;
}

}  // namespace

TEST_CASE("polyphony completion bash completes commands, subcommands and flags in bash") {
  TempDir dir;
  ProcessOptions o;
  o.timeout = std::chrono::seconds(30);
  auto script = run_process({POLYPHONY_CLI, "completion", "bash"}, o);
  REQUIRE(script.ok());
  REQUIRE(script->exit_code == 0);
  write_file(dir / "polyphony.bash", script->out);
  auto loaded = run_process({"bash", "--norc", "--noprofile", "-c",
                             "source " + (dir / "polyphony.bash").string() +
                                 " && complete -p polyphony && complete -p polyphony-worker polyphony-submit"});
  REQUIRE(loaded.ok());
  CHECK(loaded->exit_code == 0);
  CHECK_THAT(loaded->out, Catch::Contains("-F _polyphony polyphony"));
  const auto file = dir / "polyphony.bash";
  CHECK(complete(file, "_polyphony", "polyphony sta") == "status\n");
  CHECK(complete(file, "_polyphony", "polyphony status --st") == "--state\n");
  CHECK(complete(file, "_polyphony", "polyphony image ''") == "build\n");
  CHECK(complete(file, "_polyphony", "polyphony cle") == "cleanup\n");
  CHECK(complete(file, "_polyphony", "polyphony mc") == "mcp\n");
  CHECK(complete(file, "_polyphony", "polyphony workers ''") == "remove\n");
  CHECK(complete(file, "_polyphony", "polyphony workers remove --fo") == "--force\n");
  CHECK(complete(file, "_polyphony", "polyphony image build --ag") == "--agents\n");
  CHECK(complete(file, "_polyphony", "polyphony logs -") == "--help\n-h\n--attempt\n--follow\n-f\n");
  // After a flag that takes a value, what follows is that value, not a command.
  CHECK(complete(file, "_polyphony", "polyphony spawn --repo status --la") == "--label\n--land-to\n");
  CHECK(complete(file, "_polyphony", "polyphony spawn --repo ''").empty());
  CHECK(complete(file, "_polyphony_worker", "polyphony-worker --cap") == "--capacity\n");
  CHECK(complete(file, "_polyphony_worker", "polyphony-worker cl") == "cleanup\n");
  CHECK(complete(file, "_polyphony_submit", "polyphony-submit t --wa") == "--wait\n");
}
