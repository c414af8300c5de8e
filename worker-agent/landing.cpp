// Landing a task's pinned branch on its origin, and teaching the mirror what landed.
#include "worker-agent/landing.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

#include "git/git_cli.h"
#include "git/mirror.h"
#include "worker-agent/working_clone.h"

namespace polyphony::detail {

namespace fs = std::filesystem;

// Runs `fn(scratch_dir, pinned_commit)` with a fresh root-owned bare repository that borrows the
// pinned repository's objects and the mirror's, and removes it afterwards. git (push, fetch)
// runs there, never in the workspace: the agent controls its config, hooks and layout. What is
// pushed is the pinned commit, whatever the workspace's refs say by now.
Result<LandResult> Landing::in_scratch_repo(const Workspace& ws, const LandFn& fn) const {
  auto pinned = clones_.pinned_repo(ws);
  POLY_TRY(pinned);
  auto head = pinned->resolve("refs/heads/" + ws.branch);
  if (!head.ok()) return make_error("usage", "nothing is pinned for branch '" + ws.branch + "' to land", ws.task_id);
  fs::path land_dir = ws.task_dir / "land.git";
  std::error_code ec;
  fs::remove_all(land_dir, ec);
  auto repo =
      GitRepo::init_borrowing(land_dir, {pinned_dir(ws) / "objects", ws.mirror_dir / "objects"}, ws.branch, true);
  auto result = repo.ok() ? fn(land_dir, *head) : Result<LandResult>(repo.error());
  fs::remove_all(land_dir, ec);
  return result;
}

// What a landing pushed goes into the mirror too (its objects, the base and task
// branch moved forward), so the next rebase or provision on this repo finds the mirror current
// and fetches nothing. The mirror's base only moves forward: a fetch since may have gone further.
// The caller holds the mirror's lock.
Status Landing::learn_landing(const Workspace& ws, const fs::path& land_dir, const git_oid& head,
                              bool base_moved) const {
  auto base = parse_oid(ws.base_commit, ws.task_dir);
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
void Landing::pack_refs_after_landings(const Workspace& ws) const {
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

Result<LandResult> Landing::land(const Workspace& ws) const {
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
    spdlog::info("workspace landed task={} branch={} base={} commit={} fast_forward={}", ws.task_id, ws.branch,
                 ws.base_branch, landed->merged_commit.substr(0, 12), landed->fast_forward);
  }
  return landed;
}

Result<LandResult> Landing::push_branch(const Workspace& ws) const {
  auto pushed = in_scratch_repo(ws, [&](const fs::path& land_dir, const git_oid& head) -> Result<LandResult> {
    const std::string head_hex = oid_hex(head);
    POLY_TRY(push(land_dir, ws.repo_url, head_hex, "refs/heads/" + ws.branch, true));
    return LandResult{head_hex, "", false, ""};
  });
  if (pushed.ok()) {
    spdlog::info("workspace pushed task={} branch={} commit={}", ws.task_id, ws.branch,
                 pushed->branch_commit.substr(0, 12));
  }
  return pushed;
}

namespace {

// A ref lock older than this in a local origin was left by a pusher that died holding it.
constexpr auto kStaleRefLock = std::chrono::seconds(10);

// A worker killed -9 between taking a ref's lock and moving the ref leaves `<ref>.lock` in the
// origin, and every later landing there would fail on it (the task BLOCKED after its retries).
// Landings into one repo are serialized (the coordinator grants one at a time, and this worker
// holds the repo's land lock), and git holds a ref lock for milliseconds: an old one is stale.
void clear_stale_ref_lock(const fs::path& git_dir, const std::string& ref, const std::string& task_id) {
  const fs::path lock = git_dir / (ref + ".lock");
  std::error_code ec;
  const auto written = fs::last_write_time(lock, ec);
  if (ec || fs::file_time_type::clock::now() - written < kStaleRefLock) return;
  spdlog::warn("task {}: removing the stale lock {} (left by a pusher that died)", task_id, lock.string());
  fs::remove(lock, ec);
  if (ec) spdlog::warn("task {}: cannot remove {}: {}", task_id, lock.string(), ec.message());
}

}  // namespace

// A local bare origin that runs no hooks and has no receive settings takes the landing
// in-process: the objects it lacks as one pack and both refs moved under git's own ref locks,
// which is all receive-pack would do there, without its eight processes. nullopt: push with
// the CLI (a remote, or an origin whose hooks or settings must run).
std::optional<Status> Landing::land_in_process(const Workspace& ws, const fs::path& land_dir,
                                               const git_oid& head) const {
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
  clear_stale_ref_lock(origin->url, "refs/heads/" + ws.base_branch, ws.task_id);
  clear_stale_ref_lock(origin->url, "refs/heads/" + ws.branch, ws.task_id);
  return target->take_landing(*source, head, "refs/heads/" + ws.base_branch, "refs/heads/" + ws.branch);
}

Result<LandResult> Landing::push_and_land(const Workspace& ws, const fs::path& land_dir, const git_oid& head) const {
  // The CLI for push and fetch: credential helpers, ssh config and every transport work as
  // they do for the user. The task branch belongs to the task: an earlier attempt is replaced.
  // A plain local bare origin takes the landing in-process; elsewhere one atomic push does it
  // all where the remote takes one. Either way the base only fast-forwards, so a base that
  // moved refuses it and the caller rebases again.
  const std::string head_hex = oid_hex(head);
  if (auto origin = resolve_origin(ws.repo_url); origin.ok() && origin->local && is_working_clone(origin->url)) {
    auto landed = land_in_working_clone(
        origin->url, [&](const fs::path& bundle) { return clones_.write_pinned_bundle(ws, bundle); }, head_hex,
        ws.branch, ws.base_branch);
    if (!landed.ok()) return make_error(landed.error().code, landed.error().message, ws.task_id);
    return LandResult{head_hex, landed->merged_commit, !landed->merged_commit.empty(), landed->note};
  }
  auto local = land_in_process(ws, land_dir, head);
  Status pushed =
      local ? *local
            : push_landing(land_dir, ws.repo_url, head_hex, "refs/heads/" + ws.branch, "refs/heads/" + ws.base_branch);
  if (pushed.ok()) return LandResult{head_hex, head_hex, true, ""};
  if (pushed.error().code == "push_rejected") {
    // Never an unverified merge: the caller rebases onto the new base and verifies again.
    return make_error("base_moved",
                      "'" + ws.base_branch + "' moved on the origin since branch '" + ws.branch + "' was verified",
                      ws.task_id);
  }
  if (pushed.error().code != "unsupported") return pushed.error();
  POLY_TRY(push(land_dir, ws.repo_url, head_hex, "refs/heads/" + ws.branch, true));
  std::string tracking = "refs/remotes/origin/" + ws.base_branch;
  POLY_TRY(run_git({"fetch", "--quiet", ws.repo_url, "+refs/heads/" + ws.base_branch + ":" + tracking}, land_dir));
  auto repo = GitRepo::open(land_dir);  // opened after the fetch, so it sees the new objects
  POLY_TRY(repo);
  auto origin_base = repo->resolve(tracking);
  POLY_TRY(origin_base);
  return land_on(ws, *repo, head, *origin_base);
}

Result<LandResult> Landing::land_on(const Workspace& ws, GitRepo& repo, const git_oid& head,
                                    const git_oid& origin_base) const {
  std::string head_hex = oid_hex(head);
  auto fast_forward = repo.is_ancestor(origin_base, head);
  POLY_TRY(fast_forward);
  if (!*fast_forward) {
    // Never an unverified merge: the caller rebases onto the new base and verifies again.
    return make_error("base_moved",
                      "'" + ws.base_branch + "' moved to " + oid_hex(origin_base).substr(0, 12) + " since branch '" +
                          ws.branch + "' was verified",
                      ws.task_id);
  }
  POLY_TRY(push(repo.path(), ws.repo_url, head_hex, "refs/heads/" + ws.base_branch, false));
  return LandResult{head_hex, head_hex, true, ""};
}

}  // namespace polyphony::detail
