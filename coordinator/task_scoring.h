// Scoring a task against its real repository, as the coordinator does when it claims it: the
// repository is read at the task's base (a local path directly, a URL through a mirror the
// coordinator keeps under <home>/mirrors), and the pure scorer turns what it finds into a score.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <utility>

#include "common/config.h"
#include "common/result.h"
#include "coordinator/scoring.h"

namespace polyphony {

// Where to read the task's repository from: (git directory or work tree, revision). For a URL,
// the coordinator's mirror of it is created or fetched first (git CLI, argv, with a timeout).
// Errors: "git" (cannot mirror or fetch, message names the repo).
Result<std::pair<std::filesystem::path, std::string>> scoring_source(const TaskRequest& task,
                                                                      const Config& config);

// Repository texts read during one claim pass, by (task.repo, task.base_branch), errors
// included: the tasks of one repo claimed together read (and fetch) it once.
using RepoTextCache = std::map<std::pair<std::string, std::string>, Result<RepoText>>;

// The task's complexity score with its evidence. With a cache, a repository already read for
// another task of the same pass is not read again.
Result<Score> score_task(const TaskRequest& task, const Settings& settings, RepoTextCache* cache = nullptr);

}  // namespace polyphony
