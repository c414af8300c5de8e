// The failure kinds' names, on the wire and in the state DB.
#include <algorithm>

#include "protocol/messages.h"

namespace polyphony::protocol {
namespace {

constexpr std::array<std::string_view, 2> kCoordinatorKinds = {"identity", "protocol"};
static_assert(static_cast<size_t>(FailureKind::kIdentity) == kFailureKinds.size(),
              "the reported kinds come first, in kFailureKinds' order");
static_assert(static_cast<size_t>(FailureKind::kProtocol) == kFailureKinds.size() + 1);

}  // namespace

std::string_view to_string(FailureKind kind) {
  const auto i = static_cast<size_t>(kind);
  return i < kFailureKinds.size() ? kFailureKinds[i] : kCoordinatorKinds[i - kFailureKinds.size()];
}

std::optional<FailureKind> parse_failure_kind(std::string_view name) {
  for (size_t i = 0; i < kFailureKinds.size() + kCoordinatorKinds.size(); ++i) {
    const auto kind = static_cast<FailureKind>(i);
    if (to_string(kind) == name) return kind;
  }
  return std::nullopt;
}

bool is_failure_kind(std::string_view kind) {
  return std::find(kFailureKinds.begin(), kFailureKinds.end(), kind) != kFailureKinds.end();
}

}  // namespace polyphony::protocol
