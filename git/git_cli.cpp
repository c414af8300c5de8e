// The git command line through Boost.Process: argv only, a timeout, no prompts, redacted errors.
#include "git/git_cli.h"

#include <pwd.h>

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <regex>

namespace polyphony::detail {

namespace fs = std::filesystem;

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

// git's system-wide config as this process's git sees it: /etc/gitconfig, and safe.directory=*.
// `-c safe.directory=*` reaches only the git this process starts, not the upload-pack or
// receive-pack it starts in turn for a local path, which then refuses a repository another user
// owns (a user's own clone, as --repo); the system level reaches them too. The file lives in
// /tmp/polyphony-git-<uid>, a directory of this user's alone (mode 0700, checked: one somebody
// else made is not used), rewritten by each process; empty when it could not be made (the -c
// still covers every repository but a local origin's).
const std::string& system_config_with_safe_directories() {
  static const std::string path = [] {
    std::error_code ec;
    fs::path base = fs::temp_directory_path(ec);
    const fs::path dir = (ec ? fs::path("/tmp") : base) / ("polyphony-git-" + std::to_string(::geteuid()));
    (void)::mkdir(dir.c_str(), 0700);
    struct stat st {};
    if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::geteuid() || (st.st_mode & 077) != 0) {
      return std::string();
    }
    const fs::path file = dir / "gitconfig";
    const fs::path partial = dir / ("gitconfig." + std::to_string(::getpid()));
    {
      std::ofstream out(partial, std::ios::trunc);
      out << "[safe]\n\tdirectory = *\n[include]\n\tpath = /etc/gitconfig\n";
      if (!out.flush()) return std::string();
    }
    fs::rename(partial, file, ec);
    return ec ? std::string() : file.string();
  }();
  return path;
}

// Runs git; an error only when it could not be run at all. A non-zero exit is in the result.
Result<ProcessResult> run_git_unchecked(const std::vector<std::string>& args, const std::filesystem::path& cwd,
                                        std::chrono::milliseconds timeout,
                                        const std::optional<GitUser>& user = std::nullopt,
                                        const std::atomic<bool>* cancel = nullptr) {
  std::vector<std::string> argv{"git", "-c", "safe.directory=*"};
  argv.insert(argv.end(), args.begin(), args.end());
  ProcessOptions opts;
  opts.cwd = cwd;
  opts.timeout = timeout;
  opts.cancel = cancel;
  opts.env = {{"GIT_TERMINAL_PROMPT", "0"}, {"LC_ALL", "C"}};
  if (user) {
    opts.run_as = ProcessOptions::User{user->uid, user->gid};
    opts.env["HOME"] = user->home;
    opts.unset_env = {"XDG_CONFIG_HOME", "GIT_CONFIG_SYSTEM"};
  } else if (const auto& system = system_config_with_safe_directories(); !system.empty()) {
    opts.env["GIT_CONFIG_SYSTEM"] = system;
  }
  opts.unset_env.insert(opts.unset_env.end(), {"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
                                               "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_NAMESPACE"});
  auto r = run_process(argv, opts);
  if (!r.ok()) {
    return make_error("git", describe(args) + ": " + redact_credentials(r.error().message), cwd.string());
  }
  return r;
}

Error exit_error(const std::vector<std::string>& args, const ProcessResult& r, const std::filesystem::path& cwd) {
  std::string err = tail(r.err.empty() ? r.out : r.err, 2000);
  return make_error("git",
                    "'" + describe(args) + "' exited with status " + std::to_string(r.exit_code) +
                        (err.empty() ? "" : ": " + redact_credentials(err)),
                    cwd.string());
}

}  // namespace

Result<ProcessResult> run_git(const std::vector<std::string>& args, const std::filesystem::path& cwd,
                              std::chrono::milliseconds timeout) {
  auto r = run_git_unchecked(args, cwd, timeout);
  if (r.ok() && r->exit_code != 0) return exit_error(args, *r, cwd);
  return r;
}

Result<ProcessResult> run_git(const std::vector<std::string>& args, const std::filesystem::path& cwd,
                              const GitLimits& limits) {
  auto r = run_git_unchecked(args, cwd, limits.timeout, std::nullopt, limits.cancel);
  if (r.ok() && r->exit_code != 0) return exit_error(args, *r, cwd);
  return r;
}

