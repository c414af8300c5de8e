// The state DB: tasks, transitions as transactions with events, epochs, and foreign files.
#include <catch2/catch.hpp>

#include "common/sqlite.h"
#include "coordinator/state_store.h"
#include "coordinator/work_source.h"
#include "test_support.h"

using namespace polyphony;
using polyphony::testing::TempDir;

namespace {

TaskRequest request(const std::string& id) {
  TaskRequest r;
  r.id = id;
  r.title = "Fix auth bug";
  r.repo = "/srv/app.git";
  r.labels = {"a", "b"};
  return r;
}

// Whether the task as read back stands where the returned copy says.
bool same_standing(const Task& a, const Task& b) {
  return a.state == b.state && a.attempt == b.attempt && a.worker == b.worker && a.epoch == b.epoch &&
         a.reason == b.reason && a.updated_at_ms == b.updated_at_ms && a.request.id == b.request.id;
}

}  // namespace

TEST_CASE("a task walks the happy path and every step is an event") {
  TempDir dir;
  auto store = StateStore::open(dir / "state.db");
  REQUIRE(store.ok());
  REQUIRE(*store->add(request("t1"), 1000));
  CHECK_FALSE(*store->add(request("t1"), 1001));  // idempotent
  const std::vector<TaskState> path{TaskState::kDiscovered,  TaskState::kClaimed, TaskState::kRouted,
                                    TaskState::kProvisioned, TaskState::kRunning, TaskState::kVerifying,
                                    TaskState::kLanded};
  for (size_t i = 1; i < path.size(); ++i) {
    TransitionUpdate u;
    u.reason = "step " + std::to_string(i);
    if (path[i] == TaskState::kRouted) {
      u.worker = "w1";
      u.attempt = 1;
      u.epoch = 5;
    }
    REQUIRE(store->transition("t1", path[i - 1], path[i], u, 1000 + static_cast<int64_t>(i)).ok());
  }
  auto t = store->get("t1");
  REQUIRE(t.ok());
  REQUIRE(t->has_value());
  CHECK((*t)->state == TaskState::kLanded);
  CHECK((*t)->worker == "w1");
  CHECK((*t)->epoch == 5);
  CHECK((*t)->request.labels == std::vector<std::string>{"a", "b"});
  auto events = store->events("t1");
  REQUIRE(events.ok());
  REQUIRE(events->size() == path.size());
  CHECK(events->back().from == "VERIFYING");
  CHECK(events->back().to == "LANDED");
  CHECK(events->back().reason == "step 6");
}

TEST_CASE("a transition from the wrong state or against the lifecycle is refused and changes nothing") {
  TempDir dir;
  auto store = StateStore::open(dir / "state.db");
  REQUIRE(store.ok());
  REQUIRE(*store->add(request("t1"), 1));
  auto wrong_from = store->transition("t1", TaskState::kClaimed, TaskState::kRouted, {}, 2);
  REQUIRE_FALSE(wrong_from.ok());
  CHECK(wrong_from.error().code == "transition");
  auto forbidden = store->transition("t1", TaskState::kDiscovered, TaskState::kLanded, {}, 2);
  REQUIRE_FALSE(forbidden.ok());
  CHECK_THAT(forbidden.error().message, Catch::Contains("DISCOVERED -> LANDED"));
  CHECK((*store->get("t1"))->state == TaskState::kDiscovered);
  CHECK(store->events("t1")->size() == 1);
}

TEST_CASE("lease epochs only grow, across reopening") {
  TempDir dir;
  int64_t last = 0;
  for (int round = 0; round < 2; ++round) {
    auto store = StateStore::open(dir / "state.db");
    REQUIRE(store.ok());
    for (int i = 0; i < 5; ++i) {
      auto e = store->next_epoch();
      REQUIRE(e.ok());
      CHECK(*e > last);
      last = *e;
    }
  }
  CHECK(last == 10);
}

