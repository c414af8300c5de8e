// Predicates that decide whether an id, a branch or a text taken from a frame can be trusted.
#include "protocol/validation.h"

#include <algorithm>

#include "common/ids.h"
#include "protocol/messages.h"

namespace polyphony::protocol {
namespace {

bool is_peer_id_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.' || c == ':';
}

// Length of the UTF-8 sequence a lead byte announces, 0 for a byte that cannot lead one.
int utf8_sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 0;
}

// The allowed range of the byte after `lead`; it rules out overlong forms, UTF-16 surrogates
// and code points above U+10FFFF (RFC 3629; table 3-7 of the Unicode standard).
bool second_byte_ok(unsigned char lead, unsigned char b) {
  switch (lead) {
    case 0xe0:
      return b >= 0xa0 && b <= 0xbf;
    case 0xed:
      return b >= 0x80 && b <= 0x9f;
    case 0xf0:
      return b >= 0x90 && b <= 0xbf;
    case 0xf4:
      return b >= 0x80 && b <= 0x8f;
    default:
      return b >= 0x80 && b <= 0xbf;
  }
}

bool is_continuation(unsigned char b) { return (b & 0xc0) == 0x80; }

// Length of the well-formed UTF-8 sequence starting at s[i], or 0 when there is none.
std::size_t valid_sequence_at(std::string_view s, std::size_t i) {
  const auto lead = static_cast<unsigned char>(s[i]);
  const int len = utf8_sequence_length(lead);
  if (len == 0 || s.size() - i < static_cast<std::size_t>(len)) return 0;
  if (len > 1 && !second_byte_ok(lead, static_cast<unsigned char>(s[i + 1]))) return 0;
  for (int k = 2; k < len; ++k) {
    if (!is_continuation(static_cast<unsigned char>(s[i + k]))) return 0;
  }
  return static_cast<std::size_t>(len);
}

}  // namespace

namespace detail {

std::size_t utf8_error_offset(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t len = valid_sequence_at(s, i);
    if (len == 0) return i;
    i += len;
  }
  return std::string_view::npos;
}

bool is_wire_text(std::string_view s) {
  return s.find('\0') == s.npos && utf8_error_offset(s) == s.npos;
}

std::string to_wire_text(std::string_view s) {
  if (is_wire_text(s)) return std::string(s);
  constexpr std::string_view kReplacement = "\xef\xbf\xbd";  // U+FFFD
  std::string out;
  out.reserve(s.size() + 8);
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t len = valid_sequence_at(s, i);
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

bool is_valid_task_id(std::string_view id) { return is_valid_id(id); }

bool is_valid_peer_id(std::string_view id) {
  if (id.empty() || id.size() > 255 || id.front() == '.') return false;
  return std::all_of(id.begin(), id.end(), is_peer_id_char);
}

bool is_valid_task_branch(std::string_view name) {
  constexpr std::string_view kPrefix = "polyphony/";
  return name.size() > kPrefix.size() && name.size() <= 255 &&
         name.substr(0, kPrefix.size()) == kPrefix && is_valid_branch_name(name);
}

bool is_valid_commit_id(std::string_view id) {
  if (id.size() != 40 && id.size() != 64) return false;
  return std::all_of(id.begin(), id.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

}  // namespace polyphony::protocol
