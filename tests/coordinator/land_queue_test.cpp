// The land queue on its own: requests and releases in, grants out; no sockets.
#include "coordinator/land_queue.h"

#include <catch2/catch.hpp>

using namespace polyphony;

namespace {

// One step of a script against one LandQueue, and what it must answer.
struct Step {
  enum class Op { kRequest, kRelease, kNext, kPushing, kRestore } op;
  std::string task;   // kRequest, kRelease, kPushing, kRestore
  std::string repo;   // kRequest, kNext, kRestore; kRelease: the repo it must free ("" for none)
  int64_t at_ms = 0;  // kRequest, kPushing; kRestore: when it was granted
  // kRequest: granted; kPushing: pushing; kRestore: restored. kNext: the task that comes out
  // ("" for none).
  bool yes = false;
  std::string out;    // kRequest: the task it waits behind; kNext: the task taken out
  int64_t epoch = 1;  // kRequest
};

Step ask(std::string task, std::string repo, int64_t at, bool granted, std::string behind = "", int64_t epoch = 1) {
  return {Step::Op::kRequest, std::move(task), std::move(repo), at, granted, std::move(behind), epoch};
}
Step release(std::string task, std::string freed = "") {
  return {Step::Op::kRelease, std::move(task), std::move(freed), 0, false, "", 1};
}
Step next(std::string repo, std::string out = "") {
  return {Step::Op::kNext, "", std::move(repo), 0, false, out, 1};
}
Step pushing(std::string task, int64_t at, bool yes) {
  return {Step::Op::kPushing, std::move(task), "", at, yes, "", 1};
}

Step restore(std::string task, std::string repo, int64_t granted_at, bool restored) {
  return {Step::Op::kRestore, std::move(task), std::move(repo), granted_at, restored, "", 1};
}

void run(LandQueue& q, const Step& s) {
  switch (s.op) {
    case Step::Op::kRequest: {
      const auto a = q.request(s.repo, {"w-" + s.task, {s.task, 1, s.epoch}}, s.at_ms);
      CHECK(a.granted == s.yes);
      CHECK(a.behind == s.out);
      break;
    }
    case Step::Op::kRelease:
      CHECK(q.release(s.task).value_or("") == s.repo);
      break;
    case Step::Op::kNext: {
      const auto n = q.next_waiting(s.repo);
      CHECK((n ? n->request.task_id : "") == s.out);
      if (n) CHECK(n->routing_id == "w-" + s.out);
      break;
    }
    case Step::Op::kPushing:
      CHECK(q.pushing(s.task, s.at_ms) == s.yes);
      break;
    case Step::Op::kRestore:
      CHECK(q.restore(s.repo, s.task, s.at_ms) == s.yes);
      if (s.yes) CHECK(q.landing().count(s.task) == 1);
      break;
  }
}

struct Script {
  std::string name;
  std::vector<Step> steps;
};

}  // namespace