TEST_CASE("a foreign or corrupt file at the state path is refused and left untouched") {
  TempDir dir;
  const auto garbage = dir / "garbage.db";
  polyphony::testing::write_file(garbage, std::string(8192, 'x'));
  auto g = StateStore::open(garbage);
  REQUIRE_FALSE(g.ok());
  CHECK_THAT(g.error().message, Catch::Contains("left untouched"));
  CHECK(polyphony::testing::read_file(garbage) == std::string(8192, 'x'));

  const auto queue_file = dir / "queue.db";
  REQUIRE(SqliteQueue::open(queue_file).ok());
  auto foreign = StateStore::open(queue_file);  // another program's (our queue's) database
  REQUIRE_FALSE(foreign.ok());
  CHECK_THAT(foreign.error().message, Catch::Contains("belongs to another program"));
}

TEST_CASE("the queue hands tasks out until they are acknowledged") {
  TempDir dir;
  auto q = SqliteQueue::open(dir / "queue.db");
  REQUIRE(q.ok());
  auto r1 = request("a1");
  r1.body = "body";
  r1.agent = "scripted";
  REQUIRE((*q)->enqueue(r1).ok());
  REQUIRE((*q)->enqueue(request("a2")).ok());
  REQUIRE_FALSE((*q)->enqueue(request("a2")).ok());  // ids are unique
  auto p = (*q)->poll();
  REQUIRE(p.ok());
  REQUIRE(p->size() == 2);
  CHECK(p->at(0).body == "body");
  CHECK(p->at(0).agent == "scripted");
  REQUIRE((*q)->ack("a1").ok());
  p = (*q)->poll();
  REQUIRE(p->size() == 1);
  CHECK(p->at(0).id == "a2");
}

TEST_CASE("a chain of transitions is one transaction: all of it or none of it") {
  TempDir dir;
  auto store = StateStore::open(dir / "state.db");
  REQUIRE(store.ok());
  REQUIRE(*store->add(request("t1"), 1));
  REQUIRE(
      store->transitions("t1", TaskState::kDiscovered, {{TaskState::kClaimed, {}}, {TaskState::kRouted, {}}}, 2).ok());
  CHECK((*store->get("t1"))->state == TaskState::kRouted);
  // ROUTED -> FAILED -> LANDED is not a path: nothing changes.
  TransitionUpdate failed;
  failed.reason = "boom";
  auto bad = store->transitions("t1", TaskState::kRouted, {{TaskState::kFailed, failed}, {TaskState::kLanded, {}}}, 3);
  REQUIRE_FALSE(bad.ok());
  CHECK((*store->get("t1"))->state == TaskState::kRouted);
  TransitionUpdate retry;
  retry.reason = "retry";
  REQUIRE(store->transitions("t1", TaskState::kRouted, {{TaskState::kFailed, failed}, {TaskState::kClaimed, retry}}, 4)
              .ok());
  auto events = store->events("t1");
  REQUIRE(events->size() == 5);
  CHECK(events->at(3).to == "FAILED");
  CHECK(events->at(3).reason == "boom");
  CHECK(events->at(4).to == "CLAIMED");
}

TEST_CASE("score, plan, reviewer and failed trees are kept, and a note joins the history without a state change") {
  TempDir dir;
  auto store = StateStore::open(dir / "state.db");
  REQUIRE(store.ok());
  REQUIRE(*store->add(request("t1"), 1000));
  TransitionUpdate claim;
  claim.score = 5;
  claim.plan = "review";
  claim.reviewer = "claude";
  REQUIRE(store->transition("t1", TaskState::kDiscovered, TaskState::kClaimed, claim, 1001).ok());
  TransitionUpdate route;
  route.attempt = 1;
  REQUIRE(store->transition("t1", TaskState::kClaimed, TaskState::kRouted, route, 1002).ok());
  REQUIRE(store->note("t1", "review by claude: approved", 1003).ok());
  TransitionUpdate failed;
  failed.failed_tree = "aaaa";
  REQUIRE(store->transition("t1", TaskState::kRouted, TaskState::kFailed, failed, 1004).ok());
  TransitionUpdate again;
  again.failed_tree = "bbbb";
  REQUIRE(store->transitions("t1", TaskState::kFailed, {{TaskState::kClaimed, {}}, {TaskState::kRouted, again}}, 1005)
              .ok());

  auto t = **store->get("t1");
  CHECK(t.score == 5);
  CHECK(t.plan == "review");
  CHECK(t.reviewer == "claude");
  CHECK(t.failed_trees == std::vector<std::string>{"aaaa", "bbbb"});
  auto events = *store->events("t1");
  REQUIRE(events.size() == 7);
  CHECK(events[3].from == "ROUTED");
  CHECK(events[3].to == "ROUTED");
  CHECK(events[3].reason == "review by claude: approved");
  CHECK(store->note("nope", "x", 1).error().code == "not_found");
}

