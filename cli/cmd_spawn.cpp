// `polyphony spawn`: validates a task and appends it to the local queue.
#include <iostream>

#include "cli/cli.h"
#include "cli/task_flags.h"
#include "coordinator/submission.h"
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
  auto request = task_from_flags(*args, "spawn");
  if (!request.ok()) return report(request.error());
  request->source = "spawn";
  // The same validation and queueing as a remote client's submission.
  auto id = submit_task(*request, *settings);
  if (!id.ok()) return report(as_flag_error(id.error()));
  warn_if_image_missing(settings->config);
  std::cout << *id << std::endl;
  return kExitOk;
}

}  // namespace polyphony::cli
