// Dispatch order: fair across repos, per-repo limits, backoff respected.
#include <catch2/catch.hpp>

#include "coordinator/scheduling.h"

using namespace polyphony;

namespace {

Task task(const std::string& id, const std::string& repo, int64_t created, int64_t due = 0) {
  Task t;
  t.request.id = id;
  t.request.repo = repo;
  t.request.created_at_ms = created;
  t.next_attempt_at_ms = due;
  return t;
}

std::vector<std::string> ids(const std::vector<Task>& tasks) {
  std::vector<std::string> out;
  for (const auto& t : tasks) out.push_back(t.request.id);
  return out;
}

}  // namespace

TEST_CASE("a busy repo does not starve the others") {
  const std::vector<Task> claimed{task("a1", "A", 1), task("a2", "A", 2), task("a3", "A", 3), task("b1", "B", 4),
                                  task("c1", "C", 5)};
  CHECK(ids(dispatch_order(claimed, {}, 0, 5, 100)) == std::vector<std::string>{"a1", "b1", "c1", "a2", "a3"});
  CHECK(ids(dispatch_order(claimed, {}, 0, 2, 100)) == std::vector<std::string>{"a1", "b1"});
}

TEST_CASE("repos already running tasks come after idle ones") {
  const std::vector<Task> claimed{task("a1", "A", 1), task("b1", "B", 2)};
  CHECK(ids(dispatch_order(claimed, {{"A", 2}}, 0, 2, 100)) == std::vector<std::string>{"b1", "a1"});
}

TEST_CASE("the per-repo limit holds, counting running tasks") {
  const std::vector<Task> claimed{task("a1", "A", 1), task("a2", "A", 2), task("b1", "B", 3)};
  CHECK(ids(dispatch_order(claimed, {{"A", 1}}, 2, 10, 100)) == std::vector<std::string>{"b1", "a1"});
  CHECK(ids(dispatch_order(claimed, {{"A", 2}}, 2, 10, 100)) == std::vector<std::string>{"b1"});
}

TEST_CASE("tasks waiting out a retry backoff are not dispatched early") {
  const std::vector<Task> claimed{task("a1", "A", 1, 500), task("a2", "A", 2)};
  CHECK(ids(dispatch_order(claimed, {}, 0, 5, 100)) == std::vector<std::string>{"a2"});
  CHECK(ids(dispatch_order(claimed, {}, 0, 5, 500)) == std::vector<std::string>{"a1", "a2"});
}
