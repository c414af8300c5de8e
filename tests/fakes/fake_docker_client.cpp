// The in-memory engine and its fake runner.
#include "fakes/fake_docker_client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "worker-agent/runner_channel.h"

namespace polyphony::testing {

namespace {

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool read_exact(int fd, char* buf, size_t size) {
  while (size > 0) {
    const ssize_t n = ::read(fd, buf, size);
    if (n <= 0) return false;
    buf += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

bool send_output(int fd, char type, const std::string& data) {
  constexpr size_t kChunk = 64 * 1024;
  for (size_t at = 0; at < data.size(); at += kChunk) {
    if (!send_all(fd, runner::frame(type, std::string_view(data).substr(at, kChunk)))) return false;
  }
  return true;
}

bool is_runner_container(const ContainerSpec& spec) {
  return !spec.cmd.empty() && spec.cmd.front() == kRunnerInContainer;
}

}  // namespace

FakeDockerClient::FakeDockerClient() = default;

FakeDockerClient::~FakeDockerClient() {
  std::map<std::string, std::shared_ptr<Container>> all;
  {
    std::lock_guard lock(mutex_);
    for (auto& [id, c] : containers_) stop_locked(*c);
    all.swap(containers_);
  }
  for (auto& [id, c] : all) {
    if (c->runner.joinable()) c->runner.join();
    if (c->runner_fd >= 0) ::close(c->runner_fd);
  }
}

void FakeDockerClient::fail_next(const std::string& method, Error error) {
  std::lock_guard lock(mutex_);
  failures_[method].push_back(std::move(error));
}

std::vector<FakeDockerClient::Call> FakeDockerClient::calls() const {
  std::lock_guard lock(mutex_);
  return calls_;
}

std::vector<FakeDockerClient::Call> FakeDockerClient::calls_of(const std::string& method) const {
  std::vector<Call> out;
  for (auto& c : calls()) {
    if (c.method == method) out.push_back(c);
  }
  return out;
}

std::vector<ContainerSpec> FakeDockerClient::created() const {
  std::lock_guard lock(mutex_);
  return created_;
}

std::vector<runner::RunRequest> FakeDockerClient::runs() const {
  std::lock_guard lock(mutex_);
  return runs_;
}

std::vector<std::string> FakeDockerClient::live() const {
  std::lock_guard lock(mutex_);
  std::vector<std::string> ids;
  for (const auto& [id, c] : containers_) ids.push_back(id);
  return ids;
}

std::optional<Error> FakeDockerClient::enter(const std::string& method, const std::string& target,
                                             const std::string& detail) {
  std::lock_guard lock(mutex_);
  calls_.push_back({method, target, detail});
  auto it = failures_.find(method);
  if (it == failures_.end() || it->second.empty()) return std::nullopt;
  Error e = std::move(it->second.front());
  it->second.pop_front();
  return e;
}

Status FakeDockerClient::ping() {
  if (auto e = enter("ping", "")) return *e;
  return ok_status();
}

Result<EngineVersion> FakeDockerClient::engine_version() {
  if (auto e = enter("engine_version", "")) return *e;
  return EngineVersion{"24.0.0-fake", "1.43", "linux"};
}

Result<bool> FakeDockerClient::network_exists(const std::string& name) {
  if (auto e = enter("network_exists", name)) return *e;
  return true;
}

Result<bool> FakeDockerClient::image_exists(const std::string& ref) {
  if (auto e = enter("image_exists", ref)) return *e;
  return true;
}

Result<std::map<std::string, std::string>> FakeDockerClient::image_labels(const std::string& ref) {
  if (auto e = enter("image_labels", ref)) return *e;
  return std::map<std::string, std::string>{};
}

Result<std::string> FakeDockerClient::create_container(const ContainerSpec& spec) {
  auto failure = enter("create_container", spec.name);
  std::lock_guard lock(mutex_);
  created_.push_back(spec);
  if (failure) return *failure;
  char id[32];
  std::snprintf(id, sizeof id, "fakecontainer%04d", next_id_++);
  auto c = std::make_shared<Container>();
  c->spec = spec;
  c->name = spec.name;
  containers_[id] = c;
  return std::string(id);
}

Status FakeDockerClient::start_container(const std::string& id) {
  if (auto e = enter("start_container", id)) return *e;
  std::shared_ptr<Container> c;
  {
    std::lock_guard lock(mutex_);
    auto it = containers_.find(id);
    if (it == containers_.end()) return make_error("not_found", "No such container: " + id);
    c = it->second;
    c->state = "running";
  }
  if (is_runner_container(c->spec)) return start_runner(id, *c);
  ContainerReply reply = on_container ? on_container(c->spec) : ContainerReply{};
  std::lock_guard lock(mutex_);
  c->reply = reply;
  if (!reply.until_stopped && c->state == "running") c->state = "exited";
  changed_.notify_all();
  return ok_status();
}

// The runner connects to the socket in the directory mounted at /polyphony, as a real one does
// from inside the container.
Status FakeDockerClient::start_runner(const std::string& id, Container& c) {
  std::string meta;
  for (const auto& m : c.spec.mounts) {
    if (m.container_path == "/polyphony") meta = m.host_path;
  }
  const std::string path = meta + "/" + kRunnerSocketName;
  sockaddr_un addr{};
  if (meta.empty() || path.size() >= sizeof addr.sun_path) {
    return make_error("docker", "fake runner: no usable /polyphony mount (" + path + ")");
  }
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    const std::string why = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    return make_error("docker", "fake runner cannot connect to " + path + ": " + why);
  }
  std::lock_guard lock(mutex_);
  c.runner_fd = fd;
  c.runner = std::thread([this, fd, id] {
    serve(fd);
    // The runner is gone: so is its container.
    std::lock_guard done(mutex_);
    auto it = containers_.find(id);
    if (it != containers_.end()) it->second->state = "exited";
    changed_.notify_all();
  });
  return ok_status();
}

void FakeDockerClient::serve(int fd) {
  if (!send_all(fd, runner::frame('H', runner::kHello))) return;
  while (true) {
    char header[runner::kHeader];
    if (!read_exact(fd, header, sizeof header) || header[0] != 'R') return;
    std::string payload(runner::frame_length(header), '\0');
    if (!read_exact(fd, payload.data(), payload.size())) return;
    auto request = runner::unpack_request(payload);
    if (!request) return;
    {
      std::lock_guard lock(mutex_);
      runs_.push_back(*request);
    }
    const ProcessReply reply = on_run ? on_run(*request) : ProcessReply{};
    if (!send_output(fd, 'O', reply.out) || !send_output(fd, 'E', reply.err)) return;
    if (reply.until_stopped) {
      char byte;
      while (::read(fd, &byte, 1) > 0) {
      }
      return;
    }
    if (!send_all(fd, runner::frame('X', std::to_string(reply.status)))) return;
  }
}

void FakeDockerClient::stop_locked(Container& c) {
  c.state = "exited";
  if (c.runner_fd >= 0) ::shutdown(c.runner_fd, SHUT_RDWR);
  changed_.notify_all();
}

Result<int> FakeDockerClient::container_pid(const std::string& id) {
  if (auto e = enter("container_pid", id)) return *e;
  std::lock_guard lock(mutex_);
  auto it = containers_.find(id);
  if (it == containers_.end()) return make_error("not_found", "No such container: " + id);
  // The fake runner is a thread of this process: its peer credentials carry this pid.
  return it->second->state == "running" ? static_cast<int>(::getpid()) : 0;
}

Result<int> FakeDockerClient::wait_container(const std::string& id, std::chrono::milliseconds timeout) {
  if (auto e = enter("wait_container", id)) return *e;
  std::unique_lock lock(mutex_);
  auto it = containers_.find(id);
  if (it == containers_.end()) return make_error("not_found", "No such container: " + id);
  auto c = it->second;
  if (!changed_.wait_for(lock, timeout, [&] { return c->state != "running"; })) {
    return make_error("timeout", "container " + id + " is still running");
  }
  return c->reply.until_stopped || is_runner_container(c->spec) ? 137 : c->reply.exit_code;
}

Status FakeDockerClient::stream_logs(const std::string& id, bool follow,
                                     const std::function<bool(int, std::string_view)>& on_chunk) {
  if (auto e = enter("stream_logs", id)) return *e;
  std::unique_lock lock(mutex_);
  auto it = containers_.find(id);
  if (it == containers_.end()) return make_error("not_found", "No such container: " + id);
  auto c = it->second;
  const std::string logs = c->reply.logs;
  lock.unlock();
  if (!logs.empty() && !on_chunk(1, logs)) return ok_status();
  lock.lock();
  if (follow) changed_.wait(lock, [&] { return c->state != "running"; });
  return ok_status();
}

Status FakeDockerClient::stop_container(const std::string& id, int /*grace_seconds*/) {
  if (auto e = enter("stop_container", id)) return *e;
  std::lock_guard lock(mutex_);
  auto it = containers_.find(id);
  if (it == containers_.end()) return make_error("not_found", "No such container: " + id);
  stop_locked(*it->second);
  return ok_status();
}

Result<int> FakeDockerClient::exec(const std::string& id, const ExecSpec& spec,
                                   const std::function<bool(int, std::string_view)>& on_chunk) {
  if (auto e = enter("exec", id)) return *e;
  {
    std::lock_guard lock(mutex_);
    auto it = containers_.find(id);
    if (it == containers_.end()) return make_error("not_found", "No such container: " + id);
    if (it->second->state != "running") return make_error("docker", "container " + id + " is not running");
    runs_.push_back({spec.working_dir, spec.cmd, spec.env});
  }
  const ProcessReply reply = on_run ? on_run({spec.working_dir, spec.cmd, spec.env}) : ProcessReply{};
  if (!reply.out.empty()) on_chunk(1, reply.out);
  if (!reply.err.empty()) on_chunk(2, reply.err);
  return reply.status;
}

Status FakeDockerClient::rename_container(const std::string& id, const std::string& name) {
  if (auto e = enter("rename_container", id, name)) return *e;
  std::lock_guard lock(mutex_);
  auto it = containers_.find(id);
  if (it == containers_.end()) return make_error("not_found", "No such container: " + id);
  it->second->name = name;
  return ok_status();
}

Status FakeDockerClient::remove_container(const std::string& id) {
  if (auto e = enter("remove_container", id)) return *e;
  std::shared_ptr<Container> gone;
  {
    std::lock_guard lock(mutex_);
    auto it = containers_.find(id);
    if (it == containers_.end()) return ok_status();
    gone = it->second;
    stop_locked(*gone);
    containers_.erase(it);
  }
  if (gone->runner.joinable()) gone->runner.join();
  if (gone->runner_fd >= 0) ::close(gone->runner_fd);
  return ok_status();
}

Result<std::vector<ContainerInfo>> FakeDockerClient::list_containers(const std::map<std::string, std::string>& labels) {
  if (auto e = enter("list_containers", "")) return *e;
  std::lock_guard lock(mutex_);
  std::vector<ContainerInfo> out;
  for (const auto& [id, c] : containers_) {
    bool match = true;
    for (const auto& [k, v] : labels) {
      auto l = c->spec.labels.find(k);
      if (l == c->spec.labels.end() || (!v.empty() && l->second != v)) match = false;
    }
    if (match) out.push_back({id, c->name, c->spec.image, c->state, c->spec.labels});
  }
  return out;
}

Status FakeDockerClient::import_image(const std::filesystem::path& /*tarball*/, const std::string& repo_tag,
                                      const std::vector<std::string>& /*changes*/) {
  if (auto e = enter("import_image", repo_tag)) return *e;
  return ok_status();
}

Status FakeDockerClient::remove_image(const std::string& ref) {
  if (auto e = enter("remove_image", ref)) return *e;
  return ok_status();
}

}  // namespace polyphony::testing
