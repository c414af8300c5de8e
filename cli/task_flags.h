// The task flags `spawn` and `route --explain` share, and their validation.
#pragma once

#include <string>
#include <vector>

#include "cli/command_line.h"
#include "common/config.h"
#include "coordinator/submission.h"
#include "coordinator/task.h"

namespace polyphony::cli {

// Defines --repo, --body, --body-file, --type, --risk, --label (repeatable), --agent, --base and,
// with `land_to` (a local clone's remote: not for a remote coordinator), --land-to on `command`.
void add_task_flags(Command& command, bool land_to = true);

// Their names without dashes ("repo", "body", ...).
std::vector<std::string> task_flag_names();

// The task the flags and the single TITLE describe, not yet validated. Errors name the flag.
Result<TaskRequest> task_from_flags(const Args& args, const std::string& command);

// task_from_flags, validated as every submission is (validate_submission), with errors naming
// the flag at fault.
Result<TaskRequest> read_task_flags(const Args& args, const Settings& settings, const std::string& command);

// The command-line flag for a submission field ("repo" -> "--repo", "title" -> "TITLE").
std::string flag_for_field(const std::string& field);
Error as_flag_error(Error e, const Args& args);

}  // namespace polyphony::cli
