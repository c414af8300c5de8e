// `polyphony-submit`: submits a task to a coordinator's client endpoint and can wait for it.
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>
#include <zmq.hpp>

#include "cli/cli.h"
#include "cli/client_connection.h"
#include "cli/task_flags.h"
#include "common/log.h"
#include "coordinator/coordinator.h"
#include "protocol/messages.h"

namespace polyphony::cli {

namespace {

// One request, one ClientReply.
Result<protocol::ClientReply> ask(zmq::context_t& ctx, const std::string& endpoint, const protocol::Message& m,
                                  const std::optional<protocol::CurveClientKeys>& keys) {
  auto msg = request(ctx, endpoint, m, keys);
  if (!msg.ok()) return msg.error();
  const auto* r = std::get_if<protocol::ClientReply>(&*msg);
  if (r == nullptr) return make_error("protocol", "the coordinator answered with a " + protocol::type_name(*msg), endpoint);
  return *r;
}

nlohmann::json reply_json(const protocol::ClientReply& r) {
  return {{"id", r.task_id},         {"state", r.state},   {"reason", r.reason},
          {"attempt", r.attempt},    {"agent", r.agent},   {"branch", r.branch},
          {"merged_commit", r.merged_commit}};
}

bool finished(const std::string& state) {
  return state == "LANDED" || state == "FAILED" || state == "BLOCKED" || state == "CANCELLED";
}

int submit(const Args& args) {
  if (args.positional.size() != 1) return report(make_error("usage", "give exactly one TITLE (quote it)", "TITLE"));
  protocol::Submit m;
  m.title = args.positional[0];
  m.repo = args.get("repo");
  if (args.has("body-file")) {
    std::ifstream in(args.get("body-file"), std::ios::binary);
    if (!in) return report(make_error("usage", "cannot read " + args.get("body-file"), "--body-file"));
    m.body.assign(std::istreambuf_iterator<char>(in), {});
  } else {
    m.body = args.get("body");
  }
  m.task_type = args.get("type");
  m.risk = args.get("risk");
  m.labels = args.all("label");
  m.agent = args.get("agent");
  m.base_branch = args.get("base");
  int64_t timeout_s = 3600;
  try {
    if (args.has("timeout")) timeout_s = std::stoll(args.get("timeout"));
  } catch (const std::exception&) {
    return report(make_error("usage", "--timeout needs a number of seconds", "--timeout"));
  }
  const std::string endpoint = args.get("coordinator", local_client_endpoint(polyphony_home()));
  auto keys = client_keys(args, endpoint);
  if (!keys.ok()) return report(keys.error());
  zmq::context_t ctx;
  auto reply = ask(ctx, endpoint, m, *keys);
  if (!reply.ok()) return report(reply.error());
  if (!reply->ok) return report(make_error("usage", reply->error, flag_for_field(reply->where)));
  const std::string id = reply->task_id;
  if (args.has("wait")) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    while (!finished(reply->state)) {
      if (std::chrono::steady_clock::now() >= deadline) {
        std::cerr << "polyphony-submit: task " << id << " still " << reply->state << " after " << timeout_s << " s\n";
        return kExitFailed;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      protocol::Control q;
      q.task_id = id;
      q.action = "query";
      auto next = ask(ctx, endpoint, q, *keys);
      if (!next.ok()) return report(next.error());
      if (!next->ok) return report(make_error("failed", next->error, id));
      reply = next;
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
