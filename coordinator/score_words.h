// Words the scorer looks for: tokenizing prose and code the same way, and the auth/PII and
// concurrency keyword lists. Shared by the index (code) and the signals (task text).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace polyphony::detail {

using Phrase = std::vector<std::string>;

struct Keyword {
  Phrase phrase;
  std::string name;  // the phrase's words joined by spaces
};

const std::vector<Keyword>& security_keywords();
const std::vector<Keyword>& concurrency_keywords();

// Lowercase alphabetic words, split at camelCase and non-letters ("refreshSession" -> refresh,
// session).
std::vector<std::string> word_tokens(std::string_view text);

// Calls `on_word(std::string_view)` with each word word_tokens() would return, in order,
// without allocating a vector (the index tokenizes every code file).
template <typename F>
void for_each_word(std::string_view text, F&& on_word) {
  auto is_upper = [](char c) { return c >= 'A' && c <= 'Z'; };
  auto is_lower = [](char c) { return c >= 'a' && c <= 'z'; };
  char buf[64];
  size_t len = 0;
  bool overflow = false;
  bool prev_lower = false;
  bool prev_upper = false;
  auto flush = [&] {
    if (len > 0 && !overflow) on_word(std::string_view(buf, len));
    len = 0;
    overflow = false;
    prev_lower = prev_upper = false;
  };
  const size_t n = text.size();
  for (size_t i = 0; i < n; ++i) {
    const char c = text[i];
    const bool up = is_upper(c);
    if (!up && !is_lower(c)) {
      if (len > 0 || overflow) flush();
      continue;
    }
    const bool acronym_end = prev_upper && i + 1 < n && is_lower(text[i + 1]);
    if (up && (prev_lower || acronym_end)) flush();
    if (len < sizeof buf) {
      buf[len++] = up ? static_cast<char>(c - 'A' + 'a') : c;
    } else {
      overflow = true;  // a 64-letter word is no keyword
    }
    prev_lower = !up;
    prev_upper = up;
  }
  if (len > 0 || overflow) flush();
}

// Occurrences of `phrase` in `tokens`; its last word may take a plural s/es.
int count_phrase(const std::vector<std::string>& tokens, const Phrase& phrase);

std::string lower(std::string_view s);

inline bool is_ident_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
inline bool is_ident_char(char c) {
  return is_ident_start(c) || (c >= '0' && c <= '9');
}

}  // namespace polyphony::detail
