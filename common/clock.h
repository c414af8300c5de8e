// Time as the program sees it, behind an interface so tests can move it by hand.
//
// Code that decides by time (leases, liveness, backoff, quiet periods) takes a `const Clock&`
// and never reads std::chrono clocks itself; production passes system_clock(), tests a
// FakeClock (tests/fake_clock.h) they advance explicitly instead of sleeping.
#pragma once

#include <cstdint>

namespace polyphony {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time: milliseconds since the Unix epoch (what the state DB and the wire carry).
  virtual int64_t now_ms() const = 0;
  // Monotonic time in milliseconds from an arbitrary origin: for durations and deadlines.
  virtual int64_t steady_ms() const = 0;
};

// The real clocks (std::chrono::system_clock and steady_clock). One shared instance.
const Clock& system_clock();

}  // namespace polyphony
