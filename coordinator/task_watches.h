// Which clients follow which tasks (the client endpoint's `watch`) and what each was last told,
// so a client waits on a task's news instead of asking again and again. Pure: no I/O.
#pragma once

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "protocol/messages.h"

namespace polyphony {

// At most this many watches at once (task and client pairs); a watch past it is refused.
inline constexpr size_t kMaxWatches = 10000;

class TaskWatches {
 public:
  // `client` (a routing id) follows `task_id`, and was just told `reply`. Renewing a watch
  // replaces what it was told. False (nothing recorded) when kMaxWatches are held already.
  bool add(const std::string& task_id, const std::string& client, const protocol::ClientReply& reply);

  // The clients following `task_id` that were not told `reply` yet; each is recorded as told.
  std::vector<std::string> news(const std::string& task_id, const protocol::ClientReply& reply);

  // The task reached a final state: its watches end.
  void end(const std::string& task_id);

  // The client's connection is gone: all its watches end.
  void drop_client(const std::string& client);

  bool watched(const std::string& task_id) const { return by_task_.count(task_id) > 0; }
  bool empty() const { return by_task_.empty(); }
  size_t size() const { return count_; }

 private:
  std::map<std::string, std::map<std::string, protocol::ClientReply>> by_task_;  // task -> client -> told
  size_t count_ = 0;
};

// True for the states a task ends in (protocol::kFinalStates).
bool is_final_state(const std::string& state);

}  // namespace polyphony
