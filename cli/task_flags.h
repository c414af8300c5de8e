// The task flags `spawn` and `route --explain` share, and their validation.
#pragma once

#include <string>
#include <vector>

#include "cli/args.h"
#include "common/config.h"
#include "coordinator/submission.h"
#include "coordinator/task.h"

namespace polyphony::cli {

// --repo, --body, --body-file, --type, --risk, --label (repeatable), --agent, --base.
std::vector<FlagSpec> task_flag_specs();

// The task the flags and the single TITLE describe, not yet validated. Errors name the flag.
Result<TaskRequest> task_from_flags(const Args& args, const std::string& command);

// task_from_flags, validated as every submission is (validate_submission), with errors naming
// the flag at fault.
Result<TaskRequest> read_task_flags(const Args& args, const Settings& settings, const std::string& command);

// The command-line flag for a submission field ("repo" -> "--repo", "title" -> "TITLE").
std::string flag_for_field(const std::string& field);
Error as_flag_error(Error e, const Args& args);

}  // namespace polyphony::cli
