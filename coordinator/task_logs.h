// The attempts' logs as the coordinator stores them: <log_dir>/<task>/<attempt>-<stream>.log,
// redacted, readable by the owner only.
#pragma once

#include <filesystem>
#include <map>
#include <string>

namespace polyphony {

class TaskLogs {
 public:
  explicit TaskLogs(std::filesystem::path log_dir) : log_dir_(std::move(log_dir)) {}

  // Appends a chunk of an attempt's stream, redacted. What may be the start of a secret (or of
  // a URL's password) is held back until the next chunk or flush(), so a secret split across
  // two chunks is still redacted. False (logged) when the file cannot be written.
  bool append(const std::string& task_id, int attempt, const std::string& stream, const std::string& data);

  // Writes what the task's streams still hold back (at the attempt's end).
  void flush(const std::string& task_id);

 private:
  std::filesystem::path log_dir_;
  std::map<std::string, std::string> held_;  // the redacted tail of each file, by path
};

}  // namespace polyphony
