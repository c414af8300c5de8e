// The Docker Engine API over its unix socket: libcurl for HTTP (loaded at the first call:
// curl_library.h), nlohmann::json for bodies. One curl easy handle per call, so one client can
// serve several threads at once.
#include "worker-agent/docker_client.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "worker-agent/curl_library.h"

namespace polyphony {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kApiBase = "http://localhost/v1.41";
// A live engine answers ordinary calls in well under this; a hung one must not hang us.
constexpr long kDefaultTimeoutMs = 120'000;
constexpr long kConnectTimeoutMs = 10'000;
constexpr long kImportTimeoutMs = 30 * 60'000;
constexpr const char* kUnixScheme = "unix://";
constexpr const char* kPrivateSocket = "/run/polyphony-docker/docker.sock";

// One HTTP exchange with the engine. `what` says what we tried, for error messages.
struct Call {
  std::string method = "GET";
  std::string path{};  // after the API version, with its query: "/containers/json?all=1"
  std::string what{};
  std::string body{};
  std::string content_type = "application/json";
  FILE* upload = nullptr;  // streamed as the body when set
  curl_off_t upload_size = 0;
  long timeout_ms = kDefaultTimeoutMs;  // 0: none
  // Streaming receiver: return false to stop the transfer. Unset: the body is collected.
  std::function<bool(std::string_view)> on_data{};
};

struct Reply {
  long status = 0;
  std::string body;
};

struct Transfer {
  const CurlLibrary* lib = nullptr;
  const Call* call = nullptr;
  CURL* curl = nullptr;
  long status = 0;  // known once the body starts
  std::string body{};
  bool stopped_by_receiver = false;
};

// Streams a successful body to call->on_data; collects everything else (error bodies are
// plain JSON even on streaming endpoints).
size_t write_body(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t n = size * count;
  if (t->status == 0) t->lib->easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &t->status);
  if (t->call->on_data && t->status < 300) {
    if (!t->call->on_data(std::string_view(data, n))) {
      t->stopped_by_receiver = true;
      return 0;  // makes curl abort with CURLE_WRITE_ERROR
    }
  } else {
    t->body.append(data, n);
  }
  return n;
}

