// The Docker Engine API, spoken over its unix socket with libcurl (API version 1.41).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace polyphony {

struct BindMount {
  std::string host_path;
  std::string container_path;
  bool read_only = false;
};

struct ContainerSpec {
  std::string name;  // optional container name
  std::string image;
  std::vector<std::string> cmd;  // argv, never a shell string
  std::vector<std::string> env;  // "KEY=VALUE"
  std::string user;              // "1000:1000"
  std::string working_dir;
  std::map<std::string, std::string> labels;  // always carries polyphony.task=<id>
  std::vector<BindMount> mounts;
  int64_t memory_bytes = 0;  // 0: no limit
  int64_t nano_cpus = 0;     // 0: no limit
  std::string network_mode;  // "" : engine default
  // Hardening (HostConfig): CapDrop ALL, then cap_add back; SecurityOpt no-new-privileges;
  // PidsLimit; ReadonlyRootfs with tmpfs mounts; the fsize ulimit of every process in it.
  bool drop_all_caps = false;
  std::vector<std::string> cap_add;
  bool no_new_privileges = false;
  int64_t pids_limit = 0;  // 0: none
  bool read_only_root = false;
  std::map<std::string, std::string> tmpfs;  // container path -> mount options
  int64_t file_size_limit = 0;               // bytes, RLIMIT_FSIZE; 0: none
};

// A process to run in a running container (docker exec).
struct ExecSpec {
  std::vector<std::string> cmd;  // argv, never a shell string
  std::vector<std::string> env;  // "KEY=VALUE", added to the container's
  std::string user;              // "1000:1000"; "" : the container's user
  std::string working_dir;       // "" : the container's
};

// What GET /version says about the engine.
struct EngineVersion {
  std::string version;      // "24.0.7"
  std::string api_version;  // "1.43"
  std::string os;           // "linux"
};

struct ContainerInfo {
  std::string id;
  std::string name;
  std::string image;
  std::string state;  // "created", "running", "exited", ...
  std::map<std::string, std::string> labels;
};

// Every call can fail with code "docker" (engine answered with an error; message
// carries the engine's own text), "docker_unreachable" (no engine on the socket),
// or "not_found" (no such container/image). create_container's "not_found" carries the
// engine's text too: the image, or another thing the spec names (a network), is missing.
class DockerClient {
 public:
  virtual ~DockerClient() = default;

  // GET /_ping.
  virtual Status ping() = 0;
  // GET /version.
  virtual Result<EngineVersion> engine_version() = 0;
  // GET /networks/{name}: true when the engine has a network of that name (or id).
  virtual Result<bool> network_exists(const std::string& name) = 0;
  // GET /images/{ref}/json: true when present.
  virtual Result<bool> image_exists(const std::string& ref) = 0;
  // GET /images/{ref}/json: the image's labels (Config.Labels). Error "not_found" when absent.
  virtual Result<std::map<std::string, std::string>> image_labels(const std::string& ref) = 0;
  // POST /containers/create; returns the container id.
  virtual Result<std::string> create_container(const ContainerSpec& spec) = 0;
  virtual Status start_container(const std::string& id) = 0;
  // GET /containers/{id}/json: the host's pid of the container's PID 1 (State.Pid); 0 when it is
  // not running.
  virtual Result<int> container_pid(const std::string& id) = 0;
  // POST /containers/{id}/wait; returns the exit code. Error code "timeout" when the
  // container is still running after `timeout` (it is left running).
  virtual Result<int> wait_container(const std::string& id, std::chrono::milliseconds timeout) = 0;
  // GET /containers/{id}/logs, demultiplexed. on_chunk(stream, data): stream 1 stdout, 2 stderr.
  // With follow it returns when the container has stopped (or on_chunk returned false).
  virtual Status stream_logs(const std::string& id, bool follow,
                             const std::function<bool(int, std::string_view)>& on_chunk) = 0;
  virtual Status stop_container(const std::string& id, int grace_seconds) = 0;
  // POST /containers/{id}/exec, then POST /exec/{exec}/start attached: runs `spec` in the running
  // container, hands its output to on_chunk (stream 1 stdout, 2 stderr; demultiplexed) until it
  // ends, and returns its exit code (GET /exec/{exec}/json). When the container is stopped
  // meanwhile the stream ends and the code is what the engine recorded (137 after a kill), or
  // error "docker" when it recorded none. Error "not_found" when the container is gone, "docker"
  // when it is not running or cannot start the program (the engine's text says why).
  virtual Result<int> exec(const std::string& id, const ExecSpec& spec,
                           const std::function<bool(int, std::string_view)>& on_chunk) = 0;
  // POST /containers/{id}/rename?name=...
  virtual Status rename_container(const std::string& id, const std::string& name) = 0;
  // DELETE /containers/{id}?force=1&v=1. Removing an absent container is not an error.
  virtual Status remove_container(const std::string& id) = 0;
  // GET /containers/json?all=1 filtered by every given label (value "" matches any value).
  virtual Result<std::vector<ContainerInfo>> list_containers(const std::map<std::string, std::string>& labels) = 0;
  // POST /images/create?fromSrc=- with a rootfs tarball (docker import), tagging it repo_tag,
  // applying Dockerfile `changes` ("USER agent", "WORKDIR /workspace", "LABEL k=v", ...).
  virtual Status import_image(const std::filesystem::path& tarball, const std::string& repo_tag,
                              const std::vector<std::string>& changes) = 0;
  // DELETE /images/{ref}. Used by tests and `image build --force`. Removing an absent image is
  // not an error.
  virtual Status remove_image(const std::string& ref) = 0;
  // The socket path this client talks to.
  virtual std::string endpoint() const = 0;
};

// Which socket to use: `configured` (config.yaml docker_host) when set, else $DOCKER_HOST
// (unix:// only), else /var/run/docker.sock, else OrbStack's ~/.orbstack/run/docker.sock,
// else the project's private dockerd socket /run/polyphony-docker/docker.sock.
// Returns the first that exists (as "unix:///path"), or Error "docker_unreachable" listing
// every place it looked. An explicit choice (`configured` or $DOCKER_HOST) is never passed
// over: when its socket is missing that is the error; a tcp:// host is an error too.
Result<std::string> resolve_docker_host(const std::string& configured);

// True when an engine error's text says an image is missing ("No such image: x"), as opposed
// to another thing a container spec names (the engine's "network x not found" is a 404 too).
bool names_missing_image(const std::string& engine_text);

// A client for `docker_host` ("unix:///path" or a plain path).
std::unique_ptr<DockerClient> make_docker_client(const std::string& docker_host);

}  // namespace polyphony
