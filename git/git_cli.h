// The git command line, for what libgit2 does not do as well: talking to remotes (credential
// helpers, ssh config, hooks, every transport) and creating mirrors.
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/process.h"
#include "common/result.h"

namespace polyphony::detail {

// Runs `git -c safe.directory=* <args>` in `cwd` with terminal prompts off. A failure is an
// Error "git" carrying the command and the tail of stderr, with URL credentials redacted.
Result<ProcessResult> run_git(const std::vector<std::string>& args, const std::filesystem::path& cwd,
                              std::chrono::milliseconds timeout = std::chrono::minutes(10));

// How long git may take, and a flag that stops it early (set by whoever cancels the work).
struct GitLimits {
  std::chrono::milliseconds timeout = std::chrono::hours(1);
  const std::atomic<bool>* cancel = nullptr;
};

// run_git within `limits`: past the timeout or once *cancel is set, git is killed and this is
// an Error "git" saying so.
Result<ProcessResult> run_git(const std::vector<std::string>& args, const std::filesystem::path& cwd,
                              const GitLimits& limits);

// A user git runs as, and the HOME it gets (whose git config it reads).
struct GitUser {
  unsigned uid = 0;
  unsigned gid = 0;
  std::string home;
};

// The user who owns what `st` describes, with the home the password database gives (else
// /nonexistent, so git reads no one else's config).
GitUser owner_of(const struct stat& st);

// run_git's unchecked form run as `user`: a non-zero exit is in the result, not an error.
Result<ProcessResult> run_git_as(const GitUser& user, const std::vector<std::string>& args,
                                 const std::filesystem::path& cwd,
                                 std::chrono::milliseconds timeout = std::chrono::minutes(10));

// What a refused `git push --porcelain` said, in one line: the refused refs with git's reason
// and what the remote printed ("remote: ..." lines, its hooks' output). Empty when no ref was
// refused (the push failed some other way: the connection, the transport).
std::string refusal_summary(std::string_view porcelain_out, std::string_view err);

// `text` with the user:password part of any scheme://user:password@host URL replaced by ***.
std::string redact_credentials(std::string_view text);

// True when `git push --porcelain` output (and its stderr, `err`) reports a ref refused because
// it was not a fast forward or another push moved it first (the remote moved), as opposed to a
// hook or permission refusal. An atomic push that lost the race for a ref's lock says so only on
// stderr ("remote: error: cannot lock ref ..."), its refs all "(atomic transaction failed)".
bool push_was_rejected(std::string_view porcelain_out, std::string_view err = {});

// Lands `src` in one atomic push: the task branch `branch_ref` replaced (forced) and the base
// `base_ref` fast-forwarded, both or neither. Errors: "push_rejected" (the base is not an
// ancestor of src: it moved), "unsupported" (the remote takes no atomic pushes),
// "push_refused" (as push's), "git".
Status push_landing(const std::filesystem::path& repo, const std::string& remote, const std::string& src,
                    const std::string& branch_ref, const std::string& base_ref);

// Pushes `src` (a commit id or ref of the repository at `repo`) to `dst_ref` at `remote` (a
// URL or path). Errors: "push_rejected" (not a fast forward and `force` is false),
// "push_refused" (the remote refused a ref: a hook, a protected branch, a permission; the
// message says why), "git".
Status push(const std::filesystem::path& repo, const std::string& remote, const std::string& src,
            const std::string& dst_ref, bool force);

}  // namespace polyphony::detail
