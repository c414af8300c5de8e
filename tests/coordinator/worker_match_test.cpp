// Label requirements and the choice of a worker, as tables.
#include <catch2/catch.hpp>

#include "coordinator/worker_match.h"

using namespace polyphony;

using Labels = std::vector<std::string>;

TEST_CASE("needs: labels are requirements, and other task labels ask nothing of the worker") {
  struct Case {
    Labels task;
    Labels worker;
    Labels unmet;
  };
  const std::vector<Case> cases{
      {{}, {}, {}},
      {{"bug", "frontend"}, {}, {}},
      {{"needs:gpu"}, {"gpu"}, {}},
      {{"needs:gpu"}, {}, {"gpu"}},
      {{"needs:gpu"}, {"gpu=1"}, {"gpu"}},
      {{"needs:arch=arm64"}, {"arch=arm64", "gpu"}, {}},
      {{"needs:arch=arm64"}, {"arch=amd64"}, {"arch=arm64"}},
      {{"needs:gpu", "needs:arch=arm64"}, {"gpu"}, {"arch=arm64"}},
      {{"needs:gpu", "needs:arch=arm64"}, {"arch=arm64", "gpu"}, {}},
      {{"needs:gpu", "needs:gpu"}, {}, {"gpu"}},
      {{"needs:"}, {}, {}},
      {{"needs:GPU"}, {"gpu"}, {"GPU"}},
      {{"need:gpu", "gpu"}, {}, {}},
  };
  for (const auto& c : cases) {
    INFO("task [" << Catch::Detail::stringify(c.task) << "] worker [" << Catch::Detail::stringify(c.worker) << "]");
    CHECK(unmet_requirements(c.task, c.worker) == c.unmet);
  }
}

TEST_CASE("required_labels lists each requirement once, in order") {
  CHECK(required_labels({"needs:b", "x", "needs:a", "needs:b"}) == Labels{"b", "a"});
}

TEST_CASE("a task goes to a live worker with free capacity whose labels meet its needs, least loaded first") {
  struct Case {
    std::string name;
    std::vector<WorkerCandidate> workers;
    Labels task;
    std::optional<std::string> chosen;
  };
  const WorkerCandidate idle{"a", 4, 0, {}, true, true};
  const std::vector<Case> cases{
      {"no workers", {}, {}, std::nullopt},
      {"one idle worker", {idle}, {}, "a"},
      {"a full worker takes nothing", {{"a", 2, 2, {}, true, true}}, {}, std::nullopt},
      {"a lost worker takes nothing", {{"a", 2, 0, {}, false, true}}, {}, std::nullopt},
      {"a worker without the image takes nothing", {{"a", 2, 0, {}, true, false}}, {}, std::nullopt},
      {"least loaded relative to capacity", {{"a", 4, 2, {}, true, true}, {"b", 2, 0, {}, true, true}}, {}, "b"},
      {"ratio, not count", {{"a", 8, 3, {}, true, true}, {"b", 2, 1, {}, true, true}}, {}, "a"},
      {"equal ratio: fewer running", {{"a", 4, 2, {}, true, true}, {"b", 2, 1, {}, true, true}}, {}, "b"},
      {"all equal: smaller id", {{"b", 4, 0, {}, true, true}, {"a", 4, 0, {}, true, true}}, {}, "a"},
      {"needs skip the idle worker without the label",
       {{"plain", 4, 0, {}, true, true}, {"gpu-1", 4, 3, {"gpu"}, true, true}},
       {"needs:gpu"},
       "gpu-1"},
      {"needs met by no worker", {{"plain", 4, 0, {"arch=amd64"}, true, true}}, {"needs:arch=arm64"}, std::nullopt},
      {"needs met only by a full worker", {{"gpu-1", 1, 1, {"gpu"}, true, true}, idle}, {"needs:gpu"}, std::nullopt},
      {"routing labels do not restrict", {idle}, {"bug", "p1"}, "a"},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    auto i = choose_worker(c.workers, c.task);
    REQUIRE(i.has_value() == c.chosen.has_value());
    if (i) CHECK(c.workers[*i].id == *c.chosen);
  }
}

TEST_CASE("equal workers fill evenly when tasks are placed one after another") {
  std::vector<WorkerCandidate> workers{
      {"w1", 2, 0, {}, true, true}, {"w2", 2, 0, {}, true, true}, {"w3", 2, 0, {}, true, true}};
  std::vector<std::string> order;
  for (int i = 0; i < 6; ++i) {
    auto chosen = choose_worker(workers, {});
    REQUIRE(chosen);
    ++workers[*chosen].load;
    order.push_back(workers[*chosen].id);
  }
  CHECK(order == std::vector<std::string>{"w1", "w2", "w3", "w1", "w2", "w3"});
  CHECK_FALSE(choose_worker(workers, {}).has_value());
}