std::string url_encode(const std::string& s) {
  std::string out;
  static const char* kHex = "0123456789ABCDEF";
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string socket_path_of(const std::string& docker_host) {
  if (docker_host.rfind(kUnixScheme, 0) == 0) return docker_host.substr(std::strlen(kUnixScheme));
  return docker_host;
}

bool is_unix_host(const std::string& docker_host) {
  return docker_host.find("://") == std::string::npos || docker_host.rfind(kUnixScheme, 0) == 0;
}

Error unsupported_host(const std::string& docker_host, const std::string& where) {
  return make_error("docker_unreachable",
                    "Docker host '" + docker_host +
                        "' is not supported: only unix sockets are supported (unix:///path). "
                        "Point DOCKER_HOST or docker_host at a local socket, or run "
                        "`scripts/ensure-docker.sh`",
                    where);
}

// Why a socket cannot be reached, in terms the person at the terminal can act on.
Error unreachable(const std::string& socket, const std::string& detail) {
  std::string why;
  struct stat st {};
  if (::stat(socket.c_str(), &st) != 0) {
    why = "there is no socket at " + socket;
  } else if (::access(socket.c_str(), R_OK | W_OK) != 0) {
    why = "permission denied on " + socket + " (add your user to the socket's group, e.g. `docker`, or run as root)";
  } else {
    why = "nothing answers on " + socket + " (" + detail + "; a dockerd that died may have left it)";
  }
  return make_error("docker_unreachable",
                    "cannot reach the Docker engine: " + why +
                        ". Start Docker, or run `scripts/ensure-docker.sh` and export the "
                        "DOCKER_HOST it prints",
                    std::string(kUnixScheme) + socket);
}

// The engine's error text from a body like {"message": "..."}; the raw body otherwise.
std::string engine_message(const std::string& body) {
  auto parsed = json::parse(body, nullptr, false);
  if (parsed.is_object() && parsed.contains("message") && parsed["message"].is_string()) {
    return parsed["message"].get<std::string>();
  }
  std::string trimmed = body;
  while (!trimmed.empty() && (trimmed.back() == '\n' || trimmed.back() == '\r')) trimmed.pop_back();
  return trimmed.empty() ? "no details" : trimmed;
}

// The "Labels" object of an image's Config or of a container listing entry.
std::map<std::string, std::string> labels_of(const json& holder) {
  std::map<std::string, std::string> labels;
  if (!holder.is_object() || !holder.contains("Labels") || !holder["Labels"].is_object()) {
    return labels;
  }
  for (const auto& [k, v] : holder["Labels"].items()) {
    if (v.is_string()) labels[k] = v.get<std::string>();
  }
  return labels;
}

struct CurlDeleter {
  const CurlLibrary* lib;
  void operator()(CURL* c) const { lib->easy_cleanup(c); }
};
struct SlistDeleter {
  const CurlLibrary* lib;
  void operator()(curl_slist* l) const { lib->slist_free_all(l); }
};

class EngineClient final : public DockerClient {
 public:
  explicit EngineClient(std::string docker_host) : host_(std::move(docker_host)), socket_(socket_path_of(host_)) {}

  Status ping() override {
    Call c{.method = "GET", .path = "/_ping", .what = "ping the Docker engine"};
    POLY_TRY(expect_ok(c));
    return ok_status();
  }

  Result<EngineVersion> engine_version() override {
    Call c{.method = "GET", .path = "/version", .what = "ask the Docker engine its version"};
    auto r = expect_ok(c);
    if (!r.ok()) return r.error();
    auto j = json_of(*r, c);
    if (!j.ok()) return j.error();
    auto text = [&](const char* key) {
      return j->contains(key) && (*j)[key].is_string() ? (*j)[key].get<std::string>() : std::string();
    };
    return EngineVersion{text("Version"), text("ApiVersion"), text("Os")};
  }

  Result<bool> network_exists(const std::string& name) override {
    Call c{.method = "GET", .path = "/networks/" + url_encode(name), .what = "inspect network '" + name + "'"};
    auto r = expect_ok(c);
    if (r.ok()) return true;
    if (r.error().code == "not_found") return false;
    return r.error();
  }

  Result<bool> image_exists(const std::string& ref) override {
    Call c{.method = "GET", .path = "/images/" + ref + "/json", .what = "inspect image '" + ref + "'"};
    auto r = expect_ok(c);
    if (r.ok()) return true;
    if (r.error().code == "not_found") return false;
    return r.error();
  }

  Result<std::map<std::string, std::string>> image_labels(const std::string& ref) override {
    Call c{.method = "GET", .path = "/images/" + ref + "/json", .what = "inspect image '" + ref + "'"};
    auto r = expect_ok(c);
    if (!r.ok()) return r.error();
    auto j = json_of(*r, c);
    if (!j.ok()) return j.error();
    return labels_of(j->contains("Config") ? (*j)["Config"] : json());
  }

  Result<std::string> create_container(const ContainerSpec& spec) override;
  Status start_container(const std::string& id) override;
  Result<int> container_pid(const std::string& id) override;
  Result<int> wait_container(const std::string& id, std::chrono::milliseconds timeout) override;
  Status stream_logs(const std::string& id, bool follow,
                     const std::function<bool(int, std::string_view)>& on_chunk) override;
  Status stop_container(const std::string& id, int grace_seconds) override;
  Result<int> exec(const std::string& id, const ExecSpec& spec,
                   const std::function<bool(int, std::string_view)>& on_chunk) override;
  Status rename_container(const std::string& id, const std::string& name) override;
  Status remove_container(const std::string& id) override;
  Result<std::vector<ContainerInfo>> list_containers(const std::map<std::string, std::string>& labels) override;
  Status import_image(const fs::path& tarball, const std::string& repo_tag,
                      const std::vector<std::string>& changes) override;
  Status remove_image(const std::string& ref) override;
  std::string endpoint() const override { return std::string(kUnixScheme) + socket_; }

 private:
  Result<Reply> perform(const Call& call);
  void configure(const CurlLibrary& lib, CURL* curl, const Call& call, Transfer& transfer, curl_slist* headers,
                 char* error_buffer) const;
  Error transport_error(CURLcode code, const Call& call, const char* detail) const;
  // perform() plus: any status >= 400 becomes an Error ("not_found" for 404).
  Result<Reply> expect_ok(const Call& call);
  Error engine_error(const Reply& reply, const Call& call) const;
  Result<json> json_of(const Reply& reply, const Call& call) const;

  std::string host_;
  std::string socket_;
};

void EngineClient::configure(const CurlLibrary& lib, CURL* curl, const Call& call, Transfer& transfer,
                             curl_slist* headers, char* error_buffer) const {
  std::string url = kApiBase + call.path;
  lib.easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, socket_.c_str());
  lib.easy_setopt(curl, CURLOPT_URL, url.c_str());  // curl copies strings it is given
  lib.easy_setopt(curl, CURLOPT_CUSTOMREQUEST, call.method.c_str());
  lib.easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);  // required for timeouts in threaded programs
  lib.easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);
  lib.easy_setopt(curl, CURLOPT_WRITEFUNCTION, write_body);
  lib.easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
  lib.easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  lib.easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, kConnectTimeoutMs);
  if (call.timeout_ms > 0) lib.easy_setopt(curl, CURLOPT_TIMEOUT_MS, call.timeout_ms);
  if (call.upload != nullptr) {
    lib.easy_setopt(curl, CURLOPT_POST, 1L);
    lib.easy_setopt(curl, CURLOPT_READDATA, call.upload);  // default read function: fread
    lib.easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, call.upload_size);
  } else if (call.method == "POST" || !call.body.empty()) {
    lib.easy_setopt(curl, CURLOPT_POSTFIELDS, call.body.c_str());
    lib.easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(call.body.size()));
  }
}