TEST_CASE("a state DB made before the score columns existed gains them on open, keeping its tasks") {
  TempDir dir;
  {
    auto store = StateStore::open(dir / "state.db");
    REQUIRE(store.ok());
    REQUIRE(*store->add(request("old"), 1000));
  }
  // Make it look like the first schema: the later columns dropped (and the outcome views, which
  // read them, with them).
  {
    auto db = Database::open(dir / "state.db", kStateDbApplicationId, false);
    REQUIRE(db.ok());
    REQUIRE(db->exec("DROP VIEW task_outcomes; DROP VIEW attempt_outcomes").ok());
    for (const char* column : {"score", "plan", "reviewer", "failed_trees"}) {
      REQUIRE(db->exec(std::string("ALTER TABLE tasks DROP COLUMN ") + column).ok());
    }
  }
  auto store = StateStore::open(dir / "state.db");
  REQUIRE(store.ok());
  auto t = **store->get("old");
  CHECK(t.request.title == "Fix auth bug");
  CHECK(t.score == -1);
  CHECK(t.failed_trees.empty());
}

TEST_CASE("a batch commits its transitions together, and a refused one inside it undoes only itself") {
  TempDir dir;
  auto store = StateStore::open(dir / "state.db");
  REQUIRE(store.ok());
  REQUIRE(*store->add(request("t1"), 1000));
  REQUIRE(*store->add(request("t2"), 1000));
  Status refused;
  Status s = store->batch([&]() -> Status {
    POLY_TRY(store->transition("t1", TaskState::kDiscovered, TaskState::kClaimed, {}, 1001));
    refused = store->transition("t2", TaskState::kRouted, TaskState::kRunning, {}, 1001);  // t2 is DISCOVERED
    return store->transition("t2", TaskState::kDiscovered, TaskState::kClaimed, {}, 1002);
  });
  REQUIRE(s.ok());
  CHECK_FALSE(refused.ok());
  CHECK((*store->get("t1"))->state == TaskState::kClaimed);
  CHECK((*store->get("t2"))->state == TaskState::kClaimed);
  CHECK(store->events("t2")->size() == 2);

  s = store->batch([&]() -> Status {
    POLY_TRY(store->transition("t1", TaskState::kClaimed, TaskState::kCancelled, {}, 1003));
    return make_error("test", "the whole batch fails", "t1");
  });
  CHECK_FALSE(s.ok());
  CHECK((*store->get("t1"))->state == TaskState::kClaimed);  // rolled back with the batch
}