TEST_CASE("the land queue grants one landing per repo at a time, in order of asking", "[land_queue]") {
  const std::vector<Script> scripts = {
      {"the first to ask lands, the rest wait behind it",
       {ask("a", "app", 0, true), ask("b", "app", 1, false, "a"), ask("c", "app", 2, false, "a")}},
      {"repos do not wait for each other", {ask("a", "app", 0, true), ask("b", "lib", 0, true)}},
      {"the holder asking again is granted again", {ask("a", "app", 0, true), ask("a", "app", 5, true)}},
      {"a release frees the slot for the first in line, then the next",
       {ask("a", "app", 0, true), ask("b", "app", 1, false, "a"), ask("c", "app", 2, false, "a"), release("a", "app"),
        next("app", "b"), ask("b", "app", 3, true), next("app"), release("b", "app"), next("app", "c")}},
      {"nobody is taken out of line while the slot is held",
       {ask("a", "app", 0, true), ask("b", "app", 1, false, "a"), next("app")}},
      {"a waiting task that ends leaves the line and frees nothing",
       {ask("a", "app", 0, true), ask("b", "app", 1, false, "a"), ask("c", "app", 2, false, "a"), release("b"),
        release("a", "app"), next("app", "c")}},
      {"a task that asks again keeps its place in line, with its new request",
       {ask("a", "app", 0, true), ask("b", "app", 1, false, "a"), ask("c", "app", 2, false, "a"),
        ask("b", "app", 3, false, "a", 2), release("a", "app"), next("app", "b")}},
      {"releasing a task the queue never saw changes nothing", {ask("a", "app", 0, true), release("z"), next("app")}},
      {"the holder is pushing for the grace period after its grant, not after",
       {ask("a", "app", 1000, true), pushing("a", 1000, true), pushing("a", 1000 + kLandGraceMs - 1, true),
        pushing("a", 1000 + kLandGraceMs, false), pushing("b", 1000, false)}},
      {"a released task is no longer pushing", {ask("a", "app", 0, true), release("a", "app"), pushing("a", 1, false)}},
      {"the holder asking again is pushing for the grace period from its new grant",
       {ask("a", "app", 1000, true), ask("a", "app", 5000, true), pushing("a", 1000 + kLandGraceMs, true),
        pushing("a", 5000 + kLandGraceMs, false)}},
      {"a grant from before a restart holds the slot again, pushing from when it was granted",
       {restore("a", "app", 1000, true), ask("b", "app", 2000, false, "a"), pushing("a", 1000 + kLandGraceMs - 1, true),
        pushing("a", 1000 + kLandGraceMs, false), ask("a", "app", 3000, true), release("a", "app"), next("app", "b")}},
      {"a grant from before a restart is not restored over another holder",
       {ask("b", "app", 0, true), restore("a", "app", 0, false), ask("a", "app", 1, false, "b")}},
      {"a waiting task is not pushing",
       {ask("a", "app", 0, true), ask("b", "app", 0, false, "a"), pushing("b", 1, false)}},
  };
  for (const Script& script : scripts) {
    SECTION(script.name) {
      LandQueue q;
      for (size_t i = 0; i < script.steps.size(); ++i) {
        INFO("step " << i);
        run(q, script.steps[i]);
      }
    }
  }
}

TEST_CASE("the land queue says which tasks are landing until they end or start again", "[land_queue]") {
  LandQueue q;
  q.request("app", {"w", {"a", 1, 1}}, 0);
  q.request("app", {"w", {"b", 1, 1}}, 0);
  CHECK(q.landing() == std::set<std::string>{"a", "b"});
  CHECK(q.holder("app") == "a");
  CHECK(q.waiting("app") == std::vector<std::string>{"b"});
  q.forget_landing("b");  // a new attempt of b: it holds a worker slot again
  CHECK(q.landing() == std::set<std::string>{"a"});
  q.release("a");
  CHECK(q.landing().empty());
  CHECK_FALSE(q.holder("app"));
}

TEST_CASE("the land queue's answer says whether a request newly joined the line", "[land_queue]") {
  LandQueue q;
  CHECK_FALSE(q.request("app", {"w", {"a", 1, 1}}, 0).queued);
  CHECK(q.request("app", {"w", {"b", 1, 1}}, 0).queued);
  CHECK_FALSE(q.request("app", {"w", {"b", 1, 2}}, 0).queued);
}

TEST_CASE(
    "a grant says how long the task waited in the merge queue, once, and a holder asking again is not a new grant") {
  LandQueue q;
  auto at = [&](const std::string& task, int64_t ms, int64_t epoch = 1) {
    return q.request("r", {"w-" + task, {task, 1, epoch}}, ms);
  };
  const auto a = at("a", 1000);
  CHECK(a.granted);
  CHECK(a.waited_ms == 0);
  CHECK_FALSE(at("b", 1500).waited_ms.has_value());     // waits behind a
  CHECK_FALSE(at("b", 4000, 2).waited_ms.has_value());  // asks again from a new epoch: keeps its first ask
  CHECK_FALSE(at("a", 5000).waited_ms.has_value());     // the holder asking again is no new grant
  CHECK(q.release("a") == "r");
  const auto next = q.next_waiting("r");
  REQUIRE(next);
  const auto b = q.request("r", *next, 9500);
  CHECK(b.granted);
  CHECK(b.waited_ms == 8000);  // from its first ask at 1500
  // A new attempt of a released task starts its wait afresh.
  CHECK(q.release("b") == "r");
  q.forget_landing("a");
  CHECK(at("a", 20000).waited_ms == 0);
}
