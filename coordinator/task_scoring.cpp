// Reads a task's repository for scoring: local paths as they are, URLs through a mirror.
#include "coordinator/task_scoring.h"

#include "coordinator/score_index.h"
#include "coordinator/submission.h"
#include "git/mirror.h"

namespace polyphony {

namespace fs = std::filesystem;

namespace {

// The mirror of remote `url` in the host's one mirror store (<workspace_root>/mirrors, which the
// workspaces borrow from too), brought up to date within the mirror timeout and `cancel`.
Result<fs::path> ensure_mirror(const std::string& url, const Config& config, const std::atomic<bool>* cancel) {
  auto origin = detail::resolve_origin(url);
  if (!origin.ok()) return origin.error();
  const detail::MirrorStore store(config.workspace_root / "mirrors",
                                  detail::GitLimits{std::chrono::seconds(config.mirror_timeout_s), cancel});
  const fs::path mirror = store.mirror_of(*origin);
  auto synced = store.sync(*origin, mirror);
  if (!synced.ok()) return synced.error();
  return mirror;
}

}  // namespace

std::string scoring_origin(const TaskRequest& task, const Config& config) {
  const RepoConfig* rc = find_repo(config, task.repo);
  return rc ? rc->url : task.repo;
}

Result<std::pair<fs::path, std::string>> scoring_source(const TaskRequest& task, const Config& config,
                                                        const std::atomic<bool>* cancel) {
  const RepoConfig* rc = find_repo(config, task.repo);
  const std::string url = scoring_origin(task, config);
  std::string rev = !task.base_branch.empty() ? task.base_branch : (rc ? rc->base_branch : "");
  if (rev.empty()) rev = "HEAD";
  if (!looks_like_url(url)) return std::pair<fs::path, std::string>{fs::path(url), rev};
  auto mirror = ensure_mirror(url, config, cancel);
  if (!mirror.ok()) return mirror.error();
  return std::pair<fs::path, std::string>{*mirror, rev};
}

namespace {

// The index of the task's base: built once per base commit, kept under <home>/score-index.
// The index of the task's base: the full one when it was built before (kept in memory and under
// <home>/score-index); else one focused on this task's names (build_full_index makes the full one).
Result<std::shared_ptr<const ScoreIndex>> index_task_repo(const TaskRequest& task, const Config& config,
                                                          const std::atomic<bool>* cancel) {
  auto where = scoring_source(task, config, cancel);
  if (!where.ok()) return where.error();
  IndexOptions options;
  options.cancel = cancel;
  ScoreIndexCache cache(score_index_dir(config), ScanLimits{}, options);
  return cache.for_task(where->first, where->second, task);
}

}  // namespace

std::filesystem::path score_index_dir(const Config& config) {
  return config.home / "score-index";
}

Result<void> build_full_index(const TaskRequest& task, const Config& config, const std::atomic<bool>* cancel) {
  auto where = scoring_source(task, config, cancel);
  if (!where.ok()) return where.error();
  IndexOptions options;
  options.cancel = cancel;
  ScoreIndexCache cache(score_index_dir(config), ScanLimits{}, options);
  auto index = cache.at(where->first, where->second);
  if (!index.ok()) return index.error();
  return {};
}

Result<Score> score_task(const TaskRequest& task, const Settings& settings, RepoTextCache* cache,
                         const std::atomic<bool>* cancel, bool* focused) {
  const auto key = std::make_pair(task.repo, task.base_branch);
  auto it = cache ? cache->find(key) : RepoTextCache::iterator();
  if (!cache || it == cache->end()) {
    auto index = index_task_repo(task, settings.config, cancel);
    if (focused && index.ok() && (*index)->focused) *focused = true;
    if (!cache) {
      if (!index.ok()) return index.error();
      return score(collect_signals(task, **index), settings.routing.scoring);
    }
    if (index.ok() && (*index)->focused) {
      // Focused on this task's names: the next task of the pass looks again (by then the full
      // index may be in memory).
      return score(collect_signals(task, **index), settings.routing.scoring);
    }
    it = cache->emplace(key, std::move(index)).first;
  }
  if (!it->second.ok()) return it->second.error();
  return score(collect_signals(task, **it->second), settings.routing.scoring);
}

}  // namespace polyphony
