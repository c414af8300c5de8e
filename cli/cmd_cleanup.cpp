// `polyphony cleanup` and `polyphony image build`.
#include <unistd.h>

#include <iostream>

#include "cli/cli.h"
#include "coordinator/state_store.h"
#include "worker-agent/container_pool.h"
#include "worker-agent/docker_client.h"
#include "worker-agent/image_builder.h"
#include "worker-agent/workspaces.h"

namespace polyphony::cli {

namespace fs = std::filesystem;

namespace {

int cleanup(const Args& args) {
  auto settings = load_or_report();
  if (!settings) return kExitUsage;
  const Config& config = settings->config;
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
        std::cerr << (dry ? "would remove" : "removing") << " container " << c.id.substr(0, 12) << " of task " << id << "\n";
        if (!dry && !docker->remove_container(c.id).ok()) ++failures;
        ++containers;
      }
    }
    if (with_workspace.count(id)) {
      std::cerr << (dry ? "would remove" : "removing") << " workspace of task " << id << " (" << to_string(t.state) << ")\n";
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
  polyphony.add("cleanup", "remove workspaces and containers of finished tasks", cleanup)
      .flag("--dry-run", "say what would be removed, and remove nothing");
  polyphony.add("image", "the worker image", nullptr)
      .add("build", "build the worker image (polyphony-worker:latest) with the agent CLIs pinned in docker/agents.lock",
           image_build)
      .flag("--force", "build it again even when it is up to date")
      .option("--mirror", "URL",
              "the Debian archive debootstrap reads (default: the one in /etc/apt, else deb.debian.org)")
      .option("--agents", "all|none|NAME,...", "the agent CLIs to put in it (default: all of them)");
}

}  // namespace polyphony::cli
