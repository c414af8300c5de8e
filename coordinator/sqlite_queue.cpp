// The local SQLite task queue.
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "coordinator/state_store.h"
#include "coordinator/task_fields.h"
#include "coordinator/work_source.h"

namespace polyphony {

Result<std::unique_ptr<SqliteQueue>> SqliteQueue::open(const std::filesystem::path& path, bool read_only) {
  auto db = Database::open(path, kQueueDbApplicationId, !read_only, read_only);
  if (!db.ok()) return db.error();
  auto q = std::unique_ptr<SqliteQueue>(new SqliteQueue());
  q->db_ = std::move(*db);
  if (!read_only) {
    POLY_TRY(q->db_.exec(R"(
      CREATE TABLE IF NOT EXISTS queue (
        id TEXT PRIMARY KEY,
        request TEXT NOT NULL,
        enqueued_at INTEGER NOT NULL,
        acked INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX IF NOT EXISTS queue_pending ON queue(acked, enqueued_at);
      CREATE TABLE IF NOT EXISTS commands (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        task_id TEXT NOT NULL,
        action TEXT NOT NULL,
        enqueued_at INTEGER NOT NULL,
        acked INTEGER NOT NULL DEFAULT 0
      );
    )"));
  }
  return q;
}

Status SqliteQueue::enqueue(const TaskRequest& r) {
  nlohmann::json j = task_fields_json(r);
  j["source"] = r.source;
  j["created_at"] = r.created_at_ms;
  auto st = db_.prepare("INSERT INTO queue(id, request, enqueued_at) VALUES (?,?,?)");
  if (!st.ok()) return st.error();
  st->bind(1, r.id).bind(2, j.dump()).bind(3, r.created_at_ms ? r.created_at_ms : now_ms());
  return st->run();
}

Result<std::vector<TaskRequest>> SqliteQueue::poll() {
  auto st = db_.prepare("SELECT id, request FROM queue WHERE acked=0 ORDER BY enqueued_at, id");
  if (!st.ok()) return st.error();
  std::vector<TaskRequest> out;
  while (true) {
    auto row = st->step();
    if (!row.ok()) return row.error();
    if (!*row) break;
    auto j = nlohmann::json::parse(st->text(1), nullptr, false);
    if (!j.is_object()) {
      spdlog::error("queue entry {} in {} is not a JSON object; leaving it queued", st->text(0), db_.path().string());
      continue;
    }
    auto fields = task_fields_from_json(j);
    if (!fields.ok()) {
      spdlog::error("queue entry {} in {}: {}; leaving it queued", st->text(0), db_.path().string(),
                    fields.error().message);
      continue;
    }
    TaskRequest r = std::move(*fields);
    r.id = st->text(0);
    r.source = j.value("source", "queue");
    r.created_at_ms = j.value("created_at", int64_t{0});
    out.push_back(std::move(r));
  }
  return out;
}

Status SqliteQueue::ack(const std::string& id) {
  auto st = db_.prepare("UPDATE queue SET acked=1 WHERE id=?");
  if (!st.ok()) return st.error();
  st->bind(1, id);
  return st->run();
}

Status SqliteQueue::enqueue_command(const std::string& task_id, const std::string& action) {
  auto st = db_.prepare("INSERT INTO commands(task_id, action, enqueued_at) VALUES (?,?,?)");
  if (!st.ok()) return st.error();
  st->bind(1, task_id).bind(2, action).bind(3, now_ms());
  return st->run();
}

Result<std::vector<SqliteQueue::Command>> SqliteQueue::pending_commands() {
  auto st = db_.prepare("SELECT seq, task_id, action FROM commands WHERE acked=0 ORDER BY seq");
  if (!st.ok()) return st.error();
  std::vector<Command> out;
  while (true) {
    auto row = st->step();
    if (!row.ok()) return row.error();
    if (!*row) break;
    out.push_back(Command{st->int64(0), st->text(1), st->text(2)});
  }
  return out;
}

Status SqliteQueue::ack_command(int64_t seq) {
  auto st = db_.prepare("UPDATE commands SET acked=1 WHERE seq=?");
  if (!st.ok()) return st.error();
  st->bind(1, seq);
  return st->run();
}

}  // namespace polyphony
