// The coordinator with several workers over real sockets: registration, label needs, load
// spreading, lost workers, stale leases, and identity rules.
#include <catch2/catch.hpp>

#include "fleet_support.h"
#include "protocol/validation.h"

using namespace polyphony;
using namespace polyphony::testing;

TEST_CASE("a task that needs gpu goes to the gpu worker, and plain tasks spread by load", "[fleet]") {
  FleetCoordinator c;
  c.start();
  REQUIRE_FALSE(c.start_error());
  FakeWorker plain(c.context(), c.worker_endpoint(), "plain-1", {"arch=amd64"}, 2);
  FakeWorker gpu(c.context(), c.worker_endpoint(), "gpu-1", {"gpu", "arch=amd64"}, 2);
  plain.hello();
  gpu.hello();
  REQUIRE(plain.wait_for<protocol::Welcome>());
  REQUIRE(gpu.wait_for<protocol::Welcome>());

  const std::string needs_gpu = submit(c.context(), c.client_endpoint(), "Train", {"needs:gpu"});
  auto d = gpu.wait_for<protocol::Dispatch>();
  REQUIRE(d);
  CHECK(d->spec.task_id == needs_gpu);

  // gpu-1 holds 1 of 2, plain-1 0 of 2: the next plain task goes to plain-1.
  const std::string first = submit(c.context(), c.client_endpoint(), "Docs");
  auto p = plain.wait_for<protocol::Dispatch>();
  REQUIRE(p);
  CHECK(p->spec.task_id == first);

  auto row = worker_row(c.context(), c.client_endpoint(), "gpu-1");
  REQUIRE(row);
  CHECK(row->state == "ready");
  CHECK(row->load == 1);
  CHECK(row->capacity == 2);
  CHECK(row->running == std::vector<std::string>{needs_gpu});
  CHECK(row->labels == std::vector<std::string>{"gpu", "arch=amd64"});
  CHECK(row->version == "test");
}

TEST_CASE("a task whose needs no worker meets waits, without holding back the others", "[fleet]") {
  FleetCoordinator c;
  c.start();
  FakeWorker plain(c.context(), c.worker_endpoint(), "plain-1", {}, 4);
  plain.hello();
  REQUIRE(plain.wait_for<protocol::Welcome>());
  const std::string arm = submit(c.context(), c.client_endpoint(), "Port", {"needs:arch=arm64"});
  const std::string docs = submit(c.context(), c.client_endpoint(), "Docs");
  auto d = plain.wait_for<protocol::Dispatch>();
  REQUIRE(d);
  CHECK(d->spec.task_id == docs);
  CHECK_FALSE(plain.wait_for<protocol::Dispatch>(std::chrono::milliseconds(500)));
  auto reply = ask(c.context(), c.client_endpoint(), protocol::Control{arm, "query"});
  REQUIRE(reply);
  CHECK(std::get<protocol::ClientReply>(*reply).state == "CLAIMED");

  FakeWorker arm_worker(c.context(), c.worker_endpoint(), "arm-1", {"arch=arm64"}, 1);
  arm_worker.hello();
  auto a = arm_worker.wait_for<protocol::Dispatch>();
  REQUIRE(a);
  CHECK(a->spec.task_id == arm);
}

TEST_CASE("a silent worker is listed as lost, its task is requeued, and its stale reports are cancelled", "[fleet]") {
  LogCapture log;
  FleetCoordinator c;
  c.start();
  FakeWorker a(c.context(), c.worker_endpoint(), "worker-a", {}, 1);
  a.hello();
  REQUIRE(a.wait_for<protocol::Welcome>());
  const std::string id = submit(c.context(), c.client_endpoint(), "Fix it");
  auto first = a.wait_for<protocol::Dispatch>();
  REQUIRE(first);

  a.go_silent();
  c.clock().jump(3000);  // past its 2 s liveness budget, without waiting for it
  REQUIRE(eventually(
      [&] {
        auto row = worker_row(c.context(), c.client_endpoint(), "worker-a");
        return row && row->state == "lost";
      },
      std::chrono::seconds(10)));
  CHECK(log.contains("worker worker-a lost"));

  FakeWorker b(c.context(), c.worker_endpoint(), "worker-b", {}, 1);
  b.hello();
  auto second = b.wait_for<protocol::Dispatch>();
  REQUIRE(second);
  CHECK(second->spec.task_id == id);
  CHECK(second->spec.epoch > first->spec.epoch);
  CHECK(second->spec.attempt == first->spec.attempt + 1);

  // worker-a comes back talking about its old lease: refused, and told to stop that epoch.
  a.resume();
  SECTION("in an update") {
    protocol::TaskUpdate stale{id, first->spec.attempt, first->spec.epoch, "RUNNING", "still here"};
    a.send(stale);
  }
  SECTION("in a hello that says it still runs it") {
    a.hello({{id, first->spec.attempt, first->spec.epoch}});
  }
  auto cancel = a.wait_for<protocol::Cancel>();
  REQUIRE(cancel);
  CHECK(cancel->task_id == id);
  CHECK(cancel->epoch == first->spec.epoch);
  CHECK(log.contains("recovered"));
  auto row = worker_row(c.context(), c.client_endpoint(), "worker-a");
  REQUIRE(row);
  CHECK(row->state == "ready");
  CHECK(row->running.empty());
  // The task is still worker-b's.
  auto reply = ask(c.context(), c.client_endpoint(), protocol::Control{id, "query"});
  REQUIRE(reply);
  CHECK(std::get<protocol::ClientReply>(*reply).attempt == second->spec.attempt);
}

