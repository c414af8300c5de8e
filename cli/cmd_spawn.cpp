// `polyphony spawn`: validates a task and appends it to the local queue.
#include <iostream>

#include "cli/cli.h"
#include "cli/task_flags.h"
#include "common/ids.h"
#include "coordinator/state_store.h"
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

}  // namespace

int cmd_spawn(const std::vector<std::string>& argv) {
  auto args = parse_args(argv, task_flag_specs());
  if (!args.ok()) return report(args.error());
  auto settings = load_or_report();
  if (!settings) return kExitUsage;
  auto request = read_task_flags(*args, *settings, "spawn");
  if (!request.ok()) return report(request.error());
  TaskRequest r = std::move(*request);
  r.id = new_task_id();
  r.source = "spawn";
  r.created_at_ms = now_ms();
  auto queue = SqliteQueue::open(settings->config.queue_db);
  if (!queue.ok()) return report(queue.error());
  if (auto s = (*queue)->enqueue(r); !s.ok()) return report(s.error());
  warn_if_image_missing(settings->config);
  std::cout << r.id << std::endl;
  return kExitOk;
}

}  // namespace polyphony::cli
