// The coordinator's SQLite state DB.
#include "coordinator/state_store.h"

#include "common/log.h"

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

namespace polyphony {

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

namespace {

constexpr const char* kSchema = R"(
CREATE TABLE IF NOT EXISTS tasks (
  id TEXT PRIMARY KEY,
  title TEXT NOT NULL,
  body TEXT NOT NULL DEFAULT '',
  repo TEXT NOT NULL,
  base_branch TEXT NOT NULL DEFAULT '',
  task_type TEXT NOT NULL DEFAULT '',
  risk TEXT NOT NULL DEFAULT '',
  labels TEXT NOT NULL DEFAULT '[]',
  requested_agent TEXT NOT NULL DEFAULT '',
  source TEXT NOT NULL DEFAULT 'queue',
  created_at INTEGER NOT NULL,
  state TEXT NOT NULL,
  attempt INTEGER NOT NULL DEFAULT 0,
  agent TEXT NOT NULL DEFAULT '',
  branch TEXT NOT NULL DEFAULT '',
  worker TEXT NOT NULL DEFAULT '',
  epoch INTEGER NOT NULL DEFAULT 0,
  reason TEXT NOT NULL DEFAULT '',
  failure_kind TEXT NOT NULL DEFAULT '',
  commit_id TEXT NOT NULL DEFAULT '',
  merged_commit TEXT NOT NULL DEFAULT '',
  updated_at INTEGER NOT NULL,
  next_attempt_at INTEGER NOT NULL DEFAULT 0,
  budget_start INTEGER NOT NULL DEFAULT 0,
  score INTEGER NOT NULL DEFAULT -1,
  plan TEXT NOT NULL DEFAULT '',
  reviewer TEXT NOT NULL DEFAULT '',
  failed_trees TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS tasks_state ON tasks(state);
-- Partial indexes: entries only while a task is CLAIMED, or active (ROUTED ... VERIFYING), so
-- finished tasks cost them nothing. Dispatch reads each repo's oldest claimed tasks through the
-- first; a worker's hello finds what it holds through the second.
CREATE INDEX IF NOT EXISTS tasks_claimed ON tasks(repo, created_at, id) WHERE state='CLAIMED';
CREATE INDEX IF NOT EXISTS tasks_held ON tasks(worker) WHERE state IN ('ROUTED','PROVISIONED','RUNNING','VERIFYING');
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  task_id TEXT NOT NULL REFERENCES tasks(id),
  from_state TEXT NOT NULL,
  to_state TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  worker TEXT NOT NULL DEFAULT '',
  reason TEXT NOT NULL DEFAULT '',
  at INTEGER NOT NULL,
  agent TEXT NOT NULL DEFAULT '',
  failure_kind TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS events_task ON events(task_id);
CREATE TABLE IF NOT EXISTS agent_runs (
  task_id TEXT NOT NULL REFERENCES tasks(id),
  attempt INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  role TEXT NOT NULL,
  agent TEXT NOT NULL,
  model TEXT NOT NULL DEFAULT '',
  turns INTEGER NOT NULL DEFAULT 0,
  input_tokens INTEGER NOT NULL DEFAULT 0,
  output_tokens INTEGER NOT NULL DEFAULT 0,
  cost_usd REAL NOT NULL DEFAULT 0,
  final_message TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (task_id, attempt, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS land_waits (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  task_id TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  repo TEXT NOT NULL,
  asked_at INTEGER NOT NULL,
  granted_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS land_waits_task ON land_waits(task_id, attempt);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta(key, value) VALUES ('epoch', 0), ('schema', 1);
)";

constexpr const char* kTaskColumns =
    "id, title, body, repo, base_branch, task_type, risk, labels, requested_agent, source, created_at, "
    "state, attempt, agent, branch, worker, epoch, reason, failure_kind, commit_id, merged_commit, "
    "updated_at, next_attempt_at, budget_start, score, plan, reviewer, failed_trees";

// Columns added after the first schema, with their declarations: an older DB gets them on open.
constexpr std::pair<const char*, const char*> kAddedColumns[] = {
    {"score", "INTEGER NOT NULL DEFAULT -1"},
    {"plan", "TEXT NOT NULL DEFAULT ''"},
    {"reviewer", "TEXT NOT NULL DEFAULT ''"},
    {"failed_trees", "TEXT NOT NULL DEFAULT ''"},
};

// How finished tasks ended, derived from the events and agent runs (nothing is stored twice).
// attempt_outcomes: one row per attempt of a task (its events carry the attempt and the agent
// that implemented it): when it was routed, whether it landed, the reviews of its work (the
// worker's VERIFYING notes "review by ..."), the tokens and cost its runs reported (NULL when
// none did). task_outcomes: per finished task and agent, those attempts summed up.
constexpr std::pair<const char*, const char*> kViews[] = {
    {"attempt_outcomes",
     "CREATE VIEW attempt_outcomes AS SELECT t.repo AS repo, t.score AS score, t.state AS task_state, "
     "e.task_id AS task_id, e.attempt AS attempt, e.agent AS agent, min(e.at) AS started_at, "
     "max(CASE WHEN e.to_state='LANDED' THEN e.at END) AS landed_at, "
     "sum(e.from_state='VERIFYING' AND e.to_state='VERIFYING' AND e.reason LIKE 'review by %') AS review_rounds, "
     "(SELECT sum(r.input_tokens + r.output_tokens) FROM agent_runs r "
     "WHERE r.task_id=e.task_id AND r.attempt=e.attempt) AS tokens, "
     "(SELECT nullif(sum(r.cost_usd), 0) FROM agent_runs r "
     "WHERE r.task_id=e.task_id AND r.attempt=e.attempt) AS cost_usd "
     "FROM events e JOIN tasks t ON t.id=e.task_id WHERE e.attempt > 0 AND e.agent <> '' "
     "GROUP BY t.repo, t.score, e.task_id, e.attempt, e.agent"},
    {"task_outcomes",
     "CREATE VIEW task_outcomes AS SELECT repo, score, task_id, agent, count(*) AS attempts, "
     "max(landed_at IS NOT NULL) AS landed, sum(review_rounds) AS review_rounds, sum(tokens) AS tokens, "
     "sum(cost_usd) AS cost_usd, min(started_at) AS started_at, max(landed_at) AS landed_at "
     "FROM attempt_outcomes WHERE task_state IN ('LANDED','FAILED','BLOCKED') "
     "GROUP BY repo, score, task_id, agent"},
};

Task read_task(const Statement& st) {
  Task t;
  TaskRequest& r = t.request;
  r.id = st.text(0);
  r.title = st.text(1);
  r.body = st.text(2);
  r.repo = st.text(3);
  r.base_branch = st.text(4);
  r.task_type = st.text(5);
  r.risk = st.text(6);
  auto labels = nlohmann::json::parse(st.text(7), nullptr, false);
  if (labels.is_array()) {
    for (const auto& l : labels) {
      if (l.is_string()) r.labels.push_back(l.get<std::string>());
    }
  }
  r.agent = st.text(8);
  r.source = st.text(9);
  r.created_at_ms = st.int64(10);
  t.state = parse_task_state(st.text(11)).value_or(TaskState::kDiscovered);
  t.attempt = static_cast<int>(st.int64(12));
  t.agent = st.text(13);
  t.branch = st.text(14);
  t.worker = st.text(15);
  t.epoch = st.int64(16);
  t.reason = st.text(17);
  t.failure_kind = st.text(18);
  t.commit = st.text(19);
  t.merged_commit = st.text(20);
  t.updated_at_ms = st.int64(21);
  t.next_attempt_at_ms = st.int64(22);
  t.budget_start = static_cast<int>(st.int64(23));
  t.score = static_cast<int>(st.int64(24));
  t.plan = st.text(25);
  t.reviewer = st.text(26);
  for (size_t at = 0; at < st.text(27).size();) {
    const std::string all = st.text(27);
    size_t end = all.find(',', at);
    if (end == std::string::npos) end = all.size();
    if (end > at) t.failed_trees.push_back(all.substr(at, end - at));
    at = end + 1;
  }
  return t;
}

}  // namespace

Result<StateStore> StateStore::open(const std::filesystem::path& path, bool read_only) {
  auto db = Database::open(path, kStateDbApplicationId, !read_only, read_only);
  if (!db.ok()) return db.error();
  StateStore store;
  store.db_ = std::move(*db);
  if (!read_only) POLY_TRY(store.migrate());
  return store;
}

Status StateStore::migrate() {
  POLY_TRY(db_.exec(kSchema));
  std::set<std::string> have;
  auto st = db_.prepare("SELECT name FROM pragma_table_info('tasks')");
  if (!st.ok()) return st.error();
  while (true) {
    auto row = st->step();
    if (!row.ok()) return row.error();
    if (!*row) break;
    have.insert(st->text(0));
  }
  for (const auto& [name, decl] : kAddedColumns) {
    if (!have.count(name)) POLY_TRY(db_.exec(std::string("ALTER TABLE tasks ADD COLUMN ") + name + " " + decl));
  }
  POLY_TRY(migrate_events());
  return migrate_views();
}

Result<bool> StateStore::has_column(const std::string& table, const std::string& column) {
  auto st = db_.prepare("SELECT count(*) FROM pragma_table_info(?) WHERE name=?");
  if (!st.ok()) return st.error();
  st->bind(1, table);
  st->bind(2, column);
  auto row = st->step();
  if (!row.ok()) return row.error();
  return *row && st->int64(0) > 0;
}

// The columns events gained after their first version, each added once.
Status StateStore::migrate_events() {
  auto has_kind = has_column("events", "failure_kind");
  if (!has_kind.ok()) return has_kind.error();
  if (!*has_kind) POLY_TRY(db_.exec("ALTER TABLE events ADD COLUMN failure_kind TEXT NOT NULL DEFAULT ''"));
  auto has_agent = has_column("events", "agent");
  if (!has_agent.ok()) return has_agent.error();
  if (*has_agent) return {};
  // Events from before they named the agent: each attempt's agent is taken to be the task's
  // last one, which is right for every task that never fell back to another agent.
  return db_.transaction([&]() -> Status {
    POLY_TRY(db_.exec("ALTER TABLE events ADD COLUMN agent TEXT NOT NULL DEFAULT ''"));
    return db_.exec(
        "UPDATE events SET agent=(SELECT agent FROM tasks WHERE tasks.id=events.task_id) WHERE attempt > 0");
  });
}

Status StateStore::migrate_views() {
  for (const auto& [name, sql] : kViews) {
    auto st = db_.prepare("SELECT sql FROM sqlite_master WHERE type='view' AND name=?");
    if (!st.ok()) return st.error();
    st->bind(1, name);
    auto row = st->step();
    if (!row.ok()) return row.error();
    if (*row && st->text(0) == sql) continue;
    // A view of an older version is replaced (a view holds no data).
    POLY_TRY(db_.exec(std::string("DROP VIEW IF EXISTS ") + name));
    POLY_TRY(db_.exec(sql));
  }
  return {};
}

Result<std::vector<TaskOutcome>> StateStore::task_outcomes(const std::string& repo, int score_min, int score_max) {
  auto st = db_.prepare(
      "SELECT task_id, agent, score, attempts, landed, review_rounds, tokens, cost_usd, started_at, landed_at "
      "FROM task_outcomes WHERE repo=? AND score BETWEEN ? AND ? ORDER BY started_at, task_id");
  // A DB from before outcomes were derived, opened read-only, has no such view: no outcomes.
  if (!st.ok()) return std::vector<TaskOutcome>{};
  st->bind(1, repo).bind(2, score_min).bind(3, score_max);
  std::vector<TaskOutcome> out;
  while (true) {
    auto row = st->step();
    if (!row.ok()) return row.error();
    if (!*row) break;
    TaskOutcome o;
    o.task_id = st->text(0);
    o.agent = st->text(1);
    o.score = static_cast<int>(st->int64(2));
    o.attempts = static_cast<int>(st->int64(3));
    o.landed = st->int64(4) != 0;
    o.review_rounds = static_cast<int>(st->int64(5));
    if (!st->is_null(6)) o.tokens = st->int64(6);
    if (!st->is_null(7)) o.cost_usd = st->real(7);
    o.started_at_ms = st->int64(8);
    if (!st->is_null(9)) o.landed_at_ms = st->int64(9);
    out.push_back(std::move(o));
  }
  return out;
}

Status StateStore::note(const std::string& id, const std::string& reason, int64_t now) {
  auto cur = get(id);
  if (!cur.ok()) return cur.error();
  if (!cur->has_value()) return make_error("not_found", "no such task", id);
  const Task& t = **cur;
  auto ev = db_.prepare(
      "INSERT INTO events(task_id, from_state, to_state, attempt, worker, reason, at, agent) VALUES (?,?,?,?,?,?,?,?)");
  if (!ev.ok()) return ev.error();
  const std::string state(to_string(t.state));
  ev->bind(1, id)
      .bind(2, state)
      .bind(3, state)
      .bind(4, t.attempt)
      .bind(5, t.worker)
      .bind(6, redact(reason))
      .bind(7, now);
  ev->bind(8, t.attempt > 0 ? t.agent : std::string());
  return ev->run();
}

Status StateStore::record_agent_runs(const std::string& id, int attempt,
                                     const std::vector<protocol::AgentUsage>& runs) {
  int seq = 0;
  for (const auto& u : runs) {
    ++seq;
    // A run that reported nothing (a plain-text agent) costs the DB nothing.
    if (u.model.empty() && u.turns == 0 && u.input_tokens == 0 && u.output_tokens == 0 && u.final_message.empty())
      continue;
    auto st = db_.prepare(
        "INSERT OR REPLACE INTO agent_runs(task_id, attempt, seq, role, agent, model, turns, input_tokens, "
        "output_tokens, cost_usd, final_message) VALUES (?,?,?,?,?,?,?,?,?,?,?)");
    if (!st.ok()) return st.error();
    st->bind(1, id).bind(2, attempt).bind(3, seq).bind(4, u.role).bind(5, u.agent).bind(6, u.model).bind(7, u.turns);
    st->bind(8, u.input_tokens).bind(9, u.output_tokens).bind(10, u.cost_usd).bind(11, u.final_message);
    POLY_TRY(st->run());
  }
  return {};
}

Result<std::vector<AgentRun>> StateStore::agent_runs(const std::string& id) {
  auto st = db_.prepare(
      "SELECT attempt, role, agent, model, turns, input_tokens, output_tokens, cost_usd, final_message "
      "FROM agent_runs WHERE task_id=? ORDER BY attempt, seq");
  // A DB from before agent runs were recorded, opened read-only, has no such table: no runs.
  if (!st.ok()) return std::vector<AgentRun>{};
  st->bind(1, id);
  std::vector<AgentRun> out;
  while (true) {
    auto row = st->step();
    if (!row.ok()) return row.error();
    if (!*row) break;
    AgentRun r;
    r.attempt = static_cast<int>(st->int64(0));
    r.usage.role = st->text(1);
    r.usage.agent = st->text(2);
    r.usage.model = st->text(3);
    r.usage.turns = static_cast<int>(st->int64(4));
    r.usage.input_tokens = st->int64(5);
    r.usage.output_tokens = st->int64(6);
    r.usage.cost_usd = st->real(7);
    r.usage.final_message = st->text(8);
    out.push_back(std::move(r));
  }
  return out;
}

Status StateStore::record_land_wait(const LandWait& w) {
  auto st = db_.prepare("INSERT INTO land_waits(task_id, attempt, repo, asked_at, granted_at) VALUES (?,?,?,?,?)");
  if (!st.ok()) return st.error();
  st->bind(1, w.task_id).bind(2, w.attempt).bind(3, w.repo).bind(4, w.asked_at_ms).bind(5, w.granted_at_ms);
  return st->run();
}

Result<std::vector<LandWait>> StateStore::land_waits() {
  auto st = db_.prepare("SELECT task_id, attempt, repo, asked_at, granted_at FROM land_waits ORDER BY seq");
  if (!st.ok()) return std::vector<LandWait>{};  // a DB from before, opened read-only: none recorded
  std::vector<LandWait> out;
  while (true) {
    auto row = st->step();
    if (!row.ok()) return row.error();
    if (!*row) break;
    out.push_back({st->text(0), static_cast<int>(st->int64(1)), st->text(2), st->int64(3), st->int64(4)});
  }
  return out;
}

Result<std::optional<LandWait>> StateStore::last_grant(const std::string& task_id, int attempt) {
  auto st = db_.prepare(
      "SELECT task_id, attempt, repo, asked_at, granted_at FROM land_waits WHERE task_id=? AND attempt=? "
      "ORDER BY seq DESC LIMIT 1");
  if (!st.ok()) return st.error();
  st->bind(1, task_id).bind(2, attempt);
  auto row = st->step();
  if (!row.ok()) return row.error();
  if (!*row) return std::optional<LandWait>{};
  return std::optional<LandWait>{
      LandWait{st->text(0), static_cast<int>(st->int64(1)), st->text(2), st->int64(3), st->int64(4)}};
}

Result<bool> StateStore::add(const TaskRequest& r, int64_t now) {
  auto st = db_.prepare(
      "INSERT OR IGNORE INTO tasks(id, title, body, repo, base_branch, task_type, risk, labels, "
      "requested_agent, source, created_at, state, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)");
  if (!st.ok()) return st.error();
  st->bind(1, r.id).bind(2, r.title).bind(3, r.body).bind(4, r.repo).bind(5, r.base_branch);
  st->bind(6, r.task_type).bind(7, r.risk).bind(8, nlohmann::json(r.labels).dump()).bind(9, r.agent);
  st->bind(10, r.source).bind(11, r.created_at_ms ? r.created_at_ms : now);
  st->bind(12, to_string(TaskState::kDiscovered)).bind(13, now);
  POLY_TRY(st->run());
  bool inserted = db_.changes() > 0;
  if (inserted) {
    auto ev = db_.prepare(
        "INSERT INTO events(task_id, from_state, to_state, attempt, reason, at) VALUES (?, '', ?, 0, ?, ?)");
    if (!ev.ok()) return ev.error();
    ev->bind(1, r.id).bind(2, to_string(TaskState::kDiscovered)).bind(3, "from " + r.source).bind(4, now);
    POLY_TRY(ev->run());
  }
  return inserted;
}

Status StateStore::transition(const std::string& id, TaskState from, TaskState to, const TransitionUpdate& u,
                              int64_t now) {
  return transitions(id, from, {{to, u}}, now);
}

namespace {

// Refuses `steps` from `from` unless the lifecycle allows each of them in turn.
Status check_path(const std::string& id, TaskState from,
                  const std::vector<std::pair<TaskState, TransitionUpdate>>& steps) {
  TaskState at = from;
  for (const auto& [to, u] : steps) {
    if (!can_transition(at, to)) {
      return make_error(
          "transition",
          "the lifecycle does not allow " + std::string(to_string(at)) + " -> " + std::string(to_string(to)), id);
    }
    at = to;
  }
  return {};
}

}  // namespace

Status StateStore::transitions(const std::string& id, TaskState from,
                               const std::vector<std::pair<TaskState, TransitionUpdate>>& steps, int64_t now) {
  POLY_TRY(check_path(id, from, steps));
  return db_.transaction([&]() -> Status {
    auto cur = get(id);
    if (!cur.ok()) return cur.error();
    if (!cur->has_value()) return make_error("not_found", "no such task", id);
    Task& t = **cur;
    if (t.state != from) {
      return make_error("transition",
                        "task is " + std::string(to_string(t.state)) + ", not " + std::string(to_string(from)) +
                            "; refusing -> " + std::string(to_string(steps.front().first)),
                        id);
    }
    return apply(t, steps, now);
  });
}

Result<Task> StateStore::advance(const Task& current, TaskState to, const TransitionUpdate& u, int64_t now) {
  return advance(current, {{to, u}}, now);
}

Result<Task> StateStore::advance(const Task& current, const std::vector<std::pair<TaskState, TransitionUpdate>>& steps,
                                 int64_t now) {
  POLY_TRY(check_path(current.request.id, current.state, steps));
  Task t = current;
  Status s = db_.transaction([&]() -> Status { return apply(t, steps, now); });
  if (!s.ok()) return s.error();
  return t;
}

Status StateStore::apply(Task& t, const std::vector<std::pair<TaskState, TransitionUpdate>>& steps, int64_t now) {
  const std::string& id = t.request.id;
  const TaskState from = t.state;
  const int64_t read_epoch = t.epoch;
  struct Event {
    TaskState from, to;
    int attempt;
    std::string worker;
    const std::optional<std::string>* reason;
    std::string agent;
    const std::optional<std::string>* failure_kind;
  };
  std::vector<Event> events;
  for (const auto& [to, u] : steps) {
    if (u.attempt) t.attempt = *u.attempt;
    if (u.agent) t.agent = *u.agent;
    if (u.branch) t.branch = *u.branch;
    if (u.worker) t.worker = *u.worker;
    if (u.epoch) t.epoch = *u.epoch;
    if (u.reason) t.reason = redact(*u.reason);
    if (u.failure_kind) t.failure_kind = *u.failure_kind;
    if (u.commit) t.commit = *u.commit;
    if (u.merged_commit) t.merged_commit = *u.merged_commit;
    if (u.next_attempt_at_ms) t.next_attempt_at_ms = *u.next_attempt_at_ms;
    if (u.budget_start) t.budget_start = *u.budget_start;
    if (u.score) t.score = *u.score;
    if (u.plan) t.plan = *u.plan;
    if (u.reviewer) t.reviewer = *u.reviewer;
    if (u.failed_tree && !u.failed_tree->empty()) t.failed_trees.push_back(*u.failed_tree);
    events.push_back(
        {t.state, to, t.attempt, t.worker, &u.reason, t.attempt > 0 ? t.agent : std::string(), &u.failure_kind});
    t.state = to;
  }
  t.updated_at_ms = now;
  std::string trees;
  for (const auto& tree : t.failed_trees) trees += (trees.empty() ? "" : ",") + tree;
  // The row is written once with where the steps end; the state and epoch the caller read are
  // the guard: a task moved on since is not overwritten.
  auto st = db_.prepare(
      "UPDATE tasks SET state=?, attempt=?, agent=?, branch=?, worker=?, epoch=?, reason=?, failure_kind=?, "
      "commit_id=?, merged_commit=?, next_attempt_at=?, budget_start=?, updated_at=?, score=?, plan=?, "
      "reviewer=?, failed_trees=? WHERE id=? AND state=? AND epoch=?");
  if (!st.ok()) return st.error();
  st->bind(1, to_string(t.state)).bind(2, t.attempt).bind(3, t.agent).bind(4, t.branch).bind(5, t.worker);
  st->bind(6, t.epoch).bind(7, t.reason).bind(8, t.failure_kind).bind(9, t.commit).bind(10, t.merged_commit);
  st->bind(11, t.next_attempt_at_ms).bind(12, t.budget_start).bind(13, now).bind(14, t.score).bind(15, t.plan);
  st->bind(16, t.reviewer).bind(17, trees).bind(18, id).bind(19, to_string(from)).bind(20, read_epoch);
  POLY_TRY(st->run());
  if (db_.changes() != 1) {
    return make_error("transition",
                      "task is no longer " + std::string(to_string(from)) + " at epoch " + std::to_string(read_epoch) +
                          "; refusing -> " + std::string(to_string(steps.front().first)),
                      id);
  }
  // Every step keeps its own event, with the attempt and worker as they were after it.
  for (const auto& e : events) {
    auto ev = db_.prepare(
        "INSERT INTO events(task_id, from_state, to_state, attempt, worker, reason, at, agent, failure_kind) "
        "VALUES (?,?,?,?,?,?,?,?,?)");
    if (!ev.ok()) return ev.error();
    ev->bind(1, id).bind(2, to_string(e.from)).bind(3, to_string(e.to)).bind(4, e.attempt).bind(5, e.worker);
    ev->bind(6, redact(e.reason->value_or(""))).bind(7, now).bind(8, e.agent).bind(9, e.failure_kind->value_or(""));
    POLY_TRY(ev->run());
  }
  return {};
}

Result<std::optional<Task>> StateStore::get(const std::string& id) {
  auto st = db_.prepare(std::string("SELECT ") + kTaskColumns + " FROM tasks WHERE id=?");
  if (!st.ok()) return st.error();
  st->bind(1, id);
  auto row = st->step();
  if (!row.ok()) return row.error();
  if (!*row) return std::optional<Task>();
  return std::optional<Task>(read_task(*st));
}

Result<std::vector<Task>> StateStore::list(const std::vector<TaskState>& states) {
  std::string sql = std::string("SELECT ") + kTaskColumns + " FROM tasks";
  if (!states.empty()) {
    sql += " WHERE state IN (";
    for (size_t i = 0; i < states.size(); ++i) sql += (i ? ",'" : "'") + std::string(to_string(states[i])) + "'";
    sql += ")";
  }
  sql += " ORDER BY created_at, id";
  auto st = db_.prepare(sql);
  if (!st.ok()) return st.error();
  std::vector<Task> out;
  while (true) {
    auto row = st->step();
    if (!row.ok()) return row.error();
    if (!*row) break;
    out.push_back(read_task(*st));
  }
  return out;
}

namespace {

Result<std::vector<Task>> read_tasks(Statement& st) {
  std::vector<Task> out;
  while (true) {
    auto row = st.step();
    if (!row.ok()) return row.error();
    if (!*row) break;
    out.push_back(read_task(st));
  }
  return out;
}

std::string state_list(const std::vector<TaskState>& states) {
  std::string out;
  for (size_t i = 0; i < states.size(); ++i) out += (i ? ",'" : "'") + std::string(to_string(states[i])) + "'";
  return out;
}

}  // namespace

Result<std::vector<Task>> StateStore::dispatchable(int64_t now, int per_repo) {
  // The repos with a CLAIMED task, one index probe each (a loose scan of tasks_claimed), then
  // each repo's oldest due tasks: never a pass over the whole backlog.
  auto repos = db_.prepare(
      "WITH RECURSIVE r(repo) AS (SELECT min(repo) FROM tasks INDEXED BY tasks_claimed WHERE state='CLAIMED'"
      " UNION ALL SELECT (SELECT min(repo) FROM tasks INDEXED BY tasks_claimed WHERE state='CLAIMED' AND repo > r.repo)"
      " FROM r WHERE r.repo IS NOT NULL) SELECT repo FROM r WHERE repo IS NOT NULL");
  if (!repos.ok()) return repos.error();
  std::vector<std::string> names;
  while (true) {
    auto row = repos->step();
    if (!row.ok()) return row.error();
    if (!*row) break;
    names.push_back(repos->text(0));
  }
  std::vector<Task> out;
  for (const auto& repo : names) {
    auto st = db_.prepare(std::string("SELECT ") + kTaskColumns +
                          " FROM tasks INDEXED BY tasks_claimed WHERE state='CLAIMED' AND repo=?"
                          " AND next_attempt_at <= ? ORDER BY created_at, id LIMIT ?");
    if (!st.ok()) return st.error();
    st->bind(1, repo).bind(2, now).bind(3, per_repo);
    auto tasks = read_tasks(*st);
    if (!tasks.ok()) return tasks.error();
    for (auto& t : *tasks) out.push_back(std::move(t));
  }
  std::sort(out.begin(), out.end(), [](const Task& a, const Task& b) {
    return std::tie(a.request.created_at_ms, a.request.id) < std::tie(b.request.created_at_ms, b.request.id);
  });
  return out;
}

Result<std::vector<Task>> StateStore::held_by(const std::string& worker) {
  // The IN list is tasks_held's own condition, word for word, so the index applies.
  auto st = db_.prepare(std::string("SELECT ") + kTaskColumns + " FROM tasks INDEXED BY tasks_held WHERE state IN (" +
                        state_list(active_task_states()) + ") AND worker=? ORDER BY created_at, id");
  if (!st.ok()) return st.error();
  st->bind(1, worker);
  return read_tasks(*st);
}

Result<std::map<std::string, int>> StateStore::active_per_repo() {
  auto st = db_.prepare("SELECT repo, count(*) FROM tasks WHERE state IN (" + state_list(active_task_states()) +
                        ") GROUP BY repo");
  if (!st.ok()) return st.error();
  std::map<std::string, int> out;
  while (true) {
    auto row = st->step();
    if (!row.ok()) return row.error();
    if (!*row) break;
    out[st->text(0)] = static_cast<int>(st->int64(1));
  }
  return out;
}

namespace {

// Events as `filter` (a WHERE ... clause) selects them, with their seq. A read-only DB an older
// coordinator wrote has no failure_kind column: its events read with none.
Result<Statement> select_events(Database& db, const std::string& filter) {
  const std::string columns = "task_id, from_state, to_state, attempt, worker, reason, at, seq, ";
  auto st = db.prepare("SELECT " + columns + "failure_kind FROM events " + filter);
  if (st.ok()) return st;
  return db.prepare("SELECT " + columns + "'' FROM events " + filter);
}

Result<std::vector<TaskEvent>> read_events(Statement& st) {
  std::vector<TaskEvent> out;
  while (true) {
    auto row = st.step();
    if (!row.ok()) return row.error();
    if (!*row) break;
    out.push_back(TaskEvent{st.text(0), st.text(1), st.text(2), static_cast<int>(st.int64(3)), st.text(4), st.text(5),
                            st.int64(6), st.int64(7), st.text(8)});
  }
  return out;
}

}  // namespace

Result<std::vector<TaskEvent>> StateStore::events(const std::string& id) {
  auto st = select_events(db_, "WHERE task_id=? ORDER BY seq");
  if (!st.ok()) return st.error();
  st->bind(1, id);
  return read_events(*st);
}

Result<std::vector<TaskEvent>> StateStore::events_after(int64_t seq, int limit) {
  auto st = select_events(db_, "WHERE seq>? ORDER BY seq LIMIT ?");
  if (!st.ok()) return st.error();
  st->bind(1, seq).bind(2, limit);
  return read_events(*st);
}

Result<int64_t> StateStore::last_event_seq() {
  auto st = db_.prepare("SELECT COALESCE(MAX(seq), 0) FROM events");
  if (!st.ok()) return st.error();
  auto row = st->step();
  if (!row.ok()) return row.error();
  return *row ? st->int64(0) : 0;
}

Result<int64_t> StateStore::next_epoch() {
  if (!epoch_) {
    auto st = db_.prepare("SELECT value FROM meta WHERE key='epoch'");
    if (!st.ok()) return st.error();
    auto row = st->step();
    if (!row.ok()) return row.error();
    if (!*row) return make_error("db", "the meta table has no epoch row", db_.path().string());
    epoch_ = st->int64(0);
  }
  // Counted here, written through: an epoch whose write is rolled back is skipped, never reused,
  // and the DB holds every epoch that a committed dispatch carries.
  const int64_t epoch = *epoch_ + 1;
  auto st = db_.prepare("UPDATE meta SET value = max(value, ?) WHERE key='epoch'");
  if (!st.ok()) return st.error();
  st->bind(1, epoch);
  POLY_TRY(st->run());
  epoch_ = epoch;
  return epoch;
}

}  // namespace polyphony

namespace polyphony {

Result<bool> StateStore::update_request(const TaskRequest& r, const std::vector<TaskState>& states, int64_t now) {
  std::string in;
  for (TaskState s : states) in += (in.empty() ? "'" : ",'") + std::string(to_string(s)) + "'";
  if (in.empty()) return false;
  auto st = db_.prepare(
      "UPDATE tasks SET title=?, body=?, task_type=?, risk=?, labels=?, updated_at=? WHERE id=? AND state IN (" + in +
      ")");
  if (!st.ok()) return st.error();
  st->bind(1, r.title).bind(2, r.body).bind(3, r.task_type).bind(4, r.risk).bind(5, nlohmann::json(r.labels).dump());
  st->bind(6, now).bind(7, r.id);
  POLY_TRY(st->run());
  return db_.changes() > 0;
}

}  // namespace polyphony