Result<ProcessResult> run_git_as(const GitUser& user, const std::vector<std::string>& args,
                                 const std::filesystem::path& cwd, std::chrono::milliseconds timeout) {
  return run_git_unchecked(args, cwd, timeout, user);
}

GitUser owner_of(const struct stat& st) {
  GitUser user{st.st_uid, st.st_gid, "/nonexistent"};
  std::vector<char> buf(16384);
  struct passwd pw {};
  struct passwd* found = nullptr;
  if (::getpwuid_r(st.st_uid, &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr && pw.pw_dir) {
    user.home = pw.pw_dir;
  }
  return user;
}

std::string refusal_summary(std::string_view porcelain_out, std::string_view err) {
  std::string summary;
  auto add_lines = [&](std::string_view text, auto keep) {
    size_t pos = 0;
    while (pos < text.size() && summary.size() < 1000) {
      size_t end = text.find('\n', pos);
      std::string_view line = text.substr(pos, end == std::string_view::npos ? end : end - pos);
      if (keep(line)) summary += (summary.empty() ? "" : "; ") + std::string(line.substr(0, 300));
      if (end == std::string_view::npos) break;
      pos = end + 1;
    }
  };
  // The refused refs ("!\t<from>:<to>\t[remote rejected] (hook declined)"), then what the
  // remote said (its hooks' output, "remote: ...").
  add_lines(porcelain_out, [](std::string_view l) { return l.starts_with("!\t"); });
  add_lines(err, [](std::string_view l) { return l.starts_with("remote: ") && l.size() > 8; });
  for (auto& c : summary) {
    if (c == '\t') c = ' ';
  }
  return redact_credentials(summary);
}

bool push_was_rejected(std::string_view porcelain_out, std::string_view err) {
  const bool atomic_failed =
      porcelain_out.find("\t[remote rejected] (atomic transaction failed)") != std::string_view::npos;
  if (atomic_failed && err.find("remote: error: cannot lock ref '") != std::string_view::npos) return true;
  // Porcelain lines: "<flag>\t<from>:<to>\t<summary>"; "!" marks a refused ref, and
  // "[rejected]" (unlike "[remote rejected]") means non-fast-forward, fetch first or stale.
  size_t pos = 0;
  while (pos < porcelain_out.size()) {
    size_t end = porcelain_out.find('\n', pos);
    std::string_view line = porcelain_out.substr(pos, end == std::string_view::npos ? end : end - pos);
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
  if (!force && push_was_rejected(r->out, r->err)) {
    return make_error("push_rejected",
                      redact_credentials(remote) + " refused to move " + dst_ref + " to " + src +
                          " because that is not a fast forward (it moved on the origin "
                          "meanwhile); land again",
                      repo.string());
  }
  if (auto refused = refusal_summary(r->out, r->err); !refused.empty()) {
    return make_error("push_refused", redact_credentials(remote) + " refused the push: " + refused, repo.string());
  }
  return exit_error(args, *r, repo);
}

Status push_landing(const std::filesystem::path& repo, const std::string& remote, const std::string& src,
                    const std::string& branch_ref, const std::string& base_ref) {
  std::vector<std::string> args{
      "push", "--porcelain", "--atomic", remote, "+" + src + ":" + branch_ref, src + ":" + base_ref};
  auto r = run_git_unchecked(args, repo, std::chrono::minutes(10));
  POLY_TRY(r);
  if (r->exit_code == 0) return ok_status();
  if (push_was_rejected(r->out, r->err)) {
    return make_error("push_rejected",
                      redact_credentials(remote) + " refused to move " + base_ref + " to " + src +
                          " because that is not a fast forward (it moved on the origin meanwhile); land again",
                      repo.string());
  }
  if ((r->err + r->out).find("does not support --atomic") != std::string::npos) {
    return make_error("unsupported", redact_credentials(remote) + " does not take atomic pushes", repo.string());
  }
  if (auto refused = refusal_summary(r->out, r->err); !refused.empty()) {
    return make_error("push_refused", redact_credentials(remote) + " refused the push: " + refused, repo.string());
  }
  return exit_error(args, *r, repo);
}

}  // namespace polyphony::detail
