// The attempts' logs: redacted appends to private files.
#include "coordinator/task_logs.h"

#include <unistd.h>

#include <cerrno>

#include "common/log.h"
#include "common/private_files.h"

namespace polyphony {
namespace fs = std::filesystem;
namespace {

// Appends `data` to a log file only its owner reads.
bool append_log(const fs::path& file, const std::string& data) {
  const int fd = open_private_append(file);
  bool written = fd >= 0;
  for (size_t at = 0; written && at < data.size();) {
    const ssize_t n = ::write(fd, data.data() + at, data.size() - at);
    if (n < 0 && errno == EINTR) continue;
    written = n > 0;
    if (written) at += static_cast<size_t>(n);
  }
  if (fd >= 0) ::close(fd);
  return written;
}

}  // namespace

bool TaskLogs::append(const std::string& task_id, int attempt, const std::string& stream, const std::string& data) {
  const fs::path dir = log_dir_ / task_id;
  (void)make_private_dir(log_dir_);
  (void)make_private_dir(dir);
  const fs::path file = dir / (std::to_string(attempt) + "-" + stream + ".log");
  std::string& held = held_[file.string()];
  std::string text = redact(held + data);
  const size_t keep = redaction_hold(text);
  held = text.substr(text.size() - keep);
  text.resize(text.size() - keep);
  if (append_log(file, text)) return true;
  spdlog::error("task {}: cannot write its log under {}", task_id, dir.string());
  return false;
}

void TaskLogs::flush(const std::string& task_id) {
  const std::string prefix = (log_dir_ / task_id).string() + "/";
  for (auto it = held_.lower_bound(prefix); it != held_.end() && it->first.rfind(prefix, 0) == 0;) {
    if (!append_log(it->first, it->second)) spdlog::error("task {}: cannot write its log {}", task_id, it->first);
    it = held_.erase(it);
  }
}

}  // namespace polyphony
