// `polyphony-submit`: submits a task to a coordinator's client endpoint and can wait for it.
#include <iostream>
#include <zmq.hpp>

#include "cli/cli.h"
#include "cli/client_connection.h"
#include "cli/task_flags.h"
#include "common/log.h"
#include "coordinator/coordinator.h"
#include "protocol/messages.h"

namespace polyphony::cli {

namespace {

int submit(const Args& args) {
  auto task = task_from_flags(args, "polyphony-submit");
  if (!task.ok()) return report(task.error());
  int64_t timeout_s = 3600;
  try {
    if (args.has("timeout")) timeout_s = std::stoll(args.get("timeout"));
  } catch (const std::exception&) {
    return report(make_error("usage", "--timeout needs a number of seconds", "--timeout"));
  }
  ClientTarget target{args.get("coordinator", local_client_endpoint(polyphony_home())), std::nullopt};
  auto keys = client_keys(args, target.endpoint);
  if (!keys.ok()) return report(keys.error());
  target.keys = *keys;
  zmq::context_t ctx;
  auto reply = submit_to(ctx, target, *task);
  if (!reply.ok()) return report(reply.error());
  const std::string id = reply->task_id;
  if (args.has("wait")) {
    reply = wait_for_task(ctx, target, id, std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s));
    if (!reply.ok()) return report(reply.error());
    if (!finished_state(reply->state)) {
      std::cerr << "polyphony-submit: task " << id << " still " << reply->state << " after " << timeout_s << " s\n";
      return kExitFailed;
    }
  }
  if (args.has("json")) {
    std::cout << reply_json(*reply).dump(2) << "\n";
  } else {
    std::cout << id << "\n";
    if (args.has("wait")) {
      std::cerr << "polyphony-submit: task " << id << " " << reply->state
                << (reply->reason.empty() ? "" : " (" + reply->reason + ")") << "\n";
    }
  }
  return !args.has("wait") || reply->state == "LANDED" ? kExitOk : kExitFailed;
}

}  // namespace

CommandLine submit_command_line() {
  CommandLine line("polyphony-submit", "Submits a task to a coordinator's client endpoint and prints its id.", submit);
  Command root = line.root();
  root.positionals("TITLE", "what to do, in one line (quote it; after -- when it starts with -)")
      .option("--coordinator", "ENDPOINT",
              "e.g. tcp://host:7702 (default: this machine's coordinator, ipc://$POLYPHONY_HOME/coordinator.sock)");
  add_task_flags(root, false);
  root.flag("--wait", "wait until the task ends; exit 0 only when it LANDED")
      .option("--timeout", "SECONDS", "give up waiting after this long (default 3600)")
      .flag("--json", "print the task as JSON instead of its id");
  add_client_security_flags(root);
  return line;
}

int submit_main(const std::vector<std::string>& argv) {
  set_program_name("polyphony-submit");
  init_logging("warn");
  return submit_command_line().run(argv);
}

}  // namespace polyphony::cli
