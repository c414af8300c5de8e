// Tasks whose change is already in the base: they end LANDED "already in base", push nothing,
// and say which base commit holds their change (real containers, a real bare origin).
#include <catch2/catch.hpp>

#include "single_box.h"

using namespace polyphony;
using namespace polyphony::testing;

namespace {

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

TEST_CASE("four tasks making the same change land one commit and three already in base") {
  SingleBox box(sample_repo());
  const std::string before = trimmed(git(box.origin(), {"rev-parse", "main"}));
  // The same file, the same content, committed by each. An agent that starts after another
  // landed the change still commits (allow-empty): a branch with no diff against its base.
  const std::string script =
      "echo 'echo \"Bye, $1!\"' > bye.sh\n"
      "git add bye.sh && git commit -q --allow-empty -m 'Add bye.sh'";
  std::vector<std::string> ids;
  for (int i = 1; i <= 4; ++i) {
    ids.push_back(
        box.spawn("Add a farewell script (" + std::to_string(i) + ")", "Do it.\n\n```sh\n" + script + "\n```\n"));
  }
  // Two of them (or more) wait verified side by side before any lands: each lands on a base that
  // moved under it.
  const auto release = box.home() / "release-verifying";
  box.serve({{"POLYPHONY_TEST_HOLD_VERIFYING_UNTIL", release.string()}});
  REQUIRE(eventually(
      [&] {
        const std::string log = box.serve_log();
        size_t held = 0;
        for (size_t at = log.find("test hold in VERIFYING starts"); at != std::string::npos;
             at = log.find("test hold in VERIFYING starts", at + 1)) {
          ++held;
        }
        return held >= 2;
      },
      std::chrono::seconds(120)));
  write_file(release, "");
  auto states = box.wait_finished(ids, std::chrono::seconds(300));
  INFO(box.serve_log());
  for (const auto& id : ids) {
    INFO(id << ": " << box.cli({"logs", id}).out);
    REQUIRE(states[id] == "LANDED");
  }
  const std::string head = trimmed(git(box.origin(), {"rev-parse", "main"}));
  // Exactly one commit on the origin's main: no empty landings.
  CHECK(trimmed(git(box.origin(), {"rev-list", "--count", before + ".." + head})) == "1");
  CHECK(git(box.origin(), {"show", "main:bye.sh"}) == "echo \"Bye, $1!\"\n");
  int pushed = 0, held = 0;
  for (const auto& id : ids) {
    auto show = box.cli({"show", id, "--json"});
    REQUIRE(show.exit_code == 0);
    const auto t = nlohmann::json::parse(show.out);
    INFO(show.out);
    CHECK(t["merged_commit"] == head);
    if (t["already_in_base"] == "") {
      ++pushed;
      CHECK(t["commit"] != "");
      continue;
    }
    ++held;
    CHECK(t["already_in_base"] == head);
    CHECK(t["commit"] == "");
    CHECK_THAT(t["reason"].get<std::string>(), Catch::StartsWith("already in base: " + head.substr(0, 12)));
    // Nothing of it was pushed: no task branch on the origin.
    CHECK(git(box.origin(), {"branch", "--list", t["branch"].get<std::string>()}).empty());
    CHECK_THAT(box.cli({"show", id}).out, Catch::Contains("landed  nothing: " + head + " on the base already holds"));
  }
  CHECK(pushed == 1);
  CHECK(held == 3);
}
