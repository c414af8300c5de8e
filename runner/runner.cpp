// polyphony-runner: see runner.h. Single-threaded: one poll loop over the worker's socket, the
// running process's two pipes and a signalfd for SIGCHLD (as PID 1 it also reaps every orphan).
#include "runner/runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "runner/wire.h"

extern char** environ;

namespace polyphony::runner {

namespace {

// After the process exits, output still in flight is read for this long; past it, whatever it
// left in the background and holding its pipes is cut off.
constexpr int64_t kDrainMs = 200;
constexpr size_t kChunk = 64 * 1024;

void complain(std::string_view what) {
  std::string line = "polyphony-runner: ";
  line.append(what);
  line += '\n';
  (void)!::write(2, line.data(), line.size());
}

int64_t now_ms() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

struct Process {
  pid_t pid = -1;
  int out = -1;
  int err = -1;
  bool exited = false;
  int status = 0;
  int64_t exited_at = 0;
};

// The container's environment with `overlay` ("KEY=VALUE") put over it.
std::vector<std::string> merged_env(const std::vector<std::string>& overlay) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  for (const auto& kv : overlay) {
    const auto eq = kv.find('=');
    const std::string key = kv.substr(0, eq == std::string::npos ? kv.size() : eq + 1);
    bool replaced = false;
    for (auto& have : env) {
      if (have.compare(0, key.size(), key) == 0) {
        have = kv;
        replaced = true;
        break;
      }
    }
    if (!replaced) env.push_back(kv);
  }
  return env;
}

class Runner {
 public:
  explicit Runner(int sock, const sigset_t& normal_mask) : sock_(sock), normal_mask_(normal_mask) {}
  int loop();

 private:
  bool send(char type, std::string_view payload) { return write_all(sock_, frame(type, payload)); }
  void start(const RunRequest& req);
  void reap();
  void pump(int& fd, char type);
  void finish_if_done();
  int handle_input();

  int sock_;
  sigset_t normal_mask_;
  int sigfd_ = -1;
  std::string in_;
  Process proc_;
  bool peer_gone_ = false;
};

void Runner::start(const RunRequest& req) {
  int out[2], err[2], failed[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return (void)send('X', "126");
  if (::pipe2(err, O_CLOEXEC) != 0) {
    ::close(out[0]), ::close(out[1]);
    return (void)send('X', "126");
  }
  if (::pipe2(failed, O_CLOEXEC) != 0) {
    ::close(out[0]), ::close(out[1]), ::close(err[0]), ::close(err[1]);
    return (void)send('X', "126");
  }
  // Everything the child needs is made before fork, so it only calls async-signal-safe functions.
  std::vector<std::string> env = merged_env(req.env);
  std::vector<char*> envp, argv;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = req.argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::sigprocmask(SIG_SETMASK, &normal_mask_, nullptr);
    ::signal(SIGPIPE, SIG_DFL);
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    char stage = 'x';
    if (!req.cwd.empty() && ::chdir(req.cwd.c_str()) != 0) stage = 'd';
    if (stage == 'x') {
      environ = envp.data();
      ::execvp(argv[0], argv.data());
    }
    const int e = errno;
    char report[1 + sizeof(int)];
    report[0] = stage;
    std::memcpy(report + 1, &e, sizeof e);
    (void)!::write(failed[1], report, sizeof report);
    ::_exit(e == ENOENT && stage == 'x' ? 127 : 126);
  }
  ::close(out[1]);
  ::close(err[1]);
  ::close(failed[1]);
  if (pid < 0) {
    const std::string why = std::string("cannot start a process: ") + std::strerror(errno) + "\n";
    ::close(out[0]), ::close(err[0]), ::close(failed[0]);
    send('E', why);
    send('X', "126");
    return;
  }
  // The exec either happens (the pipe closes on it) or fails and says why, as docker exec would.
  char report[1 + sizeof(int)];
  ssize_t got = 0;
  do {
    got = ::read(failed[0], report, sizeof report);
  } while (got < 0 && errno == EINTR);
  ::close(failed[0]);
  if (got == static_cast<ssize_t>(sizeof report)) {
    int e = 0;
    std::memcpy(&e, report + 1, sizeof e);
    std::string why;
    if (report[0] == 'd') {
      why = "chdir to " + req.cwd + ": " + std::strerror(e);
    } else if (e == ENOENT) {
      why = "exec: \"" + req.argv[0] + "\": executable file not found in $PATH";
    } else {
      why = "exec: \"" + req.argv[0] + "\": " + std::strerror(e);
    }
    send('E', why + "\n");
  }
  ::fcntl(out[0], F_SETFL, O_NONBLOCK);
  ::fcntl(err[0], F_SETFL, O_NONBLOCK);
  proc_ = Process{pid, out[0], err[0]};
}

void Runner::reap() {
  signalfd_siginfo info{};
  while (::read(sigfd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
  }
  int status = 0;
  pid_t pid = 0;
  while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
    if (pid == proc_.pid && !proc_.exited) {
      proc_.exited = true;
      proc_.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      proc_.exited_at = now_ms();
    }
  }
}

void Runner::pump(int& fd, char type) {
  if (fd < 0) return;
  char buf[kChunk];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      if (!send(type, std::string_view(buf, static_cast<size_t>(n)))) peer_gone_ = true;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    close_fd(fd);  // end of output, or an error reading it
    return;
  }
}

