// The real Claude Code and Codex CLIs, installed in polyphony-worker:latest, run tasks end to end
// against stand-in model APIs (tests/fake_model) in a network namespace with no route out: the
// shipped agent profiles, each run's own config directory, structured output read into
// `polyphony show`, review, fallback, budget and a 1 MiB task.
#include <catch2/catch.hpp>

#include "model_net.h"
#include "single_box.h"

using namespace polyphony;
using namespace polyphony::testing;
using nlohmann::json;

namespace {

// A repo whose test fails: add() subtracts.
const std::map<std::string, std::string> kRepo{
    {"README.md", "# calc\n"},
    {".polyphony.yaml", "verify: sh test.sh\n"},
    {"calc.sh", "add() { echo $(($1 - $2)); }\n"},
    {"test.sh", ". ./calc.sh\n[ \"$(add 2 3)\" = 5 ] || { echo \"add 2 3 gave $(add 2 3)\"; exit 1; }\necho ok\n"},
};

// What a model that fixes it does: read the file, edit it, run the test, say so.
json fix_script() {
  return json{
      {"model", "fake-model-1"},
      {"steps",
       {{{"read", "calc.sh"}, {"usage", {{"input_tokens", 1200}, {"output_tokens", 40}}}},
        {{"edit",
          {{"path", "calc.sh"}, {"old", "add() { echo $(($1 - $2)); }"}, {"new", "add() { echo $(($1 + $2)); }"}}},
         {"usage", {{"input_tokens", 1300}, {"output_tokens", 50}}}},
        {{"shell", "sh test.sh"}, {"usage", {{"input_tokens", 1400}, {"output_tokens", 60}}}},
        {{"final", "Fixed add(): it subtracted."}, {"usage", {{"input_tokens", 1500}, {"output_tokens", 70}}}}}}};
}

// identities.yaml pointing the shipped claude and codex profiles at the stand-ins; the codex
// config (its provider) is an identity file, copied into each run's CODEX_HOME.
std::string identities(const TempDir& dir, int anthropic_port, int openai_port) {
  write_file(dir / "codex-config.toml",
             "model = \"gpt-5.5\"\nmodel_provider = \"fake\"\napproval_policy = \"never\"\n"
             "sandbox_mode = \"danger-full-access\"\nweb_search = \"disabled\"\n"
             "[model_providers.fake]\nname = \"Fake\"\nbase_url = \"http://127.0.0.1:" +
                 std::to_string(openai_port) +
                 "/v1\"\nenv_key = \"FAKE_MODEL_API_KEY\"\nwire_api = \"responses\"\nrequest_max_retries = 0\n"
                 "stream_max_retries = 0\n[features]\nshell_snapshot = false\n");
  return "identities:\n"
         "  anthropic:\n"
         "    env:\n"
         "      ANTHROPIC_API_KEY: {value: test-anthropic-key-5150}\n"
         "      ANTHROPIC_BASE_URL: {value: \"http://127.0.0.1:" +
         std::to_string(anthropic_port) +
         "\"}\n"
         "      CLAUDE_CODE_MAX_RETRIES: {value: \"0\"}\n"
         "  openai:\n"
         "    files:\n"
         "      - {host: " +
         (dir / "codex-config.toml").string() +
         ", as: config.toml}\n"
         "    env:\n"
         "      FAKE_MODEL_API_KEY: {value: test-openai-key-6160}\n"
         "  moonshot: {}\n";
}

// A box whose task containers live in the model net, with the stand-ins' identities.
std::unique_ptr<SingleBox> box_in(const ModelNet& net, const TempDir& dir, int anthropic_port, int openai_port,
                                  const std::string& extra_config = "") {
  auto box = std::make_unique<SingleBox>(kRepo, "container: {network: \"" + net.network_mode() + "\", image: \"" +
                                                    ModelNet::image() + "\", memory: 2g, run_timeout_s: 300}\n" +
                                                    extra_config);
  write_file(box->home() / "identities.yaml", identities(dir, anthropic_port, openai_port));
  return box;
}

json show(const SingleBox& box, const std::string& id) {
  return json::parse(box.cli({"show", id, "--json"}).out);
}

// The request bodies a stand-in got that carried tools (the agent's own turns).
std::vector<json> main_requests(const ModelNet& net, const std::string& name) {
  std::vector<json> out;
  for (auto& r : net.requests(name)) {
    if (r["body"].is_object() && r["body"].contains("tools") && !r["body"]["tools"].empty()) out.push_back(r["body"]);
  }
  return out;
}

// Spawns the fix for `agent`, serves until it ends, and requires it LANDED with the fix on the
// origin. Returns the task id.
std::string lands_fix(SingleBox& box, const std::string& agent) {
  const std::string id = box.spawn("Fix add in calc.sh", "The test fails: add 2 3 gives -1.", {"--agent", agent});
  box.serve();
  auto states = box.wait_finished({id}, std::chrono::seconds(300));
  INFO(box.serve_log());
  INFO(box.cli({"logs", id}).out);
  REQUIRE(states[id] == "LANDED");
  CHECK_THAT(git(box.origin(), {"show", "main:calc.sh"}), Catch::Contains("$1 + $2"));
  return id;
}

bool history_has(const json& shown, const std::string& text) {
  for (const auto& e : shown["events"]) {
    if (e["reason"].get<std::string>().find(text) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("real claude fixes a failing test, and the task lands with show reporting its model, turns and tokens") {
  ModelNet net;
  TempDir dir;
  const int port = net.serve("anthropic", fix_script());
  auto box = box_in(net, dir, port, 1);
  const std::string id = lands_fix(*box, "claude");
  const auto requests = main_requests(net, "anthropic");
  REQUIRE(requests.size() >= 4);
  CHECK_THAT(requests.front().dump(), Catch::Contains("add 2 3 gives -1"));  // the prompt, on stdin
  const json s = show(*box, id);
  REQUIRE(s["agent_runs"].size() == 1);
  const json& run = s["agent_runs"][0];
  CHECK(run["agent"] == "claude");
  CHECK(run["role"] == "implementer");
  CHECK(run["model"] == "fake-model-1");
  CHECK(run["turns"] == 4);
  CHECK(run["input_tokens"] == 5400);
  CHECK(run["output_tokens"] == 220);
  CHECK(run["final_message"] == "Fixed add(): it subtracted.");
  CHECK_THAT(box->cli({"show", id}).out, Catch::Contains("turns 4") && Catch::Contains("tokens 5400 in / 220 out"));
  CHECK(box->no_containers_left(id));
}

TEST_CASE("real codex fixes a failing test, and the task lands with its tokens recorded") {
  ModelNet net;
  TempDir dir;
  const int port = net.serve("openai", fix_script());
  auto box = box_in(net, dir, 1, port);
  const std::string id = lands_fix(*box, "codex");
  const auto requests = main_requests(net, "openai");
  REQUIRE(requests.size() >= 4);
  CHECK(requests.front()["model"] == "gpt-5.5");  // from the identity's config.toml, in the run's own CODEX_HOME
  CHECK_THAT(requests.front().dump(), Catch::Contains("add 2 3 gives -1"));
  const json s = show(*box, id);
  REQUIRE(s["agent_runs"].size() == 1);
  CHECK(s["agent_runs"][0]["agent"] == "codex");
  CHECK(s["agent_runs"][0]["input_tokens"] == 5400);
  CHECK(s["agent_runs"][0]["output_tokens"] == 220);
  CHECK(s["agent_runs"][0]["turns"].get<int>() >= 3);
}

TEST_CASE("a 429 from the model API moves the task from codex to claude, which lands it") {
  ModelNet net;
  TempDir dir;
  const int openai = net.serve("openai", json{{"fail", {{"status", 429}, {"times", -1}}}});
  const int anthropic = net.serve("anthropic", fix_script());
  auto box = box_in(net, dir, anthropic, openai);
  write_file(box->home() / "routing.yaml", "default:\n  agent: codex\n  fallback: [claude]\n");
  const std::string id = box->spawn_routed("Fix add in calc.sh", "The test fails: add 2 3 gives -1.");
  box->serve();
  auto states = box->wait_finished({id}, std::chrono::seconds(300));
  INFO(box->serve_log());
  REQUIRE(states[id] == "LANDED");
  const json s = show(*box, id);
  CHECK(s["agent"] == "claude");
  CHECK(history_has(
      s, "agent codex unavailable, falling back to claude: the model API refused agent codex (rate limited)"));
  CHECK_FALSE(main_requests(net, "openai").empty());
  CHECK_THAT(git(box->origin(), {"show", "main:calc.sh"}), Catch::Contains("$1 + $2"));
}

TEST_CASE("a task whose agent passes its turn budget stops with reason budget and is not retried") {
  ModelNet net;
  TempDir dir;
  const int port = net.serve("anthropic", fix_script());
  auto box = box_in(net, dir, port, 1, "budget: {max_turns: 2}\n");
  const std::string id = box->spawn("Fix add in calc.sh", "The test fails.", {"--agent", "claude"});
  box->serve();
  auto states = box->wait_finished({id}, std::chrono::seconds(300));
  INFO(box->serve_log());
  REQUIRE(states[id] == "FAILED");
  const json t = box->task(id);
  CHECK(t["failure_kind"] == "budget");
  CHECK_THAT(t["reason"].get<std::string>(), Catch::Contains("passed its budget of 2 turns"));
  CHECK(t["attempt"] == 1);
  CHECK_THAT(git(box->origin(), {"show", "main:calc.sh"}), Catch::Contains("$1 - $2"));  // nothing landed
}

TEST_CASE("a task body of 1 MiB reaches each real agent whole on stdin and lands") {
  std::string body = "The test fails: add 2 3 gives -1.\n";
  while (body.size() < (1 << 20) - 64) body += "Context line that pads the task to the 1 MiB limit.\n";
  for (const std::string agent : {"claude", "codex"}) {
    INFO(agent);
    ModelNet net;
    TempDir dir;
    const std::string api = agent == "claude" ? "anthropic" : "openai";
    const int port = net.serve(api, fix_script());
    auto box = box_in(net, dir, agent == "claude" ? port : 1, agent == "codex" ? port : 1);
    write_file(box->home() / "body.md", body);
    auto spawned = box->cli({"spawn", "Fix add", "--repo", box->origin().string(), "--agent", agent, "--body-file",
                             (box->home() / "body.md").string()});
    INFO(spawned.err);
    REQUIRE(spawned.exit_code == 0);
    const std::string id = spawned.out.substr(0, 8);
    box->serve();
    auto states = box->wait_finished({id}, std::chrono::seconds(400));
    INFO(box->serve_log());
    REQUIRE(states[id] == "LANDED");
    const auto requests = main_requests(net, api);
    REQUIRE_FALSE(requests.empty());
    CHECK(requests.front().dump().size() > body.size());
  }
}

TEST_CASE(
    "review plan with real agents: codex implements, a real claude reviewer requests changes once, then approves") {
  ModelNet net;
  TempDir dir;
  // The implementer answers a review when there is one; the reviewer approves once it has been answered.
  const json implementer{{"steps",
                          {{{"shell",
                             "sed -i 's/\\$1 - \\$2/$1 + $2/' calc.sh && if [ -f /polyphony/review.md ]; then cp "
                             "/polyphony/review.md answered.md; fi"}},
                           {{"final", "Fixed."}}}}};
  const json reviewer{
      {"steps",
       {{{"shell",
          "if [ -f /workspace/answered.md ]; then printf 'approve\\nGood.\\n' > \"$POLYPHONY_VERDICT_FILE\"; "
          "else printf 'changes requested\\nPlease record that you read this review.\\n' > "
          "\"$POLYPHONY_VERDICT_FILE\"; fi"}},
        {{"final", "Verdict written."}}}}};
  const int openai = net.serve("openai", implementer);
  const int anthropic = net.serve("anthropic", reviewer);
  auto box = box_in(net, dir, anthropic, openai);
  write_file(
      box->home() / "routing.yaml",
      "rules:\n  - match: {task_type: reviewed}\n    agent: codex\n    plan: review\ndefault:\n  agent: codex\n");
  const std::string id = box->spawn_routed("Fix add in calc.sh", "The test fails.", {"--type", "reviewed"});
  box->serve();
  auto states = box->wait_finished({id}, std::chrono::seconds(400));
  INFO(box->serve_log());
  INFO(box->cli({"logs", id}).out);
  REQUIRE(states[id] == "LANDED");
  const json s = show(*box, id);
  CHECK(history_has(s, "review by claude (round 1): changes requested: Please record that you read this review."));
  CHECK(history_has(s, "review by claude (round 2): approved"));
  CHECK_THAT(git(box->origin(), {"show", "main:answered.md"}),
             Catch::Contains("Please record that you read this review"));
  int reviews = 0;
  for (const auto& run : s["agent_runs"]) reviews += run["role"] == "reviewer" && run["agent"] == "claude";
  CHECK(reviews == 2);
}

TEST_CASE(
    "bad agents: a structured profile whose CLI is missing falls back, garbage events fail, a silent API stalls out") {
  ModelNet net;
  TempDir dir;
  const int anthropic = net.serve("anthropic", fix_script());
  const int silent = net.serve("silent", json{{"stall", true}});
  auto box = box_in(net, dir, anthropic, 1, "max_attempts: 1\ncontainer: {stall_timeout_s: 5}\n");
  // Over the shipped profiles: a claude that is not installed, one that prints garbage, and one
  // whose model API never answers (its identity points it at the silent stand-in).
  std::string agents = read_file(box->home() / "agents.yaml");
  agents +=
      "  missing:\n    command: [polyphony-no-such-cli, -p]\n    stdin: \"{prompt}\"\n    output: claude-stream-json\n"
      "    identity: anthropic\n"
      "  garbage:\n    command: [sh, -c, \"echo not json; echo '{\\\"type\\\":\\\"assistant\\\"'; echo > calc.sh\"]\n"
      "    output: claude-stream-json\n"
      "  hanging:\n    command: [claude, -p, --output-format, stream-json, --verbose, --dangerously-skip-permissions]\n"
      "    stdin: \"{prompt}\"\n    output: claude-stream-json\n    config_dir_env: CLAUDE_CONFIG_DIR\n    identity: "
      "silent\n";
  write_file(box->home() / "agents.yaml", agents);
  std::string ids = read_file(box->home() / "identities.yaml");
  ids +=
      "  silent:\n    env:\n      ANTHROPIC_API_KEY: {value: test-silent-key-7170}\n"
      "      ANTHROPIC_BASE_URL: {value: \"http://127.0.0.1:" +
      std::to_string(silent) + "\"}\n";
  write_file(box->home() / "identities.yaml", ids);
  write_file(box->home() / "routing.yaml",
             "rules:\n  - match: {task_type: missing}\n    agent: missing\ndefault:\n  agent: missing\n  fallback: "
             "[claude]\n");
  const std::string missing = box->spawn_routed("Fix add", "The test fails.", {"--type", "missing"});
  const std::string garbage = box->spawn("Fix add", "The test fails.", {"--agent", "garbage"});
  const std::string hanging = box->spawn("Fix add", "The test fails.", {"--agent", "hanging"});
  box->serve();
  auto states = box->wait_finished({missing, garbage, hanging}, std::chrono::seconds(300));
  INFO(box->serve_log());
  CHECK(states[missing] == "LANDED");
  CHECK(history_has(show(*box, missing), "agent missing unavailable, falling back to claude"));
  CHECK(states[garbage] == "FAILED");
  CHECK(box->task(garbage)["failure_kind"] == "agent");
  CHECK_THAT(box->task(garbage)["reason"].get<std::string>(),
             Catch::Contains("without the closing event of its structured output (2 lines were not JSON events)"));
  CHECK(states[hanging] == "BLOCKED");
  CHECK_THAT(box->task(hanging)["reason"].get<std::string>(), Catch::Contains("printed nothing for 5 s"));
  CHECK_FALSE(main_requests(net, "silent").empty());
}
