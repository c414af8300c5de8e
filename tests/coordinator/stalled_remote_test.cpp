// The coordinator's loop never waits on a remote: while a git remote stalls (scoring mirrors
// it) and `gh` hangs (GitHub sync), a worker's heartbeats are read, its running attempt is not
// expired, and clients are answered; the stalled task then proceeds with a reason naming it.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "coordinator/github_source.h"
#include "coordinator/state_store.h"
#include "fake_github/fake_github.h"
#include "fleet_support.h"

using namespace polyphony;
using namespace polyphony::testing;

namespace {

// A git remote on 127.0.0.1 that accepts connections and never answers, for as long as it
// lives (a test's minute): what a slow or hostile remote looks like to `git clone`.
class StalledRemote {
 public:
  StalledRemote() {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
    REQUIRE(::listen(listener_, 16) == 0);
    socklen_t len = sizeof(addr);
    REQUIRE(::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { hold(); });
  }
  ~StalledRemote() {
    stop_ = true;
    thread_.join();
    for (int fd : held_) ::close(fd);
    ::close(listener_);
  }
  std::string url() const { return "git://127.0.0.1:" + std::to_string(port_) + "/stall.git"; }
  int connections() const { return connections_.load(); }

 private:
  void hold() {
    while (!stop_) {
      pollfd p{listener_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const int fd = ::accept(listener_, nullptr, nullptr);
      if (fd < 0) continue;
      held_.push_back(fd);  // never read, never answered, closed when the test ends
      ++connections_;
    }
  }

  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::vector<int> held_;
  std::thread thread_;
};

std::string submit_to(zmq::context_t& ctx, const std::string& endpoint, const std::string& title,
                      const std::string& repo) {
  protocol::Submit s;
  s.title = title;
  s.repo = repo;
  s.agent = "scripted";
  auto reply = ask(ctx, endpoint, s);
  REQUIRE(reply.has_value());
  const auto& r = std::get<protocol::ClientReply>(*reply);
  INFO(r.error);
  REQUIRE(r.ok);
  return r.task_id;
}

}  // namespace

TEST_CASE("a stalled git remote and a hanging gh neither expire a running attempt nor lose its worker", "[fleet]") {
  LogCapture log;
  TempDir dir("polyphony-stall");
  make_bare_repo(dir / "local.git", {{"README.md", "a local repo\n"}});
  StalledRemote remote;
  FakeGithub github;
  github.fail("hang");
  // Liveness budget 2 s (fleet_support); the remote and gh each hold a job for longer than that.
  FleetCoordinator c(
      "coordinator: {insecure: true, mirror_timeout_s: 4}\n"
      "github: {repo: " +
          github.repo() + ", gh: " + github.program() + ", host: \"" + github.host() + "\"" +
          ", gh_timeout_ms: 3000, poll_interval_ms: 50}\n",
      "  stall: {url: \"" + remote.url() + "\"}\n");
  c.start();
  REQUIRE_FALSE(c.start_error());
  FakeWorker w(c.context(), c.worker_endpoint(), "worker-a", {}, 1);
  w.hello();
  REQUIRE(w.wait_for<protocol::Welcome>());

  const std::string running =
      submit_to(c.context(), c.client_endpoint(), "Runs meanwhile", (dir / "local.git").string());
  auto dispatch = w.wait_for<protocol::Dispatch>();
  REQUIRE(dispatch);
  REQUIRE(dispatch->spec.task_id == running);
  const protocol::RunSpec& spec = dispatch->spec;
  w.send(protocol::TaskUpdate{running, spec.attempt, spec.epoch, "PROVISIONED", ""});
  w.send(protocol::TaskUpdate{running, spec.attempt, spec.epoch, "RUNNING", ""});

  const std::string stalled = submit_to(c.context(), c.client_endpoint(), "Stalls on its remote", "stall");
  auto state_of = [&](const std::string& id) -> std::optional<protocol::ClientReply> {
    // Answered well within the liveness budget, or not at all.
    auto reply = ask(c.context(), c.client_endpoint(), protocol::Control{id, "query"}, std::chrono::milliseconds(1000));
    if (!reply) return std::nullopt;
    return std::get<protocol::ClientReply>(*reply);
  };
  auto gh_timed_out = [&] {
    auto health = read_github_health(c.home() / "state.db");
    return health.ok() && health->has_value() && (*health)->message.find("did not finish") != std::string::npos;
  };

  // While both hang: every query answered, the worker live, the attempt RUNNING, no cancel.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(40);
  std::optional<protocol::ClientReply> after;
  int polls = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    CHECK_FALSE(w.wait_for<protocol::Cancel>(std::chrono::milliseconds(100)));  // heartbeats meanwhile
    auto row = worker_row(c.context(), c.client_endpoint(), "worker-a");
    REQUIRE(row);
    REQUIRE(row->state != "lost");
    auto run = state_of(running);
    REQUIRE(run);
    REQUIRE(run->state == "RUNNING");
    after = state_of(stalled);
    REQUIRE(after);
    ++polls;
    if (after->state != "DISCOVERED" && gh_timed_out()) break;
  }
  INFO(log.text());
  CHECK(polls > 10);
  CHECK(remote.connections() >= 1);  // git did reach the remote and wait on it
  CHECK(gh_timed_out());
  CHECK(github.calls().size() >= 1);
  // The stalled task proceeded unscored (its worker is busy, so it waits CLAIMED), saying why.
  REQUIRE(after);
  CHECK(after->state == "CLAIMED");
  CHECK_THAT(after->reason, Catch::Contains("not scored") && Catch::Contains(remote.url()));
  CHECK_FALSE(log.contains("lost the attempt"));
  CHECK_FALSE(log.contains("worker worker-a lost"));

  // The attempt that ran all along lands under its first lease.
  w.send(protocol::TaskUpdate{running, spec.attempt, spec.epoch, "VERIFYING", ""});
  protocol::TaskResult result;
  result.task_id = running;
  result.attempt = spec.attempt;
  result.epoch = spec.epoch;
  result.outcome = "landed";
  result.branch = spec.branch;
  result.merged_commit = std::string(40, 'a');
  w.send(result);
  REQUIRE(w.wait_for<protocol::ResultAck>());
  auto landed = state_of(running);
  REQUIRE(landed);
  CHECK(landed->state == "LANDED");
  CHECK(landed->attempt == 1);
}
