// The coordinator's side of landing end to end, over real ZeroMQ sockets with a scripted worker: the
// loop wires the land queue (land_queue_test.cpp) to leases, slots and answers.
#include <catch2/catch.hpp>

#include <set>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "coordinator/coordinator.h"
#include "coordinator/submission.h"
#include "fake_clock.h"
#include "test_support.h"

using namespace polyphony;
using namespace polyphony::testing;

namespace {

// A worker that speaks the protocol by hand.
class ScriptedWorker {
 public:
  ScriptedWorker(zmq::context_t& ctx, const std::string& endpoint, const std::string& id,
                 std::vector<protocol::RunningTask> running = {})
      : socket_(ctx, zmq::socket_type::dealer) {
    socket_.set(zmq::sockopt::routing_id, id);
    socket_.set(zmq::sockopt::linger, 0);
    socket_.connect(endpoint);
    protocol::Hello h;
    h.worker_id = id;
    h.hostname = "test";
    h.version = "test";
    h.capacity = 8;
    h.image_present = true;  // the coordinator dispatches only to workers that have the image
    h.running = std::move(running);
    send(h);
  }

  void send(const protocol::Message& m) { socket_.send(zmq::buffer(protocol::encode(m)), zmq::send_flags::none); }

  // The next message of type T, turning the coordinator's loop meanwhile.
  template <class T>
  std::optional<T> next(Coordinator& c, int max_steps = 100) {
    for (int i = 0; i < max_steps; ++i) {
      c.step(20);
      zmq::message_t frame;
      while (socket_.recv(frame, zmq::recv_flags::dontwait)) {
        auto m = protocol::decode(frame.to_string_view());
        if (m.ok() && std::holds_alternative<T>(*m)) return std::get<T>(*m);
      }
    }
    return std::nullopt;
  }

  void update(const protocol::RunSpec& s, const std::string& state) {
    send(protocol::TaskUpdate{s.task_id, s.attempt, s.epoch, state, ""});
  }
  void ask_to_land(const protocol::RunSpec& s) { send(protocol::LandRequest{s.task_id, s.attempt, s.epoch}); }
  void landed(const protocol::RunSpec& s) {
    protocol::TaskResult r;
    r.task_id = s.task_id;
    r.attempt = s.attempt;
    r.epoch = s.epoch;
    r.outcome = "landed";
    r.branch = s.branch;
    r.merged_commit = std::string(40, 'a');
    send(r);
  }

 private:
  zmq::socket_t socket_;
};

struct Fixture {
  TempDir dir{"polyphony-land-queue"};
  zmq::context_t ctx;
  Settings settings;
  std::unique_ptr<Coordinator> coordinator;
  std::string endpoint = "inproc://land-queue-test";
  std::string client_endpoint = "inproc://land-queue-test-clients";

  explicit Fixture(int poll_interval_ms = 10, int max_concurrency = 4) {
    make_bare_repo(dir / "origin.git", {{"README.md", "x\n"}});
    write_file(dir / "home/config.yaml",
               "coordinator: {embedded_worker: false}\npoll_interval_ms: " + std::to_string(poll_interval_ms) +
                   "\nmax_concurrency: " + std::to_string(max_concurrency) + "\n");
    settings = *load_settings(dir / "home");
    auto c = Coordinator::create(ctx, settings, {endpoint}, {client_endpoint});
    REQUIRE(c.ok());
    coordinator = std::move(*c);
  }

