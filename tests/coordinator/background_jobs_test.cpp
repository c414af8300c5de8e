// BackgroundJobs: work runs on its threads, results are applied only on the caller's thread,
// one job per key at a time, and the destructor stops what runs.
#include <poll.h>

#include <catch2/catch.hpp>

#include <future>
#include <thread>

#include "coordinator/background_jobs.h"

using namespace polyphony;

namespace {

// Waits (polling the descriptor, with a deadline) until results are ready to apply.
bool results_ready(const BackgroundJobs& jobs, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  pollfd p{jobs.wake_fd(), POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(timeout.count())) == 1;
}

// Applies results until `n` have run or the deadline passes.
int apply_until(BackgroundJobs& jobs, int n) {
  int applied = 0;
  while (applied < n && results_ready(jobs)) applied += jobs.apply_finished();
  return applied;
}

}  // namespace

TEST_CASE("a job runs off the calling thread and its result is applied on the calling thread") {
  BackgroundJobs jobs(1);
  const auto caller = std::this_thread::get_id();
  std::thread::id ran_on, applied_on;
  REQUIRE(jobs.submit("k", [&]() -> BackgroundJobs::Apply {
    ran_on = std::this_thread::get_id();
    return [&] { applied_on = std::this_thread::get_id(); };
  }));
  REQUIRE(results_ready(jobs));
  CHECK(jobs.pending("k"));  // finished, not yet applied
  CHECK(applied_on == std::thread::id());
  REQUIRE(apply_until(jobs, 1) == 1);
  CHECK(ran_on != caller);
  CHECK(applied_on == caller);
  CHECK_FALSE(jobs.pending("k"));
}

TEST_CASE("a key holds one job at a time, until its result is applied") {
  BackgroundJobs jobs(2);
  std::promise<void> release;
  auto released = release.get_future().share();
  REQUIRE(jobs.submit("repo-a", [released]() -> BackgroundJobs::Apply {
    released.wait();
    return [] {};
  }));
  CHECK(jobs.pending("repo-a"));
  CHECK_FALSE(jobs.submit("repo-a", [] { return BackgroundJobs::Apply(); }));
  CHECK(jobs.submit("repo-b", [] { return BackgroundJobs::Apply(); }));
  release.set_value();
  REQUIRE(apply_until(jobs, 2) == 2);
  CHECK_FALSE(jobs.pending("repo-a"));
  CHECK(jobs.submit("repo-a", [] { return BackgroundJobs::Apply(); }));
}

TEST_CASE("a job that never ends does not hold back another thread's jobs") {
  BackgroundJobs jobs(2);
  REQUIRE(jobs.submit("stalled", [&jobs]() -> BackgroundJobs::Apply {
    jobs.stopping().wait(false);
    return [] {};
  }));
  int done = 0;
  for (int i = 0; i < 5; ++i) {
    REQUIRE(jobs.submit("quick", [&done]() -> BackgroundJobs::Apply { return [&done] { ++done; }; }));
    REQUIRE(apply_until(jobs, 1) == 1);
  }
  CHECK(done == 5);
  CHECK(jobs.pending("stalled"));
}

TEST_CASE("the destructor tells a running job to stop, and queued jobs never run") {
  std::atomic<bool> queued_ran{false};
  std::promise<void> started;
  {
    BackgroundJobs jobs(1);
    REQUIRE(jobs.submit("running", [&jobs, &started]() -> BackgroundJobs::Apply {
      started.set_value();
      jobs.stopping().wait(false);
      return [] {};
    }));
    REQUIRE(jobs.submit("queued", [&]() -> BackgroundJobs::Apply {
      queued_ran = true;
      return [] {};
    }));
    REQUIRE(started.get_future().wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  }
  CHECK_FALSE(queued_ran);
}

TEST_CASE("a job that throws releases its key and applies nothing") {
  BackgroundJobs jobs(1);
  REQUIRE(jobs.submit("k", []() -> BackgroundJobs::Apply { throw std::runtime_error("boom"); }));
  REQUIRE(apply_until(jobs, 1) == 1);
  CHECK_FALSE(jobs.pending("k"));
  CHECK(jobs.submit("k", [] { return BackgroundJobs::Apply(); }));
}
