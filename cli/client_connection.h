// One request and its reply on a coordinator's client endpoint, with CURVE when it crosses hosts.
#pragma once

#include <atomic>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "cli/command_line.h"
#include "coordinator/task.h"
#include "protocol/messages.h"
#include "protocol/security.h"

namespace polyphony::cli {

// Defines the flags every program that talks to a remote coordinator takes: --secret-key,
// --coordinator-key, --insecure.
void add_client_security_flags(Command& command);

// Keys from the flags for `endpoint`: nullopt for ipc://, inproc:// and insecure loopback;
// errors (naming the flag) for a tcp:// endpoint without keys.
Result<std::optional<protocol::CurveClientKeys>> client_keys(const Args& args, const std::string& endpoint);

// Sends `m` over a fresh DEALER socket without waiting for a reply: best effort, for a local
// coordinator (ipc://, no keys) that may not run. Returns within about `linger`; true when the
// message was handed to a socket that exists (a coordinator listens, or did until it stopped).
bool notify(const std::string& endpoint, const protocol::Message& m, std::chrono::milliseconds linger);

// Sends `m` over a fresh DEALER socket and waits up to `timeout` for one reply.
Result<protocol::Message> request(zmq::context_t& ctx, const std::string& endpoint, const protocol::Message& m,
                                  const std::optional<protocol::CurveClientKeys>& keys,
                                  std::chrono::seconds timeout = std::chrono::seconds(10));

// Where a client talks to a coordinator, and how: the endpoint and its CURVE keys.
struct ClientTarget {
  std::string endpoint;
  std::optional<protocol::CurveClientKeys> keys;
};

// One request whose answer must be a ClientReply (a Submit's or a Control's).
Result<protocol::ClientReply> ask(zmq::context_t& ctx, const ClientTarget& target, const protocol::Message& m);

// One request whose answer must be a `Reply` (a WorkersReply, a CleanupReply): a ClientReply
// instead is the coordinator's refusal (error "failed" quoting it), another type error "protocol".
template <class Reply>
Result<Reply> ask_for(zmq::context_t& ctx, const ClientTarget& target, const protocol::Message& m,
                      std::chrono::seconds timeout = std::chrono::seconds(10)) {
  auto reply = request(ctx, target.endpoint, m, target.keys, timeout);
  if (!reply.ok()) return reply.error();
  if (const auto* refused = std::get_if<protocol::ClientReply>(&*reply)) {
    return make_error("failed", "the coordinator refused: " + refused->error, target.endpoint);
  }
  auto* answer = std::get_if<Reply>(&*reply);
  if (answer == nullptr) {
    return make_error("protocol", "the coordinator answered with a " + protocol::type_name(*reply), target.endpoint);
  }
  return std::move(*answer);
}

// Submits `task` (a Submit message); the coordinator validates it as `polyphony spawn` does. A
// refusal is an error "usage" naming the flag at fault (flag_for_field). Returns the reply.
Result<protocol::ClientReply> submit_to(zmq::context_t& ctx, const ClientTarget& target, const TaskRequest& task);

// Asks the coordinator to apply `action` ("cancel", "retry") to the task; a refusal is an error
// "refused": "<action> refused: <why>".
Result<protocol::ClientReply> control_task(zmq::context_t& ctx, const ClientTarget& target, const std::string& id,
                                           const std::string& action);

// True for the states a task ends in: LANDED, FAILED, BLOCKED, CANCELLED.
bool finished_state(const std::string& state);

// How often wait_for_task renews its watch (so a restarted coordinator learns of it again).
inline constexpr std::chrono::seconds kWatchRenewal{15};

// Follows the task with a `watch` (the coordinator sends its news; no polling) until it is in a
// finished state, `deadline` passes or `stop` becomes true (checked every 300 ms); returns the
// last answer (the caller compares its state).
Result<protocol::ClientReply> wait_for_task(zmq::context_t& ctx, const ClientTarget& target, const std::string& id,
                                            std::chrono::steady_clock::time_point deadline,
                                            const std::atomic<bool>* stop = nullptr);

// How long a client waits for a view (route_explain reads a whole repository).
inline constexpr std::chrono::seconds kViewTimeout{60};
// Room a ViewReply needs besides its JSON.
inline constexpr size_t kViewReplyMargin = 64 * 1024;

// Asks the coordinator for a view (ViewQuery) and returns its JSON; a refusal is the
// coordinator's error as the CLI gives it (code, message, the flag at fault).
Result<nlohmann::json> ask_view(zmq::context_t& ctx, const ClientTarget& target, const protocol::ViewQuery& query);

// A reply as `polyphony-submit --json` prints it: id, state, reason, attempt, agent, branch,
// merged_commit.
nlohmann::json reply_json(const protocol::ClientReply& r);

}  // namespace polyphony::cli
