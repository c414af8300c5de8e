// Shared helpers for tests.
#include "test_support.h"

#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "common/process.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/process.hpp>

namespace polyphony::testing {

namespace fs = std::filesystem;

TempDir::TempDir(const std::string& prefix) {
  std::random_device rd;
  std::mt19937_64 rng(rd());
  fs::path base = fs::temp_directory_path();
  for (int i = 0; i < 100; ++i) {
    fs::path candidate = base / (prefix + "-" + std::to_string(rng() % 100000000));
    std::error_code ec;
    if (fs::create_directories(candidate, ec)) {
      path_ = candidate;
      return;
    }
  }
  throw std::runtime_error("could not create a temporary directory under " + base.string());
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::string git(const fs::path& cwd, const std::vector<std::string>& args) {
  std::vector<std::string> argv{"git",
                                "-c",
                                "safe.directory=*",
                                "-c",
                                "user.name=Test",
                                "-c",
                                "user.email=test@localhost",
                                "-c",
                                "init.defaultBranch=main",
                                "-c",
                                "commit.gpgsign=false"};
  argv.insert(argv.end(), args.begin(), args.end());
  ProcessOptions opts;
  opts.cwd = cwd;
  auto r = run_process(argv, opts);
  if (!r.ok()) throw std::runtime_error(r.error().to_string());
  if (r->exit_code != 0) {
    std::string cmd;
    for (const auto& a : args) cmd += " " + a;
    throw std::runtime_error("git" + cmd + " failed in " + cwd.string() + ": " + r->err);
  }
  return r->out;
}

void write_file(const fs::path& path, const std::string& content) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error("cannot write " + path.string());
  out << content;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string commit_to_bare(const fs::path& bare, const std::map<std::string, std::string>& files,
                           const std::string& message, const std::string& branch) {
  TempDir scratch("polyphony-scratch");
  fs::path work = scratch.path() / "w";
  git(scratch.path(), {"clone", "-q", bare.string(), work.string()});
  bool has_branch = !trim(git(work, {"ls-remote", "--heads", "origin", branch})).empty();
  if (has_branch) {
    git(work, {"checkout", "-q", branch});
  } else {
    git(work, {"checkout", "-q", "--orphan", branch});
  }
  for (const auto& [path, content] : files) write_file(work / path, content);
  git(work, {"add", "-A"});
  git(work, {"commit", "-q", "-m", message});
  git(work, {"push", "-q", "origin", "HEAD:refs/heads/" + branch});
  return trim(git(work, {"rev-parse", "HEAD"}));
}

std::string make_bare_repo(const fs::path& bare, const std::map<std::string, std::string>& files,
                           const std::string& branch) {
  fs::create_directories(bare);
  git(bare, {"init", "-q", "--bare", "--initial-branch=" + branch});
  return commit_to_bare(bare, files, "initial commit", branch);
}

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return condition();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace polyphony::testing

namespace polyphony::testing {

std::string test_docker_host() {
  for (const char* var : {"POLYPHONY_TEST_DOCKER_HOST", "DOCKER_HOST"}) {
    const char* v = std::getenv(var);
    if (v != nullptr && *v != '\0') return v;
  }
  for (const char* sock : {"/run/polyphony-docker/docker.sock", "/var/run/docker.sock"}) {
    if (fs::exists(sock)) return std::string("unix://") + sock;
  }
  return {};
}

}  // namespace polyphony::testing

namespace polyphony::testing {

namespace bp = boost::process;

struct BackgroundProcess::Impl {
  bp::child child;
};

BackgroundProcess::BackgroundProcess(const std::vector<std::string>& argv,
                                     const std::map<std::string, std::string>& env, const fs::path& log_file)
    : impl_(std::make_unique<Impl>()) {
  bp::environment e = boost::this_process::environment();
  for (const auto& [k, v] : env) e[k] = v;
  std::vector<std::string> args(argv.begin() + 1, argv.end());
  impl_->child = bp::child(bp::exe = argv[0], bp::args = args, bp::env = e,
                           (bp::std_out & bp::std_err) > log_file.string(), bp::std_in < bp::null);
}

BackgroundProcess::~BackgroundProcess() {
  if (impl_ && impl_->child.valid() && impl_->child.running()) stop();
}

int BackgroundProcess::pid() const {
  return impl_->child.id();
}

bool BackgroundProcess::running() {
  return impl_->child.running();
}

int BackgroundProcess::stop() {
  if (!impl_->child.running()) {
    impl_->child.wait();
    return impl_->child.exit_code();
  }
  ::kill(impl_->child.id(), SIGTERM);
  if (!eventually([&] { return !impl_->child.running(); }, std::chrono::seconds(10))) {
    ::kill(impl_->child.id(), SIGKILL);
  }
  impl_->child.wait();
  return impl_->child.exit_code();
}

void BackgroundProcess::kill9() {
  ::kill(impl_->child.id(), SIGKILL);
  impl_->child.wait();
}

int free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("cannot make a socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  const bool bound = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
                     ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  ::close(fd);
  if (!bound) throw std::runtime_error("cannot bind a port on 127.0.0.1");
  return ntohs(addr.sin_port);
}

}  // namespace polyphony::testing
