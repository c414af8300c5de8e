// The worker registry on its own: hellos, liveness by a clock moved by hand, the slots held, and
// the worker table. No sockets.
#include "coordinator/worker_registry.h"

#include <catch2/catch.hpp>

#include "fake_clock.h"

using namespace polyphony;
using polyphony::testing::FakeClock;

namespace {

constexpr int64_t kInterval = 100;
constexpr int kLiveness = 5;  // budget: 500 ms

protocol::Hello hello(const std::string& id, int capacity = 2, std::vector<protocol::RunningTask> running = {}) {
  protocol::Hello h;
  h.worker_id = id;
  h.hostname = "host-" + id;
  h.version = "test";
  h.capacity = capacity;
  h.image_present = true;
  h.running = std::move(running);
  return h;
}

}  // namespace

TEST_CASE("the registry accepts a hello only under its own routing id, version and first key", "[worker_registry]") {
  using V = WorkerRegistry::HelloVerdict;
  struct Case {
    std::string name;
    std::string routing_id;
    protocol::Hello hello;
    std::string key;
    V verdict;
  };
  protocol::Hello old_version = hello("w1");
  old_version.protocol_version = protocol::kProtocolVersion + 1;
  const std::vector<Case> cases = {
      {"a new worker registers", "w2", hello("w2"), "", V::kAccepted},
      {"the same worker and key re-register", "w1", hello("w1"), "key-a", V::kAccepted},
      {"another protocol version is refused", "w1", old_version, "key-a", V::kWrongVersion},
      {"a worker id other than the routing id is refused", "w9", hello("w1"), "key-a", V::kIdMismatch},
      {"another key cannot take over a worker id", "w1", hello("w1"), "key-b", V::kKeyMismatch},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    WorkerRegistry r(kInterval, kLiveness);
    REQUIRE(r.hello("w1", hello("w1"), "key-a", 0).verdict == V::kAccepted);
    const auto out = r.hello(c.routing_id, c.hello, c.key, 10);
    CHECK(out.verdict == c.verdict);
    CHECK((out.worker != nullptr) == (c.verdict == V::kAccepted));
    if (c.verdict == V::kKeyMismatch) CHECK(out.bound_key == "key-a");
    if (c.verdict == V::kAccepted) CHECK(out.known == (c.routing_id == "w1"));
  }
}

TEST_CASE("a hello replaces what the worker runs with what it says it runs", "[worker_registry]") {
  WorkerRegistry r(kInterval, kLiveness);
  r.hello("w1", hello("w1", 2, {{"a", 1, 3}}), "", 0);
  CHECK(r.find("w1")->running == std::set<std::string>{"a"});
  r.find("w1")->running.insert("b");
  r.hello("w1", hello("w1", 2, {{"c", 1, 4}}), "", 10);
  CHECK(r.find("w1")->running == std::set<std::string>{"c"});
}

TEST_CASE("a silent worker is lost just past its budget, and recovers when heard again", "[worker_registry]") {
  FakeClock clock;
  WorkerRegistry r(kInterval, kLiveness);
  const int64_t t0 = clock.now_ms();
  r.hello("w1", hello("w1"), "", t0);
  r.sent("w1", t0);
  struct Tick {
    int64_t advance;
    bool lost_now;   // the walk at this time marks it lost
    bool heartbeat;  // the walk at this time says a heartbeat is due
  };
  // Nothing heard after the hello; the walk runs whenever it is due.
  const std::vector<Tick> ticks = {
      {50, false, false},    // t0+50: sent 50 ms ago
      {50, false, true},     // t0+100: an interval since the last send
      {400, false, true},    // t0+500: at the budget, still live
      {1, true, false},      // t0+501: past it
      {1000, false, false},  // already lost: not again, and no heartbeats
  };
  for (size_t i = 0; i < ticks.size(); ++i) {
    INFO("tick " << i);
    clock.advance(ticks[i].advance);
    const int64_t now = clock.now_ms();
    const auto walk = r.walk(now);
    CHECK((walk.lost.size() == 1) == ticks[i].lost_now);
    CHECK((walk.heartbeat_due.size() == 1) == ticks[i].heartbeat);
    for (auto* w : walk.heartbeat_due) r.sent(w->routing_id, now);
  }
  CHECK(r.find("w1")->lost);
  CHECK(r.find("w1")->lost_at_ms == t0 + 501);
  clock.advance(99);
  const auto heard = r.heard("w1", clock.now_ms());
  REQUIRE(heard.worker != nullptr);
  CHECK(heard.lost_for_ms == 1099);
  CHECK_FALSE(heard.worker->lost);
  CHECK(r.walk_due(clock.now_ms()));  // its heartbeats are due again
  CHECK_FALSE(r.heard("nobody", clock.now_ms()).worker);
}

