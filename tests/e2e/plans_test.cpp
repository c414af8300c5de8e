// Plans and fallbacks end to end: a reviewer that sends the work back once, an agent whose CLI
// is missing handing the attempt to the next in the chain, a task scored at its claim, and
// verify failures that retry with what went wrong until attempts run out.
#include <catch2/catch.hpp>

#include "single_box.h"

using namespace polyphony;
using namespace polyphony::testing;

namespace {

const std::map<std::string, std::string> kRepo{
    {"README.md", "# plans\n"},
    {".polyphony.yaml", "verify: sh verify.sh\n"},
    {"verify.sh", "set -e\ntest -f done.txt\n"},
};

// Agents for these tests, laid over the defaults: `scripted` implements; `reviewer` asks for
// changes until the implementer has answered a review (review-answered.txt), then approves;
// `ghost` names a CLI that is not in the image.
const std::string kAgents = R"(agents:
  scripted:
    command: [polyphony-scripted-agent, "{task_file}"]
    tier: cheap
  reviewer:
    command:
      - sh
      - -c
      - |
        if [ -f /workspace/review-answered.txt ]; then
          printf 'approve\nThe answer to the review is there.\n' > "$POLYPHONY_VERDICT_FILE"
        else
          printf 'changes requested\nPlease add review-answered.txt.\n' > "$POLYPHONY_VERDICT_FILE"
        fi
        echo "reviewed round $POLYPHONY_ROUND"
    tier: strong
  ghost:
    command: [polyphony-no-such-agent, "{task_file}"]
    tier: cheap
)";

// The implementer answers a review when there is one.
const std::string kImplementer =
    "```sh\n"
    "echo done > done.txt\n"
    "if [ -f /polyphony/review.md ]; then cp /polyphony/review.md review-answered.txt; fi\n"
    "```\n";

int count_events_to(const nlohmann::json& show, const std::string& to) {
  int n = 0;
  for (const auto& e : show["events"]) n += e["to"] == to;
  return n;
}

