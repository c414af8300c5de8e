// Reads an agent CLI's structured output as it streams: see agent_output.h.
#include "worker-agent/agent_output.h"

#include <nlohmann/json.hpp>

#include <cctype>

namespace polyphony {

namespace {

using json = nlohmann::json;

constexpr size_t kMaxLine = 4 << 20;  // a longer line is cut and counted as malformed
constexpr size_t kMaxFinalMessage = 4096;
constexpr size_t kMaxError = 1024;

std::string lower(std::string_view text) {
  std::string out(text.size(), ' ');
  for (size_t i = 0; i < text.size(); ++i)
    out[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[i])));
  return out;
}

// `code` appears in `text` as a number of its own (not inside a longer run of digits).
bool has_status(const std::string& text, std::string_view code) {
  for (size_t at = text.find(code); at != std::string::npos; at = text.find(code, at + 1)) {
    const bool left = at == 0 || !std::isdigit(static_cast<unsigned char>(text[at - 1]));
    const size_t end = at + code.size();
    const bool right = end >= text.size() || !std::isdigit(static_cast<unsigned char>(text[end]));
    if (left && right) return true;
  }
  return false;
}

bool has_any(const std::string& text, std::initializer_list<std::string_view> words) {
  for (auto w : words) {
    if (text.find(w) != std::string::npos) return true;
  }
  return false;
}

std::string capped(std::string text, size_t max) {
  if (text.size() <= max) return text;
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(text[n]) & 0xc0) == 0x80) --n;
  text.resize(n);
  return text + "...";
}