TEST_CASE("the liveness walk is not due again before the earliest deadline it saw", "[worker_registry]") {
  FakeClock clock;
  WorkerRegistry r(kInterval, kLiveness);
  const int64_t t0 = clock.now_ms();
  r.hello("w1", hello("w1"), "", t0);
  r.sent("w1", t0);
  r.walk(t0);
  CHECK_FALSE(r.walk_due(t0 + kInterval - 1));
  CHECK(r.walk_due(t0 + kInterval));
  // A heartbeat sent at once: the next is an interval after it.
  const auto walk = r.walk(t0 + kInterval);
  REQUIRE(walk.heartbeat_due.size() == 1);
  CHECK_FALSE(r.walk_due(t0 + 2 * kInterval - 1));
  CHECK(r.walk_due(t0 + 2 * kInterval));
}

TEST_CASE("a worker holds a task while heard within its budget and running it", "[worker_registry]") {
  WorkerRegistry r(kInterval, kLiveness);
  r.hello("w1", hello("w1", 2, {{"a", 1, 3}}), "", 1000);
  struct Case {
    std::string worker, task;
    int64_t now;
    bool held;
  };
  const std::vector<Case> cases = {
      {"w1", "a", 1000, true},  {"w1", "a", 1499, true},  {"w1", "a", 1500, false},
      {"w1", "b", 1000, false}, {"w2", "a", 1000, false},
  };
  for (const Case& c : cases) {
    INFO(c.worker << " " << c.task << " at " << c.now);
    CHECK(r.holds(c.worker, c.task, c.now) == c.held);
  }
}

TEST_CASE("free workers are live, have the image and a free slot, and landing tasks hold none", "[worker_registry]") {
  WorkerRegistry r(kInterval, kLiveness);
  r.hello("full", hello("full", 1, {{"a", 1, 1}}), "", 0);
  r.hello("landing", hello("landing", 1, {{"b", 1, 2}}), "", 0);
  protocol::Hello no_image = hello("no-image");
  no_image.image_present = false;
  r.hello("no-image", no_image, "", 0);
  r.hello("silent", hello("silent"), "", -1000);
  r.hello("lost", hello("lost"), "", 0);
  r.find("lost")->lost = true;
  r.hello("idle", hello("idle", 3), "", 0);
  const std::set<std::string> landing = {"b"};
  const auto free = r.free_workers(100, landing);
  std::vector<std::string> ids;
  for (const auto& c : free.candidates) ids.push_back(c.id);
  CHECK(ids == std::vector<std::string>{"idle", "landing"});
  REQUIRE(free.entries.size() == 2);
  CHECK(free.entries[1]->routing_id == "landing");
  CHECK(free.candidates[1].load == 0);
  CHECK(r.running_count(landing) == 1);
  CHECK(r.running_count({}) == 2);
  CHECK(r.forget_task("a"));
  CHECK_FALSE(r.forget_task("a"));
  CHECK(r.running_count({}) == 1);
}

TEST_CASE("the worker table shows each worker's state, load, heartbeat age and clock", "[worker_registry]") {
  WorkerRegistry r(kInterval, kLiveness);
  r.hello("busy", hello("busy", 1, {{"a", 1, 1}}), "key-b", 1000);
  r.hello("ready", hello("ready", 2, {{"b", 1, 2}}), "", 1200);
  r.hello("lost", hello("lost"), "", 0);
  r.find("lost")->lost = true;
  protocol::Heartbeat hb;
  hb.load = 1;
  hb.sent_ms = 1300;
  WorkerRegistry::note_heartbeat(*r.find("ready"), hb, 1250);
  const auto table = worker_table(r.entries(), "coord:1", 1500, {"b"});
  CHECK(table.coordinator_id == "coord:1");
  REQUIRE(table.workers.size() == 3);
  const auto& busy = table.workers[0];
  const auto& lost = table.workers[1];
  const auto& ready = table.workers[2];
  CHECK(busy.state == "busy");
  CHECK(busy.load == 1);
  CHECK(busy.heartbeat_age_ms == 500);
  CHECK(busy.key == "key-b");
  CHECK_FALSE(busy.clock_known);
  CHECK(lost.state == "lost");
  CHECK(ready.state == "ready");
  CHECK(ready.load == 0);  // its task is landing
  CHECK(ready.running == std::vector<std::string>{"b"});
  CHECK(ready.clock_known);
  CHECK(ready.clock_offset_ms == 50);
  CHECK(r.find("ready")->reported_load == 1);
}

