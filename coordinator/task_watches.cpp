// The client endpoint's watches: who follows which task, and what each was last told.
#include "coordinator/task_watches.h"

#include <algorithm>

namespace polyphony {

bool TaskWatches::add(const std::string& task_id, const std::string& client, const protocol::ClientReply& reply) {
  auto& clients = by_task_[task_id];
  auto it = clients.find(client);
  if (it != clients.end()) {
    it->second = reply;
    return true;
  }
  if (count_ >= kMaxWatches) {
    if (clients.empty()) by_task_.erase(task_id);
    return false;
  }
  clients.emplace(client, reply);
  ++count_;
  return true;
}

std::vector<std::string> TaskWatches::news(const std::string& task_id, const protocol::ClientReply& reply) {
  std::vector<std::string> out;
  auto it = by_task_.find(task_id);
  if (it == by_task_.end()) return out;
  for (auto& [client, told] : it->second) {
    if (told == reply) continue;
    told = reply;
    out.push_back(client);
  }
  return out;
}

void TaskWatches::end(const std::string& task_id) {
  auto it = by_task_.find(task_id);
  if (it == by_task_.end()) return;
  count_ -= it->second.size();
  by_task_.erase(it);
}

void TaskWatches::drop_client(const std::string& client) {
  for (auto it = by_task_.begin(); it != by_task_.end();) {
    count_ -= it->second.erase(client);
    it = it->second.empty() ? by_task_.erase(it) : std::next(it);
  }
}

bool is_final_state(const std::string& state) {
  return std::find(protocol::kFinalStates.begin(), protocol::kFinalStates.end(), state) != protocol::kFinalStates.end();
}

}  // namespace polyphony
