// Scoring a task against its real repository, as the coordinator does when it claims it: the
// repository is read at the task's base (a local path directly, a URL through a mirror the
// coordinator keeps under <home>/mirrors), and the pure scorer turns what it finds into a score.
// It may take as long as a remote does (up to coordinator.mirror_timeout_s): the coordinator
// calls it off its socket loop.
#pragma once

#include <atomic>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "common/config.h"
#include "common/result.h"
#include "coordinator/scoring.h"

namespace polyphony {

// The repository scoring reads for the task: its repos: entry's URL or path, else task.repo as
// given. Tasks of one origin share one mirror.
std::string scoring_origin(const TaskRequest& task, const Config& config);

// Where to read the task's repository from: (git directory or work tree, revision). For a URL,
// the coordinator's mirror of it is created or fetched first (git CLI, argv, with the timeout
// config.mirror_timeout_s; killed early once `cancel` is set). Errors: "git" (cannot mirror
// or fetch, message names the repo).
Result<std::pair<std::filesystem::path, std::string>> scoring_source(const TaskRequest& task, const Config& config,
                                                                     const std::atomic<bool>* cancel = nullptr);

struct ScoreIndex;

// Repository indexes read during one claim pass, by (task.repo, task.base_branch), errors
// included: the tasks of one repo claimed together read (and fetch) it once.
using RepoTextCache = std::map<std::pair<std::string, std::string>, Result<std::shared_ptr<const ScoreIndex>>>;

// Where the scoring indexes of the coordinator's repositories are kept: <home>/score-index, one
// file per repository and base commit (see score_index.h).
std::filesystem::path score_index_dir(const Config& config);

// The task's complexity score with its evidence, from the index of the task's base commit when
// it is in memory or under <home>/score-index, else from an index focused on the task's names
// (the same signals; `*focused` set to true): then build_full_index, off the caller's path, makes
// the full one for the tasks after it. With a cache, a repository already indexed for another task
// of the same pass is not looked up again. `cancel` as for scoring_source.
Result<Score> score_task(const TaskRequest& task, const Settings& settings, RepoTextCache* cache = nullptr,
                         const std::atomic<bool>* cancel = nullptr, bool* focused = nullptr);

// Builds and stores the full index of the task's base (a no-op when it is cached). Bounded by the
// parser's timeout and `cancel`. Errors as scoring_source's and "git"/"io".
Result<void> build_full_index(const TaskRequest& task, const Config& config, const std::atomic<bool>* cancel = nullptr);

}  // namespace polyphony
