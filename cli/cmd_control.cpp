// `polyphony cancel` and `polyphony retry`: asked of the running serve, which answers applied or
// refused; with no serve running, queued for the coordinator to apply when it starts.
#include <iostream>
#include <thread>

#include "cli/cli.h"
#include "cli/client_connection.h"
#include "coordinator/coordinator.h"
#include "coordinator/state_store.h"
#include "coordinator/work_source.h"

namespace polyphony::cli {

namespace {

// The task's state as recorded now, or nullopt when the coordinator has not recorded it yet.
std::optional<Task> recorded_task(const Config& config, const std::string& id) {
  if (!std::filesystem::exists(config.state_db)) return std::nullopt;
  auto store = StateStore::open(config.state_db, true);
  if (!store.ok()) return std::nullopt;
  auto t = store->get(id);
  return t.ok() ? *t : std::nullopt;
}

int request(const Args& args, const std::string& action) {
  if (args.positional.size() != 1) return report(make_error("usage", action + " takes one task ID", "ID"));
  auto settings = load_or_report();
  if (!settings) return kExitUsage;
  const Config& config = settings->config;
  const std::string id = args.positional[0];
  auto before = recorded_task(config, id);
  if (!before) {
    auto queue = SqliteQueue::open(config.queue_db, true);
    bool queued = false;
    if (queue.ok()) {
      auto pending = (*queue)->pending();
      if (pending.ok()) {
        for (const auto& r : *pending) queued |= r.id == id;
      }
    }
    if (!queued) return report(make_error("not_found", "no task with this id (see `polyphony status`)", id));
  }
  if (serve_is_running(config.home)) {
    // Serve answers at once: applied (exit 0) or refused with its reason (exit 1).
    zmq::context_t ctx;
    auto reply = control_task(ctx, {local_client_endpoint(config.home), std::nullopt}, id, action);
    if (reply.ok()) {
      std::cerr << "polyphony: task " << id << " is " << reply->state
                << (reply->reason.empty() ? "" : " (" + reply->reason + ")") << "\n";
      return kExitOk;
    }
    if (reply.error().code == "refused") return report(reply.error());
    std::cerr << "polyphony: the running serve did not answer (" << reply.error().to_string() << "); queueing the "
              << action << "\n";
  }
  auto queue = SqliteQueue::open(config.queue_db);
  if (!queue.ok()) return report(queue.error());
  if (auto s = (*queue)->enqueue_command(id, action); !s.ok()) return report(s.error());
  // The coordinator applies it on its next poll; show the outcome when it does.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    auto now = recorded_task(config, id);
    if (now && (!before || now->updated_at_ms != before->updated_at_ms)) {
      std::cerr << "polyphony: task " << id << " is " << to_string(now->state)
                << (now->reason.empty() ? "" : " (" + now->reason + ")") << "\n";
      return kExitOk;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::cerr << "polyphony: " << action << " of task " << id
            << " is queued; the coordinator applies it when it runs (`polyphony serve`)\n";
  return kExitOk;
}

}  // namespace

void add_control(Command& polyphony) {
  polyphony
      .add("cancel", "stop a task (its container is stopped, nothing lands)",
           [](const Args& args) { return request(args, "cancel"); })
      .positionals("ID", "the task's id");
  polyphony.add("retry", "run a FAILED or BLOCKED task again", [](const Args& args) { return request(args, "retry"); })
      .positionals("ID", "the task's id");
}

}  // namespace polyphony::cli
