// The task flags `spawn` and `route --explain` share, and their validation.
#include "cli/task_flags.h"

#include <fstream>
#include <sstream>

#include "common/ids.h"
#include "common/process.h"

namespace polyphony::cli {

namespace fs = std::filesystem;

namespace {

constexpr size_t kMaxTitleBytes = 500;
constexpr size_t kMaxBodyBytes = 1 << 20;

// A repos: name, a URL, or a local path that must be a git repository (made absolute).
Result<std::string> resolve_repo(const std::string& repo, const Config& config) {
  if (repo.empty()) return make_error("usage", "--repo is required: a path to a git repository, a URL, or a repos: name from config.yaml", "--repo");
  if (find_repo(config, repo) != nullptr || looks_like_url(repo)) return repo;
  std::error_code ec;
  fs::path p = fs::absolute(repo, ec);
  if (!fs::exists(p)) {
    return make_error("usage", "repository " + p.string() + " does not exist (and is not a repos: name in config.yaml)", "--repo");
  }
  ProcessOptions opts;
  opts.timeout = std::chrono::seconds(20);
  auto r = run_process({"git", "-c", "safe.directory=*", "-C", p.string(), "rev-parse", "--git-dir"}, opts);
  if (!r.ok() || r->exit_code != 0) {
    return make_error("usage", p.string() + " is not a git repository", "--repo");
  }
  return fs::canonical(p, ec).string();
}

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

Status validate_text(const std::string& title, const std::string& body) {
  if (title.find_first_not_of(" \t\r\n") == std::string::npos) return make_error("usage", "the title is empty", "TITLE");
  if (title.size() > kMaxTitleBytes) {
    return make_error("usage", "the title is " + std::to_string(title.size()) + " bytes; at most " +
                      std::to_string(kMaxTitleBytes) + " (put details in --body)", "TITLE");
  }
  if (!is_valid_utf8(title)) return make_error("usage", "the title is not valid UTF-8", "TITLE");
  if (body.size() > kMaxBodyBytes) return make_error("usage", "the body is larger than 1 MiB", "--body");
  if (!is_valid_utf8(body)) return make_error("usage", "the body is not valid UTF-8", "--body");
  return {};
}

Status check_agent(const std::string& agent, const Settings& settings) {
  if (agent.empty() || settings.agents.count(agent)) return {};
  std::string known;
  for (const auto& [name, a] : settings.agents) known += (known.empty() ? "" : ", ") + name;
  return make_error("usage", "unknown agent '" + agent + "' (agents.yaml defines: " + known + ")", "--agent");
}

}  // namespace

bool looks_like_url(const std::string& repo) {
  return repo.find("://") != std::string::npos || (repo.find('@') != std::string::npos && repo.find(':') != std::string::npos);
}

std::vector<FlagSpec> task_flag_specs() {
  return {{"repo"}, {"body"}, {"body-file"}, {"type"}, {"risk"}, {"label", true, true}, {"agent"}, {"base"}};
}

Result<TaskRequest> read_task_flags(const Args& args, const Settings& settings, const std::string& command) {
  if (args.positional.size() != 1) {
    return make_error("usage", command + " takes exactly one TITLE (quote it), got " +
                                   std::to_string(args.positional.size()), "TITLE");
  }
  TaskRequest r;
  r.title = args.positional[0];
  auto body = read_body(args);
  if (!body.ok()) return body.error();
  r.body = *body;
  POLY_TRY(validate_text(r.title, r.body));
  auto repo = resolve_repo(args.get("repo"), settings.config);
  if (!repo.ok()) return repo.error();
  r.repo = *repo;
  r.task_type = args.get("type");
  r.risk = args.get("risk");
  r.labels = args.all("label");
  r.base_branch = args.get("base");
  if (!r.base_branch.empty() && !is_valid_branch_name(r.base_branch)) {
    return make_error("usage", "'" + r.base_branch + "' is not a valid branch name", "--base");
  }
  r.agent = args.get("agent");
  POLY_TRY(check_agent(r.agent, settings));
  return r;
}

}  // namespace polyphony::cli
