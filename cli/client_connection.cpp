// Client-side connection to the coordinator's client endpoint.
#include "cli/client_connection.h"

#include <algorithm>
#include <filesystem>
#include <memory>

#include "cli/task_flags.h"
#include "common/endpoint_policy.h"
#include "coordinator/task_fields.h"

namespace polyphony::cli {

void add_client_security_flags(Command& command) {
  command
      .option("--secret-key", "FILE",
              "this program's CURVE secret key (`polyphony keys gen`); needed for a tcp:// "
              "coordinator, whose allow-list must hold its .pub")
      .option("--coordinator-key", "K", "the coordinator's public key: a .pub file or its 40 Z85 characters")
      .flag("--insecure", "allow plain TCP to a loopback (127.0.0.0/8) coordinator");
}

Result<std::optional<protocol::CurveClientKeys>> client_keys(const Args& args, const std::string& endpoint) {
  if (args.has("secret-key") != args.has("coordinator-key")) {
    return make_error("usage", "--secret-key and --coordinator-key go together",
                      args.has("secret-key") ? "--coordinator-key" : "--secret-key");
  }
  if (args.has("secret-key")) {
    if (!crosses_host(endpoint)) return std::optional<protocol::CurveClientKeys>();  // ipc/inproc: no CURVE
    auto keys = protocol::load_client_keys(args.get("secret-key"), args.get("coordinator-key"), "--secret-key",
                                           "--coordinator-key");
    if (!keys.ok()) return make_error("usage", keys.error().message, keys.error().where);
    return std::optional<protocol::CurveClientKeys>(*keys);
  }
  POLY_TRY(check_plain_endpoint(endpoint, args.has("insecure"), "--secret-key", "--insecure", "--coordinator"));
  return std::optional<protocol::CurveClientKeys>();
}

bool notify(const std::string& endpoint, const protocol::Message& m, std::chrono::milliseconds linger) {
  if (endpoint.rfind("ipc://", 0) == 0 && !std::filesystem::exists(endpoint.substr(6))) return false;  // none runs
  try {
    zmq::context_t ctx;
    zmq::socket_t s(ctx, zmq::socket_type::dealer);
    s.set(zmq::sockopt::linger, static_cast<int>(linger.count()));
    s.connect(endpoint);
    return s.send(zmq::buffer(protocol::encode(m)), zmq::send_flags::dontwait).has_value();
  } catch (const zmq::error_t&) {
    // Nobody to tell: the coordinator reads the queue at its next poll anyway.
    return false;
  }
}

namespace {

// A DEALER connected to `endpoint` (with CURVE when `keys`), ready for requests.
Result<std::unique_ptr<zmq::socket_t>> client_socket(zmq::context_t& ctx, const std::string& endpoint,
                                                     const std::optional<protocol::CurveClientKeys>& keys) {
  if (endpoint.rfind("ipc://", 0) == 0 && !std::filesystem::exists(endpoint.substr(6))) {
    return make_error("network",
                      "no coordinator listens here (no socket " + endpoint.substr(6) +
                          "); start it with `polyphony serve`, or pass --coordinator",
                      endpoint);
  }
  auto s = std::make_unique<zmq::socket_t>(ctx, zmq::socket_type::dealer);
  s->set(zmq::sockopt::linger, 0);
  s->set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(protocol::kMaxFrameBytes));
  if (keys) protocol::make_curve_client(*s, *keys);
  try {
    s->connect(endpoint);
  } catch (const zmq::error_t& e) {
    return make_error("network", std::string("cannot connect: ") + e.what(), endpoint);
  }
  return s;
}

// The next message on `s` within `wait`; nullopt when none came.
Result<std::optional<protocol::Message>> receive(zmq::socket_t& s, std::chrono::milliseconds wait,
                                                 const std::string& endpoint) {
  zmq::pollitem_t items[] = {{s.handle(), 0, ZMQ_POLLIN, 0}};
  zmq::poll(items, 1, wait);
  zmq::message_t reply;
  if (!(items[0].revents & ZMQ_POLLIN) || !s.recv(reply, zmq::recv_flags::dontwait)) {
    return std::optional<protocol::Message>();
  }
  auto msg = protocol::decode(reply.to_string_view());
  if (!msg.ok())
    return make_error("protocol", "the coordinator's reply does not decode: " + msg.error().to_string(), endpoint);
  return std::optional<protocol::Message>(std::move(*msg));
}

Error no_answer(const std::string& endpoint, bool keys, std::chrono::seconds timeout) {
  return make_error("network",
                    "no coordinator answered within " + std::to_string(timeout.count()) +
                        " s (is `polyphony serve` running there?" +
                        (keys ? " Is this client's public key in its allowed_clients?)" : ")"),
                    endpoint);
}

}  // namespace