  std::string submit(const std::string& title) {
    TaskRequest r;
    r.title = title;
    r.repo = (dir / "origin.git").string();
    r.agent = "scripted";
    auto id = submit_task(r, settings);
    REQUIRE(id.ok());
    return *id;
  }
};

// The next dispatch to `w`, moving `clock` past a first retry's backoff (base +20% at most) if
// none comes at once, and not so far that `w` (which sends no heartbeats) is found lost.
std::optional<protocol::Dispatch> dispatch_after_backoff(Fixture& f, FakeClock& clock, ScriptedWorker& w) {
  if (auto d = w.next<protocol::Dispatch>(*f.coordinator, 20)) return d;
  clock.advance(f.settings.config.retry_backoff_base_ms * 3 / 2);
  return w.next<protocol::Dispatch>(*f.coordinator, 50);
}

// Two tasks ("first", "second") dispatched to `w` and verified; the first is granted its
// landing. Returns both attempts' specs.
std::pair<protocol::RunSpec, protocol::RunSpec> grant_the_first_of_two(Fixture& f, ScriptedWorker& w) {
  f.submit("first");
  f.submit("second");
  auto a = w.next<protocol::Dispatch>(*f.coordinator);
  auto b = w.next<protocol::Dispatch>(*f.coordinator);
  REQUIRE(a);
  REQUIRE(b);
  for (const auto* d : {&*a, &*b}) {
    for (const char* state : {"PROVISIONED", "RUNNING", "VERIFYING"}) w.update(d->spec, state);
  }
  w.ask_to_land(a->spec);
  auto grant = w.next<protocol::LandGrant>(*f.coordinator);
  REQUIRE(grant);
  CHECK(grant->task_id == a->spec.task_id);
  REQUIRE(grant->granted);
  return {a->spec, b->spec};
}

// As above on a worker w1 that then goes away (its socket closes) without a word.
std::pair<protocol::RunSpec, protocol::RunSpec> grant_the_first_of_two(Fixture& f) {
  ScriptedWorker w(f.ctx, f.endpoint, "w1");
  return grant_the_first_of_two(f, w);
}

// The coordinator stops (its merge queue was in memory only) and a new one starts on the same
// state with `clock`, which then moves past every worker's liveness budget.
void restart_past_liveness(Fixture& f, FakeClock& clock) {
  f.coordinator.reset();
  auto restarted = Coordinator::create(f.ctx, f.settings, {f.endpoint}, {f.client_endpoint}, clock);
  REQUIRE(restarted.ok());
  f.coordinator = std::move(*restarted);
  clock.advance(f.settings.config.heartbeat_interval_ms * f.settings.config.heartbeat_liveness + 1000);
}

}  // namespace

TEST_CASE("landings on one repo are granted one at a time, in order, and the next when the first reports") {
  Fixture f;
  ScriptedWorker w(f.ctx, f.endpoint, "w1");
  const auto [a, b] = grant_the_first_of_two(f, w);
  w.ask_to_land(b);
  // The second waits while the first lands.
  CHECK_FALSE(w.next<protocol::LandGrant>(*f.coordinator, 20));
  // Asking again does not jump the queue.
  w.ask_to_land(b);
  CHECK_FALSE(w.next<protocol::LandGrant>(*f.coordinator, 10));
  w.landed(a);
  auto second = w.next<protocol::LandGrant>(*f.coordinator);
  REQUIRE(second);
  CHECK(second->task_id == b.task_id);
  CHECK(second->granted);
  // Each grant is recorded with its merge-queue wait (/metrics): none for the first, the first's
  // landing for the second, counted from its first ask.
  auto store = StateStore::open(f.settings.config.state_db, true);
  REQUIRE(store.ok());
  auto waits = store->land_waits();
  REQUIRE(waits.ok());
  REQUIRE(waits->size() == 2);
  CHECK((*waits)[0].task_id == a.task_id);
  CHECK((*waits)[0].granted_at_ms == (*waits)[0].asked_at_ms);
  CHECK((*waits)[1].task_id == b.task_id);
  CHECK((*waits)[1].granted_at_ms > (*waits)[1].asked_at_ms);
}

