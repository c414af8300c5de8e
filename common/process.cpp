// Child processes through Boost.Process with captured output and a deadline.
#include "common/process.h"

// Boost 1.74 leaves its vfork executor out whenever _POSIX_C_SOURCE >= 200809L (glibc's
// default), though vfork is there; it is asked for explicitly below.
#ifndef BOOST_POSIX_HAS_VFORK
#define BOOST_POSIX_HAS_VFORK 1
#endif
#include <boost/asio/io_context.hpp>
#include <boost/process.hpp>
#include <boost/process/extend.hpp>
#include <boost/process/posix.hpp>

#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <future>

namespace bp = boost::process;

extern char** environ;

namespace polyphony {

namespace {

// How often a child with a cancel flag has it checked.
constexpr std::chrono::milliseconds kCancelCheck{100};

// The child's environment, built here rather than with bp::environment: Boost 1.74's lookup
// compares keys with a memcmp that reads past the end of shorter entries (AddressSanitizer
// reports it), so the executor's envp is set directly.
class ChildEnvironment : public bp::extend::handler {
 public:
  explicit ChildEnvironment(const ProcessOptions& options) {
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      std::string entry(*e);
      const std::string key = entry.substr(0, entry.find('='));
      const bool dropped = options.env.count(key) > 0 || std::find(options.unset_env.begin(), options.unset_env.end(),
                                                                   key) != options.unset_env.end();
      if (!dropped) entries_.push_back(std::move(entry));
    }
    for (const auto& [k, v] : options.env) entries_.push_back(k + "=" + v);
    for (auto& entry : entries_) pointers_.push_back(entry.data());
    pointers_.push_back(nullptr);
  }

  template <class Executor>
  void on_setup(Executor& exec) {
    exec.env = pointers_.data();
  }

 private:
  std::vector<std::string> entries_;
  std::vector<char*> pointers_;
};

// Switches the child to ProcessOptions::run_as between fork and exec. Raw system calls, not
// glibc's setuid (which signals every thread of the parent it was forked from to change them
// all): they change the calling task alone, the child.
class ChildUser : public bp::extend::handler {
 public:
  explicit ChildUser(const std::optional<ProcessOptions::User>& user) : user_(user) {}

  // Never execs as this process's user when the switch fails: the child ends there with 126 and
  // says why on its stderr (redirected already: this handler comes after the redirections).
  template <class Executor>
  void on_exec_setup(Executor& /*exec*/) const {
    if (!user_) return;
    if (::syscall(SYS_setgroups, 0, nullptr) != 0 ||
        ::syscall(SYS_setresgid, user_->gid, user_->gid, user_->gid) != 0 ||
        ::syscall(SYS_setresuid, user_->uid, user_->uid, user_->uid) != 0) {
      static const char kWhy[] = "cannot switch to the user who owns the work\n";
      (void)!::write(STDERR_FILENO, kWhy, sizeof kWhy - 1);
      ::_exit(126);
    }
  }

 private:
  std::optional<ProcessOptions::User> user_;
};

}  // namespace

std::string find_program(const std::string& program) {
  if (program.find('/') != std::string::npos) {
    return std::filesystem::exists(program) ? program : std::string();
  }
  auto found = bp::search_path(program);
  return found.empty() ? std::string() : found.string();
}

Result<ProcessResult> run_process(const std::vector<std::string>& argv, const ProcessOptions& options) {
  if (argv.empty()) return make_error("process", "empty command line");
  std::string exe = find_program(argv[0]);
  if (exe.empty()) {
    return make_error("not_found", "program '" + argv[0] + "' was not found on PATH", argv[0]);
  }
  std::vector<std::string> args(argv.begin() + 1, argv.end());
  ChildEnvironment env(options);
  ChildUser user(options.run_as);

  boost::asio::io_context ios;
  std::future<std::string> out;
  std::future<std::string> err;
  ProcessResult result;
  try {
    bp::async_pipe in_pipe(ios);
    std::string cwd = options.cwd.empty() ? std::filesystem::current_path().string() : options.cwd.string();
    // vfork: the child borrows this process's memory until it execs, so a worker with many
    // threads and a large heap pays no page-table copy and no copy-on-write faults per git call.
    bp::child child(bp::exe = exe, bp::args = args, bp::start_dir = cwd, env, bp::std_out > out, bp::std_err > err,
                    bp::std_in < in_pipe, ios, user, bp::posix::use_vfork);
    boost::asio::async_write(in_pipe, boost::asio::buffer(options.stdin_data),
                             [&in_pipe](const boost::system::error_code&, std::size_t) { in_pipe.close(); });
    const auto deadline = std::chrono::steady_clock::now() + options.timeout;
    const auto cancelled = [&] { return options.cancel != nullptr && options.cancel->load(); };
    for (auto now = std::chrono::steady_clock::now(); !ios.stopped() && now < deadline && !cancelled();
         now = std::chrono::steady_clock::now()) {
      const std::chrono::steady_clock::duration left = deadline - now;
      ios.run_for(options.cancel == nullptr ? left : std::min<std::chrono::steady_clock::duration>(left, kCancelCheck));
    }
    if (!ios.stopped()) {
      std::error_code ec;
      child.terminate(ec);
      child.wait(ec);
      if (cancelled()) {
        return make_error("cancelled", "'" + argv[0] + "' was stopped: its caller is shutting down", argv[0]);
      }
      return make_error(
          "timeout",
          "'" + argv[0] + "' did not finish within " + std::to_string(options.timeout.count()) + " ms and was killed",
          argv[0]);
    }
    child.wait();
    result.exit_code = child.exit_code();
    result.out = out.get();
    result.err = err.get();
  } catch (const std::exception& e) {
    return make_error("process", std::string("could not run '") + argv[0] + "': " + e.what(), argv[0]);
  }
  return result;
}

Result<ProcessResult> run_checked(const std::vector<std::string>& argv, const ProcessOptions& options,
                                  const std::string& error_code) {
  auto r = run_process(argv, options);
  if (!r.ok()) return r;
  if (r->exit_code != 0) {
    std::string cmd;
    for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
    std::string tail = r->err.size() > 2000 ? r->err.substr(r->err.size() - 2000) : r->err;
    while (!tail.empty() && (tail.back() == '\n' || tail.back() == ' ')) tail.pop_back();
    return make_error(error_code, "'" + cmd + "' exited with status " + std::to_string(r->exit_code) +
                                      (tail.empty() ? "" : ": " + tail));
  }
  return r;
}

}  // namespace polyphony
