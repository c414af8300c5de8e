// A small thread pool whose results come back through a queue and an eventfd.
#include "coordinator/background_jobs.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>
#include <stdexcept>

#include "common/log.h"

namespace polyphony {

BackgroundJobs::BackgroundJobs(int threads) {
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) throw std::runtime_error("cannot create an eventfd for background jobs");
  for (int i = 0; i < std::max(threads, 1); ++i) threads_.emplace_back([this] { serve(); });
}

BackgroundJobs::~BackgroundJobs() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    queued_.clear();
  }
  stopping_.notify_all();  // a job may wait on stopping() itself (std::atomic::wait)
  wake_threads_.notify_all();
  for (auto& t : threads_) t.join();
  ::close(wake_fd_);
}

bool BackgroundJobs::submit(const std::string& key, Job job) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_ || !keys_.insert(key).second) return false;
    queued_.emplace_back(key, std::move(job));
  }
  wake_threads_.notify_one();
  return true;
}

bool BackgroundJobs::pending(const std::string& key) const {
  std::lock_guard lock(mutex_);
  return keys_.count(key) > 0;
}

int BackgroundJobs::apply_finished() {
  uint64_t count = 0;
  // Reset before taking the results: a job finishing in between signals again.
  (void)!::read(wake_fd_, &count, sizeof count);
  std::vector<std::pair<std::string, Apply>> done;
  {
    std::lock_guard lock(mutex_);
    done.swap(finished_);
  }
  {
    // All keys first: a result that throws on the loop leaves no key held for ever.
    std::lock_guard lock(mutex_);
    for (const auto& entry : done) keys_.erase(entry.first);
  }
  for (auto& [key, apply] : done) {
    if (apply) apply();
  }
  return static_cast<int>(done.size());
}

void BackgroundJobs::serve() {
  while (true) {
    std::pair<std::string, Job> next;
    {
      std::unique_lock lock(mutex_);
      wake_threads_.wait(lock, [&] { return stopping_ || !queued_.empty(); });
      if (stopping_) return;
      next = std::move(queued_.front());
      queued_.pop_front();
    }
    Apply apply;
    try {
      apply = next.second();
    } catch (const std::exception& e) {
      spdlog::error("background job {} failed: {}", next.first, e.what());
    } catch (...) {
      spdlog::error("background job {} failed", next.first);
    }
    {
      std::lock_guard lock(mutex_);
      finished_.emplace_back(std::move(next.first), std::move(apply));
    }
    const uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
  }
}

}  // namespace polyphony
