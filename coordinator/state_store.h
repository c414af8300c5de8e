// The coordinator's SQLite state DB: tasks, their transitions (events), and lease epochs.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/sqlite.h"
#include "coordinator/outcomes.h"
#include "coordinator/task.h"
#include "protocol/messages.h"

namespace polyphony {

inline constexpr int32_t kStateDbApplicationId = 0x506f6c79;  // "Poly"

// One agent run of one attempt, as its structured output reported it.
struct AgentRun {
  int attempt = 0;
  protocol::AgentUsage usage;
};

// One grant of a repo's landing slot: how long the attempt waited in the merge queue.
struct LandWait {
  std::string task_id;
  int attempt = 0;
  std::string repo;
  int64_t asked_at_ms = 0;  // its first land_request
  int64_t granted_at_ms = 0;
};

// What a transition changes besides the state; unset fields keep their value.
struct TransitionUpdate {
  std::optional<int> attempt;
  std::optional<std::string> agent;
  std::optional<std::string> branch;
  std::optional<std::string> worker;
  std::optional<int64_t> epoch;
  std::optional<std::string> reason;
  std::optional<std::string> failure_kind;
  std::optional<std::string> commit;
  std::optional<std::string> merged_commit;
  std::optional<int64_t> next_attempt_at_ms;
  std::optional<int> budget_start;
  std::optional<int> score;
  std::optional<std::string> plan;
  std::optional<std::string> reviewer;
  std::optional<std::string> failed_tree;  // appended to the task's failed_trees
};

class StateStore {
 public:
  // Opens or creates the DB; a foreign or corrupt file is refused with a clear error.
  static Result<StateStore> open(const std::filesystem::path& path, bool read_only = false);

  // Inserts a DISCOVERED task unless its id exists. Returns true when inserted.
  Result<bool> add(const TaskRequest& request, int64_t now_ms);

  // Moves the task from `from` to `to` in one transaction that appends an event; refused
  // (code "transition") when the task is not in `from` or the lifecycle forbids the move.
  Status transition(const std::string& id, TaskState from, TaskState to, const TransitionUpdate& update,
                    int64_t now_ms);

  // One transition of `current` (the task as the caller read it in this thread), without
  // reading it again: refused (code "transition") when the DB no longer holds it in
  // current.state at current.epoch, or when the lifecycle forbids the move. Returns the task
  // as it is now.
  Result<Task> advance(const Task& current, TaskState to, const TransitionUpdate& update, int64_t now_ms);
  // Several transitions of `current` at once (one row write, an event for each), as `transitions`.
  Result<Task> advance(const Task& current, const std::vector<std::pair<TaskState, TransitionUpdate>>& steps,
                       int64_t now_ms);

  // Several transitions in one transaction (e.g. RUNNING -> FAILED -> CLAIMED for a retry), so
  // no reader ever sees the state in between; each still appends its own event.
  Status transitions(const std::string& id, TaskState from,
                     const std::vector<std::pair<TaskState, TransitionUpdate>>& steps, int64_t now_ms);

  // Replaces what was asked (title, body, task type, risk, labels) while the task is in one of
  // `states`; returns false (nothing changed) when it is not. Appends no event.
  Result<bool> update_request(const TaskRequest& request, const std::vector<TaskState>& states, int64_t now_ms);

  Result<std::optional<Task>> get(const std::string& id);
  // Tasks in any of `states` (all when empty), oldest first.
  Result<std::vector<Task>> list(const std::vector<TaskState>& states = {});
  Result<std::vector<TaskEvent>> events(const std::string& id);
  // Every task's events recorded after `seq` (0: from the first), oldest first, at most `limit`,
  // each with its seq: a reader follows the history by passing the last seq it saw.
  Result<std::vector<TaskEvent>> events_after(int64_t seq, int limit);
  // The seq of the last event recorded (0: none yet): where a reader of what comes next starts.
  Result<int64_t> last_event_seq();
  // CLAIMED tasks due at `now_ms`: of each repo the `per_repo` oldest, all oldest first. What
  // dispatch_order needs to fill `per_repo` slots, without reading the whole backlog.
  Result<std::vector<Task>> dispatchable(int64_t now_ms, int per_repo);
  // Tasks in an active state whose current attempt `worker` holds, oldest first.
  Result<std::vector<Task>> held_by(const std::string& worker);
  // How many tasks each repo has in an active state (is_active).
  Result<std::map<std::string, int>> active_per_repo();

  // Runs fn in one transaction, so everything it records costs one commit; the transactions
  // of the calls it makes become savepoints (an error still undoes only its own call). Rolls
  // back everything when fn returns an error.
  template <class F>
  Status batch(F&& fn) {
    return db_.transaction(std::forward<F>(fn));
  }

  // Appends an event that changes no state (a review verdict, a fallback), for the history.
  Status note(const std::string& id, const std::string& reason, int64_t now_ms);

  // What the agent runs of an attempt reported (model, turns, tokens, cost, final message);
  // runs that reported nothing are not stored. Recording the same attempt again replaces it.
  Status record_agent_runs(const std::string& id, int attempt, const std::vector<protocol::AgentUsage>& runs);
  // Every recorded agent run of the task, by attempt.
  Result<std::vector<AgentRun>> agent_runs(const std::string& id);

  // How the finished tasks (LANDED, FAILED, BLOCKED) of `repo` whose score is in
  // [score_min, score_max] ended, a row per task and agent that implemented an attempt of it,
  // oldest first. Derived from the events and agent runs (the task_outcomes view).
  Result<std::vector<TaskOutcome>> task_outcomes(const std::string& repo, int score_min, int score_max);
  // Records a grant of a landing slot (the merge-queue wait, for /metrics).
  Status record_land_wait(const LandWait& wait);
  // Every grant recorded, oldest first (none in a DB from before they were recorded).
  Result<std::vector<LandWait>> land_waits();
  // The last grant recorded for attempt `attempt` of `task_id`, if any.
  Result<std::optional<LandWait>> last_grant(const std::string& task_id, int attempt);

  // A new lease epoch, strictly larger than every one handed out before (survives restarts).
  Result<int64_t> next_epoch();

 private:
  Status migrate();
  Status migrate_events();  // events gained failure_kind, then the agent of their attempt
  Result<bool> has_column(const std::string& table, const std::string& column);
  Status migrate_views();  // the views outcomes are read from
  // The transitions `steps` of `t` (updated in place) inside the caller's transaction.
  Status apply(Task& t, const std::vector<std::pair<TaskState, TransitionUpdate>>& steps, int64_t now_ms);
  Database db_;
  std::optional<int64_t> epoch_;  // the last epoch handed out, once read from the DB
};

int64_t now_ms();

}  // namespace polyphony
