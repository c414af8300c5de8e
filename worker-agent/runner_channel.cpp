// The worker's end of polyphony-runner.
#include "worker-agent/runner_channel.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "runner/wire.h"

namespace polyphony {

namespace fs = std::filesystem;

namespace {

// A runner's frames are output chunks (64 KiB), a status or its hello: anything bigger is wrong.
constexpr uint32_t kMaxRunnerFrame = 1u << 20;

bool send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::string short_id(const std::string& id) {
  return id.substr(0, 12);
}

}  // namespace

RunnerChannel::RunnerChannel(int fd, std::string container) : fd_(fd), container_(std::move(container)) {}

RunnerChannel::~RunnerChannel() {
  ::close(fd_);
}

void RunnerChannel::hang_up() {
  hung_up_ = true;
  ::shutdown(fd_, SHUT_RDWR);
}

Result<char> RunnerChannel::read_frame(std::string& payload) {
  char buf[64 * 1024];
  while (true) {
    if (buffered_.size() >= runner::kHeader) {
      const uint32_t len = runner::frame_length(buffered_.data());
      if (len > kMaxRunnerFrame) {
        return make_error("runner", "the runner sent a frame of " + std::to_string(len) + " bytes",
                          "container " + short_id(container_));
      }
      if (buffered_.size() >= runner::kHeader + len) {
        const char type = buffered_[0];
        payload.assign(buffered_, runner::kHeader, len);
        buffered_.erase(0, runner::kHeader + len);
        return type;
      }
    }
    const ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n > 0) {
      buffered_.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return make_error("runner",
                      hung_up_ ? std::string("the run was stopped")
                               : "the runner is gone (the container stopped)" +
                                     (n < 0 ? std::string(": ") + std::strerror(errno) : std::string()),
                      "container " + short_id(container_));
  }
}

Result<int> RunnerChannel::run(const ExecSpec& spec, const std::function<bool(int, std::string_view)>& on_chunk) {
  if (hung_up_) return make_error("runner", "the run was stopped", "container " + short_id(container_));
  if (spec.cmd.empty()) return make_error("usage", "nothing to run", "container " + short_id(container_));
  const std::string request = runner::frame('R', runner::pack_request({spec.working_dir, spec.cmd, spec.env}));
  if (request.size() > runner::kHeader + runner::kMaxFrame) {
    return make_error("usage", "the command and its environment exceed " + std::to_string(runner::kMaxFrame) + " bytes",
                      "container " + short_id(container_));
  }
  if (!send_all(fd_, request)) {
    return make_error("runner", std::string("the runner is gone (the container stopped): ") + std::strerror(errno),
                      "container " + short_id(container_));
  }
  std::string payload;
  bool listening = true;
  while (true) {
    auto type = read_frame(payload);
    if (!type.ok()) return type.error();
    switch (*type) {
      case 'O':
      case 'E':
        if (listening) listening = on_chunk(*type == 'O' ? 1 : 2, payload);
        break;
      case 'X': {
        char* end = nullptr;
        const long status = std::strtol(payload.c_str(), &end, 10);
        if (payload.empty() || end == nullptr || *end != '\0' || status < 0 || status > 255) {
          return make_error("runner", "the runner sent a malformed exit status", "container " + short_id(container_));
        }
        return static_cast<int>(status);
      }
      default:
        return make_error("runner",
                          "the runner sent a frame of unknown type " + std::to_string(static_cast<int>(*type)),
                          "container " + short_id(container_));
    }
  }
}

Result<std::unique_ptr<RunnerListener>> RunnerListener::open(const fs::path& dir) {
  const fs::path path = dir / kRunnerSocketName;
  // A unix socket's path has room for 107 bytes: a longer one is reached through the directory's
  // descriptor.
  int dir_fd = -1;
  std::string bind_path = path.string();
  sockaddr_un addr{};
  if (bind_path.size() >= sizeof addr.sun_path) {
    dir_fd = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) return make_error("io", std::string("cannot open: ") + std::strerror(errno), dir.string());
    bind_path = "/proc/self/fd/" + std::to_string(dir_fd) + "/" + kRunnerSocketName;
  }
  struct Closer {
    int& fd;
    ~Closer() {
      if (fd >= 0) ::close(fd);
    }
  } closer{dir_fd};
  ::unlink(bind_path.c_str());  // one a crash left
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, bind_path.c_str(), bind_path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return make_error("io", std::string("cannot make a socket: ") + std::strerror(errno), path.string());
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::chmod(bind_path.c_str(), 0666) != 0 ||
      ::listen(fd, 1) != 0) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    ::unlink(bind_path.c_str());
    return make_error("io", "cannot listen for the task container's runner: " + why, path.string());
  }
  return std::unique_ptr<RunnerListener>(new RunnerListener(fd, path));
}

RunnerListener::~RunnerListener() {
  close_and_unlink();
}

void RunnerListener::close_and_unlink() {
  if (fd_ < 0) return;
  ::close(fd_);
  fd_ = -1;
  // The directory may be gone or renamed by now: a path too long to bind is also removed by name.
  std::error_code ec;
  fs::remove(path_, ec);
}

