// Spares: clones made before their task, checked out at the base's head, and brought to the
// task's branch in place (the same repo/ and meta/ inodes) when it comes.
#include "worker-agent/spares.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <stdio.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <random>
#include <vector>

#include "git/git_cli.h"

namespace polyphony::detail {

namespace fs = std::filesystem;

namespace {

// A spare's repo/.git/config as make_spare wrote it, kept outside repo/ (which a container may
// have mounted before the task came): provision_from puts it back before opening the clone.
constexpr char kSpareGitConfig[] = "spare-git-config";
// HEAD of a spare before its checkout; the branch is never created (the checkout detaches).
constexpr char kSpareHead[] = "polyphony-spare";

// "<mirror name>-<8 random hex digits>": unique enough to retry on the rare clash.
std::string spare_name(const fs::path& mirror) {
  static std::mutex mutex;
  static std::mt19937_64 random{std::random_device{}()};
  std::lock_guard guard(mutex);
  char suffix[9];
  std::snprintf(suffix, sizeof suffix, "%08x", static_cast<unsigned>(random() & 0xffffffffu));
  return mirror.stem().string() + "-" + suffix;
}

// Renames `from` to `to` unless `to` exists (even empty), atomically where the filesystem can.
std::error_code rename_no_replace(const fs::path& from, const fs::path& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return {};
  if (errno != EINVAL && errno != ENOSYS) return {errno, std::generic_category()};
  if (fs::exists(to)) return std::make_error_code(std::errc::file_exists);
  std::error_code ec;
  fs::rename(from, to, ec);
  return ec;
}

// Deletes what `dir` holds, keeping `dir` itself (the same inode, perhaps mounted somewhere).
Status empty_directory(const fs::path& dir) {
  std::error_code ec;
  std::vector<fs::path> entries;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    entries.push_back(it->path());
  }
  if (ec) return make_error("io", "cannot list: " + ec.message(), dir.string());
  for (const auto& entry : entries) {
    fs::remove_all(entry, ec);
    if (ec) return make_error("io", "cannot delete: " + ec.message(), entry.string());
  }
  return ok_status();
}

}  // namespace

bool SparePool::is_spare_dir(const fs::path& dir) const {
  const std::string name = dir.filename().string();
  return dir.parent_path() == spares_dir() && !name.empty() && name.front() != '.';
}

Result<fs::path> SparePool::reserve_spare_dir(const fs::path& mirror) const {
  std::error_code ec;
  fs::create_directories(spares_dir(), ec);
  for (int attempt = 0; attempt < 16; ++attempt) {
    fs::path dir = spares_dir() / spare_name(mirror);
    if (fs::create_directory(dir, ec)) return dir;
    if (ec) return make_error("io", "cannot create " + dir.string() + ": " + ec.message(), dir.string());
  }
  return make_error("io", "cannot find a free spare name", spares_dir().string());
}

Status SparePool::build_spare(const Spare& spare, const Origin& origin, const BranchSnapshot& branches,
                              const git_oid& base) const {
  const fs::path repo_dir = spare.dir / "repo";
  auto repo = GitRepo::init_borrowing(repo_dir, {spare.mirror_dir / "objects"}, kSpareHead);
  POLY_TRY(repo);
  POLY_TRY(repo->add_remote("origin", origin.url, branches));
  std::error_code ec;
  fs::copy_file(repo_dir / ".git" / "config", spare.dir / kSpareGitConfig, ec);
  if (ec) return make_error("io", "cannot keep the clone's config: " + ec.message(), spare.dir.string());
  POLY_TRY(checkout_new_clone(repo_dir, {"--detach", oid_hex(base)}));
  // meta/ stays root's and read-only to the container, as the task runner makes it.
  fs::create_directory(spare.dir / "meta", ec);
  if (ec) return make_error("io", "cannot create meta/: " + ec.message(), spare.dir.string());
  POLY_TRY(clones_.owner().give_clone(repo_dir));
  return clones_.owner().give_one(spare.dir);
}