bool history_has(const nlohmann::json& show, const std::string& text) {
  for (const auto& e : show["events"]) {
    if (e["reason"].get<std::string>().find(text) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TEST_CASE(
    "a review plan: the reviewer requests changes once, the implementer answers, the reviewer approves, it lands") {
  SingleBox box(kRepo);
  write_file(box.home() / "agents.yaml", kAgents);
  write_file(box.home() / "routing.yaml",
             "rules:\n  - match: {task_type: reviewed}\n    agent: scripted\n    plan: review\n"
             "default:\n  agent: scripted\n");
  const std::string id = box.spawn_routed("Reviewed change", kImplementer, {"--type", "reviewed"});
  box.serve();
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  REQUIRE(states[id] == "LANDED");
  CHECK(box.task(id)["attempt"] == 1);
  CHECK_THAT(git(box.origin(), {"show", "main:review-answered.txt"}),
             Catch::Contains("Please add review-answered.txt"));
  auto show = nlohmann::json::parse(box.cli({"show", id, "--json"}).out);
  CHECK(history_has(show, "review by reviewer (round 1): changes requested: Please add review-answered.txt"));
  CHECK(history_has(show, "review by reviewer (round 2): approved"));
  CHECK(count_events_to(show, "RUNNING") == 2);  // sent back once
  auto logs = box.cli({"logs", id});
  CHECK_THAT(logs.out, Catch::Contains("reviewed round 1") && Catch::Contains("reviewed round 2"));
  CHECK(box.no_containers_left(id));
}

TEST_CASE("a review plan whose reviewer never approves fails with the review after review_rounds") {
  SingleBox box(kRepo, "review_rounds: 1\n");
  write_file(box.home() / "agents.yaml", kAgents);
  write_file(box.home() / "routing.yaml",
             "rules:\n  - match: {task_type: reviewed}\n    agent: scripted\n    plan: review\n"
             "default:\n  agent: scripted\n");
  // This implementer ignores the review.
  const std::string id =
      box.spawn_routed("Stubborn change", "```sh\necho done > done.txt\n```\n", {"--type", "reviewed"});
  box.serve();
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  REQUIRE(states[id] == "FAILED");
  auto t = box.task(id);
  CHECK(t["failure_kind"] == "review");
  CHECK_THAT(t["reason"].get<std::string>(), Catch::Contains("still requests changes after 2 reviews"));
  CHECK_THROWS(git(box.origin(), {"show", "main:done.txt"}));
}

TEST_CASE("an agent whose CLI is missing hands the attempt to the next agent of the fallback chain") {
  SingleBox box(kRepo);
  write_file(box.home() / "agents.yaml", kAgents);
  write_file(box.home() / "routing.yaml", "default:\n  agent: ghost\n  fallback: [scripted]\n");
  const std::string id = box.spawn_routed("Fallback change", "```sh\necho done > done.txt\n```\n");
  box.serve();
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  REQUIRE(states[id] == "LANDED");
  auto t = box.task(id);
  CHECK(t["agent"] == "scripted");
  CHECK(t["attempt"] == 2);
  auto show = nlohmann::json::parse(box.cli({"show", id, "--json"}).out);
  CHECK(history_has(show, "agent ghost ("));
  CHECK(history_has(show, "agent ghost unavailable, falling back to scripted"));
  CHECK(history_has(show, "agent scripted ("));
  CHECK(box.no_containers_left(id));
}

TEST_CASE("when every agent of the chain is missing the task is BLOCKED saying so") {
  SingleBox box(kRepo);
  write_file(box.home() / "agents.yaml", kAgents);
  write_file(box.home() / "routing.yaml", "default:\n  agent: ghost\n");
  const std::string id = box.spawn_routed("Nobody home", "```sh\necho done > done.txt\n```\n");
  box.serve();
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  REQUIRE(states[id] == "BLOCKED");
  CHECK_THAT(box.task(id)["reason"].get<std::string>(),
             Catch::Contains("no agent left in the fallback chain") && Catch::Contains("ghost"));
}

TEST_CASE("a verify that keeps failing on new trees is retried with the failure shown to the agent, then BLOCKED") {
  SingleBox box(kRepo, "max_attempts: 3\nretry_backoff_base_ms: 100\nretry_backoff_cap_ms: 200\n");
  // Each attempt writes a different file, so no tree repeats; verify never finds done.txt.
  const std::string id =
      box.spawn("Never passes",
                "```sh\necho \"$POLYPHONY_ATTEMPT\" > attempt.txt\n"
                "if grep -q 'An earlier attempt failed' /polyphony/task.md; then echo saw-feedback; fi\n```\n",
                {"--agent", "scripted"});
  box.serve();
  auto states = box.wait_finished({id}, std::chrono::seconds(180));
  INFO(box.serve_log());
  REQUIRE(states[id] == "BLOCKED");
  auto t = box.task(id);
  CHECK(t["attempt"] == 3);
  CHECK(t["failure_kind"] == "verify");
  CHECK_THAT(t["reason"].get<std::string>(), Catch::Contains("gave up after 3 attempts") && Catch::Contains("verify"));
  auto show = nlohmann::json::parse(box.cli({"show", id, "--json"}).out);
  CHECK(count_events_to(show, "FAILED") == 3);
  CHECK_THAT(box.cli({"logs", id}).out, Catch::Contains("saw-feedback"));
}

TEST_CASE("the coordinator scores a task when it claims it, and status shows the score and plan") {
  SingleBox box(std::map<std::string, std::string>{
      {".polyphony.yaml", "verify: sh verify.sh\n"},
      {"verify.sh", "set -e\ntest -f done.txt\n"},
      {"auth.c", "int login(const char* password) {\n  return check_token(password);\n}\n"},
      {"main.c", "int main() { return login(\"x\") + login(\"y\"); }\n"}});
  const std::string id = box.spawn("Fix the login password check in auth.c", "```sh\necho done > done.txt\n```\n",
                                   {"--agent", "scripted", "--risk", "high"});
  box.serve();
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  REQUIRE(states[id] == "LANDED");
  auto t = box.task(id);
  REQUIRE(t.contains("score"));
  CHECK(t["score"].get<int>() >= 3);  // security keywords (login, password) and risk high at least
  CHECK(t["plan"] == "solo");         // --agent pins a solo plan
  auto table = box.cli({"status"});
  CHECK_THAT(table.out, Catch::Contains("SCORE") && Catch::Contains("PLAN"));
  auto show = nlohmann::json::parse(box.cli({"show", id, "--json"}).out);
  CHECK(history_has(show, "complexity " + std::to_string(t["score"].get<int>()) + "/10"));
}

TEST_CASE("an agent's identity is mounted read-only and its secret never reaches the logs, the DB or status") {
  SingleBox box(kRepo);
  const std::string secret = "sk-polyphony-test-7f3a9c";
  write_file(box.home() / "vault/config", "creds\n");
  write_file(box.home() / "vault-token", secret + "\n");
  write_file(box.home() / "identities.yaml",
             "identities:\n  vault:\n    mounts:\n      - host: " + (box.home() / "vault").string() +
                 "\n        container: /home/agent/creds\n    env:\n      SECRET_TOKEN: {from_file: " +
                 (box.home() / "vault-token").string() + "}\n");
  write_file(box.home() / "agents.yaml",
             "agents:\n  secretive:\n    identity: vault\n    command:\n      - sh\n      - -c\n      - |\n"
             "        set -e\n"
             "        test -r /home/agent/creds/config\n"
             "        if touch /home/agent/creds/written 2>/dev/null; then echo mount-is-writable; exit 1; fi\n"
             "        echo \"token is $SECRET_TOKEN\"\n"
             "        echo done > done.txt\n");
  write_file(box.home() / "routing.yaml", "default:\n  agent: secretive\n");
  const std::string id = box.spawn_routed("Use the vault", "");
  box.serve();
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  REQUIRE(states[id] == "LANDED");
  const std::string logs = box.cli({"logs", id}).out;
  CHECK_THAT(logs, Catch::Contains("token is ***"));
  CHECK(logs.find(secret) == std::string::npos);
  CHECK(box.serve_log().find(secret) == std::string::npos);
  CHECK(box.cli({"status", "--json"}).out.find(secret) == std::string::npos);
  CHECK(box.cli({"show", id, "--json"}).out.find(secret) == std::string::npos);
  for (const char* db : {"state.db", "state.db-wal", "queue.db"}) {
    if (std::filesystem::exists(box.home() / db)) CHECK(read_file(box.home() / db).find(secret) == std::string::npos);
  }
  CHECK_FALSE(std::filesystem::exists(box.home() / "vault/written"));
}

TEST_CASE("a verify failure on a tree that already failed is not retried again: BLOCKED after the second attempt") {
  SingleBox box(kRepo, "max_attempts: 5\nretry_backoff_base_ms: 100\nretry_backoff_cap_ms: 200\n");
  // Deterministic: every attempt makes the same tree, which never has done.txt.
  const std::string id = box.spawn("Same mistake", "```sh\necho wrong > wrong.txt\n```\n");
  box.serve();
  auto states = box.wait_finished({id});
  INFO(box.serve_log());
  REQUIRE(states[id] == "BLOCKED");
  auto t = box.task(id);
  CHECK(t["attempt"] == 2);
  CHECK_THAT(t["reason"].get<std::string>(), Catch::Contains("same tree") && Catch::Contains("exited with status 1"));
}

TEST_CASE("a task on a base branch the origin does not have ends FAILED at once, naming the branch") {
  SingleBox box(kRepo);
  const std::string id = box.spawn("On a missing base", kImplementer, {"--base", "nosuchbranch"});
  box.serve();
  auto states = box.wait_finished({id}, std::chrono::seconds(60));
  INFO(box.serve_log());
  REQUIRE(states[id] == "FAILED");
  const auto t = box.task(id);
  CHECK(t["failure_kind"] == "repo");
  CHECK_THAT(t["reason"].get<std::string>(), Catch::Contains("nosuchbranch"));
  CHECK(t["attempt"] == 1);  // the user's to fix: not retried
}
