// Reads an agent CLI's structured output as it streams (Claude Code's stream-json, Codex's
// `exec --json`): the model, turns, tokens, cost and final message of the run, and whether the
// model API refused it (rate limit, overload, authentication), which decides a fallback.
#pragma once

#include <string>
#include <string_view>

#include "protocol/messages.h"

namespace polyphony {

class AgentOutput {
 public:
  // `format`: "" (plain text: nothing is parsed), "claude-stream-json" or "codex-json".
  explicit AgentOutput(std::string format);

  // A chunk of the agent's output; fd 1 is stdout (the events), 2 is stderr (scanned for
  // refusals only). Lines may be split across chunks.
  void feed(int fd, std::string_view chunk);
  // The run ended: a last line without a newline is read too.
  void finish();

  bool structured() const { return !format_.empty(); }
  // What the run reported so far (role and agent are the caller's to fill).
  const protocol::AgentUsage& usage() const { return usage_; }
  int64_t tokens() const { return usage_.input_tokens + usage_.output_tokens; }
  // True once the CLI's closing event arrived (Claude's "result", Codex's "turn.completed" or
  // "turn.failed").
  bool finished() const { return finished_; }
  // The CLI said the run failed (an error result, a failed turn); `error()` says how.
  bool failed() const { return failed_; }
  const std::string& error() const { return error_; }
  // The model API refused the CLI: "rate limited", "overloaded" or "unauthorized"; "" : it did not.
  const std::string& refusal() const { return refusal_; }
  // Lines on stdout that were not JSON objects (a CLI printing garbage, or a crash's trace).
  int malformed_lines() const { return malformed_; }

 private:
  void line(std::string_view text);
  void claude_event(const void* event);
  void codex_event(const void* event);
  void note_error(const std::string& message);
  void scan_for_refusal(std::string_view text);

  std::string format_;
  std::string partial_[3];
  protocol::AgentUsage usage_;
  std::string last_message_id_;
  bool answered_model_ = false;
  bool finished_ = false;
  bool failed_ = false;
  std::string error_;
  std::string refusal_;
  int malformed_ = 0;
};

// "rate limited", "overloaded", "unauthorized" when `text` reads as the model API refusing the
// CLI (HTTP 429, 529/overloaded, 401/403 and the CLIs' words for them); "" otherwise.
std::string api_refusal_in(std::string_view text);

}  // namespace polyphony