TEST_CASE("dispatchable tasks are each repo's oldest due CLAIMED tasks, and active tasks count per repo") {
  TempDir dir;
  auto store = StateStore::open(dir / "state.db");
  REQUIRE(store.ok());
  auto claim = [&](const std::string& id, const std::string& repo, int64_t created, int64_t due) {
    TaskRequest r = request(id);
    r.repo = repo;
    r.created_at_ms = created;
    REQUIRE(*store->add(r, created));
    TransitionUpdate u;
    u.next_attempt_at_ms = due;
    REQUIRE(store->transition(id, TaskState::kDiscovered, TaskState::kClaimed, u, created).ok());
  };
  claim("a1", "A", 1, 0);
  claim("b1", "B", 2, 0);
  claim("a2", "A", 3, 0);
  claim("a3", "A", 4, 0);
  claim("b2", "B", 5, 900);  // retry not due before 900
  claim("r1", "B", 6, 0);
  TransitionUpdate routed;
  routed.worker = "w1";
  REQUIRE(store->transition("r1", TaskState::kClaimed, TaskState::kRouted, routed, 7).ok());

  auto ids = [](const std::vector<Task>& tasks) {
    std::vector<std::string> out;
    for (const auto& t : tasks) out.push_back(t.request.id);
    return out;
  };
  CHECK(ids(*store->dispatchable(100, 2)) == std::vector<std::string>{"a1", "b1", "a2"});
  CHECK(ids(*store->dispatchable(100, 10)) == std::vector<std::string>{"a1", "b1", "a2", "a3"});
  CHECK(ids(*store->dispatchable(1000, 10)) == std::vector<std::string>{"a1", "b1", "a2", "a3", "b2"});
  CHECK(*store->active_per_repo() == std::map<std::string, int>{{"B", 1}});
}

TEST_CASE("held_by lists the active tasks whose attempt a worker holds") {
  TempDir dir;
  auto store = StateStore::open(dir / "state.db");
  REQUIRE(store.ok());
  for (const char* id : {"t1", "t2", "t3"}) {
    REQUIRE(*store->add(request(id), 1000));
    REQUIRE(store->transition(id, TaskState::kDiscovered, TaskState::kClaimed, {}, 1000).ok());
  }
  TransitionUpdate w1;
  w1.worker = "w1";
  TransitionUpdate w2;
  w2.worker = "w2";
  REQUIRE(store->transition("t1", TaskState::kClaimed, TaskState::kRouted, w1, 1001).ok());
  REQUIRE(store->transition("t2", TaskState::kClaimed, TaskState::kRouted, w2, 1001).ok());
  REQUIRE(store->transition("t3", TaskState::kClaimed, TaskState::kRouted, w1, 1001).ok());
  REQUIRE(store->transition("t3", TaskState::kRouted, TaskState::kCancelled, {}, 1002).ok());
  auto held = store->held_by("w1");
  REQUIRE(held.ok());
  REQUIRE(held->size() == 1);
  CHECK(held->front().request.id == "t1");
}

TEST_CASE("a statement prepared again while the first is in use is a separate statement") {
  TempDir dir;
  auto store = StateStore::open(dir / "state.db");
  REQUIRE(store.ok());
  REQUIRE(*store->add(request("t1"), 1000));
  REQUIRE(*store->add(request("t2"), 1000));
  // get() inside a loop over list() results, repeatedly: cached statements are reset and reused.
  for (int i = 0; i < 3; ++i) {
    auto all = store->list();
    REQUIRE(all.ok());
    REQUIRE(all->size() == 2);
    for (const auto& t : *all) CHECK((*store->get(t.request.id))->request.id == t.request.id);
  }
}

TEST_CASE("the same SQL prepared twice at once gives two statements, each with its own bindings") {
  TempDir dir;
  auto db = Database::open(dir / "x.db", 0x54657374, true);
  REQUIRE(db.ok());
  auto a = db->prepare("SELECT ?");
  auto b = db->prepare("SELECT ?");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  a->bind(1, int64_t{1});
  b->bind(1, int64_t{2});
  REQUIRE(*a->step());
  REQUIRE(*b->step());
  CHECK(a->int64(0) == 1);
  CHECK(b->int64(0) == 2);
  a = Result<Statement>(Statement());  // released to the cache, reset
  auto c = db->prepare("SELECT ?");
  REQUIRE(c.ok());
  c->bind(1, int64_t{3});
  REQUIRE(*c->step());
  CHECK(c->int64(0) == 3);
}

