// The task flags `spawn` and `route --explain` share, and their validation.
#pragma once

#include <string>
#include <vector>

#include "cli/args.h"
#include "common/config.h"
#include "coordinator/task.h"

namespace polyphony::cli {

// --repo, --body, --body-file, --type, --risk, --label (repeatable), --agent, --base.
std::vector<FlagSpec> task_flag_specs();

// The task the flags and the single TITLE describe, validated: title and body non-empty where
// required, within size limits and UTF-8; --repo a repos: name, a URL, or a git repository
// (made absolute); --base a valid branch name; --agent defined in agents.yaml. Errors "usage"
// name the flag; `command` names the subcommand in them.
Result<TaskRequest> read_task_flags(const Args& args, const Settings& settings, const std::string& command);

// True when `repo` is a remote URL (scheme:// or user@host:path) rather than a path.
bool looks_like_url(const std::string& repo);

}  // namespace polyphony::cli
