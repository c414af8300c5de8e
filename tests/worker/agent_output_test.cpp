// Reading the agent CLIs' structured output: usage, final message, failures and refusals.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "worker-agent/agent_output.h"

using polyphony::AgentOutput;
using polyphony::api_refusal_in;

namespace {

const char* kClaudeRun =
    R"({"type":"system","subtype":"init","cwd":"/workspace","session_id":"s1","model":"claude-sonnet-4-5",)"
    R"("tools":["Bash","Read","Edit"]})"
    "\n"
    R"({"type":"assistant","message":{"id":"msg_1","model":"claude-sonnet-4-5","content":[{"type":"tool_use",)"
    R"("id":"t1","name":"Read","input":{"file_path":"/workspace/a.c"}}],"usage":{"input_tokens":100,)"
    R"("cache_read_input_tokens":20,"output_tokens":10}}})"
    "\n"
    R"({"type":"user","message":{"content":[{"type":"tool_result","tool_use_id":"t1","content":"int main() {}"}]}})"
    "\n"
    R"({"type":"assistant","message":{"id":"msg_2","model":"claude-sonnet-4-5","content":[{"type":"text",)"
    R"("text":"Editing."}],"usage":{"input_tokens":150,"output_tokens":12}}})"
    "\n"
    R"({"type":"assistant","message":{"id":"msg_2","model":"claude-sonnet-4-5","content":[{"type":"tool_use",)"
    R"("id":"t2","name":"Edit","input":{}}],"usage":{"input_tokens":150,"output_tokens":12}}})"
    "\n"
    R"({"type":"result","subtype":"success","is_error":false,"num_turns":3,"result":"Fixed the off-by-one.",)"
    R"("total_cost_usd":0.0123,"usage":{"input_tokens":400,"cache_creation_input_tokens":50,)"
    R"("cache_read_input_tokens":30,"output_tokens":40}})"
    "\n";

const char* kCodexRun =
    R"({"type":"thread.started","thread_id":"th_1"})"
    "\n"
    R"({"type":"turn.started"})"
    "\n"
    R"({"type":"item.completed","item":{"id":"i0","type":"reasoning","text":"thinking"}})"
    "\n"
    R"({"type":"item.started","item":{"id":"i1","type":"command_execution","command":"sh test.sh",)"
    R"("status":"in_progress"}})"
    "\n"
    R"({"type":"item.completed","item":{"id":"i1","type":"command_execution","command":"sh test.sh","exit_code":0,)"
    R"("status":"completed"}})"
    "\n"
    R"({"type":"item.completed","item":{"id":"i2","type":"file_change","changes":[{"path":"a.c","kind":"update"}],)"
    R"("status":"completed"}})"
    "\n"
    R"({"type":"item.completed","item":{"id":"i3","type":"agent_message","text":"Done: the test passes."}})"
    "\n"
    R"({"type":"turn.completed","usage":{"input_tokens":900,"cached_input_tokens":300,"output_tokens":80}})"
    "\n";

std::string fixture(const std::string& name) {
  std::ifstream in(std::string(POLYPHONY_FIXTURES_DIR) + "/agents/" + name, std::ios::binary);
  REQUIRE(in);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

AgentOutput fed(const std::string& format, const std::string& text, size_t chunk = 7) {
  AgentOutput out(format);
  for (size_t at = 0; at < text.size(); at += chunk) out.feed(1, std::string_view(text).substr(at, chunk));
  out.finish();
  return out;
}

}  // namespace

TEST_CASE("Claude's stream-json gives the model, turns, tokens, cost and final message, even split in small chunks") {
  const auto out = fed("claude-stream-json", kClaudeRun);
  CHECK(out.finished());
  CHECK_FALSE(out.failed());
  CHECK(out.refusal().empty());
  CHECK(out.malformed_lines() == 0);
  const auto& u = out.usage();
  CHECK(u.model == "claude-sonnet-4-5");
  CHECK(u.turns == 3);  // the result's count wins over the messages seen
  CHECK(u.input_tokens == 480);
  CHECK(u.output_tokens == 40);
  CHECK(u.cost_usd == Approx(0.0123));
  CHECK(u.final_message == "Fixed the off-by-one.");
}

TEST_CASE("Claude's turns and tokens are counted as they stream, one per message id, before the result arrives") {
  std::string text = kClaudeRun;
  text.resize(text.find(R"({"type":"result")"));
  const auto out = fed("claude-stream-json", text, 4096);
  CHECK_FALSE(out.finished());
  CHECK(out.usage().turns == 2);
  CHECK(out.tokens() == 100 + 20 + 10 + 150 + 12);
}

TEST_CASE("Codex's exec --json gives turns, tokens and final message") {
  const auto out = fed("codex-json", kCodexRun, 5);
  CHECK(out.finished());
  CHECK_FALSE(out.failed());
  const auto& u = out.usage();
  CHECK(u.turns == 3);  // the command, the file change and the message; reasoning is not a turn
  CHECK(u.input_tokens == 900);
  CHECK(u.output_tokens == 80);
  CHECK(u.final_message == "Done: the test passes.");
}

TEST_CASE("an error result or a failed turn is a failed run, and a 429 or 401 in it is a refusal") {
  auto claude = fed("claude-stream-json",
                    R"({"type":"result","subtype":"success","is_error":true,"num_turns":1,)"
                    R"("result":"API Error: 429 {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\"}}"})"
                    "\n");
  CHECK(claude.failed());
  CHECK(claude.refusal() == "rate limited");
  auto codex = fed("codex-json", R"({"type":"error","message":"unexpected status 401 Unauthorized: invalid api key"})"
                                 "\n"
                                 R"({"type":"turn.failed","error":{"message":"unexpected status 401 Unauthorized"}})"
                                 "\n");
  CHECK(codex.failed());
  CHECK(codex.refusal() == "unauthorized");
  CHECK(codex.error().find("401") != std::string::npos);
}

