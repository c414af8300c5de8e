// The task flags `spawn` and `route --explain` share, and their validation.
#include "cli/task_flags.h"

#include <fstream>
#include <sstream>

#include <map>

#include "common/process.h"
#include "coordinator/submission.h"

namespace polyphony::cli {

namespace fs = std::filesystem;

namespace {

Result<std::string> read_body(const Args& args) {
  if (args.has("body") && args.has("body-file")) {
    return make_error("usage", "give either --body or --body-file, not both", "--body-file");
  }
  if (!args.has("body-file")) return args.get("body");
  const std::string path = args.get("body-file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error("usage", "cannot read " + path, "--body-file");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The URL of `remote` in the working clone `repo` (--land-to): where the task goes instead of
// the clone. A relative local path is taken from the clone's top directory, as git takes it there.
Result<std::string> remote_url(const std::string& repo, const std::string& remote) {
  if (remote.empty() || remote.front() == '-') {
    return make_error("usage", "'" + remote + "' is not a remote name (e.g. origin)", "--land-to");
  }
  if (repo.empty())
    return make_error("usage", "--land-to needs --repo, the working clone whose remote it names", "--land-to");
  std::error_code ec;
  const fs::path clone = fs::absolute(repo, ec);
  if (ec || !fs::is_directory(clone)) {
    return make_error("usage", "--land-to names a remote of a local clone, and --repo " + repo + " is not a directory",
                      "--land-to");
  }
  ProcessOptions options;
  options.env = {{"GIT_TERMINAL_PROMPT", "0"}, {"LC_ALL", "C"}};
  options.timeout = std::chrono::seconds(30);
  auto url = run_process({"git", "-c", "safe.directory=*", "-C", clone.string(), "remote", "get-url", remote}, options);
  if (!url.ok()) return make_error("usage", "cannot ask git for the remote: " + url.error().message, "--land-to");
  std::string out = url->out;
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  if (url->exit_code != 0 || out.empty()) {
    return make_error("usage", clone.string() + " has no remote '" + remote + "' (git remote -v lists them)",
                      "--land-to");
  }
  const bool local_relative =
      out.find("://") == std::string::npos && out.find(':') == std::string::npos && out.front() != '/';
  return local_relative ? (clone / out).lexically_normal().string() : out;
}

}  // namespace

void add_task_flags(Command& command, bool land_to) {
  command.option("--repo", "R", "the repository: a repos: name in config.yaml, a URL, or a local path")
      .option("--body", "TEXT", "what to do, in more words than the title")
      .option("--body-file", "F", "the body, read from file F")
      .option("--type", "T", "the task's type, e.g. bugfix or feature (routing rules match it)")
      .option("--risk", "R", "the task's risk, e.g. high (routing rules match it)")
      .repeatable("--label", "L", "a label (repeatable); needs:L requires a worker with label L")
      .option("--agent", "A", "run agent A (agents.yaml) instead of the one routing picks")
      .option("--base", "BRANCH", "the branch to start from and land on (default: the repo's)");
  if (land_to) {
    command.option("--land-to", "REMOTE", "with --repo a working clone: land on its remote REMOTE instead of in it");
  }
}

std::vector<std::string> task_flag_names() {
  return {"repo", "body", "body-file", "type", "risk", "label", "agent", "base", "land-to"};
}

std::string flag_for_field(const std::string& field) {
  static const std::map<std::string, std::string> flags{{"title", "TITLE"},        {"body", "--body"},
                                                        {"repo", "--repo"},        {"agent", "--agent"},
                                                        {"base_branch", "--base"}, {"labels", "--label"}};
  auto it = flags.find(field);
  return it == flags.end() ? field : it->second;
}

Error as_flag_error(Error e, const Args& args) {
  // The body came from the flag the user gave: an error in it names that flag.
  e.where = e.where == "body" && args.has("body-file") ? "--body-file" : flag_for_field(e.where);
  return e;
}

Result<TaskRequest> task_from_flags(const Args& args, const std::string& command) {
  if (args.positional.size() != 1) {
    return make_error("usage",
                      command + " takes exactly one TITLE (quote it), got " + std::to_string(args.positional.size()),
                      "TITLE");
  }
  TaskRequest r;
  r.title = args.positional[0];
  auto body = read_body(args);
  if (!body.ok()) return body.error();
  r.body = *body;
  r.repo = args.get("repo");
  if (args.has("land-to")) {
    auto upstream = remote_url(r.repo, args.get("land-to"));
    if (!upstream.ok()) return upstream.error();
    r.repo = *upstream;
  }
  r.task_type = args.get("type");
  r.risk = args.get("risk");
  r.labels = args.all("label");
  r.base_branch = args.get("base");
  r.agent = args.get("agent");
  return r;
}

Result<TaskRequest> read_task_flags(const Args& args, const Settings& settings, const std::string& command) {
  auto r = task_from_flags(args, command);
  if (!r.ok()) return r.error();
  // Explaining a route runs nothing: it needs no credentials.
  if (auto s = validate_submission(*r, settings, false); !s.ok()) return as_flag_error(s.error(), args);
  return r;
}

}  // namespace polyphony::cli
