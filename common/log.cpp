// Logging through spdlog, with secret values redacted before any sink sees them.
#include "common/log.h"

#include <spdlog/sinks/base_sink.h>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <set>

namespace polyphony {

namespace {

std::mutex& secrets_mutex() {
  static std::mutex m;
  return m;
}

std::set<std::string>& secrets() {
  static std::set<std::string> s;
  return s;
}

// Writes to stderr after redacting the payload.
class RedactingSink : public spdlog::sinks::base_sink<std::mutex> {
 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    std::string payload = redact(std::string(msg.payload.data(), msg.payload.size()));
    spdlog::details::log_msg copy(msg.time, msg.source, msg.logger_name, msg.level, payload);
    spdlog::memory_buf_t formatted;
    formatter_->format(copy, formatted);
    std::fwrite(formatted.data(), 1, formatted.size(), stderr);
  }
  void flush_() override { std::fflush(stderr); }
};

}  // namespace

void init_logging(const std::string& level) {
  static std::once_flag once;
  std::call_once(once, [] {
    auto logger = std::make_shared<spdlog::logger>("polyphony", std::make_shared<RedactingSink>());
    logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
    spdlog::set_default_logger(logger);
  });
  std::string chosen = level;
  if (const char* env = std::getenv("POLYPHONY_LOG_LEVEL"); env != nullptr && *env != '\0') chosen = env;
  spdlog::set_level(spdlog::level::from_str(chosen));
  spdlog::flush_on(spdlog::level::info);
}

void register_secret(const std::string& value) {
  if (value.size() < 4) return;
  std::lock_guard<std::mutex> lock(secrets_mutex());
  secrets().insert(value);
}

namespace {

// Where a URL's authority ends: at a path, a query, whitespace or a quote.
bool ends_authority(char c) {
  return c == '/' || c == '?' || c == '#' || c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '"' || c == '\'' ||
         c == '<' || c == '>' || c == '`';
}

// "scheme://user:password@host" -> "scheme://user:***@host", everywhere in `text`.
void redact_url_passwords(std::string& text) {
  size_t pos = 0;
  while ((pos = text.find("://", pos)) != std::string::npos) {
    const size_t start = pos + 3;
    size_t end = start;
    while (end < text.size() && !ends_authority(text[end])) ++end;
    const size_t at = text.rfind('@', end == start ? start : end - 1);
    if (at != std::string::npos && at >= start && at < end) {
      const size_t colon = text.find(':', start);
      if (colon != std::string::npos && colon < at && at - colon - 1 > 0 &&
          text.compare(colon + 1, at - colon - 1, "***") != 0) {
        text.replace(colon + 1, at - colon - 1, "***");
        end = colon + 1 + 3 + 1;
      }
    }
    pos = end > start ? end : start;
  }
}

}  // namespace

std::string redact(std::string text) {
  redact_url_passwords(text);
  std::lock_guard<std::mutex> lock(secrets_mutex());
  for (const auto& s : secrets()) {
    size_t pos = 0;
    while ((pos = text.find(s, pos)) != std::string::npos) {
      text.replace(pos, s.size(), "***");
      pos += 3;
    }
  }
  return text;
}

namespace {

// URLs whose authority starts further back than this are not held for.
constexpr size_t kMaxHeldUrl = 512;

bool scheme_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '.' || c == '-';
}

// Where the scheme ending just before `colon` starts.
size_t scheme_start(std::string_view text, size_t colon) {
  size_t start = colon;
  while (start > 0 && scheme_char(text[start - 1])) --start;
  return start;
}

// Bytes at the end of `text` that may be a URL not yet past its password.
size_t url_hold(std::string_view text) {
  const size_t n = text.size();
  const size_t sep = text.rfind("://");
  if (sep != std::string_view::npos && n - sep <= kMaxHeldUrl) {
    bool complete = false;  // the authority ended: redact() saw it whole
    for (size_t i = sep + 3; i < n && !complete; ++i) complete = ends_authority(text[i]);
    if (!complete) return n - scheme_start(text, sep);
  }
  // "scheme:" or "scheme:/" at the very end: the "//" may follow.
  for (size_t tail : {size_t{1}, size_t{2}}) {
    if (n >= tail && text[n - tail] == ':' && (tail == 1 || text[n - 1] == '/')) {
      const size_t start = scheme_start(text, n - tail);
      if (start < n - tail) return n - start;
    }
  }
  return 0;
}

}  // namespace

size_t redaction_hold(std::string_view text) {
  size_t hold = url_hold(text);
  std::lock_guard<std::mutex> lock(secrets_mutex());
  for (const auto& s : secrets()) {
    for (size_t k = std::min(s.size() - 1, text.size()); k > hold; --k) {
      if (text.substr(text.size() - k) == std::string_view(s).substr(0, k)) {
        hold = k;
        break;
      }
    }
  }
  return hold;
}

}  // namespace polyphony
