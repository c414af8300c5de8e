// The git command line through Boost.Process: argv only, a timeout, no prompts, redacted errors.
#include "worker-agent/git_cli.h"

#include <regex>

namespace polyphony::detail {

std::string redact_credentials(std::string_view text) {
  static const std::regex kUserInfo(R"(([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@)");
  return std::regex_replace(std::string(text), kUserInfo, "$1***@");
}

namespace {

std::string tail(std::string s, size_t max) {
  if (s.size() > max) s = s.substr(s.size() - max);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string describe(const std::vector<std::string>& args) {
  std::string cmd = "git";
  for (const auto& a : args) cmd += " " + a;
  return redact_credentials(cmd);
}

// Runs git; an error only when it could not be run at all. A non-zero exit is in the result.
Result<ProcessResult> run_git_unchecked(const std::vector<std::string>& args,
                                        const std::filesystem::path& cwd,
                                        std::chrono::milliseconds timeout) {
  std::vector<std::string> argv{"git", "-c", "safe.directory=*"};
  argv.insert(argv.end(), args.begin(), args.end());
  ProcessOptions opts;
  opts.cwd = cwd;
  opts.timeout = timeout;
  opts.env = {{"GIT_TERMINAL_PROMPT", "0"}, {"LC_ALL", "C"}};
  opts.unset_env = {"GIT_DIR",
                    "GIT_WORK_TREE",
                    "GIT_INDEX_FILE",
                    "GIT_OBJECT_DIRECTORY",
                    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
                    "GIT_NAMESPACE"};
  auto r = run_process(argv, opts);
  if (!r.ok()) {
    return make_error("git", describe(args) + ": " + redact_credentials(r.error().message),
                      cwd.string());
  }
  return r;
}

Error exit_error(const std::vector<std::string>& args, const ProcessResult& r,
                 const std::filesystem::path& cwd) {
  std::string err = tail(r.err.empty() ? r.out : r.err, 2000);
  return make_error("git",
                    "'" + describe(args) + "' exited with status " + std::to_string(r.exit_code) +
                        (err.empty() ? "" : ": " + redact_credentials(err)),
                    cwd.string());
}

}  // namespace

Result<ProcessResult> run_git(const std::vector<std::string>& args,
                              const std::filesystem::path& cwd, std::chrono::milliseconds timeout) {
  auto r = run_git_unchecked(args, cwd, timeout);
  if (r.ok() && r->exit_code != 0) return exit_error(args, *r, cwd);
  return r;
}

bool push_was_rejected(std::string_view porcelain_out) {
  // Porcelain lines: "<flag>\t<from>:<to>\t<summary>"; "!" marks a refused ref, and
  // "[rejected]" (unlike "[remote rejected]") means non-fast-forward, fetch first or stale.
  size_t pos = 0;
  while (pos < porcelain_out.size()) {
    size_t end = porcelain_out.find('\n', pos);
    std::string_view line =
        porcelain_out.substr(pos, end == std::string_view::npos ? end : end - pos);
    if (line.starts_with("!\t") && line.find("\t[rejected]") != std::string_view::npos) return true;
    // Another push updating the same ref at the same moment: the base moved under us too.
    if (line.starts_with("!\t") && line.find("cannot lock ref") != std::string_view::npos) return true;
    if (end == std::string_view::npos) break;
    pos = end + 1;
  }
  return false;
}

Status push(const std::filesystem::path& repo, const std::string& remote, const std::string& src,
            const std::string& dst_ref, bool force) {
  std::string refspec = (force ? "+" : "") + src + ":" + dst_ref;
  std::vector<std::string> args{"push", "--porcelain", remote, refspec};
  auto r = run_git_unchecked(args, repo, std::chrono::minutes(10));
  POLY_TRY(r);
  if (r->exit_code == 0) return ok_status();
  if (!force && push_was_rejected(r->out)) {
    return make_error("push_rejected",
                      redact_credentials(remote) + " refused to move " + dst_ref + " to " + src +
                          " because that is not a fast forward (it moved on the origin "
                          "meanwhile); land again",
                      repo.string());
  }
  return exit_error(args, *r, repo);
}

Status push_landing(const std::filesystem::path& repo, const std::string& remote, const std::string& src,
                    const std::string& branch_ref, const std::string& base_ref) {
  std::vector<std::string> args{"push", "--porcelain", "--atomic", remote, "+" + src + ":" + branch_ref,
                                src + ":" + base_ref};
  auto r = run_git_unchecked(args, repo, std::chrono::minutes(10));
  POLY_TRY(r);
  if (r->exit_code == 0) return ok_status();
  if (push_was_rejected(r->out)) {
    return make_error("push_rejected",
                      redact_credentials(remote) + " refused to move " + base_ref + " to " + src +
                          " because that is not a fast forward (it moved on the origin meanwhile); land again",
                      repo.string());
  }
  if ((r->err + r->out).find("does not support --atomic") != std::string::npos) {
    return make_error("unsupported", redact_credentials(remote) + " does not take atomic pushes", repo.string());
  }
  return exit_error(args, *r, repo);
}

}  // namespace polyphony::detail
