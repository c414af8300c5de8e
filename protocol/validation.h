// Internal helpers shared by the validators and the codec; the public predicates live in
// messages.h.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "common/ids.h"

namespace polyphony::protocol::detail {

// Offset of the first byte that makes `s` ill-formed UTF-8, or std::string_view::npos: the one
// UTF-8 check, common/ids.h's.
using polyphony::utf8_error_offset;

// True when `s` may travel as a MessagePack str: valid UTF-8 without NUL characters.
bool is_wire_text(std::string_view s);

// `s` with every byte that is not part of a well-formed UTF-8 sequence, and every NUL,
// replaced by U+FFFD; text that is already wire text comes back unchanged.
std::string to_wire_text(std::string_view s);

}  // namespace polyphony::protocol::detail

#include "protocol/messages.h"

namespace polyphony::protocol::detail {

// encode without its checks: for tests that hand a peer a frame it must refuse.
std::string encode_unchecked(const Message& m);

}  // namespace polyphony::protocol::detail
