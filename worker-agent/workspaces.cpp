// The real Workspaces: one reference mirror per origin under <root>/mirrors, and per task a
// clone under <root>/tasks/<id>/repo that borrows the mirror's objects through alternates.
#include "worker-agent/workspaces.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <set>
#include <fstream>
#include <map>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>

#include "common/ids.h"
#include "worker-agent/git_cli.h"
#include "worker-agent/git_repo.h"
#include "worker-agent/mirror.h"
#include "worker-agent/working_clone.h"

namespace polyphony {

namespace fs = std::filesystem;
using detail::BranchHead;
using detail::BranchSnapshot;
using detail::GitRepo;
using detail::lock_mirror_file;
using detail::millis_since;
using detail::mirror_state;
using detail::MirrorState;
using detail::Origin;
using detail::pick_base;
using detail::resolve_origin;

namespace {

constexpr char kMetadataFile[] = "workspace.json";
// A spare's repo/.git/config as make_spare wrote it, kept outside repo/ (which a container may
// have mounted before the task came): provision_from puts it back before opening the clone.
constexpr char kSpareGitConfig[] = "spare-git-config";
// HEAD of a spare before its checkout; the branch is never created (the checkout detaches).
constexpr char kSpareHead[] = "polyphony-spare";

// Every this many landings into a mirror, its refs and those of a local origin are packed: each
// landing adds a task branch to both.
constexpr int kPackRefsEvery = 16;

Status chown_tree(const fs::path& dir, int uid, int gid) {
  auto chown_one = [&](const fs::path& p) -> Status {
    // What is already the owner's is left alone: a chown, even to the same owner, writes the
    // inode (and its ctime, which makes git read the file again).
    struct stat st {};
    if (::lstat(p.c_str(), &st) == 0 && st.st_uid == static_cast<uid_t>(uid) && st.st_gid == static_cast<gid_t>(gid)) {
      return ok_status();
    }
    if (::lchown(p.c_str(), static_cast<uid_t>(uid), static_cast<gid_t>(gid)) == 0)
      return ok_status();
    std::string reason = std::strerror(errno);
    return make_error(
        "io", "cannot chown to " + std::to_string(uid) + ":" + std::to_string(gid) + ": " + reason,
        p.string());
  };
  POLY_TRY(chown_one(dir));
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    POLY_TRY(chown_one(it->path()));
  }
  if (ec) return make_error("io", "cannot walk the directory: " + ec.message(), dir.string());
  return ok_status();
}

Status write_metadata(const Workspace& ws) {
  nlohmann::json j = {{"version", 1},
                      {"task_id", ws.task_id},
                      {"repo_url", ws.repo_url},
                      {"base_branch", ws.base_branch},
                      {"base_commit", ws.base_commit},
                      {"branch", ws.branch},
                      {"mirror_dir", ws.mirror_dir.string()}};
  fs::path path = ws.task_dir / kMetadataFile;
  fs::path tmp = path;
  tmp += ".tmp";
  std::ofstream out(tmp, std::ios::trunc);
  out << j.dump(2) << "\n";
  out.close();
  std::error_code ec;
  if (out) fs::rename(tmp, path, ec);
  if (!out || ec) return make_error("io", "cannot write the workspace metadata", path.string());
  return ok_status();
}

Result<Workspace> read_metadata(const fs::path& task_dir, const std::string& task_id) {
  fs::path path = task_dir / kMetadataFile;
  std::ifstream in(path);
  if (!in) {
    return make_error("not_found",
                      "no workspace for task '" + task_id + "' (" + path.string() + " is missing)",
                      task_id);
  }
  try {
    nlohmann::json j = nlohmann::json::parse(in);
    Workspace ws{task_id,
                 task_dir,
                 task_dir / "repo",
                 j.at("mirror_dir").get<std::string>(),
                 j.at("repo_url"),
                 j.at("base_branch"),
                 j.at("base_commit"),
                 j.at("branch")};
    return ws;
  } catch (const nlohmann::json::exception& e) {
    return make_error("io", std::string("corrupt workspace metadata: ") + e.what(), path.string());
  }
}

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

Status lchown_path(const fs::path& p, int uid, int gid) {
  if (::lchown(p.c_str(), static_cast<uid_t>(uid), static_cast<gid_t>(gid)) == 0) return ok_status();
  return make_error("io",
                    "cannot chown to " + std::to_string(uid) + ":" + std::to_string(gid) + ": " +
                        std::strerror(errno),
                    p.string());
}

// Checks out `target` (checkout arguments: "-B <branch> <commit>" or "--detach <commit>") in a
// clone this process has just made, with the git CLI: on 20,000 files it wrote the work tree in
// about half the time libgit2 took (measured with the provisioning benchmark's repository). Never
// in a clone a container has seen: git would run what its config and hooks name.
Status checkout_new_clone(const fs::path& repo_dir, const std::vector<std::string>& target) {
  std::vector<std::string> args{"-c",        "core.hooksPath=/dev/null", "-c", "checkout.workers=0",
                                "checkout",  "--quiet",                  "--force"};
  args.insert(args.end(), target.begin(), target.end());
  POLY_TRY(detail::run_git(args, repo_dir, std::chrono::hours(1)));
  return ok_status();
}

class GitWorkspaces final : public Workspaces {
 public:
  GitWorkspaces(fs::path root, CommitIdentity identity, int owner_uid, int owner_gid)
      : root_(fs::absolute(root).lexically_normal()),
        identity_(std::move(identity)),
        owner_uid_(owner_uid),
        owner_gid_(owner_gid),
        mirrors_(root_ / "mirrors") {
    // libgit2 is set up by its first use (GitRepo): its TLS set-up alone is about 3 MB of
    // memory that an idle worker never needs.
  }

