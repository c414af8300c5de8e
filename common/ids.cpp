// Task ids, branch names and other identifiers made safe from user text.
#include "common/ids.h"

#include <random>

namespace polyphony {

std::string new_task_id() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(8, '0');
  uint64_t v = rng();
  for (auto& c : id) {
    c = kHex[v & 0xf];
    v >>= 4;
  }
  return id;
}

bool is_valid_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

bool is_valid_task_id(std::string_view id) {
  return is_valid_id(id);
}

Status check_task_id(std::string_view id) {
  if (is_valid_task_id(id)) return ok_status();
  return make_error("usage",
                    "task id '" + std::string(id) + "' is not valid: use 1 to 64 characters from A-Z a-z 0-9 _ -",
                    std::string(id));
}

std::string slugify(std::string_view title, size_t max_len) {
  std::string out;
  bool pending_dash = false;
  for (unsigned char c : title) {
    if (std::isalnum(c) && c < 0x80) {
      if (pending_dash && !out.empty()) out += '-';
      pending_dash = false;
      out += static_cast<char>(std::tolower(c));
      if (out.size() >= max_len) break;
    } else {
      pending_dash = true;
    }
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out.empty() ? "task" : out;
}

std::string task_branch(std::string_view task_id, std::string_view title) {
  return "polyphony/" + std::string(task_id) + "-" + slugify(title);
}

bool is_valid_branch_name(std::string_view name) {
  if (name.empty() || name.front() == '/' || name.back() == '/' || name.back() == '.') return false;
  if (name.front() == '-' || name == "@") return false;
  if (name.find("..") != std::string_view::npos || name.find("//") != std::string_view::npos ||
      name.find("@{") != std::string_view::npos || name.find("/.") != std::string_view::npos || name.front() == '.') {
    return false;
  }
  if (name.size() >= 5 && name.substr(name.size() - 5) == ".lock") return false;
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f || c == ' ' || c == '~' || c == '^' || c == ':' || c == '?' || c == '*' || c == '[' ||
        c == '\\') {
      return false;
    }
  }
  return true;
}

namespace {

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

bool is_continuation(unsigned char b) {
  return (b & 0xc0) == 0x80;
}

}  // namespace

size_t utf8_sequence_at(std::string_view text, size_t i) {
  const auto lead = static_cast<unsigned char>(text[i]);
  const int len = utf8_sequence_length(lead);
  if (len == 0 || text.size() - i < static_cast<size_t>(len)) return 0;
  if (len > 1 && !second_byte_ok(lead, static_cast<unsigned char>(text[i + 1]))) return 0;
  for (int k = 2; k < len; ++k) {
    if (!is_continuation(static_cast<unsigned char>(text[i + k]))) return 0;
  }
  return static_cast<size_t>(len);
}

size_t utf8_error_offset(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    const size_t len = utf8_sequence_at(text, i);
    if (len == 0) return i;
    i += len;
  }
  return std::string_view::npos;
}

bool is_valid_utf8(std::string_view text) {
  return utf8_error_offset(text) == std::string_view::npos;
}

}  // namespace polyphony
