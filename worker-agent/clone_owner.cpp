// Handing what this process wrote in a task's clone to the container user.
#include "worker-agent/clone_owner.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>

namespace polyphony::detail {

namespace fs = std::filesystem;

namespace {

Status lchown_path(const fs::path& p, int uid, int gid) {
  if (::lchown(p.c_str(), static_cast<uid_t>(uid), static_cast<gid_t>(gid)) == 0) return ok_status();
  return make_error("io",
                    "cannot chown to " + std::to_string(uid) + ":" + std::to_string(gid) + ": " + std::strerror(errno),
                    p.string());
}

Status chown_tree(const fs::path& dir, int uid, int gid) {
  auto chown_one = [&](const fs::path& p) -> Status {
    // What is already the owner's is left alone: a chown, even to the same owner, writes the
    // inode (and its ctime, which makes git read the file again).
    struct stat st {};
    if (::lstat(p.c_str(), &st) == 0 && st.st_uid == static_cast<uid_t>(uid) && st.st_gid == static_cast<gid_t>(gid)) {
      return ok_status();
    }
    return lchown_path(p, uid, gid);
  };
  POLY_TRY(chown_one(dir));
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    POLY_TRY(chown_one(it->path()));
  }
  if (ec) return make_error("io", "cannot walk the directory: " + ec.message(), dir.string());
  return ok_status();
}

}  // namespace

Status CloneOwner::give_one(const fs::path& path) const {
  if (!is_set()) return ok_status();
  return lchown_path(path, uid_, gid_);
}

Status CloneOwner::give_tree(const fs::path& dir) const {
  if (!is_set()) return ok_status();
  return chown_tree(dir, uid_, gid_);
}

Status CloneOwner::give_clone(const fs::path& repo_dir) const {
  if (!is_set()) return ok_status();
  POLY_TRY(give_tree(repo_dir));
  auto repo = GitRepo::open(repo_dir);
  POLY_TRY(repo);
  POLY_TRY(repo->restat_index_after_chown());
  return give_one(repo_dir / ".git" / "index");  // written anew
}

Status CloneOwner::give_paths(const fs::path& repo_dir, const std::vector<std::string>& paths) const {
  if (!is_set()) return ok_status();
  POLY_TRY(give_tree(repo_dir / ".git"));
  std::set<fs::path> done;
  for (const auto& rel : paths) {
    for (fs::path p = fs::path(rel); !p.empty(); p = p.parent_path()) {
      if (!done.insert(p).second) break;
      struct stat st {};
      if (::lstat((repo_dir / p).c_str(), &st) != 0) continue;  // deleted
      POLY_TRY(give_one(repo_dir / p));
    }
  }
  return ok_status();
}

Status CloneOwner::give_touched(GitRepo& repo, const fs::path& repo_dir, const std::vector<std::string>& paths) const {
  POLY_TRY(give_paths(repo_dir, paths));
  if (!is_set() || paths.empty()) return ok_status();
  POLY_TRY(repo.restat_index_after_chown(&paths));
  return give_one(repo_dir / ".git" / "index");
}

}  // namespace polyphony::detail