  Result<Workspace> provision(const WorkspaceRequest& request) override;
  Result<Workspace> open(const std::string& task_id) override;
  Result<std::optional<std::string>> commit_all(const Workspace& ws,
                                                const std::string& message) override;
  Result<std::unique_ptr<BundleImport>> import_branch(const Workspace& ws, size_t max_bytes) override;
  Result<std::string> pin_import(const Workspace& ws, BundleImport& import) override;
  Status write_pinned_bundle(const Workspace& ws, const fs::path& path) override;
  CommitIdentity commit_identity() const override { return identity_; }
  Result<fs::path> make_review_clone(const Workspace& ws) override;
  Result<std::string> head_commit(const Workspace& ws) override;
  Result<int> commits_ahead(const Workspace& ws) override;
  Result<std::optional<std::string>> landed_earlier(const Workspace& ws) override;
  Result<std::optional<std::string>> read_at_base(const Workspace& ws,
                                                  const std::string& path) override;
  Result<std::string> head_tree(const Workspace& ws) override;
  Result<std::optional<std::string>> rebase_onto_origin(Workspace& ws) override;
  Result<LandResult> land(const Workspace& ws) override;
  Result<LandResult> push_branch(const Workspace& ws) override;
  Status remove(const std::string& task_id) override;
  Result<std::vector<std::string>> list() override;
  Result<Spare> make_spare(const std::string& repo_url, const std::string& base_branch) override;
  Result<Workspace> provision_from(const WorkspaceRequest& request, const Spare& spare) override;
  Status discard_spare(const Spare& spare) override;
  Result<int> clear_spares() override;

 private:
  fs::path tasks_dir() const { return root_ / "tasks"; }
  fs::path spares_dir() const { return root_ / "spares"; }
  // A directory right under spares_dir(): never anything else is renamed or deleted as a spare.
  bool is_spare_dir(const fs::path& dir) const {
    const std::string name = dir.filename().string();
    return dir.parent_path() == spares_dir() && !name.empty() && name.front() != '.';
  }
  fs::path mirror_of(const Origin& origin) const { return mirrors_.mirror_of(origin); }

  Status check_spare(const WorkspaceRequest& request, const Spare& spare,
                     const fs::path& mirror) const;
  Result<fs::path> reserve_spare_dir(const fs::path& mirror) const;
  Status build_spare(const Spare& spare, const Origin& origin, const BranchSnapshot& branches,
                     const git_oid& base);
  Result<Workspace> place_spare(const WorkspaceRequest& request, const Spare& spare);
  Status refresh_spare(Workspace& ws, const std::string& requested_base);
  Status give_paths_to_owner(const fs::path& repo_dir, const std::vector<std::string>& paths) const;
  // give_paths_to_owner, then the index learns the touched files' new ctimes (so git does not
  // read them again) and goes to the owner too.
  Status give_touched_to_owner(GitRepo& repo, const fs::path& repo_dir, const std::vector<std::string>& paths) const;

  Status check_request(const WorkspaceRequest& request) const;
  // <task_dir>/pinned.git, made (bare, borrowing the mirror's objects) when it is missing.
  Result<GitRepo> pinned_repo(const Workspace& ws) const;
  // The pinned commit, or the base commit while nothing is pinned.
  Result<git_oid> pinned_head(const Workspace& ws, const GitRepo& pinned) const;
  // The origin's base for a rebase of `ws`, with its objects in the mirror.
  Result<BranchHead> base_now(const Origin& origin, const Workspace& ws);
  Status build_clone(const Workspace& ws, const BranchSnapshot& origin_branches,
                     const git_oid& base);
  Status give_to_owner(const fs::path& dir) const;
  Status give_clone_to_owner(const fs::path& repo_dir) const;
  Result<LandResult> in_scratch_repo(
      const Workspace& ws, const std::function<Result<LandResult>(const fs::path&, const git_oid&)>& fn);
  Status learn_landing(const Workspace& ws, const fs::path& land_dir, const git_oid& head, bool base_moved);
  void pack_refs_after_landings(const Workspace& ws);
  std::optional<Status> land_in_process(const Workspace& ws, const fs::path& land_dir, const git_oid& head);
  Result<LandResult> push_and_land(const Workspace& ws, const fs::path& land_dir,
                                   const git_oid& head);
  Result<LandResult> land_on(const Workspace& ws, GitRepo& repo, const git_oid& head,
                             const git_oid& origin_base);

