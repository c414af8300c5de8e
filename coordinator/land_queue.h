// The merge queue across workers: one landing per repo at a time. Pure: requests and releases
// in, grants out; no sockets, no DB, time passed in. The coordinator checks leases before it
// asks, and answers the workers with what this decides.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "protocol/messages.h"

namespace polyphony {

// A task that holds its repo's landing slot is not failed for a silent worker for this long
// after the grant (it is pushing), so a slow heartbeat cannot make two attempts land.
inline constexpr int64_t kLandGraceMs = protocol::kLandGrantLifetimeMs;

// A verified attempt's request to land, as a worker sent it.
struct LandAsk {
  std::string routing_id;  // the worker that asked
  protocol::LandRequest request;
};

class LandQueue {
 public:
  struct Answer {
    bool granted = false;
    bool queued = false;  // not granted, and newly in line (not asked again)
    std::string behind;   // when not granted: the task that holds the repo's slot
    // Set when this call granted the slot anew (not to its holder asking again): how long the
    // task waited since it first asked, the merge-queue wait.
    std::optional<int64_t> waited_ms;
  };

  // `ask` (a current lease, in VERIFYING) wants to land on `repo` at `now_ms`. Granted when no
  // other task holds the repo's slot (or this task already does); otherwise it waits in line,
  // and a task that asks again (maybe from a new epoch) keeps its place with the new request.
  // Either way the task counts as landing (see landing()).
  Answer request(const std::string& repo, const LandAsk& ask, int64_t now_ms);

  // The task ended (result, failure, cancel): it leaves the line and the landing set, and its
  // slot, if it held one, is free. Returns the repo whose slot it freed, if any.
  std::optional<std::string> release(const std::string& task_id);

  // The next request in `repo`'s line, taken out of it, when nobody holds the repo's slot;
  // nullopt otherwise. The caller re-checks its lease and calls request() again to grant it.
  std::optional<LandAsk> next_waiting(const std::string& repo);

  // A new attempt of the task starts: it holds a worker slot again until it too asks to land.
  void forget_landing(const std::string& task_id) {
    landing_.erase(task_id);
    asked_at_ms_.erase(task_id);
  }

  // True when the task was granted its slot less than kLandGraceMs before `now_ms` (it may be
  // pushing, whatever its worker's heartbeats say).
  bool pushing(const std::string& task_id, int64_t now_ms) const;

  // Attempts that passed verify and asked to land (granted or waiting): their agents are done,
  // so they hold no max_concurrency slot or worker capacity while they wait and land.
  const std::set<std::string>& landing() const { return landing_; }

  // A grant a previous life of the coordinator made at `granted_at_ms` (from the state DB): the
  // task holds `repo`'s slot again, as if granted then, so nothing else lands on the repo while
  // it may be pushing. False when another task already holds the slot.
  bool restore(const std::string& repo, const std::string& task_id, int64_t granted_at_ms);

  // The task holding `repo`'s slot, if any.
  std::optional<std::string> holder(const std::string& repo) const;

  // The task ids waiting for `repo`'s slot, in order.
  std::vector<std::string> waiting(const std::string& repo) const;

 private:
  std::map<std::string, std::string> holder_;           // repo -> task id
  std::map<std::string, int64_t> granted_at_ms_;        // task id -> when
  std::map<std::string, int64_t> asked_at_ms_;          // task id -> when it first asked
  std::map<std::string, std::deque<LandAsk>> waiting_;  // repo -> requests in order
  std::set<std::string> landing_;
};

}  // namespace polyphony
