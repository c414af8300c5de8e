// Validating and queueing a submitted task: one path for `spawn` and remote clients.
#include "coordinator/submission.h"

#include "common/ids.h"
#include "coordinator/identity_broker.h"
#include "coordinator/router.h"
#include "coordinator/state_store.h"
#include "coordinator/work_source.h"

namespace polyphony {

namespace fs = std::filesystem;

bool looks_like_url(const std::string& repo) {
  return repo.find("://") != std::string::npos ||
         (repo.find('@') != std::string::npos && repo.find(':') != std::string::npos);
}

namespace {

// What git itself takes for a repository (setup.c is_git_directory): a HEAD file, an objects
// and a refs directory. GIT_OBJECT_DIRECTORY and the like are not consulted: a submitted path
// must hold its repository itself.
bool is_git_dir(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / "HEAD", ec) && fs::is_directory(dir / "objects", ec) &&
         fs::is_directory(dir / "refs", ec);
}

// `git -C p rev-parse --git-dir` succeeding, without starting git: p or a directory above it is
// a bare repository, or has a .git (a directory, or the file a linked worktree or submodule has).
bool inside_git_repository(const fs::path& p) {
  std::error_code ec;
  fs::path dir = fs::canonical(p, ec);
  if (ec || !fs::is_directory(dir, ec)) return false;
  for (; !dir.empty(); dir = dir.parent_path()) {
    const fs::path dot_git = dir / ".git";
    std::error_code missing;  // a path that is not there is no error here
    if (fs::is_directory(dot_git, missing) ? is_git_dir(dot_git) : fs::is_regular_file(dot_git, missing)) return true;
    if (is_git_dir(dir)) return true;
    if (dir == dir.root_path()) break;
  }
  return false;
}

// A repos: name, a URL, or a local path that must be a git repository (made canonical).
Result<std::string> resolve_repo(const std::string& repo, const Config& config) {
  if (repo.empty()) {
    return make_error(
        "usage", "a repo is required: a path to a git repository, a URL, or a repos: name from config.yaml", "repo");
  }
  if (find_repo(config, repo) != nullptr || looks_like_url(repo)) return repo;
  std::error_code ec;
  fs::path p = fs::absolute(repo, ec);
  if (!fs::exists(p)) {
    return make_error("usage", "repository " + p.string() + " does not exist (and is not a repos: name in config.yaml)",
                      "repo");
  }
  if (!inside_git_repository(p)) return make_error("usage", p.string() + " is not a git repository", "repo");
  return fs::canonical(p, ec).string();
}

Status validate_text(const std::string& title, const std::string& body) {
  if (title.find_first_not_of(" \t\r\n") == std::string::npos)
    return make_error("usage", "the title is empty", "title");
  if (title.size() > kMaxTitleBytes) {
    return make_error("usage",
                      "the title is " + std::to_string(title.size()) + " bytes; at most " +
                          std::to_string(kMaxTitleBytes) + " (put details in the body)",
                      "title");
  }
  if (!is_valid_utf8(title)) return make_error("usage", "the title is not valid UTF-8", "title");
  if (body.size() > kMaxBodyBytes) return make_error("usage", "the body is larger than 1 MiB", "body");
  if (!is_valid_utf8(body)) return make_error("usage", "the body is not valid UTF-8", "body");
  return {};
}

// The agent the task would run (routed as it is now, before any score) must have its
// credentials here: refused at once, naming them, rather than failing when it runs.
Status check_identity(const TaskRequest& r, const Settings& settings) {
  auto decision = route(r, settings.routing, settings.agents);
  if (!decision.ok()) return {};  // the router's own errors are reported where it runs
  const auto agent = settings.agents.find(decision->agent);
  if (agent == settings.agents.end() || agent->second.identity.empty()) return {};
  const auto identity = settings.identities.find(agent->second.identity);
  if (identity == settings.identities.end()) return {};
  auto resolved = resolve_identity(identity->second, (settings.config.home / "identities.yaml").string());
  if (resolved.ok()) return {};
  return make_error("identity",
                    "the task would run agent " + decision->agent + " (" + decision->because +
                        "), whose credentials are not here: " + resolved.error().message,
                    resolved.error().where);
}

}  // namespace

Status validate_submission(TaskRequest& r, const Settings& settings, bool check_credentials) {
  POLY_TRY(validate_text(r.title, r.body));
  auto repo = resolve_repo(r.repo, settings.config);
  if (!repo.ok()) return repo.error();
  r.repo = *repo;
  if (!r.base_branch.empty() && !is_valid_branch_name(r.base_branch)) {
    return make_error("usage", "'" + r.base_branch + "' is not a valid branch name", "base_branch");
  }
  if (!r.agent.empty() && !settings.agents.count(r.agent)) {
    std::string known;
    for (const auto& [name, a] : settings.agents) known += (known.empty() ? "" : ", ") + name;
    return make_error("usage", "unknown agent '" + r.agent + "' (agents.yaml defines: " + known + ")", "agent");
  }
  for (const auto& label : r.labels) {
    if (label.empty() || !is_valid_utf8(label)) return make_error("usage", "labels must be non-empty UTF-8", "labels");
  }
  return check_credentials ? check_identity(r, settings) : Status{};
}

Status check_client_repo(const TaskRequest& r, const Config& config) {
  if (config.repo_allowed_roots.empty() || find_repo(config, r.repo) != nullptr || looks_like_url(r.repo)) return {};
  std::error_code ec;
  const fs::path repo = fs::weakly_canonical(r.repo, ec);
  std::string roots;
  for (const auto& root : config.repo_allowed_roots) {
    const fs::path allowed = fs::weakly_canonical(root, ec);
    const fs::path rel = repo.lexically_relative(allowed);
    if (!rel.empty() && *rel.begin() != "..") return {};
    roots += (roots.empty() ? "" : ", ") + root.string();
  }
  return make_error("usage",
                    "repository " + repo.string() + " is outside the directories clients may name (" + roots +
                        "; repos.allowed_roots in the coordinator's config.yaml): name a repos: entry or a URL",
                    "repo");
}

Result<std::string> submit_task(TaskRequest r, const Settings& settings) {
  POLY_TRY(validate_submission(r, settings));
  r.id = new_task_id();
  if (r.created_at_ms == 0) r.created_at_ms = now_ms();
  auto queue = SqliteQueue::open(settings.config.queue_db);
  if (!queue.ok()) return queue.error();
  POLY_TRY((*queue)->enqueue(r));
  return r.id;
}

}  // namespace polyphony