TEST_CASE("lines that are not JSON events are counted, not trusted, and a plain-text agent is not parsed") {
  auto out = fed("claude-stream-json",
                 "not json\n{\"no_type\":1}\n[1,2]\n{\"type\":\"result\",\"is_error\":false,\"num_turns\":1}");
  CHECK(out.malformed_lines() == 3);
  CHECK(out.finished());  // the last line had no newline and still counted
  AgentOutput text("");
  text.feed(1, "{\"type\":\"result\",\"is_error\":true}\n");
  text.finish();
  CHECK_FALSE(text.structured());
  CHECK_FALSE(text.failed());
}

TEST_CASE("stderr is read for refusals only") {
  AgentOutput out("codex-json");
  out.feed(2, "ERROR: exceeded retry limit, last status: 429 Too Many Requests\n");
  out.finish();
  CHECK(out.refusal() == "rate limited");
  CHECK(out.usage().turns == 0);
}

TEST_CASE("refusals are told from other errors by status codes and the APIs' words") {
  struct Case {
    const char* text;
    const char* want;
  };
  const std::vector<Case> cases = {
      {"API Error: 429 rate_limit_error", "rate limited"},
      {"stream error: Too Many Requests", "rate limited"},
      {"API Error: 529 {\"type\":\"overloaded_error\"}", "overloaded"},
      {"API Error: 401 {\"type\":\"authentication_error\"}", "unauthorized"},
      {"Invalid API key · Please run /login", "unauthorized"},
      {"test failed: expected 4290 got 4291", ""},
      {"error: cannot open file a.c", ""},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    CHECK(api_refusal_in(c.text) == c.want);
  }
}

// The real CLIs' output, recorded against the stand-in model API (tests/fixtures/agents/README.md).
TEST_CASE("recorded Claude Code runs: a success's usage, and each API refusal told apart") {
  const auto ok = fed("claude-stream-json", fixture("claude-success.jsonl"), 4096);
  CHECK(ok.finished());
  CHECK_FALSE(ok.failed());
  CHECK(ok.malformed_lines() == 0);
  CHECK(ok.usage().model == "fake-model-1");
  CHECK(ok.usage().turns == 4);
  CHECK(ok.usage().input_tokens == 5400);
  CHECK(ok.usage().output_tokens == 220);
  CHECK(ok.usage().cost_usd > 0);
  CHECK_FALSE(ok.usage().final_message.empty());
  for (auto [file, want] : {std::pair{"claude-429.jsonl", "rate limited"},
                            {"claude-401.jsonl", "unauthorized"},
                            {"claude-529.jsonl", "overloaded"}}) {
    INFO(file);
    const auto out = fed("claude-stream-json", fixture(file), 4096);
    CHECK(out.failed());
    CHECK(out.refusal() == want);
  }
}

TEST_CASE("recorded Codex runs: a success's usage, and each API refusal told apart") {
  const auto ok = fed("codex-json", fixture("codex-success.jsonl"), 4096);
  CHECK(ok.finished());
  CHECK_FALSE(ok.failed());
  CHECK(ok.malformed_lines() == 0);
  CHECK(ok.usage().input_tokens == 5400);
  CHECK(ok.usage().output_tokens == 220);
  CHECK(ok.usage().turns >= 3);
  CHECK_FALSE(ok.usage().final_message.empty());
  for (auto [file, want] : {std::pair{"codex-429.jsonl", "rate limited"},
                            {"codex-401.jsonl", "unauthorized"},
                            {"codex-529.jsonl", "overloaded"}}) {
    INFO(file);
    const auto out = fed("codex-json", fixture(file), 4096);
    CHECK(out.failed());
    CHECK(out.refusal() == want);
  }
}
