// What finished tasks left on a worker host, removed.
#include "worker-agent/task_cleanup.h"

#include <spdlog/spdlog.h>

#include <map>

namespace polyphony {

namespace {

// The task a container belongs to: its polyphony.task label, or for a warm container a run
// took, the task in its name (polyphony.<task>.e<epoch>); "" for one no task took.
std::string task_of(const ContainerInfo& c) {
  if (auto it = c.labels.find("polyphony.task"); it != c.labels.end()) return it->second;
  if (c.name.rfind("polyphony.", 0) != 0) return "";
  const size_t end = c.name.find('.', 10);
  return c.name.substr(10, end == std::string::npos ? std::string::npos : end - 10);
}

}  // namespace

CleanupCount clean_up_finished_tasks(DockerClient& docker, Workspaces& workspaces, const std::string& worker_id,
                                     const std::set<std::string>& keep, bool dry_run) {
  CleanupCount out;
  auto containers = docker.list_containers({{"polyphony.worker", worker_id}});
  if (!containers.ok()) {
    out.errors.push_back("cannot list containers: " + containers.error().to_string());
  } else {
    for (const auto& c : *containers) {
      const std::string task = task_of(c);
      if (task.empty() || keep.count(task)) continue;
      ++out.containers;
      if (dry_run) continue;
      spdlog::info("cleanup: removing container {} of task {}", c.id.substr(0, 12), task);
      if (auto s = docker.remove_container(c.id); !s.ok()) {
        out.errors.push_back("container " + c.id.substr(0, 12) + ": " + s.error().to_string());
      }
    }
  }
  auto tasks = workspaces.list();
  if (!tasks.ok()) {
    out.errors.push_back("cannot list workspaces: " + tasks.error().to_string());
    return out;
  }
  for (const auto& task : *tasks) {
    if (keep.count(task)) continue;
    ++out.workspaces;
    if (dry_run) continue;
    spdlog::info("cleanup: removing the workspace of task {}", task);
    if (auto s = workspaces.remove(task); !s.ok())
      out.errors.push_back("workspace of task " + task + ": " + s.error().to_string());
  }
  return out;
}

}  // namespace polyphony
