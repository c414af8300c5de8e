// The reference mirror of an origin: naming, locking, and creating or fetching it.
#include "git/mirror.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <thread>
#include <utility>

#include "git/git_cli.h"

namespace polyphony::detail {

namespace fs = std::filesystem;

namespace {

Result<Origin> resolve_local_origin(const std::string& repo_url) {
  std::string raw = repo_url.starts_with("file://") ? repo_url.substr(7) : repo_url;
  std::error_code ec;
  fs::path path = fs::weakly_canonical(fs::absolute(raw), ec);
  if (ec || !fs::exists(path)) {
    return make_error("not_found", "repository path '" + raw +
                                       "' does not exist; give the path of a git repository "
                                       "or a remote URL");
  }
  if (!GitRepo::open(path).ok()) {
    return make_error("not_found", "'" + path.string() +
                                       "' is not a git repository (neither a work tree with "
                                       ".git nor a bare repository)");
  }
  return Origin{path.string(), true};
}

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  return h;
}

// The wanted base (its default branch when empty) and the default branch of a local origin,
// when the mirror has both at the same commits and the same default branch: a few ref reads,
// where a sync compares every branch of both (and the origin keeps every landed task's). The
// mirror's refs move only once their objects are all there, by a fetch (which brings every
// branch) or a landing learned (its base and task branch).
std::optional<BranchSnapshot> mirror_has_heads(const Origin& origin, const fs::path& mirror, const std::string& base) {
  if (!origin.local) return std::nullopt;
  auto source = GitRepo::open(origin.url);
  auto copy = source.ok() ? GitRepo::open(mirror) : Result<GitRepo>(source.error());
  if (!copy.ok()) return std::nullopt;
  BranchSnapshot heads;
  heads.default_branch = source->head_branch();
  if (heads.default_branch.empty() || copy->head_branch() != heads.default_branch) return std::nullopt;
  for (const std::string& name : {base.empty() ? heads.default_branch : base, heads.default_branch}) {
    if (heads.find(name) != nullptr) continue;
    auto theirs = source->resolve("refs/heads/" + name);
    auto ours = copy->resolve("refs/heads/" + name);
    if (!theirs.ok() || !ours.ok() || !git_oid_equal(&*theirs, &*ours)) return std::nullopt;
    heads.branches.push_back({name, *theirs});
  }
  return heads;
}

// A local origin whose branches and default branch the mirror already has: nothing to fetch.
// Read in-process (a few ref files), which costs far less than starting `git fetch`.
bool mirror_is_current(const Origin& origin, const fs::path& mirror) {
  if (!origin.local) return false;
  auto source = GitRepo::open(origin.url);
  auto copy = GitRepo::open(mirror);
  if (!source.ok() || !copy.ok()) return false;
  auto theirs = source->branches();
  auto ours = copy->branches();
  if (!theirs.ok() || !ours.ok() || theirs->default_branch != ours->default_branch ||
      theirs->branches.size() != ours->branches.size()) {
    return false;
  }
  for (const auto& b : theirs->branches) {
    const BranchHead* mine = ours->find(b.name);
    if (mine == nullptr || !git_oid_equal(&mine->commit, &b.commit)) return false;
  }
  return true;
}

}  // namespace

bool is_remote_url(const std::string& url) {
  if (url.starts_with("file://")) return false;
  if (url.find("://") != std::string::npos) return true;
  size_t colon = url.find(':');
  size_t slash = url.find('/');
  return colon != std::string::npos && (slash == std::string::npos || colon < slash);  // host:path
}

Result<Origin> resolve_origin(const std::string& repo_url) {
  if (repo_url.empty() || repo_url.front() == '-') {
    return make_error("usage", "'" + repo_url + "' is not a repository path or URL");
  }
  if (is_remote_url(repo_url)) return Origin{repo_url, false};
  return resolve_local_origin(repo_url);
}

std::string mirror_name(const Origin& origin) {
  std::string url = origin.url;
  while (url.size() > 1 && url.back() == '/') url.pop_back();
  if (!origin.local && url.ends_with(".git")) url.resize(url.size() - 4);
  std::string base = url.substr(url.find_last_of("/:") + 1);
  if (base.ends_with(".git")) base.resize(base.size() - 4);
  for (char& c : base) {
    if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '-' && c != '_' && c != '.') c = '_';
  }
  if (base.empty() || base.front() == '.') base = "repo" + base;
  char hash[17];
  std::snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(fnv1a(url)));
  return base.substr(0, 64) + "-" + std::string(hash, 12);
}

Result<BranchHead> pick_base(const BranchSnapshot& branches, const std::string& requested, const std::string& url) {
  if (branches.branches.empty()) {
    return make_error("not_found", "the origin " + redact_credentials(url) +
                                       " has no branches (an empty repository?); push a first "
                                       "commit to it");
  }
  std::string name = requested.empty() ? branches.default_branch : requested;
  if (name.empty()) {
    return make_error("not_found", "the origin " + redact_credentials(url) +
                                       " has no default branch (its HEAD names no branch); "
                                       "name a base branch. Branches: " +
                                       branches.names());
  }
  const BranchHead* head = branches.find(name);
  if (head == nullptr) {
    return make_error("not_found", "base branch '" + name + "' does not exist in " + redact_credentials(url) +
                                       "; its branches are: " + branches.names());
  }
  return *head;
}

long long millis_since(std::chrono::steady_clock::time_point start) {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now() - start).count();
}

