// Landing into a working clone: a local repository with a work tree, the user's own, given as
// a task's repo (`polyphony spawn --repo .`). git's receive-pack refuses to move the branch a
// work tree has checked out; this does what `receive.denyCurrentBranch=updateInstead` would,
// as the clone's owner, so nothing in the clone ends up owned by root.
#pragma once

#include <filesystem>
#include <functional>
#include <string>

#include "common/result.h"

namespace polyphony {

struct CloneLanding {
  std::string merged_commit;  // the base branch's new head; empty when only the branch landed
  std::string note;           // when only the branch landed: why, and what the user can do
};

// True when `path` is a local repository with a work tree (not a bare one).
bool is_working_clone(const std::filesystem::path& path);

// Takes the task branch from a bundle (prerequisite: a commit the clone has, the task's base)
// into `clone` as refs/heads/<branch>, then moves the base branch to `head`:
//  - base not checked out there: the ref alone moves (compare-and-swap on its old value);
//  - base checked out and the work tree and index clean: `git merge --ff-only`, so the files
//    follow;
//  - base checked out with local changes (or a merge that git refuses, e.g. an untracked file
//    in the way): the base stays, and CloneLanding::note says the branch landed alone.
// Every git command runs as the owner of `clone`, with the owner's HOME. Errors: "base_moved"
// (the base is no longer an ancestor of `head`: rebase and verify again), "push_refused" (the
// clone cannot take the branch, e.g. it is checked out there; the message says git's reason),
// "git" (git could not run).
// `write_bundle(path)` writes the bundle; it is called once, for a file in a directory of the
// owner's that is removed afterwards.
Result<CloneLanding> land_in_working_clone(const std::filesystem::path& clone,
                                           const std::function<Status(const std::filesystem::path&)>& write_bundle,
                                           const std::string& head, const std::string& branch,
                                           const std::string& base_branch);

}  // namespace polyphony
