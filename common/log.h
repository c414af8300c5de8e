// Logging through spdlog, with secret values redacted before any sink sees them.
#pragma once

#include <spdlog/spdlog.h>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace polyphony {

// Sets up the default logger on stderr at `level` ("debug", "info", "warn", ...).
// Idempotent. POLYPHONY_LOG_LEVEL overrides `level` when set.
void init_logging(const std::string& level = "info");

// Every later log line has `value` replaced by "***". Values shorter than 4 characters are
// ignored (they would redact ordinary words).
void register_secret(const std::string& value);

// `text` with every registered secret, and the password of every URL that carries one
// (https://user:token@host), replaced by "***". The one place redaction happens: logs, stored
// reasons and history, stored output and GitHub comments all go through it.
std::string redact(std::string text);

// How many bytes at the end of (already redacted) `text` could be the start of a registered
// secret, or of a URL whose password is still to come. Output redacted piece by piece holds
// them back until the next piece, so a secret split across two pieces is still caught.
size_t redaction_hold(std::string_view text);

}  // namespace polyphony

namespace polyphony {

// Says whether a line about `key` may be logged at `now_ms`: at most once per `period_ms` per
// key, so a peer that fails the same way ten times a second fills one line, not ten. Holds at
// most 10,000 keys (a flood of keys forgets them all and starts again).
class LogLimiter {
 public:
  explicit LogLimiter(int64_t period_ms) : period_ms_(period_ms) {}
  bool allow(const std::string& key, int64_t now_ms) {
    if (last_ms_.size() > 10000) last_ms_.clear();
    auto [it, fresh] = last_ms_.try_emplace(key, now_ms);
    if (fresh) return true;
    if (now_ms - it->second < period_ms_) return false;
    it->second = now_ms;
    return true;
  }

 private:
  int64_t period_ms_;
  std::map<std::string, int64_t> last_ms_;
};

}  // namespace polyphony
