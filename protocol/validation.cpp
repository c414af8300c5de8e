// Predicates that decide whether an id, a branch or a text taken from a frame can be trusted.
#include "protocol/validation.h"

#include <algorithm>

#include "common/ids.h"
#include "protocol/messages.h"

namespace polyphony::protocol {
namespace {

bool is_peer_id_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
         c == '.' || c == ':';
}

}  // namespace

namespace detail {

bool is_wire_text(std::string_view s) {
  return s.find('\0') == s.npos && utf8_error_offset(s) == s.npos;
}

std::string to_wire_text(std::string_view s) {
  if (is_wire_text(s)) return std::string(s);
  constexpr std::string_view kReplacement = "\xef\xbf\xbd";  // U+FFFD
  std::string out;
  out.reserve(s.size() + 8);
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t len = utf8_sequence_at(s, i);
    if (len == 0 || s[i] == '\0') {
      out += kReplacement;
      ++i;
    } else {
      out += s.substr(i, len);
      i += len;
    }
  }
  return out;
}

}  // namespace detail

bool is_valid_peer_id(std::string_view id) {
  if (id.empty() || id.size() > 255 || id.front() == '.') return false;
  return std::all_of(id.begin(), id.end(), is_peer_id_char);
}

bool is_valid_task_branch(std::string_view name) {
  constexpr std::string_view kPrefix = "polyphony/";
  return name.size() > kPrefix.size() && name.size() <= 255 && name.substr(0, kPrefix.size()) == kPrefix &&
         is_valid_branch_name(name);
}

bool is_valid_commit_id(std::string_view id) {
  if (id.size() != 40 && id.size() != 64) return false;
  return std::all_of(id.begin(), id.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

}  // namespace polyphony::protocol
