// The web dashboard, its JSON API, the event stream and /metrics of a running coordinator.
// It reads tasks from the state DB (its own read-only connections) and asks the coordinator
// for workers and actions through its client endpoint, like the CLI: it never touches the
// coordinator's memory.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "common/result.h"
#include "protocol/messages.h"

namespace polyphony::dashboard {

// What the dashboard asks the running coordinator. The real one sends client-endpoint requests
// (cli/dashboard_link.cpp); tests may give a fake.
class CoordinatorLink {
 public:
  virtual ~CoordinatorLink() = default;
  virtual Result<protocol::WorkersReply> workers() = 0;
  // A Submit, validated by the coordinator exactly as `polyphony spawn`'s.
  virtual Result<protocol::ClientReply> submit(const protocol::Submit& submit) = 0;
  // `action` is "cancel" or "retry".
  virtual Result<protocol::ClientReply> control(const std::string& task_id, const std::string& action) = 0;
};

struct DashboardOptions {
  std::string host = "127.0.0.1";
  int port = 7780;  // 0: any free port (see Dashboard::url)
  // The bearer token; empty: none. Without one only a loopback host is accepted. With one, a
  // loopback listener still asks it of every action; any other asks it of every request.
  std::string token;
  std::filesystem::path state_db;
  std::filesystem::path log_dir;
  int64_t poll_interval_ms = 250;  // how often the state DB is read for new events
};

class Dashboard {
 public:
  // Listens and serves on threads of its own until destroyed. Errors: "config" (a host other
  // than loopback without a token), "io" (cannot listen: the address is taken or invalid).
  static Result<std::unique_ptr<Dashboard>> start(const DashboardOptions& options, CoordinatorLink& link);
  virtual ~Dashboard() = default;
  // "http://host:port/" with the port it listens on.
  virtual std::string url() const = 0;
};

// The token in `file`, trimmed; errors (naming the file) when it is missing, empty, or readable
// by other users.
Result<std::string> read_token_file(const std::filesystem::path& file);

// A new random token (64 hex digits) for coordinator.http_token_file.
std::string new_token();

}  // namespace polyphony::dashboard
