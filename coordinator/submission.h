// Validating a task submitted by `polyphony spawn` or a remote client, before it is queued.
#pragma once

#include "common/config.h"
#include "common/result.h"
#include "coordinator/task.h"

namespace polyphony {

inline constexpr size_t kMaxTitleBytes = 500;
inline constexpr size_t kMaxBodyBytes = 1 << 20;

// True when `repo` is a remote URL (scheme:// or user@host:path) rather than a path.
bool looks_like_url(const std::string& repo);

// Checks the request and normalizes it in place (a local repo path becomes absolute and
// canonical). Errors have code "usage" and name the field at fault in `where`: "title",
// "body", "repo", "agent", "base_branch". With `check_credentials`, the agent the task routes to
// must have its identity's credentials on this host (error "identity", at identities.yaml:line).
// Nothing is queued here.
Status validate_submission(TaskRequest& request, const Settings& settings, bool check_credentials = true);

// For a task a client sent over the client endpoint, after validate_submission: a local-path
// repo must lie under one of repos.allowed_roots when that is set. Error "usage" at "repo".
Status check_client_repo(const TaskRequest& request, const Config& config);

// Validates, gives the task a new id and appends it to the queue at settings.config.queue_db.
// Returns the id.
Result<std::string> submit_task(TaskRequest request, const Settings& settings);

}  // namespace polyphony
