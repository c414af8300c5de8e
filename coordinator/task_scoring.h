// Scoring a task against its real repository, as the coordinator does when it claims it: the
// repository is read at the task's base (a local path directly, a URL through a mirror the
// coordinator keeps under <home>/mirrors), and the pure scorer turns what it finds into a score.
#pragma once

#include <filesystem>
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

// The task's complexity score with its evidence.
Result<Score> score_task(const TaskRequest& task, const Settings& settings);

}  // namespace polyphony
