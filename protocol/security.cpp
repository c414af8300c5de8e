// CURVE keys, allow-lists and the ZAP handler.
#include "protocol/security.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <optional>
#include <zmq_addon.hpp>

#include "common/endpoint_policy.h"

namespace polyphony::protocol {

namespace fs = std::filesystem;

namespace {

int64_t steady_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

// "file (from where)" for error messages.
// The file as an error's message names it: the error's `where` is the setting that named it
// when there is one (so the message says which file), else the file itself (said once).
std::string named(const fs::path& file, const std::string& where) {
  return where.empty() ? "" : " " + file.string();
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

Status write_private_file(const fs::path& file, const std::string& content, bool force) {
  std::error_code ec;
  if (fs::exists(file, ec) && !force) {
    return make_error("usage", "refusing to overwrite " + file.string() + " (pass --force to replace it)",
                      file.string());
  }
  const fs::path tmp = file.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc | std::ios::binary);
    fs::permissions(tmp, fs::perms::owner_read | fs::perms::owner_write, fs::perm_options::replace, ec);
    if (!out || ec) return make_error("io", "cannot write " + tmp.string(), tmp.string());
    out << content;
    if (!out.flush()) return make_error("io", "cannot write " + tmp.string(), tmp.string());
  }
  fs::rename(tmp, file, ec);
  if (ec) return make_error("io", "cannot create " + file.string() + ": " + ec.message(), file.string());
  return {};
}

std::string z85_of(const unsigned char* bytes) {
  char text[41] = {};
  zmq_z85_encode(text, bytes, 32);
  return text;
}

}  // namespace

Result<CurveKeyPair> generate_key_pair() {
  char pub[41] = {};
  char sec[41] = {};
  if (zmq_curve_keypair(pub, sec) != 0) {
    return make_error("curve", std::string("cannot make a CURVE key pair: ") + zmq_strerror(zmq_errno()) +
                                   " (is libzmq built with libsodium?)");
  }
  return CurveKeyPair{pub, sec};
}

Result<std::string> public_key_of(const std::string& secret_key) {
  char pub[41] = {};
  if (!is_z85_key(secret_key) || zmq_curve_public(pub, secret_key.c_str()) != 0) {
    return make_error("curve", "not a CURVE secret key (40 Z85 characters)");
  }
  return std::string(pub);
}

Status write_key_pair(const fs::path& dir, const std::string& name, const CurveKeyPair& keys, bool force) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return make_error("io", "cannot create " + dir.string() + ": " + ec.message(), dir.string());
  POLY_TRY(write_private_file(
      dir / (name + ".key"),
      "# Polyphony CURVE secret key of " + name + ". Keep it private.\n" + keys.secret_key + "\n", force));
  return write_private_file(dir / (name + ".pub"),
                            "# Polyphony CURVE public key of " + name + ". Give it to the peers that allow " + name +
                                ".\n" + keys.public_key + "\n",
                            force);
}

Result<std::string> read_key_file(const fs::path& file, bool secret, const std::string& where) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    return make_error("config", "cannot read the key file" + named(file, where) + ": " + std::strerror(errno),
                      where.empty() ? file.string() : where);
  }
  if (secret && (st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return make_error("config",
                      "the secret key file" + named(file, where) + " is readable by group or others (mode " + mode +
                          "); run: chmod 600 " + file.string(),
                      where.empty() ? file.string() : where);
  }
  std::ifstream in(file);
  std::string line, key;
  int keys = 0;
  while (std::getline(in, line)) {
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    key = line;
    ++keys;
  }
  if (!in.eof()) {
    return make_error("config", "cannot read the key file" + named(file, where), where.empty() ? file.string() : where);
  }
  if (keys != 1 || !is_z85_key(key)) {
    return make_error("config",
                      "the key file" + named(file, where) +
                          " does not hold one CURVE key (a line of 40 Z85 "
                          "characters, as `polyphony keys gen` writes)",
                      where.empty() ? file.string() : where);
  }
  return key;
}

