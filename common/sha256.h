// SHA-256 (FIPS 180-4) of a byte string: pure, no I/O.
#pragma once

#include <string>
#include <string_view>

namespace polyphony {

// The digest of `data` as 64 lowercase hex digits, as `sha256sum` prints it.
std::string sha256_hex(std::string_view data);

}  // namespace polyphony
