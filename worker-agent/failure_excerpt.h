// The lines of a failed command's output that say why it failed, for a failure's reason.
// Pure: text in, text out.
#pragma once

#include <string>
#include <string_view>

namespace polyphony {

struct FailureExcerpt {
  std::string text;         // the lines, joined with '\n'; empty when the output has none
  bool at_failure = false;  // they surround a line that reads as a failure (else: the last ones)
};

// The lines around the first line of `output` that reads as a failure (one holding FAIL,
// Error, ERROR, error:, error[, not ok, assert, Assert, panicked, Traceback, Exception,
// Segmentation fault or Aborted; case matters): up to `before` non-blank lines before it, it, and up to `after`
// non-blank lines after it. With no such line, the last `before + after + 1` non-blank lines. Lines are joined with
// '\n', each cut to 200 bytes; when the whole is longer than `max_bytes` the lines before the failing one go first,
// then the end is cut.
FailureExcerpt failure_excerpt(std::string_view output, size_t before = 2, size_t after = 3, size_t max_bytes = 600);

}  // namespace polyphony
