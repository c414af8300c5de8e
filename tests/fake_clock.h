// A Clock that moves only when a test says so.
#pragma once

#include <atomic>
#include <cstdint>

#include "common/clock.h"

namespace polyphony::testing {

class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t start_ms = 1'700'000'000'000) : now_(start_ms), steady_(0) {}
  int64_t now_ms() const override { return now_.load(); }
  int64_t steady_ms() const override { return steady_.load(); }
  // Moves both clocks forward by `ms`.
  void advance(int64_t ms) {
    now_ += ms;
    steady_ += ms;
  }

 private:
  std::atomic<int64_t> now_;
  std::atomic<int64_t> steady_;
};

}  // namespace polyphony::testing
