// Times as people read them (relative ages) and as programs read them (ISO 8601 UTC).
#include <ctime>

#include "cli/cli.h"

namespace polyphony::cli {

std::string age(int64_t then_ms, int64_t now_ms) {
  int64_t s = std::max<int64_t>(0, (now_ms - then_ms) / 1000);
  if (s < 120) return std::to_string(s) + "s";
  if (s < 7200) return std::to_string(s / 60) + "m";
  if (s < 172800) return std::to_string(s / 3600) + "h";
  return std::to_string(s / 86400) + "d";
}

std::string ago(int64_t then_ms, int64_t now_ms) {
  if (then_ms == 0) return "-";
  // A second of clock skew between writer and reader is "0s ago", not "in 0s".
  if (then_ms > now_ms + 1000) return "in " + age(now_ms, then_ms);
  return age(then_ms, now_ms) + " ago";
}

std::string iso_utc(int64_t ms) {
  if (ms == 0) return "";
  const auto secs = static_cast<std::time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

}  // namespace polyphony::cli
