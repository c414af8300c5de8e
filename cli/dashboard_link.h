// Starts `polyphony serve`'s web dashboard (dashboard/dashboard.h) on coordinator.http_listen,
// linked to the coordinator through its local client endpoint.
#pragma once

#include <memory>
#include <zmq.hpp>

#include "common/config.h"
#include "common/result.h"
#include "dashboard/dashboard.h"

namespace polyphony::cli {

// Keeps the dashboard serving until destroyed.
class DashboardHandle {
 public:
  virtual ~DashboardHandle() = default;
};

// Serves the dashboard; a null handle when coordinator.http_listen is empty. Writes the URL it
// serves at to $POLYPHONY_HOME/dashboard.url. Errors: "config" (a token file that is missing,
// short or readable by others; a non-loopback address without one), "io" (cannot listen).
Result<std::unique_ptr<DashboardHandle>> start_dashboard(zmq::context_t& context, const Config& config);

}  // namespace polyphony::cli
