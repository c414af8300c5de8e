// Who a task's clone belongs to: the container user, so that a non-root agent can write it, or
// (when no owner is set) this process. Only what this process wrote is handed over.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "common/result.h"
#include "git/git_repo.h"

namespace polyphony::detail {

class CloneOwner {
 public:
  // uid/gid < 0: no owner; every give_* below is then a no-op.
  CloneOwner(int uid = -1, int gid = -1) : uid_(uid), gid_(gid) {}

  bool is_set() const { return uid_ >= 0; }

  // `path` alone (a symlink itself, not its target). Errors: "io" naming the path.
  Status give_one(const std::filesystem::path& path) const;

  // `dir` and everything under it. What is already the owner's is left alone: a chown, even to
  // the same owner, writes the inode (and its ctime, which makes git read the file again).
  // Errors: "io".
  Status give_tree(const std::filesystem::path& dir) const;

  // A clone this process has just written whole: give_tree, then the index learns the files'
  // new ctimes (so git does not read them again) and goes to the owner too. Errors: "io", "git".
  Status give_clone(const std::filesystem::path& repo_dir) const;

  // A clone whose other files are the owner's already: .git, and the work tree paths (and the
  // directories leading to them) in `paths`; only those. Errors: "io".
  Status give_paths(const std::filesystem::path& repo_dir, const std::vector<std::string>& paths) const;

  // give_paths, then `repo`'s index learns the touched files' new ctimes and goes to the owner
  // too. Errors: "io", "git".
  Status give_touched(GitRepo& repo, const std::filesystem::path& repo_dir,
                      const std::vector<std::string>& paths) const;

 private:
  int uid_;
  int gid_;
};

}  // namespace polyphony::detail