Result<Reply> EngineClient::perform(const Call& call) {
  if (!is_unix_host(host_)) return unsupported_host(host_, host_);
  auto loaded = curl_library();
  if (!loaded.ok()) return make_error(loaded.error().code, call.what + ": " + loaded.error().message, endpoint());
  const CurlLibrary& lib = **loaded;
  std::unique_ptr<CURL, CurlDeleter> curl(lib.easy_init(), CurlDeleter{&lib});
  if (!curl) return make_error("docker", call.what + ": could not initialise libcurl", endpoint());
  std::unique_ptr<curl_slist, SlistDeleter> headers(
      lib.slist_append(nullptr, ("Content-Type: " + call.content_type).c_str()), SlistDeleter{&lib});
  // No "Expect: 100-continue" round trip before large uploads.
  headers.reset(lib.slist_append(headers.release(), "Expect:"));
  Transfer transfer{.lib = &lib, .call = &call, .curl = curl.get()};
  char error_buffer[CURL_ERROR_SIZE] = {0};
  configure(lib, curl.get(), call, transfer, headers.get(), error_buffer);
  CURLcode code = lib.easy_perform(curl.get());
  if (code != CURLE_OK && !(code == CURLE_WRITE_ERROR && transfer.stopped_by_receiver)) {
    return transport_error(code, call, error_buffer[0] ? error_buffer : lib.easy_strerror(code));
  }
  Reply reply;
  lib.easy_getinfo(curl.get(), CURLINFO_RESPONSE_CODE, &reply.status);
  reply.body = std::move(transfer.body);
  return reply;
}

Error EngineClient::transport_error(CURLcode code, const Call& call, const char* detail) const {
  switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
      return unreachable(socket_, detail);
    case CURLE_OPERATION_TIMEDOUT:
      return make_error("timeout", call.what + ": no answer within " + std::to_string(call.timeout_ms) + " ms",
                        endpoint());
    default:
      return make_error("docker", call.what + ": " + detail, endpoint());
  }
}

Error EngineClient::engine_error(const Reply& reply, const Call& call) const {
  std::string message = call.what + ": " + engine_message(reply.body);
  if (reply.status == 404) return make_error("not_found", message, endpoint());
  return make_error("docker", message + " (HTTP " + std::to_string(reply.status) + ")", endpoint());
}

Result<Reply> EngineClient::expect_ok(const Call& call) {
  auto r = perform(call);
  if (!r.ok()) return r;
  if (r->status >= 400) return engine_error(*r, call);
  return r;
}

Result<json> EngineClient::json_of(const Reply& reply, const Call& call) const {
  auto parsed = json::parse(reply.body, nullptr, false);
  if (!parsed.is_discarded()) return parsed;
  return make_error("docker",
                    call.what + ": the engine answered with something that is not JSON: " + reply.body.substr(0, 200),
                    endpoint());
}

// ---- containers ----

