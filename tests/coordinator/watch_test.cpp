// The client endpoint's `watch`: a client follows a task's news instead of polling, over a real
// coordinator and real sockets; and a result "already in base" as the coordinator records it.
#include <catch2/catch.hpp>

#include "fleet_support.h"

using namespace polyphony;
using namespace polyphony::testing;

namespace {

// A client's DEALER on the coordinator's client endpoint.
struct Watcher {
  zmq::socket_t socket;

  Watcher(zmq::context_t& ctx, const std::string& endpoint) : socket(ctx, zmq::socket_type::dealer) {
    socket.set(zmq::sockopt::linger, 0);
    socket.connect(endpoint);
  }
  void send(const protocol::Message& m) { socket.send(zmq::buffer(protocol::encode(m)), zmq::send_flags::none); }
  // The next reply within `timeout`, or nullopt.
  std::optional<protocol::ClientReply> next(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    zmq::pollitem_t items[] = {{socket.handle(), 0, ZMQ_POLLIN, 0}};
    zmq::poll(items, 1, timeout);
    zmq::message_t frame;
    if (!(items[0].revents & ZMQ_POLLIN) || !socket.recv(frame, zmq::recv_flags::dontwait)) return std::nullopt;
    auto m = protocol::decode(frame.to_string_view());
    REQUIRE(m.ok());
    REQUIRE(std::holds_alternative<protocol::ClientReply>(*m));
    return std::get<protocol::ClientReply>(*m);
  }
};

// The worker takes the attempt through its states, is granted its landing and reports `result`.
void run_to_landed(FakeWorker& w, const protocol::Dispatch& d, protocol::TaskResult result) {
  for (const char* state : {"PROVISIONED", "RUNNING", "VERIFYING"}) {
    w.send(protocol::TaskUpdate{d.spec.task_id, d.spec.attempt, d.spec.epoch, state, ""});
  }
  w.send(protocol::LandRequest{d.spec.task_id, d.spec.attempt, d.spec.epoch});
  auto grant = w.wait_for<protocol::LandGrant>();
  REQUIRE(grant);
  REQUIRE(grant->granted);
  result.task_id = d.spec.task_id;
  result.attempt = d.spec.attempt;
  result.epoch = d.spec.epoch;
  result.outcome = "landed";
  result.branch = d.spec.branch;
  w.send(result);
  REQUIRE(w.wait_for<protocol::ResultAck>());
}

const std::string kBase = "89abcdef0123456789abcdef0123456789abcdef";

}  // namespace

TEST_CASE("a watch is answered at once, then at each change of its task, and ends with the final state", "[fleet]") {
  FleetCoordinator c;
  c.start();
  FakeWorker w(c.context(), c.worker_endpoint(), "worker-a");
  w.hello();
  const std::string id = submit(c.context(), c.client_endpoint(), "Watch me");
  Watcher client(c.context(), c.client_endpoint());
  client.send(protocol::Watch{id});
  auto first = client.next();
  REQUIRE(first);
  CHECK(first->ok);
  CHECK(first->task_id == id);
  auto d = w.wait_for<protocol::Dispatch>();
  REQUIRE(d);
  protocol::TaskResult landed;
  landed.commit = "0123456789abcdef0123456789abcdef01234567";
  landed.merged_commit = kBase;
  run_to_landed(w, *d, landed);
  std::vector<std::string> states{first->state};
  while (states.back() != "LANDED") {
    auto r = client.next();
    INFO("states so far: " << states.size() << ", last " << states.back());
    REQUIRE(r);
    CHECK(r->task_id == id);
    CHECK(r->state != "");
    states.push_back(r->state);
  }
  // Its news, in order, each a change (the three updates the worker sent at once came as one:
  // the standing after them); the last is final and ends the watch.
  CHECK(std::find(states.begin(), states.end(), "VERIFYING") != states.end());
  for (size_t i = 1; i < states.size(); ++i) CHECK(states[i] != states[i - 1]);
  CHECK_FALSE(client.next(std::chrono::milliseconds(500)));
  // A watch of a task in a final state is answered once, not followed.
  client.send(protocol::Watch{id});
  auto again = client.next();
  REQUIRE(again);
  CHECK(again->state == "LANDED");
  CHECK(again->merged_commit == kBase);
  CHECK_FALSE(client.next(std::chrono::milliseconds(500)));
}

