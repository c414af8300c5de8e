// `polyphony workers`: the coordinator's worker table, asked live over its client endpoint.
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/cli.h"
#include "cli/client_connection.h"
#include "cli/table.h"
#include "coordinator/coordinator.h"
#include "coordinator/state_store.h"
#include "dashboard/api_json.h"

namespace polyphony::cli {

namespace {

using nlohmann::json;

constexpr const char* kWorkersFooter =
    R"(A worker is ready (has free capacity), busy (full) or lost (silent past its liveness budget).
Asks the coordinator at ipc://$POLYPHONY_HOME/coordinator.sock unless --coordinator names another
client endpoint.)";

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out.empty() ? "-" : out;
}

std::string heartbeat_age(int64_t ms) {
  std::ostringstream s;
  if (ms < 10000)
    s << std::fixed << std::setprecision(1) << static_cast<double>(ms) / 1000.0 << "s ago";
  else
    s << ago(0, ms);
  return s.str();
}

Colour worker_state_colour(const std::string& state) {
  if (state == "ready") return Colour::kGreen;
  if (state == "busy") return Colour::kYellow;
  if (state == "lost") return Colour::kRed;
  return Colour::kNone;
}

void print_table(const protocol::WorkersReply& r, const Terminal& term) {
  // The worker id is never cut; the labels and the running tasks wrap.
  Table table({{"WORKER", Overflow::kKeep},
               {"STATE", Overflow::kKeep},
               {"HEARTBEAT", Overflow::kKeep},
               {"LOAD", Overflow::kKeep},
               {"LABELS", Overflow::kWrap, 0, 2},
               {"VERSION", Overflow::kTruncate, 0, 1},
               {"RUNNING", Overflow::kWrap, 9}});
  for (const auto& w : r.workers) {
    table.add_row({{w.worker_id},
                   {w.state, worker_state_colour(w.state)},
                   {heartbeat_age(w.heartbeat_age_ms)},
                   {std::to_string(w.load) + "/" + std::to_string(w.capacity)},
                   {joined(w.labels)},
                   {w.version},
                   {joined(w.running)}});
  }
  std::cout << table.render(term);
  if (r.workers.empty()) std::cout << "(no worker has registered with " << printable(r.coordinator_id) << ")\n";
}

int workers(const Args& args) {
  const std::string endpoint = args.get("coordinator", local_client_endpoint(polyphony_home()));
  auto keys = client_keys(args, endpoint);
  if (!keys.ok()) return report(keys.error());
  zmq::context_t ctx;
  auto table = ask_for<protocol::WorkersReply>(ctx, {endpoint, *keys}, protocol::WorkersQuery{});
  if (!table.ok()) return report(table.error());
  if (args.has("json")) {
    json out = json::array();
    for (const auto& w : table->workers) out.push_back(dashboard::worker_json(w, now_ms()));
    std::cout << json{{"coordinator", table->coordinator_id}, {"workers", out}}.dump(2) << "\n";
  } else {
    print_table(*table, stdout_terminal());
  }
  return kExitOk;
}

int remove(const Args& args) {
  if (args.positional.size() != 1) {
    return report(make_error("usage", "name one worker: polyphony workers remove ID", "ID"));
  }
  const std::string endpoint = args.get("coordinator", local_client_endpoint(polyphony_home()));
  auto keys = client_keys(args, endpoint);
  if (!keys.ok()) return report(keys.error());
  zmq::context_t ctx;
  protocol::WorkerRemove m{args.positional[0], args.has("force")};
  auto reply = ask(ctx, {endpoint, *keys}, m);
  if (!reply.ok()) return report(reply.error());
  if (!reply->ok) {
    const std::string where = reply->where == "force" ? "--force" : reply->where == "worker_id" ? "ID" : endpoint;
    return report(make_error(reply->where == "force" ? "refused" : "not_found", reply->error, where));
  }
  std::cerr << program_name() << ": " << reply->reason << "\n";
  return kExitOk;
}

}  // namespace

void add_workers(Command& polyphony) {
  Command workers_command =
      polyphony.add("workers", "the coordinator's workers: state, heartbeat age, load, labels, tasks", workers);
  workers_command.flag("--json", "the same as JSON")
      .option("--coordinator", "ENDPOINT", "the coordinator's client endpoint, e.g. tcp://host:7702")
      .footer(kWorkersFooter);
  add_client_security_flags(workers_command);
  Command remove_command = workers_command.add(
      "remove", "take a worker off the table (a lost or decommissioned one); refused while it holds tasks", remove);
  remove_command.positionals("ID", "the worker's id, as `polyphony workers` lists it")
      .flag("--force", "remove it even while it holds tasks: they are requeued, and the worker told to stop them")
      .option("--coordinator", "ENDPOINT", "the coordinator's client endpoint, e.g. tcp://host:7702");
  add_client_security_flags(remove_command);
}

}  // namespace polyphony::cli
