// Landing into a user's working clone, as its owner.
#include "worker-agent/working_clone.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <optional>
#include <vector>

#include "git/git_cli.h"
#include "git/git_repo.h"

namespace fs = std::filesystem;

namespace polyphony {

namespace {

std::string first_lines(const std::string& text, size_t max_lines = 3) {
  std::string out;
  size_t pos = 0;
  for (size_t n = 0; n < max_lines && pos < text.size();) {
    size_t end = text.find('\n', pos);
    std::string line = text.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    if (!line.empty()) {
      out += (out.empty() ? "" : "; ") + line.substr(0, 300);
      ++n;
    }
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  return out;
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// A directory of the owner's in the temporary directory, removed with what it holds.
class OwnedTempDir {
 public:
  static Result<OwnedTempDir> make() {
    std::error_code ec;
    fs::path base = fs::temp_directory_path(ec);
    if (ec) base = "/tmp";
    std::string pattern = (base / "polyphony-land-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      return make_error("io", std::string("cannot make a temporary directory: ") + std::strerror(errno), pattern);
    }
    return OwnedTempDir(pattern);
  }
  OwnedTempDir(OwnedTempDir&& other) noexcept : path_(std::move(other.path_)) { other.path_.clear(); }
  ~OwnedTempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

  // Written while it is this process's (mode 0700); then the owner's, to read from.
  Status give_to(const detail::GitUser& user) const {
    if (::chown(path_.c_str(), user.uid, user.gid) != 0) {
      return make_error("io", std::string("cannot give the bundle's directory to its reader: ") + std::strerror(errno),
                        path_.string());
    }
    return ok_status();
  }

 private:
  explicit OwnedTempDir(fs::path path) : path_(std::move(path)) {}
  fs::path path_;
};

class CloneGit {
 public:
  CloneGit(fs::path clone, detail::GitUser user) : clone_(std::move(clone)), user_(std::move(user)) {}

  // git in `dir` (the clone, or a linked worktree of it) as the owner; a non-zero exit is in the result.
  Result<ProcessResult> run(const std::vector<std::string>& args, const fs::path& dir = {}) const {
    auto r = detail::run_git_as(user_, args, dir.empty() ? clone_ : dir);
    if (!r.ok()) return make_error("git", r.error().message, clone_.string());
    return r;
  }

  Result<std::string> must(const std::vector<std::string>& args, const fs::path& dir = {}) const {
    auto r = run(args, dir);
    POLY_TRY(r);
    if (r->exit_code != 0) return failed(args, *r);
    return trimmed(r->out);
  }

  Error failed(const std::vector<std::string>& args, const ProcessResult& r) const {
    std::string cmd = "git";
    for (const auto& a : args) cmd += " " + a;
    return make_error("git",
                      "'" + cmd + "' in " + clone_.string() + " exited with status " + std::to_string(r.exit_code) +
                          ": " + first_lines(r.err.empty() ? r.out : r.err),
                      clone_.string());
  }

  const fs::path& clone() const { return clone_; }

 private:
  fs::path clone_;
  detail::GitUser user_;
};

// The work tree (the clone's own or a linked worktree's) that has `ref` checked out, if any.
Result<std::optional<fs::path>> checked_out_at(const CloneGit& git, const std::string& ref) {
  auto list = git.must({"worktree", "list", "--porcelain"});
  POLY_TRY(list);
  std::optional<fs::path> tree;
  size_t pos = 0;
  while (pos < list->size()) {
    size_t end = list->find('\n', pos);
    std::string line = list->substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    if (line.starts_with("worktree ")) tree = fs::path(line.substr(9));
    if (line == "branch " + ref && tree) return std::optional<fs::path>(*tree);
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  return std::optional<fs::path>();
}

Error base_moved(const CloneGit& git, const std::string& base_branch, const std::string& why) {
  return make_error("base_moved", "'" + base_branch + "' moved in " + git.clone().string() + " (" + why + ")",
                    git.clone().string());
}

// Moves the checked-out base in `tree` to `head` as `git merge --ff-only` does, when the tree is
// clean; else leaves it and says why.
Result<CloneLanding> fast_forward_checked_out(const CloneGit& git, const fs::path& tree, const std::string& head,
                                              const std::string& branch, const std::string& base_branch,
                                              const std::string& old) {
  const std::string how = "merge it there with `git merge --ff-only " + branch + "`";
  auto status = git.must({"status", "--porcelain=v1", "--untracked-files=no"}, tree);
  POLY_TRY(status);
  if (!status->empty()) {
    return CloneLanding{"", "landed as branch " + branch + " in " + tree.string() + ": '" + base_branch +
                                "' has local changes there (" + first_lines(*status, 2) +
                                "), so it was left as it is; " + how};
  }
  auto merged = git.run({"merge", "--ff-only", "--quiet", "--no-edit", head}, tree);
  POLY_TRY(merged);
  if (merged->exit_code == 0) return CloneLanding{head, ""};
  auto now = git.must({"rev-parse", "--verify", "--quiet", "refs/heads/" + base_branch + "^{commit}"});
  if (now.ok() && *now != old) return base_moved(git, base_branch, "now at " + now->substr(0, 12));
  return CloneLanding{"", "landed as branch " + branch + " in " + tree.string() + ": git would not move '" +
                              base_branch + "' there (" + first_lines(merged->err.empty() ? merged->out : merged->err) +
                              "); " + how};
}

}  // namespace

bool is_working_clone(const fs::path& path) {
  auto repo = detail::GitRepo::open(path);
  return repo.ok() && !repo->is_bare();
}

Result<CloneLanding> land_in_working_clone(const fs::path& clone,
                                           const std::function<Status(const fs::path&)>& write_bundle,
                                           const std::string& head, const std::string& branch,
                                           const std::string& base_branch) {
  struct stat st {};
  if (::stat(clone.c_str(), &st) != 0) {
    return make_error("push_refused", std::string("cannot reach the clone: ") + std::strerror(errno), clone.string());
  }
  const CloneGit git(clone, detail::owner_of(st));
  auto dir = OwnedTempDir::make();
  POLY_TRY(dir);
  const fs::path bundle = dir->path() / "task.bundle";
  POLY_TRY(write_bundle(bundle));
  POLY_TRY(dir->give_to(detail::owner_of(st)));

  const std::string branch_ref = "refs/heads/" + branch;
  const std::string base_ref = "refs/heads/" + base_branch;
  std::vector<std::string> fetch{"fetch",
                                 "--quiet",
                                 "--no-tags",
                                 "--no-auto-gc",
                                 "--no-write-fetch-head",
                                 bundle.string(),
                                 "+" + branch_ref + ":" + branch_ref};
  auto fetched = git.run(fetch);
  POLY_TRY(fetched);
  if (fetched->exit_code != 0) {
    return make_error("push_refused",
                      clone.string() + " did not take branch " + branch + ": " +
                          first_lines(fetched->err.empty() ? fetched->out : fetched->err),
                      clone.string());
  }
  auto old = git.run({"rev-parse", "--verify", "--quiet", base_ref + "^{commit}"});
  POLY_TRY(old);
  if (old->exit_code != 0) {
    return make_error(
        "push_refused",
        "branch '" + base_branch + "' is gone from " + clone.string() + "; branch " + branch + " landed alone",
        clone.string());
  }
  const std::string old_head = trimmed(old->out);
  auto forward = git.run({"merge-base", "--is-ancestor", old_head, head});
  POLY_TRY(forward);
  if (forward->exit_code == 1) return base_moved(git, base_branch, "now at " + old_head.substr(0, 12));
  if (forward->exit_code != 0) return git.failed({"merge-base", "--is-ancestor", old_head, head}, *forward);

  auto tree = checked_out_at(git, base_ref);
  POLY_TRY(tree);
  if (*tree) return fast_forward_checked_out(git, **tree, head, branch, base_branch, old_head);
  // Nobody has the base checked out: the ref alone moves, only from where it was.
  auto moved = git.run({"update-ref", "-m", "polyphony: landed " + branch, base_ref, head, old_head});
  POLY_TRY(moved);
  if (moved->exit_code != 0) return base_moved(git, base_branch, first_lines(moved->err));
  return CloneLanding{head, ""};
}

}  // namespace polyphony
