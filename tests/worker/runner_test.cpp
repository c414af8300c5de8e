// polyphony-runner, PID 1 of task containers: the wire, the program on its own (a local process
// on a real socket) and in real containers.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <boost/process.hpp>
#include <filesystem>
#include <random>
#include <thread>

#include "docker_test_support.h"
#include "runner/wire.h"
#include "test_support.h"
#include "worker-agent/runner_channel.h"

namespace bp = boost::process;
namespace fs = std::filesystem;
using namespace polyphony;
using namespace polyphony::testing;
using namespace std::chrono_literals;

namespace {

struct Output {
  std::string out, err;
  std::function<bool(int, std::string_view)> sink() {
    return [this](int stream, std::string_view d) {
      (stream == 1 ? out : err).append(d);
      return true;
    };
  }
};

// Boost 1.74's child::wait_for may sleep out its whole timeout: poll instead.
bool ended_within(bp::child& c, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (c.running()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

std::string runner_program() {
  auto found = find_runner();
  INFO((found.ok() ? std::string() : found.error().to_string()));
  REQUIRE(found.ok());
  return found->string();
}

// The runner as a local process, connected to a listener in a temp directory.
struct LocalRunner {
  TempDir tmp{"polyphony-runner"};
  bp::child child;
  std::shared_ptr<RunnerChannel> channel;

  LocalRunner() {
    auto listener = RunnerListener::open(tmp.path());
    REQUIRE(listener.ok());
    child = bp::child(bp::exe = runner_program(), bp::args = {(tmp / kRunnerSocketName).string()});
    const int pid = child.id();
    auto ch = (*listener)->accept("local", 10s, [pid] { return Result<int>(pid); });
    INFO((ch.ok() ? std::string() : ch.error().to_string()));
    REQUIRE(ch.ok());
    channel = *ch;
    CHECK_FALSE(fs::exists(tmp / kRunnerSocketName));  // nobody else can connect now
  }
  ~LocalRunner() {
    channel.reset();
    if (child.valid() && child.running()) {
      if (!ended_within(child, 10s)) child.terminate();
    }
  }
};

}  // namespace

TEST_CASE("a run request survives the wire, and a malformed one is refused") {
  runner::RunRequest r{"/workspace", {"sh", "-c", "echo \"$1\"", "x", ""}, {"A=1", "B=two words", "C="}};
  auto back = runner::unpack_request(runner::pack_request(r));
  REQUIRE(back);
  CHECK(back->cwd == r.cwd);
  CHECK(back->argv == r.argv);
  CHECK(back->env == r.env);

  const std::string good = runner::pack_request(r);
  for (size_t cut = 0; cut < good.size(); ++cut) {
    INFO("cut at " << cut);
    CHECK_FALSE(runner::unpack_request(good.substr(0, cut)));
  }
  CHECK_FALSE(runner::unpack_request(good + "x"));
  CHECK_FALSE(runner::unpack_request(runner::pack_request({"", {}, {}})));  // nothing to run
  // Random bytes never crash the reader, and are almost never a request.
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    std::string junk(rng() % 64, '\0');
    for (auto& c : junk) c = static_cast<char>(rng());
    (void)runner::unpack_request(junk);
  }
  // A count that claims more strings than there are bytes.
  std::string huge;
  runner::put_string(huge, "");
  runner::put_string(huge, "9999999");
  CHECK_FALSE(runner::unpack_request(huge));
}

TEST_CASE("a connection from anyone but the container's PID 1 is refused, even with the right hello") {
  TempDir tmp{"polyphony-runner"};
  auto listener = RunnerListener::open(tmp.path());
  REQUIRE(listener.ok());
  const fs::path path = tmp / kRunnerSocketName;
  const int impostor = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, path.c_str());
  REQUIRE(::connect(impostor, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  const std::string hello = runner::frame('H', runner::kHello);
  REQUIRE(::write(impostor, hello.data(), hello.size()) == static_cast<ssize_t>(hello.size()));
  // The container's PID 1 as the host sees it: never this test process.
  auto ch = (*listener)->accept("c0ffee", 5s, [] { return Result<int>(1); });
  REQUIRE_FALSE(ch.ok());
  CHECK(ch.error().code == "runner");
  CHECK(ch.error().message.find("not the container's PID 1") != std::string::npos);
  CHECK_FALSE(fs::exists(path));  // and nobody else gets a try
  ::close(impostor);
}

TEST_CASE("the runner runs processes one after another, with their output, status and environment") {
  LocalRunner r;
  Output o;
  auto code = r.channel->run({{"sh", "-c", "echo out; echo err >&2; echo \"$GREETING\" \"$(pwd)\"; exit 3"},
                              {"GREETING=hello there"},
                              "",
                              r.tmp.path().string()},
                             o.sink());
  REQUIRE(code.ok());
  CHECK(*code == 3);
  CHECK(o.out == "out\nhello there " + r.tmp.path().string() + "\n");
  CHECK(o.err == "err\n");

  // An overlay replaces the container's own value; the rest of its environment stays.
  Output env;
  code = r.channel->run({{"sh", "-c", "echo \"$PATH\" | grep -c /bin; echo \"$HOME\""}, {"HOME=/elsewhere"}, "", ""},
                        env.sink());
  REQUIRE(code.ok());
  CHECK(*code == 0);
  CHECK(env.out == "1\n/elsewhere\n");

  // Output bigger than a frame arrives whole and in order.
  Output big;
  code = r.channel->run({{"sh", "-c", "i=0; while [ $i -lt 20000 ]; do echo line-$i; i=$((i+1)); done"}, {}, "", ""},
                        big.sink());
  REQUIRE(code.ok());
  CHECK(*code == 0);
  CHECK(big.out.size() > 150000);
  CHECK(big.out.rfind("line-0\nline-1\n", 0) == 0);
  CHECK(big.out.substr(big.out.size() - 11) == "line-19999\n");
}

TEST_CASE("the runner says why a process cannot start, with the status a shell would give") {
  LocalRunner r;
  Output missing;
  auto code = r.channel->run({{"no-such-agent-cli", "--help"}, {}, "", ""}, missing.sink());
  REQUIRE(code.ok());
  CHECK(*code == 127);
  CHECK(missing.err.find("\"no-such-agent-cli\": executable file not found in $PATH") != std::string::npos);

  const fs::path plain = r.tmp / "plain.txt";
  write_file(plain, "not a program\n");
  Output denied;
  code = r.channel->run({{plain.string()}, {}, "", ""}, denied.sink());
  REQUIRE(code.ok());
  CHECK(*code == 126);
  CHECK(denied.err.find("Permission denied") != std::string::npos);

  Output nowhere;
  code = r.channel->run({{"true"}, {}, "", (r.tmp / "no-such-dir").string()}, nowhere.sink());
  REQUIRE(code.ok());
  CHECK(*code == 126);
  CHECK(nowhere.err.find("chdir to") != std::string::npos);

  // Killed by a signal: 128 + its number, as docker exec reports it.
  Output killed;
  code = r.channel->run({{"sh", "-c", "kill -TERM $$"}, {}, "", ""}, killed.sink());
  REQUIRE(code.ok());
  CHECK(*code == 143);

  // And it still serves the next run.
  Output after;
  code = r.channel->run({{"echo", "still here"}, {}, "", ""}, after.sink());
  REQUIRE(code.ok());
  CHECK(after.out == "still here\n");
}

TEST_CASE("a process that leaves a child holding its output still ends its run") {
  LocalRunner r;
  Output o;
  auto code = r.channel->run({{"sh", "-c", "sleep 30 & echo $!"}, {}, "", ""}, o.sink());
  REQUIRE(code.ok());
  CHECK(*code == 0);
  // The run is over while the child it left still runs.
  const pid_t left = static_cast<pid_t>(std::stol(o.out));
  CHECK(::kill(left, 0) == 0);
  ::kill(left, SIGKILL);
}

TEST_CASE("hanging up on the runner ends a run in progress, and the runner with it") {
  LocalRunner r;
  // Another thread hangs up once the run has started (its first output is in).
  std::atomic<bool> started{false};
  std::thread stopper([&] {
    started.wait(false);
    r.channel->hang_up();
  });
  Output o;
  auto code =
      r.channel->run({{"sh", "-c", "echo started; exec sleep 60"}, {}, "", ""}, [&](int stream, std::string_view d) {
        (stream == 1 ? o.out : o.err).append(d);
        started = true;
        started.notify_all();
        return true;
      });
  started = true;  // a run that printed nothing must not leave the stopper waiting
  started.notify_all();
  stopper.join();
  REQUIRE_FALSE(code.ok());
  CHECK(code.error().code == "runner");
  CHECK(code.error().message.find("stopped") != std::string::npos);
  REQUIRE(ended_within(r.child, 10s));
  CHECK(r.child.exit_code() == 0);
  // A channel that hung up runs nothing more.
  CHECK_FALSE(r.channel->run({{"true"}, {}, "", ""}, o.sink()).ok());
}

TEST_CASE("the runner drops a malformed frame and exits rather than trust it") {
  TempDir tmp{"polyphony-runner"};
  const fs::path path = tmp / "raw.sock";
  const int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strcpy(addr.sun_path, path.c_str());
  REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(listener, 1) == 0);
  bp::ipstream err;
  bp::child child(bp::exe = runner_program(), bp::args = {path.string()}, bp::std_err > err);
  const int conn = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  REQUIRE(conn >= 0);
  std::string junk = runner::frame('Z', "whatever");
  REQUIRE(::write(conn, junk.data(), junk.size()) == static_cast<ssize_t>(junk.size()));
  REQUIRE(ended_within(child, 10s));
  CHECK(child.exit_code() == 2);
  std::string said((std::istreambuf_iterator<char>(err)), std::istreambuf_iterator<char>());
  CHECK(said.find("malformed frame from the worker") != std::string::npos);
  ::close(conn);
  ::close(listener);

  // Without a worker to reach it says so and exits 1; without a socket it explains its use.
  bp::ipstream err2;
  bp::child lonely(bp::exe = runner_program(), bp::args = {(tmp / "nobody.sock").string()}, bp::std_err > err2);
  REQUIRE(ended_within(lonely, 10s));
  CHECK(lonely.exit_code() == 1);
  bp::child usage(bp::exe = runner_program(), bp::std_err > bp::null);
  REQUIRE(ended_within(usage, 10s));
  CHECK(usage.exit_code() == 64);
}

TEST_CASE("in a task container the runner is PID 1, out of the agent's reach, and its end ends the container") {
  std::unique_ptr<DockerClient> docker = docker_for_tests();
  require_worker_image(*docker);
  ContainerJanitor janitor(*docker);
  TempDir tmp{"polyphony-runner"};
  // A meta directory as long as deep workspace roots make it: the socket is bound through it.
  fs::path meta = tmp.path();
  while (meta.string().size() < 120) meta /= "deeper-directory";
  fs::create_directories(meta);
  fs::permissions(tmp.path(), fs::perms::all);
  ContainerSpec cs = janitor.spec({kRunnerInContainer, kRunnerSocketInContainer});
  cs.user = "1000:1000";
  cs.mounts = {{meta.string(), "/polyphony", true}, {runner_program(), kRunnerInContainer, true}};
  auto started = start_with_runner(*docker, cs, meta);
  INFO((started.ok() ? std::string() : started.error().to_string()));
  REQUIRE(started.ok());
  auto& runner = *started->runner;

  Output o;
  auto code =
      runner.run({{"sh", "-c",
                   "echo pid $$; id -u; test -e /polyphony/runner.sock && echo socket; "
                   "cat /proc/1/environ >/dev/null 2>&1 && echo environ; ls /proc/1/fd >/dev/null 2>&1 && echo fds; "
                   "kill -KILL 1; kill -TERM 1; sleep 0.2; echo alive"},
                  {},
                  "",
                  "/tmp"},
                 o.sink());
  REQUIRE(code.ok());
  INFO(o.err);
  CHECK(*code == 0);
  // Not PID 1 itself, the container's user; no socket to connect to, nothing of PID 1 to read
  // or kill.
  CHECK(o.out.find("pid 1\n") == std::string::npos);
  CHECK(o.out.find("1000\n") != std::string::npos);
  CHECK(o.out.find("socket") == std::string::npos);
  CHECK(o.out.find("environ") == std::string::npos);
  CHECK(o.out.find("fds") == std::string::npos);
  CHECK(o.out.find("alive\n") != std::string::npos);

  // The next run sees the container as the last one left it.
  Output again;
  code = runner.run({{"sh", "-c", "echo kept > /tmp/kept; cat /tmp/kept"}, {}, "", ""}, again.sink());
  REQUIRE(code.ok());
  CHECK(again.out == "kept\n");

  started->runner.reset();  // the worker hangs up
  CHECK(eventually(
      [&] {
        auto list = docker->list_containers(janitor.labels());
        return list.ok() && list->size() == 1 && list->front().state == "exited";
      },
      10s));
}

TEST_CASE("a container whose runner cannot start is removed, and the error says why") {
  std::unique_ptr<DockerClient> docker = docker_for_tests();
  require_worker_image(*docker);
  ContainerJanitor janitor(*docker);
  TempDir tmp{"polyphony-runner"};
  fs::permissions(tmp.path(), fs::perms::all);
  // The runner is mounted, but the meta directory (with the socket) is not.
  ContainerSpec cs = janitor.spec({kRunnerInContainer, kRunnerSocketInContainer});
  cs.user = "1000:1000";
  cs.mounts = {{runner_program(), kRunnerInContainer, true}};
  auto started = start_with_runner(*docker, cs, tmp.path(), 3s);
  REQUIRE_FALSE(started.ok());
  CHECK(started.error().code == "runner");
  CHECK(started.error().message.find("cannot reach the worker") != std::string::npos);
  auto left = docker->list_containers(janitor.labels());
  REQUIRE(left.ok());
  CHECK(left->empty());
}

TEST_CASE("the runner is found through POLYPHONY_RUNNER or beside the build, and installed as an executable copy") {
  TempDir tmp{"polyphony-runner"};
  const std::string built = runner_program();
  struct EnvGuard {
    ~EnvGuard() { ::unsetenv("POLYPHONY_RUNNER"); }
  } guard;

  // A named program that is not there is an error naming it, never a silent fallback.
  ::setenv("POLYPHONY_RUNNER", (tmp / "no-such-runner").c_str(), 1);
  auto missing = find_runner();
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == "not_found");
  CHECK(missing.error().where == (tmp / "no-such-runner").string());
  auto not_installed = install_runner(tmp / "root");
  REQUIRE_FALSE(not_installed.ok());

  ::setenv("POLYPHONY_RUNNER", built.c_str(), 1);
  auto found = find_runner();
  REQUIRE(found.ok());
  CHECK(found->string() == built);

  // The copy lands in the directory as polyphony-runner, executable by every user (the
  // container's user runs it), and a newer one replaces it whole.
  write_file(tmp / "root" / "polyphony-runner", "an older runner\n");
  auto installed = install_runner(tmp / "root");
  REQUIRE(installed.ok());
  CHECK(*installed == fs::absolute(tmp / "root" / "polyphony-runner"));
  CHECK(fs::file_size(*installed) == fs::file_size(built));
  const auto perms = fs::status(*installed).permissions();
  CHECK((perms & fs::perms::others_exec) != fs::perms::none);
  CHECK((perms & fs::perms::others_write) == fs::perms::none);
  for (const auto& entry : fs::directory_iterator(tmp / "root")) {
    CHECK(entry.path().filename() == "polyphony-runner");  // no partial copy left
  }
}