TEST_CASE("a task that asked to land holds no slot: the next task is dispatched beside its landing") {
  Fixture f(10, 1);  // max_concurrency 1
  ScriptedWorker w(f.ctx, f.endpoint, "w1");
  f.submit("first");
  f.submit("second");
  f.submit("third");
  auto a = w.next<protocol::Dispatch>(*f.coordinator);
  REQUIRE(a);
  // Provisioning, running and verifying, the first holds the only slot.
  for (const char* state : {"PROVISIONED", "RUNNING", "VERIFYING"}) {
    w.update(a->spec, state);
    CHECK_FALSE(w.next<protocol::Dispatch>(*f.coordinator, 10));
  }
  // Once it asks to land, its agent is done: the second starts while it lands.
  w.ask_to_land(a->spec);
  auto grant = w.next<protocol::LandGrant>(*f.coordinator);
  REQUIRE(grant);
  CHECK(grant->granted);
  auto b = w.next<protocol::Dispatch>(*f.coordinator);
  REQUIRE(b);
  CHECK(b->spec.task_id != a->spec.task_id);
  // `polyphony workers`: both on the worker, one slot held.
  const auto table = f.coordinator->workers();
  REQUIRE(table.workers.size() == 1);
  CHECK(table.workers[0].running.size() == 2);
  CHECK(table.workers[0].load == 1);
  // The second holds the slot now: nothing more until it too asks to land, however the
  // first's landing ends.
  CHECK_FALSE(w.next<protocol::Dispatch>(*f.coordinator, 10));
  w.landed(a->spec);
  CHECK_FALSE(w.next<protocol::Dispatch>(*f.coordinator, 10));
  CHECK(f.coordinator->workers().workers.at(0).running == std::vector<std::string>{b->spec.task_id});
  for (const char* state : {"PROVISIONED", "RUNNING", "VERIFYING"}) w.update(b->spec, state);
  w.ask_to_land(b->spec);
  REQUIRE(w.next<protocol::LandGrant>(*f.coordinator));
  auto c = w.next<protocol::Dispatch>(*f.coordinator);
  REQUIRE(c);
  CHECK(c->spec.task_id != b->spec.task_id);
  CHECK(c->spec.task_id != a->spec.task_id);
}

TEST_CASE("a landing granted before a coordinator restart keeps its repo's slot and its lease while it may push") {
  Fixture f;
  const auto [a, b] = grant_the_first_of_two(f);
  // The coordinator dies with the merge queue in its memory, and w1 is not heard from past its
  // liveness budget: the attempt that asked for nothing is retried, the granted one is not.
  FakeClock clock(system_clock().now_ms());
  restart_past_liveness(f, clock);
  ScriptedWorker w2(f.ctx, f.endpoint, "w2");
  auto retry = dispatch_after_backoff(f, clock, w2);
  REQUIRE(retry);
  CHECK(retry->spec.task_id == b.task_id);
  CHECK_FALSE(w2.next<protocol::Dispatch>(*f.coordinator, 20));  // none for the granted one
  for (const char* state : {"PROVISIONED", "RUNNING", "VERIFYING"}) w2.update(retry->spec, state);
  w2.ask_to_land(retry->spec);
  CHECK_FALSE(w2.next<protocol::LandGrant>(*f.coordinator, 20));  // the restored grant holds the repo
  // w1 comes back with its landing and reports it; then the retry may land.
  ScriptedWorker w1(f.ctx, f.endpoint, "w1", {{a.task_id, a.attempt, a.epoch}});
  w1.landed(a);
  auto next = w2.next<protocol::LandGrant>(*f.coordinator);
  REQUIRE(next);
  CHECK(next->task_id == b.task_id);
  CHECK(next->granted);
  auto store = StateStore::open(f.settings.config.state_db, true);
  REQUIRE(store.ok());
  auto first = store->get(a.task_id);
  REQUIRE(first.ok());
  REQUIRE(first->has_value());
  CHECK((*first)->state == TaskState::kLanded);
  CHECK((*first)->attempt == a.attempt);
}

TEST_CASE("a grant older than its lifetime is not restored: the silent attempt is retried") {
  Fixture f;
  const auto [a, b] = grant_the_first_of_two(f);
  FakeClock clock(system_clock().now_ms() + protocol::kLandGrantLifetimeMs);
  restart_past_liveness(f, clock);
  ScriptedWorker w2(f.ctx, f.endpoint, "w2");
  std::set<std::string> retried;
  for (int i = 0; i < 2; ++i) {
    auto retry = dispatch_after_backoff(f, clock, w2);
    REQUIRE(retry);
    CHECK(retry->spec.epoch > std::max(a.epoch, b.epoch));
    retried.insert(retry->spec.task_id);
  }
  CHECK(retried == std::set<std::string>{a.task_id, b.task_id});
}