Result<protocol::Message> request(zmq::context_t& ctx, const std::string& endpoint, const protocol::Message& m,
                                  const std::optional<protocol::CurveClientKeys>& keys, std::chrono::seconds timeout) {
  auto s = client_socket(ctx, endpoint, keys);
  if (!s.ok()) return s.error();
  (*s)->send(zmq::buffer(protocol::encode(m)), zmq::send_flags::none);
  auto reply = receive(**s, timeout, endpoint);
  if (!reply.ok()) return reply.error();
  if (!*reply) return no_answer(endpoint, keys.has_value(), timeout);
  return std::move(**reply);
}

Result<protocol::ClientReply> ask(zmq::context_t& ctx, const ClientTarget& target, const protocol::Message& m) {
  auto msg = request(ctx, target.endpoint, m, target.keys);
  if (!msg.ok()) return msg.error();
  const auto* r = std::get_if<protocol::ClientReply>(&*msg);
  if (r == nullptr) {
    return make_error("protocol", "the coordinator answered with a " + protocol::type_name(*msg), target.endpoint);
  }
  return *r;
}

Result<protocol::ClientReply> submit_to(zmq::context_t& ctx, const ClientTarget& target, const TaskRequest& task) {
  auto reply = ask(ctx, target, submit_message(task));
  if (!reply.ok()) return reply.error();
  if (!reply->ok) return make_error("usage", reply->error, flag_for_field(reply->where));
  return reply;
}

Result<protocol::ClientReply> control_task(zmq::context_t& ctx, const ClientTarget& target, const std::string& id,
                                           const std::string& action) {
  auto reply = ask(ctx, target, protocol::Control{id, action});
  if (!reply.ok()) return reply.error();
  if (!reply->ok) return make_error("refused", action + " refused: " + reply->error, id);
  return reply;
}

bool finished_state(const std::string& state) {
  return std::find(protocol::kFinalStates.begin(), protocol::kFinalStates.end(), state) != protocol::kFinalStates.end();
}

Result<protocol::ClientReply> wait_for_task(zmq::context_t& ctx, const ClientTarget& target, const std::string& id,
                                            std::chrono::steady_clock::time_point deadline,
                                            const std::atomic<bool>* stop) {
  using std::chrono::steady_clock;
  auto s = client_socket(ctx, target.endpoint, target.keys);
  if (!s.ok()) return s.error();
  std::optional<protocol::ClientReply> last;
  std::optional<steady_clock::time_point> asked;
  auto heard = steady_clock::now();
  while (true) {
    // Renewed now and then: a coordinator that restarted meanwhile learns of this watch again.
    if (!asked || steady_clock::now() - *asked >= kWatchRenewal) {
      (*s)->send(zmq::buffer(protocol::encode(protocol::Watch{id})), zmq::send_flags::none);
      asked = steady_clock::now();
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady_clock::now());
    auto msg =
        receive(**s, std::clamp(left, std::chrono::milliseconds(0), std::chrono::milliseconds(300)), target.endpoint);
    if (!msg.ok()) return msg.error();
    if (*msg) {
      const auto* r = std::get_if<protocol::ClientReply>(&**msg);
      if (r == nullptr) {
        return make_error("protocol", "the coordinator answered a watch with a " + protocol::type_name(**msg),
                          target.endpoint);
      }
      if (!r->ok) return make_error("failed", r->error, id);
      heard = steady_clock::now();
      if (r->task_id == id) last = *r;
      if (last && finished_state(last->state)) return *last;
    } else if (!last && steady_clock::now() - heard >= std::chrono::seconds(10)) {
      return no_answer(target.endpoint, target.keys.has_value(), std::chrono::seconds(10));
    }
    if (steady_clock::now() >= deadline || (stop != nullptr && stop->load())) {
      if (last) return *last;
      return ask(ctx, target, protocol::Control{id, "query"});
    }
  }
}

nlohmann::json reply_json(const protocol::ClientReply& r) {
  return {{"id", r.task_id},
          {"state", r.state},
          {"reason", r.reason},
          {"attempt", r.attempt},
          {"agent", r.agent},
          {"branch", r.branch},
          {"merged_commit", r.merged_commit}};
}

}  // namespace polyphony::cli