Result<Spare> SparePool::make_spare(const std::string& repo_url, const std::string& base_branch) const {
  auto start = std::chrono::steady_clock::now();
  if (!base_branch.empty() && !is_valid_branch_name(base_branch)) {
    return make_error("usage", "'" + base_branch + "' is not a valid base branch name", repo_url);
  }
  auto origin = resolve_origin(repo_url);
  POLY_TRY(origin);
  const fs::path mirror = mirrors_.mirror_of(*origin);
  auto branches = mirrors_.sync(*origin, mirror, base_branch);
  POLY_TRY(branches);
  auto base = pick_base(*branches, base_branch, origin->url);
  POLY_TRY(base);
  auto dir = reserve_spare_dir(mirror);
  POLY_TRY(dir);
  Spare spare{*dir, mirror, repo_url, base_branch};
  if (auto built = build_spare(spare, *origin, branches->tracked_with(base->name), base->commit); !built.ok()) {
    std::error_code ec;
    fs::remove_all(spare.dir, ec);
    return built.error();
  }
  spdlog::info("spare made dir={} base={}@{} ms={}", spare.dir.string(), base->name,
               oid_hex(base->commit).substr(0, 12), millis_since(start));
  return spare;
}

Status SparePool::check_spare(const WorkspaceRequest& request, const Spare& spare, const fs::path& mirror) const {
  if (!is_spare_dir(spare.dir)) {
    return make_error("usage", spare.dir.string() + " is not a spare of " + root_.string(), request.task_id);
  }
  if (spare.mirror_dir != mirror || spare.base_branch != request.base_branch) {
    return make_error("usage",
                      "the spare " + spare.dir.filename().string() + " was made for " +
                          redact_credentials(spare.repo_url) + " at '" + spare.base_branch + "', not for " +
                          redact_credentials(request.repo_url) + " at '" + request.base_branch +
                          "'; provision without it",
                      request.task_id);
  }
  if (!fs::exists(spare.dir / "repo" / ".git") || !fs::exists(spare.dir / kSpareGitConfig)) {
    return make_error("not_found", "the spare " + spare.dir.string() + " is missing or incomplete", request.task_id);
  }
  return ok_status();
}

// Checks the request and the spare, then renames the spare to the task's directory. The
// Workspace returned has no base yet.
Result<Workspace> SparePool::place_spare(const WorkspaceRequest& request, const Spare& spare) const {
  POLY_TRY(clones_.check_request(request));
  auto origin = resolve_origin(request.repo_url);
  if (!origin.ok()) return make_error(origin.error().code, origin.error().message, request.task_id);
  const fs::path mirror = mirrors_.mirror_of(*origin);
  POLY_TRY(check_spare(request, spare, mirror));
  const fs::path tasks_dir = clones_.tasks_dir();
  const fs::path task_dir = tasks_dir / request.task_id;
  std::error_code ec;
  fs::create_directories(tasks_dir, ec);
  ec = rename_no_replace(spare.dir, task_dir);
  if (ec == std::errc::file_exists || ec == std::errc::directory_not_empty) {
    return make_error(
        "exists",
        "task '" + request.task_id + "' already has a workspace at " + task_dir.string() + "; remove it first",
        request.task_id);
  }
  if (ec) {
    return make_error("io",
                      "cannot move the spare " + spare.dir.string() + " to " + task_dir.string() + ": " + ec.message(),
                      request.task_id);
  }
  return Workspace{request.task_id, task_dir, task_dir / "repo", mirror, origin->url, "", "", request.branch};
}