TEST_CASE("a land request from a stale lease is refused, and so is one from a task not verifying") {
  Fixture f;
  ScriptedWorker w(f.ctx, f.endpoint, "w1");
  f.submit("only");
  auto d = w.next<protocol::Dispatch>(*f.coordinator);
  REQUIRE(d);
  w.update(d->spec, "PROVISIONED");
  w.update(d->spec, "RUNNING");
  w.ask_to_land(d->spec);  // still RUNNING
  auto early = w.next<protocol::LandGrant>(*f.coordinator);
  REQUIRE(early);
  CHECK_FALSE(early->granted);
  CHECK_THAT(early->reason, Catch::Contains("RUNNING"));

  w.update(d->spec, "VERIFYING");
  protocol::RunSpec stale = d->spec;
  stale.epoch = d->spec.epoch - 1;
  w.ask_to_land(stale);
  auto refused = w.next<protocol::LandGrant>(*f.coordinator);
  REQUIRE(refused);
  CHECK_FALSE(refused->granted);
  CHECK(refused->epoch == stale.epoch);
  CHECK_THAT(refused->reason, Catch::Contains("stale lease"));

  w.ask_to_land(d->spec);
  auto granted = w.next<protocol::LandGrant>(*f.coordinator);
  REQUIRE(granted);
  CHECK(granted->granted);
}

TEST_CASE("a large backlog is claimed over several passes, so one pass never holds the loop for all of it") {
  Fixture f;
  {
    auto queue = SqliteQueue::open(f.settings.config.queue_db);
    REQUIRE(queue.ok());
    for (int i = 0; i < kMaxClaimsPerPass + 40; ++i) {
      TaskRequest r;
      r.id = "bk" + std::to_string(1000 + i);
      r.title = "backlog " + std::to_string(i);
      r.repo = (f.dir / "origin.git").string();
      r.agent = "scripted";
      REQUIRE((*queue)->enqueue(r).ok());
    }
  }
  auto store = StateStore::open(f.settings.config.state_db, true);
  REQUIRE(store.ok());
  auto count = [&](TaskState s) { return store->list({s})->size(); };
  REQUIRE(eventually([&] {
    f.coordinator->step(5);
    return count(TaskState::kClaimed) > 0;
  }));
  CHECK(count(TaskState::kClaimed) == static_cast<size_t>(kMaxClaimsPerPass));
  CHECK(count(TaskState::kDiscovered) == 40);
  REQUIRE(eventually([&] {
    f.coordinator->step(5);
    return count(TaskState::kDiscovered) == 0;
  }));
  CHECK(count(TaskState::kClaimed) == static_cast<size_t>(kMaxClaimsPerPass + 40));
}

TEST_CASE("a query about a task still in the queue makes the coordinator pick the queue up at once") {
  Fixture f(600000);  // the poll alone would find the task in ten minutes
  ScriptedWorker w(f.ctx, f.endpoint, "w1");
  REQUIRE(w.next<protocol::Welcome>(*f.coordinator));
  const std::string id = f.submit("spawned");
  CHECK_FALSE(w.next<protocol::Dispatch>(*f.coordinator, 10));

  // What `polyphony spawn` sends after queueing: a query about the new task.
  zmq::socket_t client(f.ctx, zmq::socket_type::dealer);
  client.set(zmq::sockopt::linger, 0);
  client.connect(f.client_endpoint);
  client.send(zmq::buffer(protocol::encode(protocol::Control{id, "query"})), zmq::send_flags::none);
  auto d = w.next<protocol::Dispatch>(*f.coordinator, 10);
  REQUIRE(d);
  CHECK(d->spec.task_id == id);
  zmq::message_t frame;
  REQUIRE(client.recv(frame, zmq::recv_flags::dontwait));
  auto reply = protocol::decode(frame.to_string_view());
  REQUIRE(reply.ok());
  const auto& r = std::get<protocol::ClientReply>(*reply);
  CHECK(r.ok);
  CHECK(r.task_id == id);
  CHECK(r.state == "DISCOVERED");  // as it stood when asked; scored, claimed and routed right after
}