Result<AllowList> load_allow_list(const fs::path& dir, const std::vector<std::string>& keys,
                                  const std::string& keys_setting, const std::string& where) {
  AllowList out;
  for (size_t i = 0; i < keys.size(); ++i) out[keys[i]] = keys_setting + "[" + std::to_string(i) + "]";
  if (dir.empty()) return out;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) {
    return make_error("config", "cannot list the allow-list directory" + named(dir, where) + ": " + ec.message(),
                      where.empty() ? dir.string() : where);
  }
  std::vector<fs::path> files;
  for (const auto& entry : it) {
    if (entry.path().extension() == ".pub") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    auto key = read_key_file(f, false);
    if (!key.ok()) return key.error();
    out[*key] = f.stem().string();
  }
  return out;
}

Result<CoordinatorKeys> load_coordinator_keys(const CoordinatorSecurity& s) {
  auto where = [&](const char* key) {
    return s.where.count(key) ? s.where.at(key) : "coordinator." + std::string(key);
  };
  CoordinatorKeys k;
  auto secret = read_key_file(s.secret_key_file, true, where("secret_key_file"));
  if (!secret.ok()) return secret.error();
  auto pub = public_key_of(*secret);
  if (!pub.ok()) return make_error("config", pub.error().message, where("secret_key_file"));
  if (!s.public_key_file.empty()) {
    auto given = read_key_file(s.public_key_file, false, where("public_key_file"));
    if (!given.ok()) return given.error();
    if (*given != *pub) {
      return make_error("config",
                        s.public_key_file.string() + " is not the public half of " + s.secret_key_file.string(),
                        where("public_key_file"));
    }
  }
  k.server = {*pub, *secret};
  auto workers = load_allow_list(s.allowed_workers_dir, s.allowed_worker_keys, "allowed_worker_keys",
                                 where("allowed_workers_dir"));
  if (!workers.ok()) return workers.error();
  k.workers = *workers;
  auto clients = load_allow_list(s.allowed_clients_dir, s.allowed_client_keys, "allowed_client_keys",
                                 where("allowed_clients_dir"));
  if (!clients.ok()) return clients.error();
  k.clients = *clients;
  return k;
}

Result<CurveClientKeys> load_client_keys(const fs::path& secret_key_file, const std::string& server_key_or_file,
                                         const std::string& secret_where, const std::string& server_where) {
  CurveClientKeys k;
  auto secret = read_key_file(secret_key_file, true, secret_where);
  if (!secret.ok()) return secret.error();
  auto pub = public_key_of(*secret);
  if (!pub.ok()) return make_error("config", pub.error().message, secret_where);
  k.own = {*pub, *secret};
  if (is_z85_key(server_key_or_file)) {
    k.server_public_key = server_key_or_file;
  } else {
    auto server = read_key_file(server_key_or_file, false, server_where);
    if (!server.ok()) return server.error();
    k.server_public_key = *server;
  }
  return k;
}

Result<std::optional<CurveClientKeys>> load_worker_keys(const WorkerSecurity& s) {
  if (!s.curve()) return std::optional<CurveClientKeys>();
  auto where = [&](const char* key) { return s.where.count(key) ? s.where.at(key) : "worker." + std::string(key); };
  const bool inline_key = !s.coordinator_public_key.empty();
  auto k = load_client_keys(
      s.secret_key_file, inline_key ? s.coordinator_public_key : s.coordinator_public_key_file.string(),
      where("secret_key_file"), where(inline_key ? "coordinator_public_key" : "coordinator_public_key_file"));
  if (!k.ok()) return k.error();
  if (!s.public_key_file.empty()) {
    auto given = read_key_file(s.public_key_file, false, where("public_key_file"));
    if (!given.ok()) return given.error();
    if (*given != k->own.public_key) {
      return make_error("config",
                        s.public_key_file.string() + " is not the public half of " + s.secret_key_file.string(),
                        where("public_key_file"));
    }
  }
  return std::optional<CurveClientKeys>(*k);
}

std::vector<Error> check_key_files(const Config& config) {
  std::vector<Error> out;
  if (config.coordinator_security.curve()) {
    if (auto k = load_coordinator_keys(config.coordinator_security); !k.ok()) out.push_back(k.error());
  }
  if (config.worker_security.curve()) {
    if (auto k = load_worker_keys(config.worker_security); !k.ok()) out.push_back(k.error());
  }
  return out;
}

void make_curve_server(zmq::socket_t& socket, const CurveKeyPair& server, const std::string& zap_domain) {
  socket.set(zmq::sockopt::curve_server, 1);
  socket.set(zmq::sockopt::curve_secretkey, server.secret_key);
  socket.set(zmq::sockopt::zap_domain, zap_domain);
}