// Brings a placed spare to the base's current head on the task branch: what build_clone makes.
Status SparePool::refresh_spare(Workspace& ws, const std::string& requested_base) const {
  auto origin = resolve_origin(ws.repo_url);
  if (!origin.ok()) return make_error(origin.error().code, origin.error().message, ws.task_id);
  auto branches = mirrors_.sync(*origin, ws.mirror_dir, requested_base);
  POLY_TRY(branches);
  auto base = pick_base(*branches, requested_base, origin->url);
  if (!base.ok()) return make_error(base.error().code, base.error().message, ws.task_id);
  ws.base_branch = base->name;
  ws.base_commit = oid_hex(base->commit);
  // The config and alternates as made, whatever a container did to them before the task came.
  if (fs::is_symlink(ws.repo_dir / ".git") || !fs::is_directory(ws.repo_dir / ".git")) {
    return make_error("io", "the spare's .git is no longer a directory", ws.repo_dir.string());
  }
  std::error_code ec;
  fs::rename(ws.task_dir / kSpareGitConfig, ws.repo_dir / ".git" / "config", ec);
  if (ec) return make_error("io", "cannot restore the clone's config: " + ec.message(), ws.task_dir.string());
  POLY_TRY(write_alternates(ws.repo_dir / ".git", {ws.mirror_dir / "objects"}));
  auto repo = GitRepo::open(ws.repo_dir);
  POLY_TRY(repo);
  POLY_TRY(repo->set_remote_refs("origin", branches->tracked_with(base->name)));
  auto touched = repo->reset_to_new_branch(ws.branch, base->commit);
  POLY_TRY(touched);
  POLY_TRY(empty_directory(ws.task_dir / "meta"));
  POLY_TRY(write_metadata(ws));
  POLY_TRY(clones_.owner().give_touched(*repo, ws.repo_dir, *touched));
  spdlog::debug("spare for task={} wrote or deleted {} paths", ws.task_id, touched->size());
  return ok_status();
}

Result<Workspace> SparePool::provision_from(const WorkspaceRequest& request, const Spare& spare) const {
  auto start = std::chrono::steady_clock::now();
  auto placed = place_spare(request, spare);
  if (!placed.ok()) {
    if (auto discarded = discard_spare(spare); !discarded.ok()) {
      spdlog::warn("spare not discarded task={}: {}", request.task_id, discarded.error().to_string());
    }
    return placed.error();
  }
  Workspace ws = std::move(placed).value();
  if (auto refreshed = refresh_spare(ws, request.base_branch); !refreshed.ok()) {
    std::error_code ec;
    fs::remove_all(ws.task_dir, ec);
    return refreshed.error();
  }
  spdlog::info("workspace provisioned from spare task={} base={}@{} branch={} ms={}", ws.task_id, ws.base_branch,
               ws.base_commit.substr(0, 12), ws.branch, millis_since(start));
  return ws;
}

Status SparePool::discard_spare(const Spare& spare) const {
  if (!is_spare_dir(spare.dir)) {
    return make_error("usage", spare.dir.string() + " is not a spare of " + root_.string() + "; not deleting it");
  }
  std::error_code ec;
  fs::remove_all(spare.dir, ec);
  if (ec) return make_error("io", "cannot delete the spare: " + ec.message(), spare.dir.string());
  return ok_status();
}

Result<int> SparePool::clear_spares() const {
  int removed = 0;
  std::error_code ec;
  if (!fs::exists(spares_dir(), ec)) return removed;
  std::vector<fs::path> found;
  for (fs::directory_iterator it(spares_dir(), ec), end; !ec && it != end; it.increment(ec)) {
    found.push_back(it->path());
  }
  if (ec) return make_error("io", "cannot list " + spares_dir().string() + ": " + ec.message());
  for (const auto& dir : found) {
    fs::remove_all(dir, ec);
    if (ec) return make_error("io", "cannot delete the stale spare: " + ec.message(), dir.string());
    ++removed;
  }
  if (removed > 0) spdlog::info("stale spares deleted count={} dir={}", removed, spares_dir().string());
  return removed;
}

}  // namespace polyphony::detail