json host_config_of(const ContainerSpec& spec) {
  json host = json::object();
  json binds = json::array();
  for (const auto& m : spec.mounts) {
    binds.push_back(m.host_path + ":" + m.container_path + (m.read_only ? ":ro" : ""));
  }
  if (!binds.empty()) host["Binds"] = binds;
  if (spec.memory_bytes > 0) host["Memory"] = spec.memory_bytes;
  if (spec.nano_cpus > 0) host["NanoCpus"] = spec.nano_cpus;
  if (!spec.network_mode.empty()) host["NetworkMode"] = spec.network_mode;
  if (spec.drop_all_caps) host["CapDrop"] = json::array({"ALL"});
  if (!spec.cap_add.empty()) host["CapAdd"] = spec.cap_add;
  if (spec.no_new_privileges) host["SecurityOpt"] = json::array({"no-new-privileges"});
  if (spec.pids_limit > 0) host["PidsLimit"] = spec.pids_limit;
  if (spec.read_only_root) host["ReadonlyRootfs"] = true;
  if (!spec.tmpfs.empty()) host["Tmpfs"] = spec.tmpfs;
  if (spec.file_size_limit > 0) {
    host["Ulimits"] =
        json::array({{{"Name", "fsize"}, {"Soft", spec.file_size_limit}, {"Hard", spec.file_size_limit}}});
  }
  return host;
}

json create_body_of(const ContainerSpec& spec) {
  json body = {{"Image", spec.image},
               {"Tty", false},
               {"OpenStdin", false},
               {"Labels", spec.labels},
               {"HostConfig", host_config_of(spec)}};
  if (!spec.cmd.empty()) body["Cmd"] = spec.cmd;
  if (!spec.env.empty()) body["Env"] = spec.env;
  if (!spec.user.empty()) body["User"] = spec.user;
  if (!spec.working_dir.empty()) body["WorkingDir"] = spec.working_dir;
  // No network: the container still gets a namespace of its own (loopback only), but the engine
  // runs no network hook (a re-exec of dockerd per start, the larger part of a start's cost) and
  // leaves /etc/hosts as the container has it (the caller mounts one).
  if (spec.network_mode == "none") body["NetworkDisabled"] = true;
  return body;
}

Result<std::string> EngineClient::create_container(const ContainerSpec& spec) {
  Call c{.method = "POST",
         .path = "/containers/create" + (spec.name.empty() ? "" : "?name=" + url_encode(spec.name)),
         .what = "create a container from image '" + spec.image + "'",
         .body = create_body_of(spec).dump()};
  auto r = expect_ok(c);
  if (!r.ok()) {
    // A 404 is the image only when the engine says so: a missing network is a 404 too.
    if (r.error().code != "not_found" || !names_missing_image(r.error().message)) return r.error();
    Error e = r.error();
    e.message += ". Build the worker image with `polyphony image build`";
    return e;
  }
  auto j = json_of(*r, c);
  if (!j.ok()) return j.error();
  if (!j->contains("Id") || !(*j)["Id"].is_string()) {
    return make_error("docker", c.what + ": the engine's answer has no container Id", endpoint());
  }
  return (*j)["Id"].get<std::string>();
}

Status EngineClient::start_container(const std::string& id) {
  Call c{.method = "POST", .path = "/containers/" + id + "/start", .what = "start container " + id};
  POLY_TRY(expect_ok(c));  // 304: already started, fine
  return ok_status();
}

Result<int> EngineClient::container_pid(const std::string& id) {
  Call c{.method = "GET", .path = "/containers/" + id + "/json", .what = "inspect container " + id};
  auto r = expect_ok(c);
  if (!r.ok()) return r.error();
  auto j = json_of(*r, c);
  if (!j.ok()) return j.error();
  const json& state = j->contains("State") && (*j)["State"].is_object() ? (*j)["State"] : json::object();
  if (!state.contains("Pid") || !state["Pid"].is_number_integer()) {
    return make_error("docker", c.what + ": the engine's answer has no State.Pid", endpoint());
  }
  return state["Pid"].get<int>();
}

