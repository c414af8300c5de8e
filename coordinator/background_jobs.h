// Slow work of the coordinator (scoring's mirror fetches, GitHub calls) on threads of its own,
// its results handed back to the loop's thread: the socket loop never waits on a remote.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace polyphony {

class BackgroundJobs {
 public:
  // What a finished job hands back, run on the loop's thread by apply_finished.
  using Apply = std::function<void()>;
  // The work, run on one of the threads. It touches nothing the loop owns and returns what to
  // do there. An exception it throws is logged, and nothing is applied for it.
  using Job = std::function<Apply()>;

  // Starts `threads` threads (at least one).
  explicit BackgroundJobs(int threads);
  // Sets stopping(), drops the jobs not started and the results not applied, and waits for the
  // running jobs (which watch stopping() to end early).
  ~BackgroundJobs();
  BackgroundJobs(const BackgroundJobs&) = delete;
  BackgroundJobs& operator=(const BackgroundJobs&) = delete;

  // Queues `job` under `key`; false, and nothing queued, while a job of that key is queued,
  // running, or finished and not yet applied: one job of a key at a time.
  bool submit(const std::string& key, Job job);
  // Whether a job of `key` is queued, running, or finished and not yet applied.
  bool pending(const std::string& key) const;
  // Releases the keys of the finished jobs, then runs their results on the calling thread in
  // the order they finished. Returns how many jobs it took.
  int apply_finished();
  // A file descriptor (an eventfd) that polls readable while results wait to be applied.
  int wake_fd() const { return wake_fd_; }
  // True once the destructor began; a job can also block on it (stopping().wait(false)), which
  // the destructor wakes.
  const std::atomic<bool>& stopping() const { return stopping_; }

 private:
  void serve();

  mutable std::mutex mutex_;
  std::condition_variable wake_threads_;
  std::deque<std::pair<std::string, Job>> queued_;
  std::vector<std::pair<std::string, Apply>> finished_;
  std::set<std::string> keys_;  // pending: queued, running or finished
  std::atomic<bool> stopping_{false};
  int wake_fd_ = -1;
  std::vector<std::thread> threads_;
};

}  // namespace polyphony