Result<std::shared_ptr<RunnerChannel>> RunnerListener::accept(const std::string& container,
                                                              std::chrono::milliseconds timeout,
                                                              const std::function<Result<int>()>& expected_pid) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto wait_for = [&](int fd) {
    while (true) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd, POLLIN, 0};
      const int r = ::poll(&p, 1, static_cast<int>(left.count()));
      if (r > 0) return true;
      if (r < 0 && errno != EINTR) return false;
    }
  };
  const std::string where = "container " + short_id(container);
  if (fd_ < 0 || !wait_for(fd_)) {
    return make_error("runner",
                      "the task container's runner did not connect within " + std::to_string(timeout.count()) + " ms",
                      where);
  }
  const int conn = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
  const int accept_errno = errno;
  close_and_unlink();
  if (conn < 0) return make_error("runner", std::string("accept: ") + std::strerror(accept_errno), where);
  auto channel = std::make_shared<RunnerChannel>(conn, container);
  if (expected_pid) {
    ucred peer{};
    socklen_t len = sizeof peer;
    if (::getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0) {
      return make_error("runner", std::string("cannot tell who connected: ") + std::strerror(errno), where);
    }
    auto pid = expected_pid();
    if (!pid.ok()) return pid.error();
    if (peer.pid != *pid) {
      spdlog::warn("{}: refused a connection to its runner socket from pid {} (uid {}): the container's PID 1 is {}",
                   where, peer.pid, peer.uid, *pid);
      return make_error("runner",
                        "pid " + std::to_string(peer.pid) + " connected, not the container's PID 1 (pid " +
                            std::to_string(*pid) + ")",
                        where);
    }
  }
  if (!wait_for(conn)) return make_error("runner", "the runner connected but said nothing", where);
  std::string hello;
  auto type = channel->read_frame(hello);
  if (!type.ok()) return type.error();
  if (*type != 'H' || hello != runner::kHello) {
    return make_error("runner",
                      "the runner's hello is \"" + hello.substr(0, 64) + "\", not \"" + std::string(runner::kHello) +
                          "\" (a runner of another version?)",
                      where);
  }
  return channel;
}

Result<RunnerContainer> start_with_runner(DockerClient& docker, const ContainerSpec& cs, const fs::path& meta_dir,
                                          std::chrono::milliseconds connect_timeout) {
  auto listener = RunnerListener::open(meta_dir);
  if (!listener.ok()) return listener.error();
  auto id = docker.create_container(cs);
  if (!id.ok()) return id.error();
  auto fail = [&](const Error& e) -> Result<RunnerContainer> {
    // What the runner said of it is in the container's log.
    std::string said;
    (void)docker.stream_logs(*id, false, [&](int, std::string_view d) {
      said.append(d);
      return said.size() < 4096;
    });
    (void)docker.remove_container(*id);
    Error out = e;
    while (!said.empty() && (said.back() == '\n' || said.back() == ' ')) said.pop_back();
    if (!said.empty()) out.message += " (its log: " + said.substr(0, 500) + ")";
    return out;
  };
  if (auto s = docker.start_container(*id); !s.ok()) return fail(s.error());
  auto channel = (*listener)->accept(*id, connect_timeout, [&] { return docker.container_pid(*id); });
  if (!channel.ok()) return fail(channel.error());
  return RunnerContainer{*id, *channel};
}

Result<fs::path> find_runner() {
  std::vector<fs::path> tried;
  auto usable = [&](const fs::path& p) {
    tried.push_back(p);
    return ::access(p.c_str(), X_OK) == 0;
  };
  if (const char* env = std::getenv("POLYPHONY_RUNNER"); env != nullptr && *env != '\0') {
    if (usable(env)) return fs::path(env);
    return make_error("not_found", "POLYPHONY_RUNNER names no executable program", env);
  }
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec && usable(self.parent_path() / "polyphony-runner")) return self.parent_path() / "polyphony-runner";
#ifdef POLYPHONY_RUNNER_BUILD_PATH
  if (usable(POLYPHONY_RUNNER_BUILD_PATH)) return fs::path(POLYPHONY_RUNNER_BUILD_PATH);
#endif
  std::string places;
  for (const auto& p : tried) places += (places.empty() ? "" : ", ") + p.string();
  return make_error("not_found",
                    "cannot find polyphony-runner (tried " + places +
                        "); install it beside polyphony-worker or set "
                        "POLYPHONY_RUNNER",
                    "");
}

Result<fs::path> install_runner(const fs::path& dir) {
  auto found = find_runner();
  if (!found.ok()) return found.error();
  std::error_code ec;
  fs::create_directories(dir, ec);
  const fs::path target = fs::absolute(dir / "polyphony-runner", ec);
  fs::path partial = target;
  partial += ".partial." + std::to_string(::getpid());
  fs::copy_file(*found, partial, fs::copy_options::overwrite_existing, ec);
  if (!ec) {
    fs::permissions(partial,
                    fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec | fs::perms::others_read |
                        fs::perms::others_exec,
                    ec);
  }
  if (!ec) fs::rename(partial, target, ec);
  if (ec) {
    const std::string why = ec.message();
    fs::remove(partial, ec);
    return make_error("io", "cannot copy polyphony-runner from " + found->string() + ": " + why, target.string());
  }
  return target;
}

}  // namespace polyphony