TEST_CASE("advancing a task from a copy that is no longer current is refused and changes nothing") {
  TempDir dir;
  auto store = StateStore::open(dir / "state.db");
  REQUIRE(store.ok());
  REQUIRE(*store->add(request("t1"), 1));
  REQUIRE(store->transition("t1", TaskState::kDiscovered, TaskState::kClaimed, {}, 2).ok());
  const Task claimed = **store->get("t1");
  TransitionUpdate routed;
  routed.worker = "w1";
  routed.epoch = 7;
  auto now = store->advance(claimed, TaskState::kRouted, routed, 3);
  REQUIRE(now.ok());
  CHECK(now->state == TaskState::kRouted);
  CHECK(now->epoch == 7);
  CHECK(same_standing(**store->get("t1"), *now));
  // The old copy (CLAIMED, epoch 0) no longer matches the row.
  auto stale = store->advance(claimed, TaskState::kRouted, routed, 4);
  REQUIRE_FALSE(stale.ok());
  CHECK(stale.error().code == "transition");
  // Nor does a copy of the same state under another epoch (a superseded lease).
  Task other_epoch = *now;
  other_epoch.epoch = 6;
  REQUIRE_FALSE(store->advance(other_epoch, TaskState::kProvisioned, {}, 5).ok());
  CHECK((*store->get("t1"))->state == TaskState::kRouted);
  CHECK(store->events("t1")->size() == 3);
}

TEST_CASE("several steps advanced at once write the row once and keep an event for each") {
  TempDir dir;
  auto store = StateStore::open(dir / "state.db");
  REQUIRE(store.ok());
  REQUIRE(*store->add(request("t1"), 1));
  REQUIRE(
      store->transitions("t1", TaskState::kDiscovered, {{TaskState::kClaimed, {}}, {TaskState::kRouted, {}}}, 2).ok());
  const Task routed = **store->get("t1");
  TransitionUpdate p, r, v;
  p.reason = "branch b at 123";
  r.reason = "agent a";
  v.reason = "true";
  auto now =
      store->advance(routed, {{TaskState::kProvisioned, p}, {TaskState::kRunning, r}, {TaskState::kVerifying, v}}, 3);
  REQUIRE(now.ok());
  CHECK(now->state == TaskState::kVerifying);
  CHECK(now->reason == "true");
  CHECK(same_standing(**store->get("t1"), *now));
  auto events = store->events("t1");
  REQUIRE(events->size() == 6);
  CHECK(events->at(3).from == "ROUTED");
  CHECK(events->at(3).to == "PROVISIONED");
  CHECK(events->at(3).reason == "branch b at 123");
  CHECK(events->at(5).to == "VERIFYING");
  // A chain the lifecycle forbids is refused before anything is written.
  auto bad = store->advance(*now, {{TaskState::kLanded, {}}, {TaskState::kRunning, {}}}, 4);
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(bad.error().message, Catch::Contains("LANDED -> RUNNING"));
  CHECK(store->events("t1")->size() == 6);
}

TEST_CASE(
    "agent runs are stored per attempt, a resent result replaces them, and runs that reported nothing cost nothing") {
  TempDir dir;
  auto store = StateStore::open(dir / "state.db");
  REQUIRE(store.ok());
  REQUIRE(*store->add(request("t1"), 1000));
  protocol::AgentUsage impl{"implementer", "claude", "claude-sonnet-4-5", 4, 1200, 300, 0.02, "Fixed it."};
  protocol::AgentUsage review{"reviewer", "codex", "", 2, 500, 50, 0, "approve"};
  protocol::AgentUsage silent{"implementer", "scripted", "", 0, 0, 0, 0, ""};
  REQUIRE(store->record_agent_runs("t1", 1, {silent}).ok());
  REQUIRE(store->record_agent_runs("t1", 2, {impl, review}).ok());
  REQUIRE(store->record_agent_runs("t1", 2, {impl, review}).ok());  // resent
  auto runs = store->agent_runs("t1");
  REQUIRE(runs.ok());
  REQUIRE(runs->size() == 2);
  CHECK((*runs)[0].attempt == 2);
  CHECK((*runs)[0].usage == impl);
  CHECK((*runs)[1].usage == review);
}
