// The merge queue across workers: who lands on each repo now, and who waits.
#include "coordinator/land_queue.h"

#include <algorithm>

namespace polyphony {

LandQueue::Answer LandQueue::request(const std::string& repo, const LandAsk& ask, int64_t now_ms) {
  const std::string& task_id = ask.request.task_id;
  landing_.insert(task_id);
  asked_at_ms_.try_emplace(task_id, now_ms);
  auto holder = holder_.find(repo);
  if (holder != holder_.end() && holder->second == task_id) {
    granted_at_ms_[task_id] = now_ms;  // the holder asked again: its grant is new from now
    return {true, false, "", std::nullopt};
  }
  if (holder == holder_.end()) {
    holder_[repo] = task_id;
    granted_at_ms_[task_id] = now_ms;
    return {true, false, "", std::max<int64_t>(0, now_ms - asked_at_ms_[task_id])};
  }
  auto& line = waiting_[repo];
  for (auto& waiting : line) {
    if (waiting.request.task_id == task_id) {
      waiting = ask;  // asked again (maybe from a new epoch): keeps its place
      return {false, false, holder->second, std::nullopt};
    }
  }
  line.push_back(ask);
  return {false, true, holder->second, std::nullopt};
}

std::optional<std::string> LandQueue::release(const std::string& task_id) {
  landing_.erase(task_id);
  granted_at_ms_.erase(task_id);
  asked_at_ms_.erase(task_id);
  for (auto& [repo, line] : waiting_) {
    std::erase_if(line, [&](const LandAsk& a) { return a.request.task_id == task_id; });
  }
  for (auto it = holder_.begin(); it != holder_.end(); ++it) {
    if (it->second != task_id) continue;
    std::string repo = it->first;
    holder_.erase(it);
    return repo;
  }
  return std::nullopt;
}

std::optional<LandAsk> LandQueue::next_waiting(const std::string& repo) {
  auto line = waiting_.find(repo);
  if (holder_.count(repo) || line == waiting_.end() || line->second.empty()) return std::nullopt;
  LandAsk next = std::move(line->second.front());
  line->second.pop_front();
  return next;
}

bool LandQueue::pushing(const std::string& task_id, int64_t now_ms) const {
  auto granted = granted_at_ms_.find(task_id);
  return granted != granted_at_ms_.end() && now_ms - granted->second < kLandGraceMs;
}

bool LandQueue::restore(const std::string& repo, const std::string& task_id, int64_t granted_at_ms) {
  auto [it, inserted] = holder_.try_emplace(repo, task_id);
  if (!inserted && it->second != task_id) return false;
  granted_at_ms_[task_id] = granted_at_ms;
  asked_at_ms_.try_emplace(task_id, granted_at_ms);
  landing_.insert(task_id);
  return true;
}

std::optional<std::string> LandQueue::holder(const std::string& repo) const {
  auto it = holder_.find(repo);
  if (it == holder_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> LandQueue::waiting(const std::string& repo) const {
  std::vector<std::string> ids;
  auto line = waiting_.find(repo);
  if (line == waiting_.end()) return ids;
  for (const auto& a : line->second) ids.push_back(a.request.task_id);
  return ids;
}

}  // namespace polyphony