Result<int> EngineClient::wait_container(const std::string& id, std::chrono::milliseconds timeout) {
  Call c{.method = "POST",
         .path = "/containers/" + id + "/wait",
         .what = "wait for container " + id,
         .timeout_ms = static_cast<long>(std::max<int64_t>(timeout.count(), 0))};
  auto r = expect_ok(c);
  if (!r.ok()) {
    if (r.error().code != "timeout") return r.error();
    return make_error("timeout",
                      "container " + id + " is still running after " + std::to_string(timeout.count()) + " ms",
                      endpoint());
  }
  auto j = json_of(*r, c);
  if (!j.ok()) return j.error();
  const json& answer = *j;
  if (answer.contains("Error") && answer["Error"].is_object()) {
    return make_error("docker", c.what + ": " + answer["Error"].value("Message", "unknown error"), endpoint());
  }
  if (!answer.contains("StatusCode") || !answer["StatusCode"].is_number_integer()) {
    return make_error("docker", c.what + ": the engine's answer has no StatusCode", endpoint());
  }
  return answer["StatusCode"].get<int>();
}

// Splits the engine's multiplexed log stream: each frame is an 8-byte header
// (stream, 0, 0, 0, big-endian size) then the payload. Frames may arrive split anywhere.
class LogDemuxer {
 public:
  explicit LogDemuxer(const std::function<bool(int, std::string_view)>& on_chunk) : on_chunk_(on_chunk) {}

  bool feed(std::string_view data) {
    while (!data.empty()) {
      if (remaining_ == 0) {
        size_t take = std::min(data.size(), sizeof(header_) - have_);
        std::memcpy(header_ + have_, data.data(), take);
        have_ += take;
        data.remove_prefix(take);
        if (have_ == sizeof(header_)) start_frame();
        continue;
      }
      size_t take = std::min<size_t>(data.size(), remaining_);
      remaining_ -= take;
      if (!on_chunk_(stream_, data.substr(0, take))) return false;
      data.remove_prefix(take);
    }
    return true;
  }

 private:
  void start_frame() {
    stream_ = header_[0];
    remaining_ = (uint32_t{header_[4]} << 24) | (uint32_t{header_[5]} << 16) | (uint32_t{header_[6]} << 8) |
                 uint32_t{header_[7]};
    have_ = 0;
  }

  const std::function<bool(int, std::string_view)>& on_chunk_;
  unsigned char header_[8] = {0};
  size_t have_ = 0;
  uint32_t remaining_ = 0;
  int stream_ = 1;
};

Status EngineClient::stream_logs(const std::string& id, bool follow,
                                 const std::function<bool(int, std::string_view)>& on_chunk) {
  // Our containers never have a TTY, so the stream is always multiplexed.
  LogDemuxer demux(on_chunk);
  Call c{.method = "GET",
         .path = "/containers/" + id + "/logs?stdout=1&stderr=1" + (follow ? "&follow=1" : ""),
         .what = "read the logs of container " + id,
         .timeout_ms = follow ? 0 : kDefaultTimeoutMs,
         .on_data = [&demux](std::string_view data) { return demux.feed(data); }};
  POLY_TRY(expect_ok(c));
  return ok_status();
}

Status EngineClient::stop_container(const std::string& id, int grace_seconds) {
  Call c{.method = "POST",
         .path = "/containers/" + id + "/stop?t=" + std::to_string(grace_seconds),
         .what = "stop container " + id,
         .timeout_ms = (grace_seconds + 60) * 1000L};
  POLY_TRY(expect_ok(c));  // 304: already stopped, fine
  return ok_status();
}

