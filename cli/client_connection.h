// One request and its reply on a coordinator's client endpoint, with CURVE when it crosses hosts.
#pragma once

#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "cli/command_line.h"
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

// Sends `m` over a fresh DEALER socket and waits up to 10 s for one reply.
Result<protocol::Message> request(zmq::context_t& ctx, const std::string& endpoint, const protocol::Message& m,
                                  const std::optional<protocol::CurveClientKeys>& keys);

}  // namespace polyphony::cli
