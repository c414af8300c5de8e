// The state DB's events, polled by seq and kept in a window for the streams.
#include "dashboard/event_feed.h"

#include <spdlog/spdlog.h>

#include "coordinator/state_store.h"

namespace polyphony::dashboard {

namespace {
constexpr size_t kKept = 4096;
constexpr int kBatch = 1000;
}  // namespace

EventFeed::EventFeed(std::filesystem::path state_db, int64_t poll_interval_ms)
    : state_db_(std::move(state_db)), poll_interval_ms_(poll_interval_ms) {
  poll_once();
  thread_ = std::thread([this] { run(); });
}

EventFeed::~EventFeed() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void EventFeed::poll_once() {
  std::error_code ec;
  if (!std::filesystem::exists(state_db_, ec)) return;
  auto store = StateStore::open(state_db_, true);
  if (!store.ok()) {
    spdlog::warn("dashboard: cannot read the state DB: {}", store.error().to_string());
    return;
  }
  while (true) {
    auto batch = store->events_after(last_seq(), kBatch);
    if (!batch.ok()) {
      spdlog::warn("dashboard: cannot read events: {}", batch.error().to_string());
      return;
    }
    if (batch->empty()) return;
    {
      std::lock_guard lock(mu_);
      for (auto& e : *batch) {
        model_.add(e);
        last_seq_ = e.seq;
        recent_.push_back(std::move(e));
        if (recent_.size() > kKept) recent_.pop_front();
      }
    }
    changed_.notify_all();
    if (batch->size() < static_cast<size_t>(kBatch)) return;
  }
}

void EventFeed::run() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    changed_.wait_for(lock, std::chrono::milliseconds(poll_interval_ms_), [&] { return stop_; });
    if (stop_) break;
    lock.unlock();
    poll_once();
    lock.lock();
  }
}

int64_t EventFeed::last_seq() const {
  std::lock_guard lock(mu_);
  return last_seq_;
}

std::vector<TaskEvent> EventFeed::after(int64_t seq, int64_t wait_ms, bool& lost) {
  std::unique_lock lock(mu_);
  changed_.wait_for(lock, std::chrono::milliseconds(wait_ms), [&] { return stop_ || last_seq_ > seq; });
  lost = !recent_.empty() && recent_.front().seq > seq + 1 && seq < last_seq_;
  std::vector<TaskEvent> out;
  for (const auto& e : recent_) {
    if (e.seq > seq) out.push_back(e);
  }
  return out;
}

std::string EventFeed::render_metrics(const MetricsSnapshot& snapshot) const {
  std::lock_guard lock(mu_);
  return model_.render(snapshot);
}

}  // namespace polyphony::dashboard