Result<int> EngineClient::exec(const std::string& id, const ExecSpec& spec,
                               const std::function<bool(int, std::string_view)>& on_chunk) {
  json body = {
      {"Cmd", spec.cmd}, {"AttachStdout", true}, {"AttachStderr", true}, {"AttachStdin", false}, {"Tty", false}};
  if (!spec.env.empty()) body["Env"] = spec.env;
  if (!spec.user.empty()) body["User"] = spec.user;
  if (!spec.working_dir.empty()) body["WorkingDir"] = spec.working_dir;
  const std::string program = spec.cmd.empty() ? std::string("(nothing)") : spec.cmd.front();
  Call create{.method = "POST",
              .path = "/containers/" + id + "/exec",
              .what = "run " + program + " in container " + id,
              .body = body.dump()};
  auto created = expect_ok(create);
  if (!created.ok()) return created.error();
  auto j = json_of(*created, create);
  if (!j.ok()) return j.error();
  if (!j->contains("Id") || !(*j)["Id"].is_string()) {
    return make_error("docker", create.what + ": the engine's answer has no exec Id", endpoint());
  }
  const std::string exec_id = (*j)["Id"].get<std::string>();
  // Without a TTY the engine multiplexes stdout and stderr as it does for logs.
  LogDemuxer demux(on_chunk);
  Call start{.method = "POST",
             .path = "/exec/" + exec_id + "/start",
             .what = create.what,
             .body = json{{"Detach", false}, {"Tty", false}}.dump(),
             .timeout_ms = 0,
             .on_data = [&demux](std::string_view data) { return demux.feed(data); }};
  POLY_TRY(expect_ok(start));
  // The stream ends when the process does; the engine may record its exit a moment later.
  Call inspect{.method = "GET", .path = "/exec/" + exec_id + "/json", .what = create.what};
  for (int tries = 0;; ++tries) {
    auto r = expect_ok(inspect);
    if (!r.ok()) return r.error();
    auto state = json_of(*r, inspect);
    if (!state.ok()) return state.error();
    const bool running = state->value("Running", false);
    if (!running && state->contains("ExitCode") && (*state)["ExitCode"].is_number_integer()) {
      return (*state)["ExitCode"].get<int>();
    }
    if (tries >= 110) {
      return make_error("docker",
                        create.what + ": the engine recorded no exit code" +
                            std::string(running ? " (still running after its output ended)" : ""),
                        endpoint());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(tries < 10 ? 2 : 20));
  }
}

Status EngineClient::rename_container(const std::string& id, const std::string& name) {
  Call c{.method = "POST",
         .path = "/containers/" + id + "/rename?name=" + url_encode(name),
         .what = "rename container " + id + " to " + name};
  POLY_TRY(expect_ok(c));
  return ok_status();
}

Status EngineClient::remove_container(const std::string& id) {
  Call c{.method = "DELETE", .path = "/containers/" + id + "?force=1&v=1", .what = "remove container " + id};
  auto r = perform(c);
  if (!r.ok()) return r.error();
  if (r->status == 404) return ok_status();
  // 409 "removal ... is already in progress": someone else is removing it for us.
  if (r->status == 409 && engine_message(r->body).find("already in progress") != std::string::npos) {
    return ok_status();
  }
  if (r->status >= 400) return engine_error(*r, c);
  return ok_status();
}

std::string label_filters(const std::map<std::string, std::string>& labels) {
  json wanted = json::array();
  for (const auto& [k, v] : labels) wanted.push_back(v.empty() ? k : k + "=" + v);
  return json{{"label", wanted}}.dump();
}

ContainerInfo container_info_of(const json& j) {
  ContainerInfo info;
  info.id = j.value("Id", "");
  info.image = j.value("Image", "");
  info.state = j.value("State", "");
  if (j.contains("Names") && j["Names"].is_array() && !j["Names"].empty()) {
    info.name = j["Names"][0].get<std::string>();
    if (!info.name.empty() && info.name[0] == '/') info.name.erase(0, 1);
  }
  info.labels = labels_of(j);
  return info;
}

Result<std::vector<ContainerInfo>> EngineClient::list_containers(const std::map<std::string, std::string>& labels) {
  std::string path = "/containers/json?all=1";
  if (!labels.empty()) path += "&filters=" + url_encode(label_filters(labels));
  Call c{.method = "GET", .path = path, .what = "list containers"};
  auto r = expect_ok(c);
  if (!r.ok()) return r.error();
  auto j = json_of(*r, c);
  if (!j.ok()) return j.error();
  std::vector<ContainerInfo> out;
  for (const auto& item : *j) out.push_back(container_info_of(item));
  return out;
}

// ---- images ----

// "repo:tag" -> {repo, tag}; the tag defaults to "latest". A ':' before the last '/' is a
// registry port, not a tag.
std::pair<std::string, std::string> split_repo_tag(const std::string& repo_tag) {
  auto colon = repo_tag.rfind(':');
  auto slash = repo_tag.rfind('/');
  if (colon == std::string::npos || (slash != std::string::npos && colon < slash)) {
    return {repo_tag, "latest"};
  }
  return {repo_tag.substr(0, colon), repo_tag.substr(colon + 1)};
}