int64_t count_of(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

std::string string_of(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// Claude's usage block: every input token (fresh, cache writes, cache reads) and the output.
std::pair<int64_t, int64_t> claude_tokens(const json& usage) {
  if (!usage.is_object()) return {0, 0};
  return {count_of(usage, "input_tokens") + count_of(usage, "cache_creation_input_tokens") +
              count_of(usage, "cache_read_input_tokens"),
          count_of(usage, "output_tokens")};
}

}  // namespace

std::string api_refusal_in(std::string_view text) {
  const std::string t = lower(text);
  if (has_status(t, "429") || has_any(t, {"rate limit", "rate_limit", "ratelimit", "too many requests",
                                          "quota exceeded", "insufficient_quota", "usage limit"})) {
    return "rate limited";
  }
  if (has_status(t, "529") || has_status(t, "503") || has_any(t, {"overloaded"})) return "overloaded";
  if (has_status(t, "401") || has_status(t, "403") ||
      has_any(t, {"unauthorized", "authentication_error", "authentication failed", "authentication_failed",
                  "invalid api key", "invalid x-api-key", "not logged in", "/login", "oauth token has expired",
                  "permission_error"})) {
    return "unauthorized";
  }
  return "";
}

AgentOutput::AgentOutput(std::string format) : format_(std::move(format)) {}

void AgentOutput::feed(int fd, std::string_view chunk) {
  if (format_.empty() || (fd != 1 && fd != 2)) return;
  std::string& buf = partial_[fd];
  for (size_t at = 0; at < chunk.size();) {
    const size_t nl = chunk.find('\n', at);
    const size_t end = nl == std::string_view::npos ? chunk.size() : nl;
    if (buf.size() < kMaxLine) buf.append(chunk.substr(at, std::min(end - at, kMaxLine - buf.size())));
    if (nl == std::string_view::npos) break;
    if (fd == 1)
      line(buf);
    else
      scan_for_refusal(buf);
    buf.clear();
    at = nl + 1;
  }
}

void AgentOutput::finish() {
  if (!partial_[1].empty()) line(partial_[1]);
  if (!partial_[2].empty()) scan_for_refusal(partial_[2]);
  partial_[1].clear();
  partial_[2].clear();
}

void AgentOutput::line(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  if (text.empty()) return;
  json event = json::parse(text, nullptr, false);
  if (event.is_discarded() || !event.is_object() || !event.contains("type") || !event["type"].is_string()) {
    ++malformed_;
    return;
  }
  if (format_ == "claude-stream-json")
    claude_event(&event);
  else
    codex_event(&event);
}

void AgentOutput::note_error(const std::string& message) {
  if (message.empty()) return;
  error_ = capped(message, kMaxError);
  scan_for_refusal(message);
}

void AgentOutput::scan_for_refusal(std::string_view text) {
  if (!refusal_.empty()) return;
  refusal_ = api_refusal_in(text);
}

// Claude Code's stream-json: {"type":"system","subtype":"init","model":...}, one "assistant"
// event per content block of each model message (sharing its id and usage), "user" events
// carrying tool results, and a closing {"type":"result", "is_error", "num_turns", "result",
// "total_cost_usd", "usage"}.
void AgentOutput::claude_event(const void* raw) {
  const json& e = *static_cast<const json*>(raw);
  const std::string type = e["type"].get<std::string>();
  if (type == "system" && string_of(e, "subtype") == "init") {
    // The model asked for; the one that answered (below) wins.
    if (auto m = string_of(e, "model"); !m.empty() && !answered_model_) usage_.model = m;
  } else if (type == "assistant" && e.contains("message") && e["message"].is_object()) {
    const json& m = e["message"];
    const std::string id = string_of(m, "id");
    // "<synthetic>" marks a message Claude made up itself (an API error's text).
    if (auto model = string_of(m, "model"); !model.empty() && model.front() != '<') {
      usage_.model = model;
      answered_model_ = true;
    }
    if (id.empty() || id != last_message_id_) {
      ++usage_.turns;
      last_message_id_ = id;
      if (m.contains("usage")) {
        auto [in, out] = claude_tokens(m["usage"]);
        usage_.input_tokens += in;
        usage_.output_tokens += out;
      }
    }
    if (e.contains("error") && e["error"].is_string()) note_error(e["error"].get<std::string>());
  } else if (type == "result") {
    finished_ = true;
    if (e.contains("num_turns") && e["num_turns"].is_number_integer()) usage_.turns = e["num_turns"].get<int>();
    if (e.contains("usage")) {
      auto [in, out] = claude_tokens(e["usage"]);
      if (in + out > 0) {
        usage_.input_tokens = in;
        usage_.output_tokens = out;
      }
    }
    if (e.contains("total_cost_usd") && e["total_cost_usd"].is_number())
      usage_.cost_usd = e["total_cost_usd"].get<double>();
    const std::string result = string_of(e, "result");
    if (!result.empty()) usage_.final_message = capped(result, kMaxFinalMessage);
    const bool is_error = e.value("is_error", false) || string_of(e, "subtype").rfind("error", 0) == 0;
    if (is_error) {
      failed_ = true;
      if (e.contains("api_error_status") && e["api_error_status"].is_number_integer()) {
        scan_for_refusal("status " + std::to_string(e["api_error_status"].get<int>()));
      }
      std::string why = result.empty() ? string_of(e, "subtype") : result;
      if (e.contains("errors") && e["errors"].is_array() && !e["errors"].empty()) why += ": " + e["errors"].dump();
      note_error(why);
    }
  }
}

// Codex's `exec --json`: thread.started, turn.started, item.started/updated/completed (items of
// type agent_message, reasoning, command_execution, file_change, ...), then turn.completed with
// the usage, or turn.failed / error.
void AgentOutput::codex_event(const void* raw) {
  const json& e = *static_cast<const json*>(raw);
  const std::string type = e["type"].get<std::string>();
  if (type == "item.completed" && e.contains("item") && e["item"].is_object()) {
    const json& item = e["item"];
    const std::string kind = item.contains("type") && item["type"].is_string() ? item["type"].get<std::string>()
                                                                               : string_of(item, "item_type");
    if (kind == "reasoning") return;
    ++usage_.turns;
    if (kind == "agent_message") usage_.final_message = capped(string_of(item, "text"), kMaxFinalMessage);
    if (kind == "error") note_error(string_of(item, "message"));
  } else if (type == "turn.completed") {
    finished_ = true;
    if (e.contains("usage") && e["usage"].is_object()) {
      usage_.input_tokens += count_of(e["usage"], "input_tokens");
      usage_.output_tokens += count_of(e["usage"], "output_tokens");
    }
  } else if (type == "turn.failed") {
    finished_ = true;
    failed_ = true;
    if (e.contains("error") && e["error"].is_object())
      note_error(string_of(e["error"], "message"));
    else
      note_error("the turn failed");
  } else if (type == "error") {
    note_error(string_of(e, "message"));
  } else if (type == "thread.started" || type == "session.created") {
    if (auto m = string_of(e, "model"); !m.empty()) usage_.model = m;
  }
}

}  // namespace polyphony
