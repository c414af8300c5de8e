// The reference mirror of an origin: one bare `git clone --mirror` per origin under a mirrors
// directory, which every task's clone, pinned repository and spare borrows its objects from.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>

#include "common/result.h"
#include "git/git_cli.h"
#include "git/git_repo.h"

namespace polyphony::detail {

// Where the origin lives: `url` is what git is given; `local` is set for an on-disk origin.
struct Origin {
  std::string url;
  bool local = false;
};

// True when `url` names a remote (scheme://..., or scp-like host:path); a file:// URL or a
// plain path is local.
bool is_remote_url(const std::string& url);

// A remote URL as given; a local path (or file:// URL) made absolute and canonical. Errors:
// "usage" (empty, or starting with '-'), "not_found" (the path does not exist or is not a git
// repository; the message names it).
Result<Origin> resolve_origin(const std::string& repo_url);

// "<basename>-<12 hex digits of the normalized URL's hash>", e.g. "app-3f9a0c1b2d4e": stable for
// the origin, distinct for two origins of the same name, safe as a path component.
std::string mirror_name(const Origin& origin);

// The branch `requested` names in `branches` ("" : the default branch). Errors: "not_found"
// (no branches at all, no default branch, or no such branch; the message lists the branches
// and names the origin with credentials redacted).
Result<BranchHead> pick_base(const BranchSnapshot& branches, const std::string& requested, const std::string& url);

// Milliseconds since `start` (for the timings in log lines).
long long millis_since(std::chrono::steady_clock::time_point start);

// An exclusive flock(2) held until destruction: serializes mirror updates across processes.
class FileLock {
 public:
  // Opens (creating) and locks `path`, waiting for another holder: for ever when `limits` has no
  // cancel flag and the default timeout, else until its timeout passes or *cancel is set.
  // Errors: "io"; "git" when the wait ran out (the message says why).
  static Result<FileLock> acquire(const std::filesystem::path& path, const GitLimits& limits = {});
  FileLock(FileLock&& other) noexcept;
  FileLock& operator=(FileLock&&) = delete;
  ~FileLock();

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// Per mirror path, for the whole process: a mutex serializing its updates between threads (the
// file lock does it between processes), and when the last successful update started.
struct MirrorState {
  std::timed_mutex mutex;
  std::chrono::steady_clock::time_point updated_from = std::chrono::steady_clock::time_point::min();
  std::atomic<int> landings{0};  // landings of this process holding (or about to hold) the mutex
  int learned = 0;               // landings learned, under the mutex (refs packed every kPackRefsEvery)
};

// The one MirrorState of `mirror` in this process (made on first use, never freed).
MirrorState& mirror_state(const std::filesystem::path& mirror);

// The mirror's lock between processes (<name>.lock beside it); MirrorState::mutex is its
// counterpart between this process's threads, to be taken first. Errors: "io", and "git" when
// `limits` ran out first.
Result<FileLock> lock_mirror_file(const std::filesystem::path& mirror, const GitLimits& limits = {});

// The mirrors under one directory (<root>/mirrors), each <mirror_name>.git: one per origin on a
// host, shared by the workspaces and by the coordinator's scoring. `limits` bound every git
// command and every wait for the mirror's locks (scoring passes its job's timeout and cancel flag).
class MirrorStore {
 public:
  explicit MirrorStore(std::filesystem::path dir, GitLimits limits = {}) : dir_(std::move(dir)), limits_(limits) {}

  const std::filesystem::path& dir() const { return dir_; }

  // Where the mirror of `origin` is (whether or not it exists yet).
  std::filesystem::path mirror_of(const Origin& origin) const { return dir_ / (mirror_name(origin) + ".git"); }

  // The mirror's branches, the mirror brought up to date with the origin first (created by
  // `git clone --mirror` when missing, else `git fetch --prune`; gc never prunes it, since
  // workspaces borrow its objects). `new_work_base` (set for a new workspace or spare: the base
  // it wants, "" for the default branch): while a landing of this process holds the mirror, the
  // mirror is taken as it is rather than waited for, when it has that base. It is then at most
  // that landing behind, which the rebase before verify picks up; a rebase itself (no
  // `new_work_base`) waits, so it sees the landing once pushed. `wanted_base` (or
  // `new_work_base`): the one base the caller needs ("" for the default branch). When a local
  // origin and the mirror agree on it and on the default branch, only those two are returned,
  // with no lock taken and nothing compared or fetched. An update that started after this call
  // did is not repeated. Errors: "git" (the message names the origin, credentials redacted),
  // "io".
  Result<BranchSnapshot> sync(const Origin& origin, const std::filesystem::path& mirror,
                              const std::optional<std::string>& new_work_base = std::nullopt,
                              const std::optional<std::string>& wanted_base = std::nullopt) const;

 private:
  Status update(const Origin& origin, const std::filesystem::path& mirror) const;
  Status create(const Origin& origin, const std::filesystem::path& mirror) const;

  std::filesystem::path dir_;
  GitLimits limits_;
};

}  // namespace polyphony::detail
