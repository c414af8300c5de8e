// `polyphony spawn`: validates a task and appends it to the local queue.
#include <iostream>

#include "cli/cli.h"
#include "cli/client_connection.h"
#include "cli/task_flags.h"
#include "coordinator/coordinator.h"
#include "coordinator/gh_client.h"
#include "coordinator/github_source.h"
#include "coordinator/submission.h"
#include "coordinator/work_source.h"
#include "worker-agent/docker_client.h"

namespace polyphony::cli {

namespace {

void warn_if_image_missing(const Config& config) {
  auto host = resolve_docker_host(config.docker_host);
  if (!host.ok()) return;
  auto present = make_docker_client(*host)->image_exists(config.container.image);
  if (present.ok() && !*present) {
    std::cerr << "polyphony: warning: the worker image " << config.container.image
              << " is missing; build it with: polyphony image build\n";
  }
}

// `spawn --issue owner/name#N`: checks the issue through gh, then asks the coordinator (through
// the queue's command table) to adopt it, so claiming stays in one place. Prints the task id.
int spawn_issue(const Args& args, const Settings& settings) {
  const GithubConfig& g = settings.config.github;
  if (!args.positional.empty())
    return report(make_error("usage", "spawn --issue takes no TITLE: the issue's title is used", "TITLE"));
  for (const auto& flag : task_flag_names()) {
    if (args.has(flag)) {
      return report(make_error("usage", "--" + flag + " cannot be combined with --issue", "--" + flag));
    }
  }
  if (!g.enabled())
    return report(make_error("usage", "--issue needs GitHub mode: set github.repo in config.yaml", "--issue"));
  auto ref = parse_issue_ref(args.get("issue"));
  if (!ref.ok()) return report(ref.error());
  if (ref->repo != g.repo) {
    return report(make_error(
        "usage", "this coordinator works on " + g.repo + " (github.repo in config.yaml), not " + ref->repo, "--issue"));
  }
  GhRequest req;
  req.path = "repos/" + g.repo + "/issues/" + std::to_string(ref->number);
  auto r = make_gh_cli(g)->api(req);
  if (!r.ok()) return report(r.error());
  const std::string name = args.get("issue");
  if (r->status == 401) return report(gh_unauthorized(g.host, "HTTP 401"));
  if (r->status == 404 || r->status == 410)
    return report(make_error("not_found", "GitHub has no issue " + name, "--issue"));
  if (r->status != 200)
    return report(make_error(
        "github", "GitHub answered HTTP " + std::to_string(r->status) + ": " + r->body.substr(0, 300), "--issue"));
  auto issue = parse_github_issue(nlohmann::json::parse(r->body, nullptr, false));
  if (!issue.ok()) return report(issue.error());
  if (issue->pull_request) return report(make_error("usage", name + " is a pull request, not an issue", "--issue"));
  if (issue->state != "open") return report(make_error("usage", "issue " + name + " is " + issue->state, "--issue"));
  auto queue = SqliteQueue::open(settings.config.queue_db);
  if (!queue.ok()) return report(queue.error());
  if (auto s = (*queue)->enqueue_command(g.repo + "#" + std::to_string(ref->number), "github_issue"); !s.ok())
    return report(s.error());
  std::cout << github_task_id(g.repo, ref->number) << std::endl;
  return kExitOk;
}

int spawn(const Args& args) {
  auto settings = load_or_report();
  if (!settings) return kExitUsage;
  if (args.has("issue")) return spawn_issue(args, *settings);
  auto request = task_from_flags(args, "spawn");
  if (!request.ok()) return report(request.error());
  request->source = "spawn";
  // The same validation and queueing as a remote client's submission.
  auto id = submit_task(*request, *settings);
  if (!id.ok()) return report(as_flag_error(id.error(), args));
  // A running coordinator is asked about the new task, which makes it read the queue now
  // rather than at its next poll; without one the task waits in the queue as before.
  // Without one, a missing worker image is worth a warning now; a running coordinator's worker
  // says so itself (at its start, and in the reason of each task it cannot run).
  if (!notify(local_client_endpoint(settings->config.home), protocol::Control{*id, "query"},
              std::chrono::milliseconds(200))) {
    warn_if_image_missing(settings->config);
  }
  std::cout << *id << std::endl;
  return kExitOk;
}

}  // namespace

void add_spawn(Command& polyphony) {
  Command spawn_command = polyphony.add("spawn", "queue a task; prints its id", spawn);
  spawn_command.positionals("TITLE", "what to do, in one line (quote it; after -- when it starts with -)");
  add_task_flags(spawn_command);
  spawn_command.option("--issue", "OWNER/NAME#N", "a GitHub issue as the task (GitHub mode); no TITLE or task flags");
}

}  // namespace polyphony::cli