namespace {

// How often a wait for a lock held by another thread or process looks at its limits again.
constexpr auto kLockPoll = std::chrono::milliseconds(10);

// Why a wait that started with `limits` must stop now (its cancel flag is set, or `deadline`
// passed); "" to keep waiting.
std::string wait_must_stop(const GitLimits& limits, std::chrono::steady_clock::time_point deadline) {
  if (limits.cancel != nullptr && limits.cancel->load()) return "cancelled";
  if (std::chrono::steady_clock::now() >= deadline) {
    return "still held by another update after " +
           std::to_string(std::chrono::duration_cast<std::chrono::seconds>(limits.timeout).count()) + " s";
  }
  return "";
}

// `mutex` locked within `limits`. Errors: "git" (the wait ran out; the message says why).
Result<std::unique_lock<std::timed_mutex>> lock_within(std::timed_mutex& mutex, const GitLimits& limits,
                                                       const fs::path& mirror) {
  const auto deadline = std::chrono::steady_clock::now() + limits.timeout;
  std::unique_lock lock(mutex, std::defer_lock);
  while (!lock.try_lock_for(kLockPoll)) {
    if (auto why = wait_must_stop(limits, deadline); !why.empty()) {
      return make_error("git", "waiting for the mirror: " + why, mirror.string());
    }
  }
  return lock;
}

}  // namespace

Result<FileLock> FileLock::acquire(const fs::path& path, const GitLimits& limits) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return make_error("io", "cannot open lock file: " + std::string(std::strerror(errno)), path.string());
  const auto deadline = std::chrono::steady_clock::now() + limits.timeout;
  while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err == EINTR) continue;
    if (err != EWOULDBLOCK) {
      ::close(fd);
      return make_error("io", "cannot lock: " + std::string(std::strerror(err)), path.string());
    }
    if (auto why = wait_must_stop(limits, deadline); !why.empty()) {
      ::close(fd);
      return make_error("git", "waiting for the lock: " + why, path.string());
    }
    std::this_thread::sleep_for(kLockPoll);
  }
  return FileLock(fd);
}

FileLock::FileLock(FileLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);  // closing the descriptor releases the lock
}

MirrorState& mirror_state(const fs::path& mirror) {
  static std::mutex registry_mutex;
  static std::map<std::string, MirrorState> states;
  std::lock_guard guard(registry_mutex);
  return states[mirror.string()];
}

Result<FileLock> lock_mirror_file(const fs::path& mirror, const GitLimits& limits) {
  fs::path lock_path = mirror;
  lock_path.replace_extension(".lock");
  return FileLock::acquire(lock_path, limits);
}

Status MirrorStore::create(const Origin& origin, const fs::path& mirror) const {
  fs::path partial = mirror;
  partial += ".partial";
  std::error_code ec;
  fs::remove_all(partial, ec);  // left over by a crash; we hold the lock
  // The CLI: credential helpers, ssh config and every transport work as they do for the user,
  // and a local origin's objects are hardlinked rather than copied.
  // gc stays off and never prunes: workspaces borrow these objects without the mirror knowing.
  auto cloned = run_git({"clone", "--mirror", "--quiet", "-c", "gc.auto=0", "-c", "gc.pruneExpire=never", "-c",
                         "maintenance.auto=false", "--", origin.url, partial.string()},
                        dir_, limits_);
  if (!cloned.ok()) {
    fs::remove_all(partial, ec);
    return make_error("git", "cannot mirror " + redact_credentials(origin.url) + ": " + cloned.error().message,
                      mirror.string());
  }
  fs::rename(partial, mirror, ec);
  if (ec) return make_error("io", "cannot move the new mirror in place: " + ec.message(), mirror.string());
  return ok_status();
}

Result<BranchSnapshot> MirrorStore::sync(const Origin& origin, const fs::path& mirror,
                                         const std::optional<std::string>& new_work_base,
                                         const std::optional<std::string>& wanted_base) const {
  auto requested = std::chrono::steady_clock::now();
  std::error_code ec;
  fs::create_directories(dir_, ec);
  MirrorState& state = mirror_state(mirror);
  if (new_work_base && state.landings.load() > 0 && fs::exists(mirror)) {
    auto repo = GitRepo::open(mirror);
    auto branches = repo.ok() ? repo->branches() : Result<BranchSnapshot>(repo.error());
    if (branches.ok() && (new_work_base->empty() || branches->find(*new_work_base) != nullptr)) return branches;
  }
  const auto& base = new_work_base ? new_work_base : wanted_base;
  if (base) {
    if (auto heads = mirror_has_heads(origin, mirror, *base)) return *heads;
  }
  auto guard = lock_within(state.mutex, limits_, mirror);
  POLY_TRY(guard);
  auto lock = lock_mirror_file(mirror, limits_);
  POLY_TRY(lock);
  // An update that started after this request was made already holds every commit it must see.
  if (state.updated_from <= requested || !fs::exists(mirror)) {
    auto started = std::chrono::steady_clock::now();
    POLY_TRY(update(origin, mirror));
    state.updated_from = started;
  }
  auto repo = GitRepo::open(mirror);
  POLY_TRY(repo);
  return repo->branches();
}

Status MirrorStore::update(const Origin& origin, const fs::path& mirror) const {
  auto start = std::chrono::steady_clock::now();
  bool existed = fs::exists(mirror);
  if (existed && mirror_is_current(origin, mirror)) return ok_status();
  if (existed) {
    // The CLI: an incremental fetch through any transport, with the user's credentials.
    POLY_TRY(run_git({"fetch", "--prune", "--quiet", "origin"}, mirror, limits_));
  } else {
    POLY_TRY(create(origin, mirror));
  }
  spdlog::debug("mirror {} {} in {} ms", mirror.string(), existed ? "fetched" : "created", millis_since(start));
  return ok_status();
}

}  // namespace polyphony::detail