  fs::path root_;
  CommitIdentity identity_;
  int owner_uid_;
  int owner_gid_;
  detail::MirrorStore mirrors_;
};

Status GitWorkspaces::check_request(const WorkspaceRequest& request) const {
  POLY_TRY(check_task_id(request.task_id));
  if (!detail::is_valid_branch_name(request.branch)) {
    return make_error("usage", "'" + request.branch + "' is not a valid branch name",
                      request.task_id);
  }
  if (!request.base_branch.empty() && !detail::is_valid_branch_name(request.base_branch)) {
    return make_error("usage", "'" + request.base_branch + "' is not a valid base branch name",
                      request.task_id);
  }
  if (fs::exists(tasks_dir() / request.task_id)) {
    return make_error("exists",
                      "task '" + request.task_id + "' already has a workspace at " +
                          (tasks_dir() / request.task_id).string() + "; remove it first",
                      request.task_id);
  }
  return ok_status();
}

Status GitWorkspaces::give_to_owner(const fs::path& dir) const {
  if (owner_uid_ < 0) return ok_status();
  return chown_tree(dir, owner_uid_, owner_gid_);
}

Status GitWorkspaces::give_clone_to_owner(const fs::path& repo_dir) const {
  if (owner_uid_ < 0) return ok_status();
  POLY_TRY(give_to_owner(repo_dir));
  auto repo = GitRepo::open(repo_dir);
  POLY_TRY(repo);
  POLY_TRY(repo->restat_index_after_chown());
  return lchown_path(repo_dir / ".git" / "index", owner_uid_, owner_gid_);  // written anew
}

Status GitWorkspaces::build_clone(const Workspace& ws, const BranchSnapshot& origin_branches,
                                  const git_oid& base) {
  auto repo = GitRepo::init_borrowing(ws.repo_dir, {ws.mirror_dir / "objects"}, ws.branch);
  POLY_TRY(repo);
  POLY_TRY(repo->add_remote("origin", ws.repo_url, origin_branches));
  POLY_TRY(checkout_new_clone(ws.repo_dir, {"-B", ws.branch, detail::oid_hex(base)}));
  POLY_TRY(write_metadata(ws));
  // The clone goes to the container user; the metadata (the URL land pushes to) stays root's.
  POLY_TRY(give_clone_to_owner(ws.repo_dir));
  if (owner_uid_ >= 0 && ::lchown(ws.task_dir.c_str(), static_cast<uid_t>(owner_uid_),
                                  static_cast<gid_t>(owner_gid_)) != 0) {
    return make_error("io", std::string("cannot chown: ") + std::strerror(errno),
                      ws.task_dir.string());
  }
  return ok_status();
}

Result<Workspace> GitWorkspaces::provision(const WorkspaceRequest& request) {
  auto start = std::chrono::steady_clock::now();
  POLY_TRY(check_request(request));
  auto origin = resolve_origin(request.repo_url);
  if (!origin.ok()) return make_error(origin.error().code, origin.error().message, request.task_id);
  fs::path mirror = mirror_of(*origin);
  auto branches = mirrors_.sync(*origin, mirror, request.base_branch);
  POLY_TRY(branches);
  auto base = pick_base(*branches, request.base_branch, origin->url);
  if (!base.ok()) return make_error(base.error().code, base.error().message, request.task_id);

  fs::path task_dir = tasks_dir() / request.task_id;
  std::error_code ec;
  fs::create_directories(tasks_dir(), ec);
  if (!fs::create_directory(task_dir, ec)) {  // atomic: reserves the id against a racing provision
    return make_error(
        ec ? "io" : "exists",
        "cannot create " + task_dir.string() + (ec ? ": " + ec.message() : ": it exists"),
        request.task_id);
  }
  Workspace ws{request.task_id,
               task_dir,
               task_dir / "repo",
               mirror,
               origin->url,
               base->name,
               detail::oid_hex(base->commit),
               request.branch};
  if (auto built = build_clone(ws, branches->tracked_with(base->name), base->commit); !built.ok()) {
    fs::remove_all(task_dir, ec);
    return built.error();
  }
  spdlog::info("workspace provisioned task={} base={}@{} branch={} ms={}", ws.task_id,
               ws.base_branch, ws.base_commit.substr(0, 12), ws.branch, millis_since(start));
  return ws;
}

Result<Workspace> GitWorkspaces::open(const std::string& task_id) {
  POLY_TRY(check_task_id(task_id));
  fs::path task_dir = tasks_dir() / task_id;
  auto ws = read_metadata(task_dir, task_id);
  POLY_TRY(ws);
  if (!fs::exists(ws->repo_dir / ".git")) {
    return make_error("not_found",
                      "the workspace repository " + ws->repo_dir.string() + " is missing", task_id);
  }
  return ws;
}

fs::path pinned_dir(const Workspace& ws) { return ws.task_dir / "pinned.git"; }

Result<GitRepo> GitWorkspaces::pinned_repo(const Workspace& ws) const {
  const fs::path dir = pinned_dir(ws);
  struct stat st {};
  if (::lstat(dir.c_str(), &st) == 0) {
    // Made by this process, in a directory no container mounts: anything else is not ours to open.
    if (!S_ISDIR(st.st_mode) || st.st_uid != ::geteuid()) {
      return make_error("io", "pinned.git is not a directory of this worker's", dir.string());
    }
    return GitRepo::open(dir);
  }
  return GitRepo::init_borrowing(dir, {ws.mirror_dir / "objects"}, ws.branch, true);
}

Result<git_oid> GitWorkspaces::pinned_head(const Workspace& ws, const GitRepo& pinned) const {
  if (auto head = pinned.resolve("refs/heads/" + ws.branch); head.ok()) return head;
  return detail::parse_oid(ws.base_commit, ws.task_dir);
}

Result<std::unique_ptr<BundleImport>> GitWorkspaces::import_branch(const Workspace& ws, size_t max_bytes) {
  POLY_TRY(pinned_repo(ws));
  return BundleImport::start(pinned_dir(ws), max_bytes);
}

Result<std::string> GitWorkspaces::pin_import(const Workspace& ws, BundleImport& import) {
  auto id = import.finish("refs/heads/" + ws.branch);
  POLY_TRY(id);
  auto pinned = pinned_repo(ws);  // opened after the pack is in, so it sees it
  POLY_TRY(pinned);
  auto oid = detail::parse_oid(*id, ws.task_dir);
  POLY_TRY(oid);
  POLY_TRY(pinned->set_ref("refs/heads/" + ws.branch, *oid, "polyphony: pinned from the container's bundle"));
  spdlog::info("workspace pinned task={} branch={} commit={}", ws.task_id, ws.branch, id->substr(0, 12));
  return id;
}

Status GitWorkspaces::write_pinned_bundle(const Workspace& ws, const fs::path& path) {
  auto pinned = pinned_repo(ws);
  POLY_TRY(pinned);
  auto head = pinned_head(ws, *pinned);
  POLY_TRY(head);
  auto base = detail::parse_oid(ws.base_commit, ws.task_dir);
  POLY_TRY(base);
  return pinned->write_bundle(*head, *base, "refs/heads/" + ws.branch, path);
}

Result<fs::path> GitWorkspaces::make_review_clone(const Workspace& ws) {
  const fs::path dir = ws.task_dir / "review-repo";
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (ec) return make_error("io", "cannot remove the last review's clone: " + ec.message(), dir.string());
  auto pinned = pinned_repo(ws);
  POLY_TRY(pinned);
  auto head = pinned_head(ws, *pinned);
  POLY_TRY(head);
  auto base = detail::parse_oid(ws.base_commit, ws.task_dir);
  POLY_TRY(base);
  auto clone = GitRepo::init_borrowing(dir, {ws.mirror_dir / "objects"}, ws.branch);
  POLY_TRY(clone);
  POLY_TRY(pinned->copy_objects_to(*head, *base, dir / ".git" / "objects"));
  POLY_TRY(clone->set_ref("refs/remotes/origin/" + ws.base_branch, *base, "polyphony: the task's base"));
  POLY_TRY(checkout_new_clone(dir, {"-B", ws.branch, detail::oid_hex(*head)}));
  POLY_TRY(give_clone_to_owner(dir));
  return dir;
}

Result<std::optional<std::string>> GitWorkspaces::commit_all(const Workspace& ws,
                                                             const std::string& message) {
  auto repo = GitRepo::open(ws.repo_dir);
  POLY_TRY(repo);
  auto commit = repo->commit_work_tree(ws.branch, identity_, message);
  POLY_TRY(commit);
  // Objects, refs and the index were just written by root; the container user must own them.
  POLY_TRY(give_to_owner(ws.repo_dir / ".git"));
  auto head = repo->resolve("refs/heads/" + ws.branch);
  POLY_TRY(head);
  auto pinned = pinned_repo(ws);
  POLY_TRY(pinned);
  auto base = detail::parse_oid(ws.base_commit, ws.repo_dir);
  POLY_TRY(base);
  POLY_TRY(repo->copy_objects_to(*head, *base, pinned_dir(ws) / "objects"));
  POLY_TRY(pinned->set_ref("refs/heads/" + ws.branch, *head, "polyphony: committed in a trusted tree"));
  if (!*commit) return std::optional<std::string>();
  return std::optional<std::string>(detail::oid_hex(**commit));
}

Result<std::string> GitWorkspaces::head_commit(const Workspace& ws) {
  auto pinned = pinned_repo(ws);
  POLY_TRY(pinned);
  auto head = pinned_head(ws, *pinned);
  POLY_TRY(head);
  return detail::oid_hex(*head);
}

Result<int> GitWorkspaces::commits_ahead(const Workspace& ws) {
  auto pinned = pinned_repo(ws);
  POLY_TRY(pinned);
  auto head = pinned_head(ws, *pinned);
  POLY_TRY(head);
  auto base = detail::parse_oid(ws.base_commit, ws.task_dir);
  POLY_TRY(base);
  return pinned->count_ahead(*head, *base);
}

Result<std::optional<std::string>> GitWorkspaces::read_at_base(const Workspace& ws,
                                                               const std::string& path) {
  auto mirror = GitRepo::open(ws.mirror_dir);
  POLY_TRY(mirror);
  auto base = detail::parse_oid(ws.base_commit, ws.mirror_dir);
  POLY_TRY(base);
  return mirror->read_file_at(*base, path);
}

Result<std::optional<std::string>> GitWorkspaces::landed_earlier(const Workspace& ws) {
  auto mirror = GitRepo::open(ws.mirror_dir);
  POLY_TRY(mirror);
  auto branch = mirror->resolve("refs/heads/" + ws.branch);
  if (!branch.ok()) return std::optional<std::string>();  // never pushed
  auto base = mirror->resolve("refs/heads/" + ws.base_branch);
  POLY_TRY(base);
  auto contained = mirror->is_ancestor(*branch, *base);
  POLY_TRY(contained);
  if (!*contained) return std::optional<std::string>();
  return std::optional<std::string>(detail::oid_hex(*base));
}

Result<LandResult> GitWorkspaces::land_on(const Workspace& ws, GitRepo& repo, const git_oid& head,
                                          const git_oid& origin_base) {
  std::string head_hex = detail::oid_hex(head);
  auto fast_forward = repo.is_ancestor(origin_base, head);
  POLY_TRY(fast_forward);
  if (!*fast_forward) {
    // Never an unverified merge: the caller rebases onto the new base and verifies again.
    return make_error("base_moved",
                      "'" + ws.base_branch + "' moved to " + detail::oid_hex(origin_base).substr(0, 12) +
                          " since branch '" + ws.branch + "' was verified",
                      ws.task_id);
  }
  POLY_TRY(detail::push(repo.path(), ws.repo_url, head_hex, "refs/heads/" + ws.base_branch, false));
  return LandResult{head_hex, head_hex, true, ""};
}

Result<std::string> GitWorkspaces::head_tree(const Workspace& ws) {
  auto pinned = pinned_repo(ws);
  POLY_TRY(pinned);
  auto head = pinned_head(ws, *pinned);
  POLY_TRY(head);
  auto tree = pinned->tree_of(*head);
  POLY_TRY(tree);
  return detail::oid_hex(*tree);
}

Result<BranchHead> GitWorkspaces::base_now(const Origin& origin, const Workspace& ws) {
  auto branches = mirrors_.sync(origin, ws.mirror_dir, std::nullopt, ws.base_branch);
  POLY_TRY(branches);
  return pick_base(*branches, ws.base_branch, origin.url);
}

Result<std::optional<std::string>> GitWorkspaces::rebase_onto_origin(Workspace& ws) {
  auto origin = resolve_origin(ws.repo_url);
  if (!origin.ok()) return make_error(origin.error().code, origin.error().message, ws.task_id);
  auto base = base_now(*origin, ws);
  if (!base.ok()) return make_error(base.error().code, base.error().message, ws.task_id);
  const std::string new_base = detail::oid_hex(base->commit);
  if (new_base == ws.base_commit) return std::optional<std::string>();
  auto repo = pinned_repo(ws);  // opened after the sync, so it sees the new base
  POLY_TRY(repo);
  auto head = pinned_head(ws, *repo);
  POLY_TRY(head);
  auto contained = repo->is_ancestor(base->commit, *head);
  POLY_TRY(contained);
  if (*contained) return std::optional<std::string>();
  auto old_base = detail::parse_oid(ws.base_commit, ws.task_dir);
  POLY_TRY(old_base);
  auto replayed = repo->replay(*old_base, *head, base->commit, identity_);
  POLY_TRY(replayed);
  if (!replayed->commit) {
    std::string paths;
    for (const auto& p : replayed->conflicts) paths += (paths.empty() ? "" : ", ") + p;
    return make_error("conflict",
                      "branch '" + ws.branch + "' does not rebase cleanly onto '" + ws.base_branch + "' (now at " +
                          new_base.substr(0, 12) + "); conflicting paths: " + paths,
                      ws.task_id);
  }
  POLY_TRY(repo->set_ref("refs/heads/" + ws.branch, *replayed->commit, "polyphony: rebased onto " + new_base));
  ws.base_commit = new_base;
  POLY_TRY(write_metadata(ws));
  spdlog::info("workspace rebased task={} branch={} onto={} head={}", ws.task_id, ws.branch, new_base.substr(0, 12),
               detail::oid_hex(*replayed->commit).substr(0, 12));
  return std::optional<std::string>(new_base);
}

// Runs `fn(scratch_dir, pinned_commit)` with a fresh root-owned bare repository that borrows the
// pinned repository's objects and the mirror's, and removes it afterwards. git (push, fetch)
// runs there, never in the workspace: the agent controls its config, hooks and layout. What is
// pushed is the pinned commit, whatever the workspace's refs say by now.
Result<LandResult> GitWorkspaces::in_scratch_repo(
    const Workspace& ws, const std::function<Result<LandResult>(const fs::path&, const git_oid&)>& fn) {
  auto pinned = pinned_repo(ws);
  POLY_TRY(pinned);
  auto head = pinned->resolve("refs/heads/" + ws.branch);
  if (!head.ok()) return make_error("usage", "nothing is pinned for branch '" + ws.branch + "' to land", ws.task_id);
  fs::path land_dir = ws.task_dir / "land.git";
  std::error_code ec;
  fs::remove_all(land_dir, ec);
  auto repo = GitRepo::init_borrowing(
      land_dir, {pinned_dir(ws) / "objects", ws.mirror_dir / "objects"}, ws.branch, true);
  auto result = repo.ok() ? fn(land_dir, *head) : Result<LandResult>(repo.error());
  fs::remove_all(land_dir, ec);
  return result;
}

// What a landing pushed goes into the mirror too (its objects, the base and task
// branch moved forward), so the next rebase or provision on this repo finds the mirror current
// and fetches nothing. The mirror's base only moves forward: a fetch since may have gone further.
// The caller holds the mirror's lock.
Status GitWorkspaces::learn_landing(const Workspace& ws, const fs::path& land_dir, const git_oid& head,
                                    bool base_moved) {
  auto base = detail::parse_oid(ws.base_commit, ws.task_dir);
  POLY_TRY(base);
  auto source = GitRepo::open(land_dir);  // borrows the pinned objects and the mirror's
  POLY_TRY(source);
  POLY_TRY(source->copy_objects_to(head, *base, ws.mirror_dir / "objects"));
  auto mirror = GitRepo::open(ws.mirror_dir);  // opened after the objects are there
  POLY_TRY(mirror);
  const std::string why = "polyphony: landed " + ws.branch;
  if (!base_moved) return mirror->set_ref("refs/heads/" + ws.branch, head, why);
  const std::string base_ref = "refs/heads/" + ws.base_branch;
  if (auto current = mirror->resolve(base_ref); current.ok()) {
    auto forward = mirror->is_ancestor(*current, head);
    POLY_TRY(forward);
    if (!*forward) return ok_status();
  }
  POLY_TRY(mirror->set_ref(base_ref, head, why));
  return mirror->set_ref("refs/heads/" + ws.branch, head, why);
}

// The refs of the mirror, and of a local origin (a push through git's own receive-pack would
// leave that to its auto gc, which an in-process landing never runs). Failures only cost speed:
// logged.
void GitWorkspaces::pack_refs_after_landings(const Workspace& ws) {
  std::vector<fs::path> repos{ws.mirror_dir};
  // A working clone takes landings through git run as its owner, which leaves its refs to git.
  if (auto origin = resolve_origin(ws.repo_url); origin.ok() && origin->local && !is_working_clone(origin->url)) {
    repos.emplace_back(origin->url);
  }
  for (const auto& dir : repos) {
    auto repo = GitRepo::open(dir);
    auto packed = repo.ok() ? repo->pack_refs() : Status(repo.error());
    if (!packed.ok()) spdlog::warn("cannot pack the refs of {}: {}", dir.string(), packed.error().to_string());
  }
}

Result<LandResult> GitWorkspaces::land(const Workspace& ws) {
  auto landed = in_scratch_repo(ws, [&](const fs::path& land_dir, const git_oid& head) -> Result<LandResult> {
    // The mirror is held from the push until it has learned the landing: a provision or rebase
    // of another task meanwhile would find the origin ahead of the mirror and fetch (a git
    // process, and the mirror's lock held for it) what the mirror is about to learn anyway.
    MirrorState& state = mirror_state(ws.mirror_dir);
    ++state.landings;
    struct Counted {
      std::atomic<int>& count;
      ~Counted() { --count; }
    } counted{state.landings};
    std::lock_guard guard(state.mutex);
    auto lock = lock_mirror_file(ws.mirror_dir);
    auto pushed = push_and_land(ws, land_dir, head);
    if (pushed.ok()) {
      const bool base_moved = !pushed->merged_commit.empty();
      if (auto s = lock.ok() ? learn_landing(ws, land_dir, head, base_moved) : Status(lock.error()); !s.ok()) {
        spdlog::warn("task {}: the mirror did not take the landing ({}); the next use fetches it", ws.task_id,
                     s.error().to_string());
      } else if (++state.learned % kPackRefsEvery == 0) {
        pack_refs_after_landings(ws);
      }
    }
    return pushed;
  });
  if (landed.ok()) {
    spdlog::info("workspace landed task={} branch={} base={} commit={} fast_forward={}", ws.task_id,
                 ws.branch, ws.base_branch, landed->merged_commit.substr(0, 12),
                 landed->fast_forward);
  }
  return landed;
}

Result<LandResult> GitWorkspaces::push_branch(const Workspace& ws) {
  auto pushed = in_scratch_repo(ws, [&](const fs::path& land_dir, const git_oid& head) -> Result<LandResult> {
    const std::string head_hex = detail::oid_hex(head);
    POLY_TRY(detail::push(land_dir, ws.repo_url, head_hex, "refs/heads/" + ws.branch, true));
    return LandResult{head_hex, "", false, ""};
  });
  if (pushed.ok()) {
    spdlog::info("workspace pushed task={} branch={} commit={}", ws.task_id, ws.branch,
                 pushed->branch_commit.substr(0, 12));
  }
  return pushed;
}

// A local bare origin that runs no hooks and has no receive settings takes the landing
// in-process: the objects it lacks as one pack and both refs moved under git's own ref locks,
// which is all receive-pack would do there, without its eight processes. nullopt: push with
// the CLI (a remote, or an origin whose hooks or settings must run).
std::optional<Status> GitWorkspaces::land_in_process(const Workspace& ws, const fs::path& land_dir,
                                                     const git_oid& head) {
  auto origin = resolve_origin(ws.repo_url);
  if (!origin.ok() || !origin->local) return std::nullopt;
  auto target = GitRepo::open(origin->url);
  if (!target.ok()) return std::nullopt;
  auto why_not = target->needs_receive_pack();
  if (!why_not.ok() || !why_not->empty()) {
    spdlog::debug("task {}: landing with git push ({})", ws.task_id,
                  why_not.ok() ? *why_not : why_not.error().to_string());
    return std::nullopt;
  }
  auto source = GitRepo::open(land_dir);
  if (!source.ok()) return Status(source.error());
  return target->take_landing(*source, head, "refs/heads/" + ws.base_branch, "refs/heads/" + ws.branch);
}

Result<LandResult> GitWorkspaces::push_and_land(const Workspace& ws, const fs::path& land_dir,
                                                const git_oid& head) {
  // The CLI for push and fetch: credential helpers, ssh config and every transport work as
  // they do for the user. The task branch belongs to the task: an earlier attempt is replaced.
  // A plain local bare origin takes the landing in-process; elsewhere one atomic push does it
  // all where the remote takes one. Either way the base only fast-forwards, so a base that
  // moved refuses it and the caller rebases again.
  const std::string head_hex = detail::oid_hex(head);
  if (auto origin = resolve_origin(ws.repo_url); origin.ok() && origin->local && is_working_clone(origin->url)) {
    auto landed = land_in_working_clone(
        origin->url, [&](const fs::path& bundle) { return write_pinned_bundle(ws, bundle); }, head_hex, ws.branch,
        ws.base_branch);
    if (!landed.ok()) return make_error(landed.error().code, landed.error().message, ws.task_id);
    return LandResult{head_hex, landed->merged_commit, !landed->merged_commit.empty(), landed->note};
  }
  auto local = land_in_process(ws, land_dir, head);
  Status pushed = local ? *local
                        : detail::push_landing(land_dir, ws.repo_url, head_hex, "refs/heads/" + ws.branch,
                                               "refs/heads/" + ws.base_branch);
  if (pushed.ok()) return LandResult{head_hex, head_hex, true, ""};
  if (pushed.error().code == "push_rejected") {
    // Never an unverified merge: the caller rebases onto the new base and verifies again.
    return make_error("base_moved",
                      "'" + ws.base_branch + "' moved on the origin since branch '" + ws.branch + "' was verified",
                      ws.task_id);
  }
  if (pushed.error().code != "unsupported") return pushed.error();
  POLY_TRY(detail::push(land_dir, ws.repo_url, head_hex, "refs/heads/" + ws.branch, true));
  std::string tracking = "refs/remotes/origin/" + ws.base_branch;
  POLY_TRY(detail::run_git(
      {"fetch", "--quiet", ws.repo_url, "+refs/heads/" + ws.base_branch + ":" + tracking},
      land_dir));
  auto repo = GitRepo::open(land_dir);  // opened after the fetch, so it sees the new objects
  POLY_TRY(repo);
  auto origin_base = repo->resolve(tracking);
  POLY_TRY(origin_base);
  return land_on(ws, *repo, head, *origin_base);
}

Status GitWorkspaces::remove(const std::string& task_id) {
  POLY_TRY(check_task_id(task_id));
  std::error_code ec;
  fs::remove_all(tasks_dir() / task_id, ec);
  if (ec) {
    return make_error(
        "io", "cannot delete " + (tasks_dir() / task_id).string() + ": " + ec.message(), task_id);
  }
  return ok_status();
}

Result<std::vector<std::string>> GitWorkspaces::list() {
  std::vector<std::string> ids;
  std::error_code ec;
  if (!fs::exists(tasks_dir(), ec)) return ids;
  for (fs::directory_iterator it(tasks_dir(), ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (it->is_directory() && is_valid_task_id(name)) ids.push_back(name);
  }
  if (ec) return make_error("io", "cannot list " + tasks_dir().string() + ": " + ec.message());
  std::sort(ids.begin(), ids.end());
  return ids;
}


// Spares: <root>/spares/<name>/{repo,meta}, made before their task and renamed into
// <root>/tasks/<id> when it comes.

Result<fs::path> GitWorkspaces::reserve_spare_dir(const fs::path& mirror) const {
  std::error_code ec;
  fs::create_directories(spares_dir(), ec);
  for (int attempt = 0; attempt < 16; ++attempt) {
    fs::path dir = spares_dir() / spare_name(mirror);
    if (fs::create_directory(dir, ec)) return dir;
    if (ec) return make_error("io", "cannot create " + dir.string() + ": " + ec.message(), dir.string());
  }
  return make_error("io", "cannot find a free spare name", spares_dir().string());
}

Status GitWorkspaces::build_spare(const Spare& spare, const Origin& origin,
                                  const BranchSnapshot& branches, const git_oid& base) {
  const fs::path repo_dir = spare.dir / "repo";
  auto repo = GitRepo::init_borrowing(repo_dir, {spare.mirror_dir / "objects"}, kSpareHead);
  POLY_TRY(repo);
  POLY_TRY(repo->add_remote("origin", origin.url, branches));
  std::error_code ec;
  fs::copy_file(repo_dir / ".git" / "config", spare.dir / kSpareGitConfig, ec);
  if (ec) return make_error("io", "cannot keep the clone's config: " + ec.message(), spare.dir.string());
  POLY_TRY(checkout_new_clone(repo_dir, {"--detach", detail::oid_hex(base)}));
  // meta/ stays root's and read-only to the container, as the task runner makes it.
  fs::create_directory(spare.dir / "meta", ec);
  if (ec) return make_error("io", "cannot create meta/: " + ec.message(), spare.dir.string());
  POLY_TRY(give_clone_to_owner(repo_dir));
  if (owner_uid_ >= 0) POLY_TRY(lchown_path(spare.dir, owner_uid_, owner_gid_));
  return ok_status();
}

Result<Spare> GitWorkspaces::make_spare(const std::string& repo_url, const std::string& base_branch) {
  auto start = std::chrono::steady_clock::now();
  if (!base_branch.empty() && !detail::is_valid_branch_name(base_branch)) {
    return make_error("usage", "'" + base_branch + "' is not a valid base branch name", repo_url);
  }
  auto origin = resolve_origin(repo_url);
  POLY_TRY(origin);
  const fs::path mirror = mirror_of(*origin);
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
               detail::oid_hex(base->commit).substr(0, 12), millis_since(start));
  return spare;
}

Status GitWorkspaces::check_spare(const WorkspaceRequest& request, const Spare& spare,
                                  const fs::path& mirror) const {
  if (!is_spare_dir(spare.dir)) {
    return make_error("usage", spare.dir.string() + " is not a spare of " + root_.string(),
                      request.task_id);
  }
  if (spare.mirror_dir != mirror || spare.base_branch != request.base_branch) {
    return make_error("usage",
                      "the spare " + spare.dir.filename().string() + " was made for " +
                          detail::redact_credentials(spare.repo_url) + " at '" + spare.base_branch +
                          "', not for " + detail::redact_credentials(request.repo_url) + " at '" +
                          request.base_branch + "'; provision without it",
                      request.task_id);
  }
  if (!fs::exists(spare.dir / "repo" / ".git") || !fs::exists(spare.dir / kSpareGitConfig)) {
    return make_error("not_found", "the spare " + spare.dir.string() + " is missing or incomplete",
                      request.task_id);
  }
  return ok_status();
}

// Checks the request and the spare, then renames the spare to the task's directory. The
// Workspace returned has no base yet.
Result<Workspace> GitWorkspaces::place_spare(const WorkspaceRequest& request, const Spare& spare) {
  POLY_TRY(check_request(request));
  auto origin = resolve_origin(request.repo_url);
  if (!origin.ok()) return make_error(origin.error().code, origin.error().message, request.task_id);
  const fs::path mirror = mirror_of(*origin);
  POLY_TRY(check_spare(request, spare, mirror));
  const fs::path task_dir = tasks_dir() / request.task_id;
  std::error_code ec;
  fs::create_directories(tasks_dir(), ec);
  ec = rename_no_replace(spare.dir, task_dir);
  if (ec == std::errc::file_exists || ec == std::errc::directory_not_empty) {
    return make_error("exists",
                      "task '" + request.task_id + "' already has a workspace at " +
                          task_dir.string() + "; remove it first",
                      request.task_id);
  }
  if (ec) {
    return make_error("io", "cannot move the spare " + spare.dir.string() + " to " +
                                task_dir.string() + ": " + ec.message(),
                      request.task_id);
  }
  return Workspace{request.task_id, task_dir, task_dir / "repo", mirror, origin->url, "", "",
                   request.branch};
}

// Brings a placed spare to the base's current head on the task branch: what build_clone makes.
Status GitWorkspaces::refresh_spare(Workspace& ws, const std::string& requested_base) {
  auto origin = resolve_origin(ws.repo_url);
  if (!origin.ok()) return make_error(origin.error().code, origin.error().message, ws.task_id);
  auto branches = mirrors_.sync(*origin, ws.mirror_dir, requested_base);
  POLY_TRY(branches);
  auto base = pick_base(*branches, requested_base, origin->url);
  if (!base.ok()) return make_error(base.error().code, base.error().message, ws.task_id);
  ws.base_branch = base->name;
  ws.base_commit = detail::oid_hex(base->commit);
  // The config and alternates as made, whatever a container did to them before the task came.
  if (fs::is_symlink(ws.repo_dir / ".git") || !fs::is_directory(ws.repo_dir / ".git")) {
    return make_error("io", "the spare's .git is no longer a directory", ws.repo_dir.string());
  }
  std::error_code ec;
  fs::rename(ws.task_dir / kSpareGitConfig, ws.repo_dir / ".git" / "config", ec);
  if (ec) return make_error("io", "cannot restore the clone's config: " + ec.message(), ws.task_dir.string());
  POLY_TRY(detail::write_alternates(ws.repo_dir / ".git", {ws.mirror_dir / "objects"}));
  auto repo = GitRepo::open(ws.repo_dir);
  POLY_TRY(repo);
  POLY_TRY(repo->set_remote_refs("origin", branches->tracked_with(base->name)));
  auto touched = repo->reset_to_new_branch(ws.branch, base->commit);
  POLY_TRY(touched);
  POLY_TRY(empty_directory(ws.task_dir / "meta"));
  POLY_TRY(write_metadata(ws));
  POLY_TRY(give_touched_to_owner(*repo, ws.repo_dir, *touched));
  spdlog::debug("spare for task={} wrote or deleted {} paths", ws.task_id, touched->size());
  return ok_status();
}

// Gives the container user what this process wrote in a clone whose other files are its
// already: .git, and the work tree paths (and the directories leading to them) in `paths`.
// Only those: a chown changes a file's ctime, which makes git read the file again.
Status GitWorkspaces::give_paths_to_owner(const fs::path& repo_dir,
                                          const std::vector<std::string>& paths) const {
  if (owner_uid_ < 0) return ok_status();
  POLY_TRY(give_to_owner(repo_dir / ".git"));
  std::set<fs::path> done;
  for (const auto& rel : paths) {
    for (fs::path p = fs::path(rel); !p.empty(); p = p.parent_path()) {
      if (!done.insert(p).second) break;
      struct stat st {};
      if (::lstat((repo_dir / p).c_str(), &st) != 0) continue;  // deleted
      POLY_TRY(lchown_path(repo_dir / p, owner_uid_, owner_gid_));
    }
  }
  return ok_status();
}

Status GitWorkspaces::give_touched_to_owner(GitRepo& repo, const fs::path& repo_dir,
                                            const std::vector<std::string>& paths) const {
  POLY_TRY(give_paths_to_owner(repo_dir, paths));
  if (owner_uid_ < 0 || paths.empty()) return ok_status();
  POLY_TRY(repo.restat_index_after_chown(&paths));
  return lchown_path(repo_dir / ".git" / "index", owner_uid_, owner_gid_);
}

Result<Workspace> GitWorkspaces::provision_from(const WorkspaceRequest& request, const Spare& spare) {
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
  spdlog::info("workspace provisioned from spare task={} base={}@{} branch={} ms={}", ws.task_id,
               ws.base_branch, ws.base_commit.substr(0, 12), ws.branch, millis_since(start));
  return ws;
}

Status GitWorkspaces::discard_spare(const Spare& spare) {
  if (!is_spare_dir(spare.dir)) {
    return make_error("usage", spare.dir.string() + " is not a spare of " + root_.string() +
                                   "; not deleting it");
  }
  std::error_code ec;
  fs::remove_all(spare.dir, ec);
  if (ec) return make_error("io", "cannot delete the spare: " + ec.message(), spare.dir.string());
  return ok_status();
}

Result<int> GitWorkspaces::clear_spares() {
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

}  // namespace

std::unique_ptr<Workspaces> make_git_workspaces(const fs::path& root, CommitIdentity identity,
                                                int owner_uid, int owner_gid) {
  return std::make_unique<GitWorkspaces>(root, std::move(identity), owner_uid, owner_gid);
}

}  // namespace polyphony
