// `polyphony cleanup` and `polyphony image build`.
#include <unistd.h>

#include <iostream>

#include "cli/cli.h"
#include "cli/client_connection.h"
#include "coordinator/coordinator.h"
#include "coordinator/state_store.h"
#include "worker-agent/container_pool.h"
#include "worker-agent/docker_client.h"
#include "worker-agent/image_builder.h"
#include "worker-agent/workspaces.h"

namespace polyphony::cli {

namespace fs = std::filesystem;

namespace {

// A coordinator serves: each connected worker cleans up its own host, and says what it removed.
int cleanup_through_coordinator(const Args& args, const std::string& endpoint) {
  auto keys = client_keys(args, endpoint);
  if (!keys.ok()) return report(keys.error());
  zmq::context_t ctx;
  protocol::CleanupRequest m;
  m.dry_run = args.has("dry-run");
  auto answer =
      ask_for<protocol::CleanupReply>(ctx, {endpoint, *keys}, m, std::chrono::seconds(kCleanupAnswerMs / 1000 + 10));
  if (!answer.ok()) return report(answer.error());
  int failed = 0;
  for (const auto& r : answer->reports) {
    std::cout << r.worker_id << ": ";
    if (!r.answered) {
      std::cout << r.error << "\n";
      ++failed;
      continue;
    }
    std::cout << (m.dry_run ? "would remove " : "removed ") << r.workspaces << " workspace(s) and " << r.containers
              << " container(s)" << (r.error.empty() ? "" : "; " + r.error) << "\n";
    if (!r.error.empty()) ++failed;
  }
  std::cerr << "polyphony: " << answer->reports.size() << " worker(s) asked"
            << (answer->reports.empty() ? " (none is connected)" : "") << "\n";
  return failed == 0 ? kExitOk : kExitFailed;
}

int cleanup(const Args& args) {
  if (args.has("coordinator")) return cleanup_through_coordinator(args, args.get("coordinator"));
  auto settings = load_or_report();
  if (!settings) return kExitUsage;
  const Config& config = settings->config;
  if (serve_is_running(config.home)) return cleanup_through_coordinator(args, local_client_endpoint(config.home));
  if (!fs::exists(config.state_db)) {
    std::cerr << "polyphony: nothing to clean up (no tasks yet)\n";
    return kExitOk;
  }
  auto store = StateStore::open(config.state_db, true);
  if (!store.ok()) return report(store.error());
  auto finished = store->list({TaskState::kLanded, TaskState::kFailed, TaskState::kBlocked, TaskState::kCancelled});
  if (!finished.ok()) return report(finished.error());
  auto host = resolve_docker_host(config.docker_host);
  std::unique_ptr<DockerClient> docker = host.ok() ? make_docker_client(*host) : nullptr;
  auto workspaces = make_git_workspaces(config.workspace_root);
  auto present = workspaces->list();
  std::set<std::string> with_workspace;
  if (present.ok()) with_workspace.insert(present->begin(), present->end());
  const bool dry = args.has("dry-run");
  int containers = 0, dirs = 0, failures = 0;
  for (const auto& t : *finished) {
    const std::string& id = t.request.id;
    if (docker) {
      auto list = task_containers(*docker, id);
      for (const auto& c : list.ok() ? *list : std::vector<ContainerInfo>{}) {
        std::cerr << (dry ? "would remove" : "removing") << " container " << c.id.substr(0, 12) << " of task " << id
                  << "\n";
        if (!dry && !docker->remove_container(c.id).ok()) ++failures;
        ++containers;
      }
    }
    if (with_workspace.count(id)) {
      std::cerr << (dry ? "would remove" : "removing") << " workspace of task " << id << " (" << to_string(t.state)
                << ")\n";
      if (!dry) {
        auto s = workspaces->remove(id);
        if (!s.ok()) {
          report(s.error());
          ++failures;
        }
      }
      ++dirs;
    }
  }
  std::cerr << "polyphony: " << (dry ? "would remove " : "removed ") << containers << " container(s) and " << dirs
            << " workspace(s) of finished tasks\n";
  return failures == 0 ? kExitOk : kExitFailed;
}

// The agent CLIs --agents selects from the lock file compiled into this program (all by default).
Result<std::vector<AgentPin>> agents_from_flag(const Args& args) {
  auto lock = builtin_agents_lock();
  if (!lock.ok()) return lock.error();
  return select_agents(*lock, args.get("agents", "all"), "--agents");
}

int image_build(const Args& args) {
  auto agents = agents_from_flag(args);
  if (!agents.ok()) return report(agents.error());
  auto settings = load_or_report();
  if (!settings) return kExitUsage;
  auto host = resolve_docker_host(settings->config.docker_host);
  if (!host.ok()) return report(host.error());
  auto docker = make_docker_client(*host);
  if (auto s = docker->ping(); !s.ok()) return report(s.error());
  ImageBuildOptions options;
  options.tag = settings->config.container.image;
  options.force = args.has("force");
  options.mirror = args.get("mirror");
  options.agents = *agents;
  options.progress = [](const std::string& line) { std::cerr << "polyphony: " << line << "\n"; };
  auto built = build_worker_image(*docker, options);
  if (!built.ok()) return report(built.error());
  std::cerr << "polyphony: image " << options.tag << (*built ? " built" : " is already up to date") << " with "
            << describe_agents(*agents) << "\n";
  return kExitOk;
}

}  // namespace

void add_cleanup(Command& polyphony) {
  Command cleanup_command =
      polyphony.add("cleanup",
                    "remove workspaces and containers of finished tasks: with a coordinator serving, on every "
                    "connected worker's host (one line per worker); else in this home",
                    cleanup);
  cleanup_command.flag("--dry-run", "say what would be removed, and remove nothing")
      .option("--coordinator", "ENDPOINT", "ask the coordinator at this client endpoint, e.g. tcp://host:7702");
  add_client_security_flags(cleanup_command);
  polyphony.add("image", "the worker image", nullptr)
      .add("build", "build the worker image (polyphony-worker:latest) with the agent CLIs pinned in docker/agents.lock",
           image_build)
      .flag("--force", "build it again even when it is up to date")
      .option("--mirror", "URL",
              "the Debian archive debootstrap reads (default: the one in /etc/apt, else deb.debian.org)")
      .option("--agents", "all|none|NAME,...", "the agent CLIs to put in it (default: all of them)");
}

}  // namespace polyphony::cli