void make_curve_client(zmq::socket_t& socket, const CurveClientKeys& keys) {
  socket.set(zmq::sockopt::curve_serverkey, keys.server_public_key);
  socket.set(zmq::sockopt::curve_publickey, keys.own.public_key);
  socket.set(zmq::sockopt::curve_secretkey, keys.own.secret_key);
}

ZapVerdict zap_verdict(const std::string& domain, const std::string& mechanism, const std::string& client_key,
                       const std::map<std::string, AllowList>& allow_lists) {
  if (mechanism == "NULL") return {true, "", ""};
  if (mechanism != "CURVE") return {false, "", "mechanism " + mechanism + " is not accepted"};
  auto list = allow_lists.find(domain);
  if (list == allow_lists.end()) return {false, "", "no allow-list for domain '" + domain + "'"};
  auto it = list->second.find(client_key);
  if (it == list->second.end()) return {false, "", "key " + client_key + " is not in the allow-list"};
  return {true, it->second, ""};
}

ZapHandler::ZapHandler(zmq::context_t& context, std::map<std::string, AllowList> allow_lists)
    : socket_(context, zmq::socket_type::rep), allow_lists_(std::move(allow_lists)) {}

Result<std::unique_ptr<ZapHandler>> ZapHandler::bind(zmq::context_t& context,
                                                     std::map<std::string, AllowList> allow_lists) {
  auto h = std::unique_ptr<ZapHandler>(new ZapHandler(context, std::move(allow_lists)));
  h->socket_.set(zmq::sockopt::linger, 0);
  try {
    h->socket_.bind(kZapEndpoint);
  } catch (const zmq::error_t& e) {
    return make_error("network", std::string("cannot bind the ZAP handler: ") + e.what(), kZapEndpoint);
  }
  return h;
}

void ZapHandler::serve() {
  for (int i = 0; i < 1000; ++i) {
    std::vector<zmq::message_t> request;
    try {
      if (!zmq::recv_multipart(socket_, std::back_inserter(request), zmq::recv_flags::dontwait)) return;
      answer(request);
    } catch (const zmq::error_t& e) {
      spdlog::error("ZAP handler: {}", e.what());
      return;
    }
  }
}

// Request frames (RFC 27): version, request id, domain, address, identity, mechanism,
// credentials...; for CURVE one credential, the client's 32-byte public key.
void ZapHandler::answer(std::vector<zmq::message_t>& request) {
  ZapVerdict v;
  std::string request_id;
  std::string key, address, domain;
  if (request.size() < 6 || request[0].to_string() != "1.0") {
    v.reason = "malformed ZAP request";
  } else {
    request_id = request[1].to_string();
    domain = request[2].to_string();
    address = request[3].to_string();
    const std::string mechanism = request[5].to_string();
    if (mechanism == "CURVE" && (request.size() != 7 || request[6].size() != 32)) {
      v.reason = "malformed CURVE credentials";
    } else {
      if (mechanism == "CURVE") key = z85_of(static_cast<const unsigned char*>(request[6].data()));
      v = zap_verdict(domain, mechanism, key, allow_lists_);
    }
  }
  if (!v.allowed) {
    const int64_t now = steady_ms();
    if (last_logged_ms_.size() > 10000) last_logged_ms_.clear();  // a flood of keys must not grow it forever
    int64_t& last = last_logged_ms_[key + "@" + address];
    if (last == 0 || now - last >= 60000) {
      spdlog::warn("refused a connection from {} on {}: {}", address.empty() ? "?" : address,
                   domain.empty() ? "?" : domain, v.reason);
      last = now;
    }
  }
  const std::string status = v.allowed ? "200" : "400";
  const std::string text = v.allowed ? "OK" : v.reason;
  std::array<zmq::const_buffer, 6> reply{zmq::str_buffer("1.0"), zmq::buffer(request_id), zmq::buffer(status),
                                         zmq::buffer(text),      zmq::buffer(v.user_id),  zmq::const_buffer()};
  zmq::send_multipart(socket_, reply, zmq::send_flags::dontwait);
}

std::string peer_user_id(zmq::message_t& frame) {
  const char* user = zmq_msg_gets(frame.handle(), "User-Id");
  return user == nullptr ? "" : user;
}

}  // namespace polyphony::protocol
