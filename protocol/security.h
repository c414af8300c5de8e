// CURVE for ZeroMQ: key pairs and their files, allow-lists, the socket options of each side,
// and a ZAP handler (RFC 27) that admits only allow-listed public keys.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "common/config.h"
#include "common/result.h"

namespace polyphony::protocol {

// The endpoint libzmq sends ZAP requests to, one per context.
inline constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";
// ZAP domains of the coordinator's two ROUTER sockets.
inline constexpr const char* kWorkersDomain = "polyphony-workers";
inline constexpr const char* kClientsDomain = "polyphony-clients";

// Z85 text (40 characters) of each half.
struct CurveKeyPair {
  std::string public_key;
  std::string secret_key;
};

// A fresh key pair from libsodium (through libzmq).
Result<CurveKeyPair> generate_key_pair();

// The public half of a Z85 secret key.
Result<std::string> public_key_of(const std::string& secret_key);

// Writes `<dir>/<name>.key` (the secret key) and `<dir>/<name>.pub` (the public key), both mode
// 0600, creating `dir`. Refuses to overwrite an existing file unless `force`.
Status write_key_pair(const std::filesystem::path& dir, const std::string& name, const CurveKeyPair& keys, bool force);

// Reads a key file: one line of 40 Z85 characters; blank lines and lines starting with '#'
// are ignored (`polyphony keys gen` writes a comment line first). A secret key file must not be readable by group or
// others. Errors name the file, and `where` (the config setting or flag that named it) when given.
Result<std::string> read_key_file(const std::filesystem::path& file, bool secret, const std::string& where = "");

// Allowed public keys -> a name for the logs (the .pub file's stem, or "allowed_*_keys[i]").
using AllowList = std::map<std::string, std::string>;

// Every `*.pub` in `dir` (when not empty) plus `keys`. Errors name the bad file.
Result<AllowList> load_allow_list(const std::filesystem::path& dir, const std::vector<std::string>& keys,
                                  const std::string& keys_setting, const std::string& where = "");

// The coordinator's server keys and allow-lists, read from the files its config names.
struct CoordinatorKeys {
  CurveKeyPair server;
  AllowList workers;
  AllowList clients;
};
Result<CoordinatorKeys> load_coordinator_keys(const CoordinatorSecurity& security);

// What a CURVE client (a worker, polyphony-submit, `polyphony workers`) needs.
struct CurveClientKeys {
  CurveKeyPair own;
  std::string server_public_key;
};
// nullopt when the worker has no CURVE configured.
Result<std::optional<CurveClientKeys>> load_worker_keys(const WorkerSecurity& security);
// From a secret key file and the server's key (a Z85 key, or a file holding it).
Result<CurveClientKeys> load_client_keys(const std::filesystem::path& secret_key_file,
                                         const std::string& server_key_or_file, const std::string& secret_where,
                                         const std::string& server_where);

// The key files `config` names (its coordinator: and worker: CURVE settings), read as the
// programs read them at start: each exists and is readable, a secret key file is not readable by
// group or others, each holds one key, and each public key file is its secret key's public half.
// Every problem found (the first of each section), each naming its setting; empty when all is
// fine or no CURVE is configured.
std::vector<Error> check_key_files(const Config& config);

// Socket options (set before bind/connect; they apply to later binds/connects only).
void make_curve_server(zmq::socket_t& socket, const CurveKeyPair& server, const std::string& zap_domain);
void make_curve_client(zmq::socket_t& socket, const CurveClientKeys& keys);

// The outcome of one ZAP request. Pure, so the policy is tested without sockets.
struct ZapVerdict {
  bool allowed = false;
  std::string user_id;  // the key's name, when allowed
  std::string reason;   // why not, when refused
};
// NULL-mechanism peers are allowed (only ipc, inproc and insecure loopback endpoints use NULL);
// CURVE peers only when `client_key` (Z85) is on the allow-list of `domain`; anything else is refused.
ZapVerdict zap_verdict(const std::string& domain, const std::string& mechanism, const std::string& client_key,
                       const std::map<std::string, AllowList>& allow_lists);

// Binds the context's ZAP endpoint and answers requests when its owner calls `serve`, e.g. from
// the coordinator's poll loop. Refusals are logged (once a minute per key and address).
class ZapHandler {
 public:
  static Result<std::unique_ptr<ZapHandler>> bind(zmq::context_t& context,
                                                  std::map<std::string, AllowList> allow_lists);
  // The socket to poll for ZMQ_POLLIN.
  zmq::socket_t& socket() { return socket_; }
  // Answers every pending request without blocking. Never throws.
  void serve();

 private:
  ZapHandler(zmq::context_t& context, std::map<std::string, AllowList> allow_lists);
  void answer(std::vector<zmq::message_t>& request);

  zmq::socket_t socket_;
  std::map<std::string, AllowList> allow_lists_;
  std::map<std::string, int64_t> last_logged_ms_;  // by key + address
};

// The ZAP User-Id of the connection a received frame came on ("" when none, e.g. NULL mechanism).
std::string peer_user_id(zmq::message_t& frame);

}  // namespace polyphony::protocol
