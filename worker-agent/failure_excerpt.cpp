// Picks the lines of a failed command's output that say why (failure_excerpt.h).
#include "worker-agent/failure_excerpt.h"

#include <algorithm>
#include <array>
#include <vector>

namespace polyphony {

namespace {

// What test runners, compilers and interpreters print on the line that fails: go test and
// ctest (FAIL), pytest (FAILED, Error), TAP (not ok), gcc and rustc (error:, error[),
// assertions, Rust panics, Python tracebacks, Java and C++ exceptions.
constexpr std::array<std::string_view, 13> kFailureMarkers{
    "FAIL",   "Error",  "ERROR",    "error:",    "error[",    "not ok",
    "assert", "Assert", "panicked", "Traceback", "Exception", "Segmentation fault",
    "Aborted"};

constexpr size_t kMaxLineBytes = 200;

bool reads_as_failure(std::string_view line) {
  return std::any_of(kFailureMarkers.begin(), kFailureMarkers.end(),
                     [&](std::string_view m) { return line.find(m) != std::string_view::npos; });
}

bool blank(std::string_view line) {
  return line.find_first_not_of(" \t\r\f\v") == std::string_view::npos;
}

// The non-blank lines, without their trailing '\r'.
std::vector<std::string_view> non_blank_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(at, end - at);
    while (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (!blank(line)) lines.push_back(line);
    at = end + 1;
  }
  return lines;
}

}  // namespace

FailureExcerpt failure_excerpt(std::string_view output, size_t before, size_t after, size_t max_bytes) {
  const auto lines = non_blank_lines(output);
  if (lines.empty()) return {};
  const auto first = std::find_if(lines.begin(), lines.end(), reads_as_failure);
  const size_t keep = before + after + 1;
  // The failing line, or the last one; the excerpt is lines [from, to).
  const size_t anchor = first != lines.end() ? static_cast<size_t>(first - lines.begin()) : lines.size() - 1;
  size_t from = first != lines.end() ? anchor - std::min(anchor, before) : lines.size() - std::min(lines.size(), keep);
  const size_t to = first != lines.end() ? std::min(lines.size(), anchor + after + 1) : lines.size();
  auto size_of = [&](size_t i) { return std::min(lines[i].size(), kMaxLineBytes) + 1; };
  size_t total = 0;
  for (size_t i = from; i < to; ++i) total += size_of(i);
  // Context before the failing line goes first when the excerpt is too long.
  while (total > max_bytes + 1 && from < anchor) total -= size_of(from++);
  std::string out;
  for (size_t i = from; i < to; ++i) {
    out += (out.empty() ? "" : "\n") + std::string(lines[i].substr(0, kMaxLineBytes));
  }
  if (out.size() > max_bytes) out.resize(max_bytes);
  return {out, first != lines.end()};
}

}  // namespace polyphony