// The engine answers an import with a stream of JSON progress lines; a failure is a line
// carrying "error", sent with status 200 because the stream had already begun.
std::string import_stream_error(const std::string& body) {
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find('\n', pos);
    if (end == std::string::npos) end = body.size();
    auto line = json::parse(body.substr(pos, end - pos), nullptr, false);
    pos = end + 1;
    if (line.is_object() && line.contains("error")) {
      return line["error"].is_string() ? line["error"].get<std::string>() : line["error"].dump();
    }
  }
  return {};
}

Status EngineClient::import_image(const fs::path& tarball, const std::string& repo_tag,
                                  const std::vector<std::string>& changes) {
  std::string what = "import " + tarball.string() + " as image '" + repo_tag + "'";
  std::error_code ec;
  auto size = fs::file_size(tarball, ec);
  std::unique_ptr<FILE, int (*)(FILE*)> file(ec ? nullptr : std::fopen(tarball.c_str(), "rb"), &std::fclose);
  if (!file) {
    return make_error("io",
                      what + ": cannot read the tarball: " + (ec ? ec.message() : std::string(std::strerror(errno))),
                      tarball.string());
  }
  auto [repo, tag] = split_repo_tag(repo_tag);
  std::string path = "/images/create?fromSrc=-&repo=" + url_encode(repo) + "&tag=" + url_encode(tag);
  for (const auto& change : changes) path += "&changes=" + url_encode(change);
  Call c{.method = "POST",
         .path = path,
         .what = what,
         .content_type = "application/x-tar",
         .upload = file.get(),
         .upload_size = static_cast<curl_off_t>(size),
         .timeout_ms = kImportTimeoutMs};
  auto r = expect_ok(c);
  if (!r.ok()) return r.error();
  std::string failure = import_stream_error(r->body);
  if (!failure.empty()) return make_error("docker", what + ": " + failure, endpoint());
  return ok_status();
}

Status EngineClient::remove_image(const std::string& ref) {
  Call c{.method = "DELETE", .path = "/images/" + ref, .what = "remove image '" + ref + "'"};
  auto r = perform(c);
  if (!r.ok()) return r.error();
  if (r->status == 404) return ok_status();
  if (r->status >= 400) return engine_error(*r, c);
  return ok_status();
}

bool socket_exists(const std::string& path) {
  std::error_code ec;
  return fs::is_socket(path, ec);
}

std::string home_dir() {
  const char* home = std::getenv("HOME");
  return home != nullptr ? home : "";
}

// A DOCKER_HOST-style value that names a socket explicitly: it must exist, no fallback.
Result<std::string> explicit_host(const std::string& value, const std::string& source) {
  if (!is_unix_host(value)) return unsupported_host(value, source);
  std::string socket = socket_path_of(value);
  if (socket_exists(socket)) return std::string(kUnixScheme) + socket;
  return make_error("docker_unreachable",
                    "there is no Docker socket at " + socket + " (from " + source + "). Start Docker, fix " + source +
                        ", or run `scripts/ensure-docker.sh` and export the DOCKER_HOST it prints",
                    source);
}

}  // namespace

Result<std::string> resolve_docker_host(const std::string& configured) {
  if (!configured.empty()) return explicit_host(configured, "docker_host in the config");
  const char* env = std::getenv("DOCKER_HOST");
  if (env != nullptr && *env != '\0') return explicit_host(env, "DOCKER_HOST");
  std::vector<std::string> candidates{"/var/run/docker.sock"};
  if (!home_dir().empty()) candidates.push_back(home_dir() + "/.orbstack/run/docker.sock");
  candidates.push_back(kPrivateSocket);
  std::string looked;
  for (const auto& path : candidates) {
    if (socket_exists(path)) return std::string(kUnixScheme) + path;
    looked += (looked.empty() ? "" : ", ") + path;
  }
  return make_error("docker_unreachable", "no Docker socket found (looked at $DOCKER_HOST, " + looked +
                                              "). Start Docker, or run `scripts/ensure-docker.sh` and export the "
                                              "DOCKER_HOST it prints");
}

bool names_missing_image(const std::string& engine_text) {
  std::string lower;
  for (char c : engine_text) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower.find("no such image") != std::string::npos;
}

std::unique_ptr<DockerClient> make_docker_client(const std::string& docker_host) {
  return std::make_unique<EngineClient>(docker_host);
}

}  // namespace polyphony