TEST_CASE("renewing a watch answers with the standing now and never doubles the news", "[fleet]") {
  FleetCoordinator c;
  c.start();
  const std::string id = submit(c.context(), c.client_endpoint(), "Nobody runs me");
  Watcher client(c.context(), c.client_endpoint());
  client.send(protocol::Watch{id});
  auto first = client.next();
  REQUIRE(first);
  client.send(protocol::Watch{id});
  auto second = client.next();
  REQUIRE(second);
  CHECK(second->task_id == id);
  client.send(protocol::Control{id, "cancel"});
  // The cancel's own answer, and the watch's news of it: one each (news of its claim may come
  // before them).
  int cancelled = 0;
  while (auto r = client.next(std::chrono::milliseconds(800))) cancelled += r->state == "CANCELLED";
  CHECK(cancelled == 2);
}

TEST_CASE("a watch of an unknown task, or of a malformed id, is refused naming the field", "[fleet]") {
  FleetCoordinator c;
  c.start();
  Watcher client(c.context(), c.client_endpoint());
  client.send(protocol::Watch{"no-such-task"});
  auto r = client.next();
  REQUIRE(r);
  CHECK_FALSE(r->ok);
  CHECK(r->where == "task_id");
  client.socket.send(zmq::buffer(std::string("\x82\xa1v\x01\xa4type\xa5watch", 15)), zmq::send_flags::none);
  auto bad = client.next();
  REQUIRE(bad);
  CHECK_FALSE(bad->ok);
  CHECK(bad->where == "watch.task_id");
}

TEST_CASE("a result already in base is recorded LANDED with that base commit and no commit of its own", "[fleet]") {
  FleetCoordinator c;
  c.start();
  FakeWorker w(c.context(), c.worker_endpoint(), "worker-a");
  w.hello();
  const std::string id = submit(c.context(), c.client_endpoint(), "Same as before");
  auto d = w.wait_for<protocol::Dispatch>();
  REQUIRE(d);
  protocol::TaskResult held;
  held.already_in_base = kBase;
  held.reason = "already in base: main at 89abcdef0123 holds this change";
  run_to_landed(w, *d, held);
  Watcher client(c.context(), c.client_endpoint());
  client.send(protocol::Watch{id});
  auto r = client.next();
  REQUIRE(r);
  CHECK(r->state == "LANDED");
  CHECK(r->merged_commit == kBase);
  CHECK_THAT(r->reason, Catch::StartsWith("already in base: 89abcdef0123"));
}

TEST_CASE("task watches: a renewal replaces what was told, news goes to those not told, a gone client leaves",
          "[watch]") {
  TaskWatches w;
  protocol::ClientReply running;
  running.ok = true;
  running.task_id = "t1";
  running.state = "RUNNING";
  protocol::ClientReply landed = running;
  landed.state = "LANDED";
  REQUIRE(w.add("t1", "a", running));
  REQUIRE(w.add("t1", "b", landed));
  REQUIRE(w.add("t1", "a", running));  // renewed, not doubled
  CHECK(w.size() == 2);
  CHECK(w.news("t1", landed) == std::vector<std::string>{"a"});
  CHECK(w.news("t1", landed).empty());
  REQUIRE(w.add("t2", "a", running));
  w.drop_client("a");
  CHECK(w.size() == 1);
  CHECK_FALSE(w.watched("t2"));
  w.end("t1");
  CHECK(w.empty());
  CHECK(is_final_state("BLOCKED"));
  CHECK_FALSE(is_final_state("VERIFYING"));
}

TEST_CASE("task watches refuse a new watch past kMaxWatches but still renew one held", "[watch]") {
  TaskWatches w;
  protocol::ClientReply r;
  for (size_t i = 0; i < kMaxWatches; ++i) REQUIRE(w.add("t" + std::to_string(i), "c", r));
  CHECK_FALSE(w.add("one-more", "c", r));
  CHECK_FALSE(w.watched("one-more"));
  CHECK(w.add("t0", "c", r));
  CHECK(w.size() == kMaxWatches);
}
