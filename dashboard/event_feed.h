// Follows the state DB's event history on a thread of its own: feeds the metrics model and
// wakes the /api/events streams. It reads through its own read-only connection.
#pragma once

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

#include "dashboard/metrics.h"

namespace polyphony::dashboard {

class EventFeed {
 public:
  // Reads the whole history once before returning, so the metrics hold it from the first scrape.
  EventFeed(std::filesystem::path state_db, int64_t poll_interval_ms);
  ~EventFeed();  // stops the thread and wakes every waiter
  EventFeed(const EventFeed&) = delete;
  EventFeed& operator=(const EventFeed&) = delete;

  int64_t last_seq() const;
  // The events after `seq`, waiting up to `wait_ms` for one. `lost` is set when events after
  // `seq` have already been dropped from the kept window (the reader should re-read the tasks).
  std::vector<TaskEvent> after(int64_t seq, int64_t wait_ms, bool& lost);
  std::string render_metrics(const MetricsSnapshot& snapshot) const;

 private:
  void poll_once();
  void run();
  const std::filesystem::path state_db_;
  const int64_t poll_interval_ms_;
  mutable std::mutex mu_;
  std::condition_variable changed_;
  std::deque<TaskEvent> recent_;  // the last kKept events
  MetricsModel model_;
  int64_t last_seq_ = 0;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace polyphony::dashboard
