// One-time libgit2 setup and the conversion of libgit2 errors into Result errors.
#include "common/git_handles.h"

#include <mutex>

namespace polyphony::detail {

void ensure_libgit2() {
  static std::once_flag once;
  std::call_once(once, [] {
    git_libgit2_init();
    git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, 0);
  });
}

Error libgit2_error(std::string_view action, const std::filesystem::path& repo) {
  const git_error* e = git_error_last();
  std::string detail = (e != nullptr && e->message != nullptr) ? e->message : "unknown libgit2 error";
  return make_error("git", std::string(action) + " failed: " + detail, repo.string());
}

std::string oid_hex(const git_oid& oid) {
  char buf[GIT_OID_HEXSZ + 1];
  git_oid_tostr(buf, sizeof buf, &oid);
  return buf;
}

Result<git_oid> parse_oid(const std::string& hex, const std::filesystem::path& repo) {
  git_oid oid;
  if (hex.size() != GIT_OID_HEXSZ || git_oid_fromstr(&oid, hex.c_str()) != 0) {
    return make_error("git", "'" + hex + "' is not a full commit id", repo.string());
  }
  return oid;
}

}  // namespace polyphony::detail
