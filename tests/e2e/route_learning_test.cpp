// Routing that learns from outcomes, end to end: tasks the scripted agent lands become the
// evidence `route --explain` shows for their repo and score band, and with `learning:` on, the
// coordinator routes the next task of that band to the proven agent and says why.
#include <catch2/catch.hpp>

#include "single_box.h"

using namespace polyphony;
using namespace polyphony::testing;

namespace {

const std::map<std::string, std::string> kRepo{
    {"README.md", "# notes\n"},
    {".polyphony.yaml", "verify: sh verify.sh\n"},
    {"verify.sh", "set -e\nls ./*.txt\n"},
};

// Each task writes a file of its own, so tasks landing together never conflict.
std::string note_body(const std::string& word) {
  return "```sh\necho " + word + " > " + word + ".txt\n```\n";
}

// Two agents without credentials: `scripted`, and `idle`, which changes nothing (its tasks fail).
const std::string kAgents =
    "agents:\n  scripted:\n    command: [polyphony-scripted-agent, \"{task_file}\"]\n    tier: cheap\n"
    "  idle:\n    command: [sh, -c, \"true\"]\n    tier: cheap\n";

// No rule names an agent, so the default (idle) would implement; learning may replace it once
// an agent landed two tasks of a band.
const std::string kLearningRouting =
    "default:\n  agent: idle\n"
    "learning:\n  enabled: true\n  min_tasks: 2\n  min_landing_rate: 0.9\n";

bool history_has(const nlohmann::json& show, const std::string& to, const std::string& text) {
  for (const auto& e : show["events"]) {
    if (e["to"] == to && e["reason"].get<std::string>().find(text) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TEST_CASE(
    "route --explain shows how earlier tasks of the band ended, and learning routes the next to the proven agent") {
  SingleBox box(kRepo);
  write_file(box.home() / "agents.yaml", kAgents);
  write_file(box.home() / "routing.yaml", kLearningRouting);
  const std::vector<std::string> explain{
      "route", "--explain", "Add a line to the notes", "--repo", box.origin().string(), "--type", "chore"};

  // No history yet: the default agent, and learning says why it did not decide.
  auto before = box.cli(explain);
  INFO(before.err);
  REQUIRE(before.exit_code == 0);
  CHECK_THAT(before.out, Catch::Contains("implementer: idle"));
  CHECK_THAT(before.out, Catch::Contains("learning:    learning (routing.yaml:4) did not decide: no agent landed at "
                                         "least 90% of at least 2 tasks scored 0-3 here"));

  const std::string a = box.spawn("Add alpha to the notes", note_body("alpha"), {"--type", "chore"});
  const std::string b = box.spawn("Add beta to the notes", note_body("beta"), {"--type", "chore"});
  box.serve();
  auto states = box.wait_finished({a, b});
  INFO(box.serve_log());
  REQUIRE(states[a] == "LANDED");
  REQUIRE(states[b] == "LANDED");
  REQUIRE(box.task(a)["score"].get<int>() <= 3);
  REQUIRE(box.task(b)["score"].get<int>() <= 3);

  auto after = box.cli(explain);
  INFO(after.err);
  REQUIRE(after.exit_code == 0);
  CHECK_THAT(after.out, Catch::Contains("outcomes:    scripted landed 2 of 2 tasks scored 0-3 here, median "));
  CHECK_THAT(after.out, Catch::Contains("1 attempt and 0 review rounds a task"));
  CHECK_THAT(after.out, Catch::Contains("implementer: scripted"));
  CHECK_THAT(after.out, Catch::Contains("picked scripted, the cheapest agent that landed at least 90% of at least 2 "
                                        "tasks scored 0-3 here"));
  CHECK_THAT(after.out, Catch::Contains("otherwise idle (default)"));
  auto json_args = explain;
  json_args.push_back("--json");
  auto j = nlohmann::json::parse(box.cli(json_args).out);
  CHECK(j["outcomes"]["band"]["max"] == 3);
  REQUIRE(j["outcomes"]["agents"].size() == 1);
  CHECK(j["outcomes"]["agents"][0]["name"] == "scripted");
  CHECK(j["outcomes"]["agents"][0]["landed"] == 2);
  CHECK(j["outcomes"]["agents"][0]["median_land_ms"].get<int64_t>() > 0);
  CHECK(j["learning"]["decided"] == true);
  CHECK(j["implementer"]["name"] == "scripted");

  // The coordinator learns the same: a task no rule or --agent routes goes to scripted, and its
  // history keeps the evidence (claim) and the decision (dispatch).
  const std::string c = box.spawn_routed("Add gamma to the notes", note_body("gamma"), {"--type", "chore"});
  auto third = box.wait_finished({c});
  REQUIRE(third[c] == "LANDED");
  auto show = nlohmann::json::parse(box.cli({"show", c, "--json"}).out);
  CHECK(show["agent"] == "scripted");
  CHECK(history_has(show, "CLAIMED", "outcomes: scripted landed 2 of 2 tasks scored 0-3 here"));
  CHECK(history_has(show, "ROUTED", "learning (routing.yaml:4) picked scripted"));
  CHECK(history_has(show, "ROUTED", "otherwise idle (default)"));
}
