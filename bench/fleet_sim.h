// Simulated workers for the fleet benchmarks: many DEALER sockets served by one thread, each
// speaking the real protocol (hello, heartbeats both ways, task updates, results until
// acknowledged) to a real coordinator. Also the empty ZeroMQ round trip the figures are
// compared with.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace polyphony::bench {

struct FleetOptions {
  std::string endpoint;  // the coordinator's worker endpoint, tcp://127.0.0.1:PORT
  int workers = 1000;
  int capacity = 1;  // each worker's hello.capacity
  int64_t heartbeat_interval_ms = 1000;
  // kLand: answer each dispatch at once with PROVISIONED, RUNNING, VERIFYING and a landed
  // result (resent until acknowledged). kHold: answer PROVISIONED and RUNNING, then hold the
  // attempt (a busy fleet).
  enum class Mode { kLand, kHold } mode = Mode::kLand;
  std::string id_prefix = "sim";
};

// Counters since the fleet started; times are steady_now() seconds (0 until it happened).
struct FleetStats {
  int welcomed = 0;            // workers that got their welcome
  int64_t dispatches = 0;      // dispatch frames received
  int64_t acks = 0;            // result_acks received for a result not yet acknowledged
  int64_t heartbeats_in = 0;   // heartbeats from the coordinator
  int64_t heartbeats_out = 0;  // heartbeats sent
  int64_t held = 0;            // attempts held now (kHold)
  int64_t bad_frames = 0;      // frames that failed to decode
  double first_dispatch = 0;
  double last_dispatch = 0;
  double last_ack = 0;
};

class SimulatedFleet {
 public:
  // Connects every worker (each sends its hello) and serves them on a thread of its own.
  explicit SimulatedFleet(FleetOptions options);
  ~SimulatedFleet();  // stops the thread and closes the sockets
  SimulatedFleet(const SimulatedFleet&) = delete;
  SimulatedFleet& operator=(const SimulatedFleet&) = delete;

  FleetStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Empty ZeroMQ round trips per second: a DEALER sends an empty frame to a ROUTER over loopback
// TCP and waits for the echo, one at a time, for `seconds`.
double zmq_round_trip_rate(double seconds);

}  // namespace polyphony::bench
