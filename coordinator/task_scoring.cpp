// Reads a task's repository for scoring: local paths as they are, URLs through a mirror.
#include "coordinator/task_scoring.h"

#include <functional>

#include "common/process.h"
#include "coordinator/submission.h"

namespace polyphony {

namespace fs = std::filesystem;

namespace {

// A mirror directory name that is stable for the URL and safe as a path component.
std::string mirror_name(const std::string& url) {
  std::string tail = url.substr(url.find_last_of("/:") + 1);
  std::string safe;
  for (char c : tail) safe += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') ? c : '_';
  char hash[17];
  std::snprintf(hash, sizeof hash, "%016zx", std::hash<std::string>{}(url));
  return safe.substr(0, 40) + "-" + hash + ".git";
}

Result<fs::path> ensure_mirror(const std::string& url, const Config& config, const std::atomic<bool>* cancel) {
  const fs::path dir = config.home / "mirrors";
  const fs::path mirror = dir / mirror_name(url);
  ProcessOptions o;
  o.timeout = std::chrono::seconds(config.mirror_timeout_s);
  o.cancel = cancel;
  o.env["GIT_TERMINAL_PROMPT"] = "0";
  std::error_code ec;
  if (fs::exists(mirror / "HEAD", ec)) {
    o.cwd = mirror;
    auto fetched = run_checked({"git", "fetch", "--prune", "--quiet", "origin"}, o, "git");
    if (!fetched.ok()) return make_error("git", "cannot fetch the mirror of " + url + ": " + fetched.error().message, url);
    return mirror;
  }
  fs::create_directories(dir, ec);
  const fs::path partial = dir / (mirror.filename().string() + ".partial");
  fs::remove_all(partial, ec);
  o.cwd = dir;
  auto cloned = run_checked({"git", "clone", "--mirror", "--quiet", "--", url, partial.string()}, o, "git");
  if (!cloned.ok()) return make_error("git", "cannot mirror " + url + ": " + cloned.error().message, url);
  fs::rename(partial, mirror, ec);
  if (ec) return make_error("io", "cannot move the new mirror in place: " + ec.message(), mirror.string());
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

Result<RepoText> read_task_repo(const TaskRequest& task, const Config& config, const std::atomic<bool>* cancel) {
  auto where = scoring_source(task, config, cancel);
  if (!where.ok()) return where.error();
  return read_repo_at(where->first, where->second);
}

}  // namespace

Result<Score> score_task(const TaskRequest& task, const Settings& settings, RepoTextCache* cache,
                         const std::atomic<bool>* cancel) {
  const auto key = std::make_pair(task.repo, task.base_branch);
  auto it = cache ? cache->find(key) : RepoTextCache::iterator();
  if (!cache || it == cache->end()) {
    auto text = read_task_repo(task, settings.config, cancel);
    if (!cache) return text.ok() ? Result<Score>(score(collect_signals(task, *text), settings.routing.scoring)) : text.error();
    it = cache->emplace(key, std::move(text)).first;
  }
  if (!it->second.ok()) return it->second.error();
  return score(collect_signals(task, *it->second), settings.routing.scoring);
}

}  // namespace polyphony