TEST_CASE("a stale result is acknowledged, not recorded, and its epoch cancelled on the sender", "[fleet]") {
  FleetCoordinator c;
  c.start();
  FakeWorker a(c.context(), c.worker_endpoint(), "worker-a", {}, 1);
  a.hello();
  const std::string id = submit(c.context(), c.client_endpoint(), "Fix it");
  auto d = a.wait_for<protocol::Dispatch>();
  REQUIRE(d);
  protocol::TaskResult r;
  r.task_id = id;
  r.attempt = d->spec.attempt;
  r.epoch = d->spec.epoch + 1000;  // never granted
  r.outcome = "landed";
  r.branch = d->spec.branch;
  a.send(r);
  auto cancel = a.wait_for<protocol::Cancel>();  // sent before the ack
  REQUIRE(cancel);
  CHECK(cancel->epoch == r.epoch);
  auto ack = a.wait_for<protocol::ResultAck>();
  REQUIRE(ack);
  CHECK(ack->epoch == r.epoch);
  auto reply = ask(c.context(), c.client_endpoint(), protocol::Control{id, "query"});
  REQUIRE(reply);
  CHECK(std::get<protocol::ClientReply>(*reply).state == "ROUTED");
}

TEST_CASE("a result that fails to decode is acknowledged and fails its attempt with a reason naming the field",
          "[fleet]") {
  FleetCoordinator c;
  c.start();
  FakeWorker a(c.context(), c.worker_endpoint(), "worker-a", {}, 1);
  a.hello();
  const std::string id = submit(c.context(), c.client_endpoint(), "Fix it");
  auto d = a.wait_for<protocol::Dispatch>();
  REQUIRE(d);
  protocol::TaskResult r;
  r.task_id = id;
  r.attempt = d->spec.attempt;
  r.epoch = d->spec.epoch;
  r.outcome = "failed";
  r.failure_kind = "no-such-kind";  // the decoder refuses it; the lease still reads
  r.reason = "it broke";
  r.branch = d->spec.branch;
  REQUIRE_FALSE(protocol::try_encode(r).ok());  // a real worker cannot send it
  REQUIRE_FALSE(protocol::decode(protocol::detail::encode_unchecked(r)).ok());
  a.send(r);
  auto ack = a.wait_for<protocol::ResultAck>();
  REQUIRE(ack);
  CHECK(ack->task_id == id);
  CHECK(ack->epoch == r.epoch);
  CHECK(ack->attempt == r.attempt);
  auto reply = ask(c.context(), c.client_endpoint(), protocol::Control{id, "query"});
  REQUIRE(reply);
  const auto& task = std::get<protocol::ClientReply>(*reply);
  CHECK(task.state == "FAILED");
  CHECK_THAT(task.reason, Catch::Contains("task_result.failure_kind") && Catch::Contains("worker-a"));
  // Resent (its ack lost, say): answered again, recorded once.
  a.send(r);
  REQUIRE(a.wait_for<protocol::ResultAck>());
  auto again = ask(c.context(), c.client_endpoint(), protocol::Control{id, "query"});
  REQUIRE(again);
  CHECK(std::get<protocol::ClientReply>(*again).reason == task.reason);
}

TEST_CASE("a hello whose worker id is not its routing id is refused", "[fleet]") {
  LogCapture log;
  FleetCoordinator c;
  c.start();
  FakeWorker liar(c.context(), c.worker_endpoint(), "routing-x", {}, 1);
  protocol::Hello h;
  h.worker_id = "worker-a";
  h.hostname = "h";
  h.version = "test";
  h.image_present = true;
  liar.send(h);
  CHECK_FALSE(liar.wait_for<protocol::Welcome>(std::chrono::milliseconds(700)));
  CHECK(log.contains("differs from its routing id"));
  CHECK_FALSE(worker_row(c.context(), c.client_endpoint(), "worker-a"));
}

TEST_CASE("a second connection under a registered worker id is not registered while the first lives", "[fleet]") {
  FleetCoordinator c;
  c.start();
  FakeWorker first(c.context(), c.worker_endpoint(), "worker-a", {"first"}, 1);
  first.hello();
  REQUIRE(first.wait_for<protocol::Welcome>());
  FakeWorker second(c.context(), c.worker_endpoint(), "worker-a", {"second"}, 1);
  second.hello();
  CHECK_FALSE(second.wait_for<protocol::Welcome>(std::chrono::milliseconds(700)));
  auto row = worker_row(c.context(), c.client_endpoint(), "worker-a");
  REQUIRE(row);
  CHECK(row->labels == std::vector<std::string>{"first"});
}
