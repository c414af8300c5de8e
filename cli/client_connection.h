// One request and its reply on a coordinator's client endpoint, with CURVE when it crosses hosts.
#pragma once

#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "cli/args.h"
#include "protocol/messages.h"
#include "protocol/security.h"

namespace polyphony::cli {

// The client flags every program that talks to a remote coordinator takes.
inline const std::vector<FlagSpec> kClientSecurityFlags = {{"secret-key"}, {"coordinator-key"}, {"insecure", false}};

// Usage lines for kClientSecurityFlags.
inline constexpr const char* kClientSecurityUsage =
    R"(  --secret-key FILE        this program's CURVE secret key (`polyphony keys gen`); needed for
                           a tcp:// coordinator, whose allow-list must hold its .pub
  --coordinator-key K      the coordinator's public key: a .pub file or its 40 Z85 characters
  --insecure               allow plain TCP to a loopback (127.0.0.0/8) coordinator
)";

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