// Reports the process's end once it exited and its output is read (or the drain time is over).
void Runner::finish_if_done() {
  if (proc_.pid < 0 || !proc_.exited) return;
  if ((proc_.out >= 0 || proc_.err >= 0) && now_ms() - proc_.exited_at < kDrainMs) return;
  close_fd(proc_.out);
  close_fd(proc_.err);
  if (!send('X', std::to_string(proc_.status))) peer_gone_ = true;
  proc_ = Process{};
}

// Reads what the worker sent and acts on every whole frame: 0 to go on, else the exit status.
int Runner::handle_input() {
  char buf[kChunk];
  const ssize_t n = ::read(sock_, buf, sizeof buf);
  if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
    peer_gone_ = true;
    return 0;
  }
  if (n < 0) return 0;
  in_.append(buf, static_cast<size_t>(n));
  while (in_.size() >= kHeader) {
    const uint32_t len = frame_length(in_.data());
    if (in_[0] != 'R' || len > kMaxFrame) {
      complain("malformed frame from the worker (type " + std::to_string(static_cast<unsigned char>(in_[0])) +
               ", length " + std::to_string(len) + ")");
      return 2;
    }
    if (in_.size() < kHeader + len) break;
    auto req = unpack_request(std::string_view(in_).substr(kHeader, len));
    in_.erase(0, kHeader + len);
    if (!req) {
      complain("malformed run request from the worker");
      return 2;
    }
    if (proc_.pid >= 0) {
      complain("run request while a process runs");
      return 2;
    }
    start(*req);
  }
  return 0;
}

int Runner::loop() {
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigfd_ = ::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sigfd_ < 0) {
    complain(std::string("signalfd: ") + std::strerror(errno));
    return 1;
  }
  if (!send('H', kHello)) return 1;
  while (!peer_gone_) {
    pollfd fds[4] = {{sock_, POLLIN, 0}, {sigfd_, POLLIN, 0}, {proc_.out, POLLIN, 0}, {proc_.err, POLLIN, 0}};
    int timeout = -1;
    if (proc_.pid >= 0 && proc_.exited) {
      timeout = static_cast<int>(std::max<int64_t>(0, kDrainMs - (now_ms() - proc_.exited_at)));
    }
    if (::poll(fds, 4, timeout) < 0 && errno != EINTR) {
      complain(std::string("poll: ") + std::strerror(errno));
      return 1;
    }
    // Output first, then the exit: a process's last words reach the worker before its status.
    if (fds[2].revents != 0) pump(proc_.out, 'O');
    if (fds[3].revents != 0) pump(proc_.err, 'E');
    if (fds[1].revents != 0) reap();
    if (proc_.exited) {
      pump(proc_.out, 'O');
      pump(proc_.err, 'E');
    }
    finish_if_done();
    if (fds[0].revents != 0) {
      if (const int status = handle_input(); status != 0) return status;
    }
  }
  return 0;
}

}  // namespace

int serve(const char* socket_path) {
  // Nothing in the container may ptrace us, read /proc/1/mem or take our descriptors.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  ::signal(SIGPIPE, SIG_IGN);
  sigset_t chld, normal;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &chld, &normal);

  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (std::strlen(socket_path) >= sizeof addr.sun_path) {
    complain(std::string("socket path too long: ") + socket_path);
    return 1;
  }
  std::strcpy(addr.sun_path, socket_path);
  const int sock = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0 || ::connect(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    complain(std::string("cannot reach the worker at ") + socket_path + ": " + std::strerror(errno));
    return 1;
  }
  return Runner(sock, normal).loop();
}

}  // namespace polyphony::runner
