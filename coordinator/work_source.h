// Work sources: where tasks come from (the local SQLite queue; GitHub Issues later).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/sqlite.h"
#include "coordinator/task.h"

namespace polyphony {

class WorkSource {
 public:
  virtual ~WorkSource() = default;
  // New tasks not yet handed over. Calling again before ack() returns them again.
  virtual Result<std::vector<TaskRequest>> poll() = 0;
  // The coordinator has recorded the task; never hand it out again.
  virtual Status ack(const std::string& id) = 0;
};

inline constexpr int32_t kQueueDbApplicationId = 0x506f5175;  // "PoQu"

// The local queue: `polyphony spawn` appends, the coordinator polls. Safe across processes.
class SqliteQueue : public WorkSource {
 public:
  static Result<std::unique_ptr<SqliteQueue>> open(const std::filesystem::path& path, bool read_only = false);

  // Appends a task (id already chosen and validated).
  Status enqueue(const TaskRequest& request);
  // Tasks enqueued but not yet acknowledged by a coordinator.
  Result<std::vector<TaskRequest>> pending() { return poll(); }

  Result<std::vector<TaskRequest>> poll() override;
  Status ack(const std::string& id) override;

  // Requests to act on a task (`polyphony cancel` / `retry`), applied by the coordinator.
  struct Command {
    int64_t seq = 0;
    std::string task_id;
    std::string action;  // "cancel" or "retry"
  };
  Status enqueue_command(const std::string& task_id, const std::string& action);
  Result<std::vector<Command>> pending_commands();
  Status ack_command(int64_t seq);

 private:
  Database db_;
};

}  // namespace polyphony