TEST_CASE("a disconnected worker is lost one interval after its connection closed, unless heard again",
          "[worker_registry]") {
  struct Case {
    std::string name;
    int64_t heard_after_ms;  // < 0: never heard again
    int64_t walk_at_ms;      // after the disconnect
    bool lost;
  };
  const std::vector<Case> cases = {
      {"within the interval it is still live", -1, kInterval, false},
      {"just past the interval it is lost", -1, kInterval + 1, true},
      {"lost long before its silence budget", -1, kInterval * kLiveness - 1, true},
      {"heard again (a reconnect) it is not lost", 50, kInterval + 1, false},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    FakeClock clock;
    WorkerRegistry r(kInterval, kLiveness);
    const int64_t t0 = clock.now_ms();
    r.hello("w1", hello("w1"), "", t0);
    r.find("w1")->connection_fd = 7;
    r.sent("w1", t0);
    CHECK(r.disconnected(8, t0) == nullptr);  // another connection: nobody's
    WorkerEntry* w = r.disconnected(7, t0);
    REQUIRE(w != nullptr);
    CHECK(r.walk_due(t0));
    // No heartbeat goes to it while it has no connection.
    CHECK(r.walk(t0 + kInterval / 2).heartbeat_due.empty());
    if (c.heard_after_ms >= 0) r.heard("w1", t0 + c.heard_after_ms);
    const auto walk = r.walk(t0 + c.walk_at_ms);
    CHECK((walk.lost.size() == 1) == c.lost);
    CHECK(r.find("w1")->lost == c.lost);
    // A disconnected worker gets no work until it is heard again.
    CHECK(r.free_workers(t0 + c.walk_at_ms, {}).entries.size() == (c.heard_after_ms >= 0 ? 1u : 0u));
  }
}

TEST_CASE("the default liveness of 3 loses a silent worker within 3 intervals", "[worker_registry]") {
  const protocol::Welcome defaults;
  REQUIRE(defaults.liveness == 3);
  FakeClock clock;
  WorkerRegistry r(1000, defaults.liveness);
  const int64_t t0 = clock.now_ms();
  r.hello("w1", hello("w1", 2, {{"a", 1, 3}}), "", t0);
  int64_t lost_at = -1;
  for (int64_t t = t0; t <= t0 + 5000 && lost_at < 0; t += 100) {
    if (!r.walk_due(t)) continue;
    if (!r.walk(t).lost.empty()) lost_at = t;
  }
  CHECK(lost_at > t0);
  CHECK(lost_at - t0 <= 3100);  // 3 intervals, and the walk's 100 ms step
  CHECK_FALSE(r.holds("w1", "a", lost_at));
}

TEST_CASE("a lost worker leaves the table after the expiry, and never with an expiry of 0", "[worker_registry]") {
  struct Case {
    int64_t expiry_ms;
    int64_t after_lost_ms;
    bool listed;
  };
  const std::vector<Case> cases = {
      {1000, 1000, true},
      {1000, 1001, false},
      {0, 100000000, true},
  };
  for (const Case& c : cases) {
    INFO("expiry " << c.expiry_ms << ", " << c.after_lost_ms << " ms after it was lost");
    WorkerRegistry r(kInterval, kLiveness, c.expiry_ms);
    r.hello("w1", hello("w1"), "", 0);
    r.hello("w2", hello("w2"), "", 0);
    const int64_t lost_at = kInterval * kLiveness + 1;
    r.heard("w2", lost_at);  // w2 stays live
    REQUIRE(r.walk(lost_at).lost.size() == 1);
    r.heard("w2", lost_at + c.after_lost_ms);
    if (c.expiry_ms > 0) CHECK(r.walk_due(lost_at + c.expiry_ms + 1));
    const auto walk = r.walk(lost_at + c.after_lost_ms);
    CHECK((r.find("w1") != nullptr) == c.listed);
    CHECK(walk.expired == (c.listed ? std::vector<std::string>{} : std::vector<std::string>{"w1"}));
    CHECK(r.find("w2") != nullptr);
  }
}

TEST_CASE("a removed worker is off the table, and heard from it is nothing", "[worker_registry]") {
  WorkerRegistry r(kInterval, kLiveness);
  r.hello("w1", hello("w1", 2, {{"a", 1, 3}}), "", 0);
  CHECK(r.remove("w1"));
  CHECK_FALSE(r.remove("w1"));
  CHECK(r.find("w1") == nullptr);
  CHECK(r.heard("w1", 10).worker == nullptr);
  CHECK_FALSE(r.holds("w1", "a", 10));
  CHECK(r.running_count({}) == 0);
}
