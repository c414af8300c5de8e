// The coordinator's intake: tasks read from the queue (DISCOVERED), scored off the loop by
// origin, and claimed with their score and plan (CLAIMED).
#include <cstdlib>
#include <filesystem>
#include <string>

#include "common/log.h"
#include "coordinator/coordinator.h"
#include "coordinator/task_scoring.h"

namespace polyphony {

void Coordinator::discover() {
  auto pending = queue_->poll();
  if (!pending.ok()) {
    spdlog::error("cannot read the queue: {}", pending.error().to_string());
    return;
  }
  for (const auto& r : *pending) {
    auto added = store_->add(r, now());
    if (!added.ok()) {
      spdlog::error("task {}: cannot record it: {}", r.id, added.error().to_string());
      continue;
    }
    if (*added) spdlog::info("task {} DISCOVERED: {}", r.id, r.title);
    auto acked = queue_->ack(r.id);
    if (!acked.ok()) spdlog::error("task {}: cannot acknowledge it in the queue: {}", r.id, acked.error().to_string());
  }
}

namespace {

// Fault injection for the fault tests, unset in production: POLYPHONY_TEST_HOLD_DISCOVERED_UNTIL
// keeps tasks DISCOVERED until the file it names exists (ten minutes at most), so a test can
// kill a process or cut a link there.
class DiscoveredHold {
 public:
  explicit DiscoveredHold(int64_t now_ms) {
    const char* until = std::getenv("POLYPHONY_TEST_HOLD_DISCOVERED_UNTIL");
    if (until == nullptr) return;
    until_ms_ = now_ms + 600000;
    file_ = until;
    spdlog::info("test hold in DISCOVERED starts (until {} exists)", file_);
  }
  bool holds(int64_t now_ms) {
    if (now_ms >= until_ms_) return false;
    if (std::filesystem::exists(file_)) {
      spdlog::info("test hold in DISCOVERED ends");
      until_ms_ = 0;
      return false;
    }
    return true;
  }

 private:
  int64_t until_ms_ = 0;
  std::string file_;
};

}  // namespace

void Coordinator::claim_discovered() {
  static DiscoveredHold hold(now());
  if (hold.holds(now())) return;
  auto tasks = store_->list({TaskState::kDiscovered});
  if (!tasks.ok()) return;
  // By origin: the tasks of one repo are scored together (one fetch, one read), and never while
  // a job for that origin is under way, so no task is scored twice at once.
  std::map<std::string, std::vector<Task>> by_origin;
  int taken = 0;
  for (const auto& t : *tasks) {
    std::string key = "score " + scoring_origin(t.request, settings_.config);
    if (scoring_jobs_->pending(key)) continue;  // claimed when that job's result comes back
    // A large backlog is scored over several passes.
    if (++taken > kMaxClaimsPerPass) break;
    by_origin[std::move(key)].push_back(t);
  }
  for (auto& [key, batch_of_tasks] : by_origin) scoring_jobs_->submit(key, score_job(std::move(batch_of_tasks)));
}

BackgroundJobs::Job Coordinator::score_job(std::vector<Task> tasks) {
  const std::atomic<bool>* cancel = &scoring_jobs_->stopping();
  // Off the loop: reads only settings_, which nothing changes while the coordinator lives.
  return [this, cancel, tasks = std::move(tasks)]() -> BackgroundJobs::Apply {
    RepoTextCache texts;  // one read of the origin for all its tasks
    std::vector<Result<Score>> scores;
    bool focused = false;  // a base had no index yet: its tasks were scored from focused ones
    for (const auto& t : tasks) scores.push_back(score_task(t.request, settings_, &texts, cancel, &focused));
    return [this, tasks, scores = std::move(scores), focused] {
      batch([&] {
        for (size_t i = 0; i < tasks.size(); ++i) claim(tasks[i], scores[i]);
      });
      slot_freed_ = true;  // new work to dispatch: at once rather than at the next poll
      if (!focused) return;
      // A base had no index: the full one, for the tasks after these, as a job like the scoring
      // ones (bounded, cancelled when the coordinator stops); one per origin at a time.
      const std::atomic<bool>* stopping = &scoring_jobs_->stopping();
      const TaskRequest request = tasks.front().request;
      scoring_jobs_->submit("index " + scoring_origin(request, settings_.config),
                            [this, stopping, request]() -> BackgroundJobs::Apply {
                              auto built = build_full_index(request, settings_.config, stopping);
                              if (!built.ok()) {
                                spdlog::warn("scoring index of {}: {}", request.repo, built.error().to_string());
                              }
                              return [] {};
                            });
    };
  };
}

void Coordinator::claim(const Task& t, const Result<Score>& scored) {
  TransitionUpdate u;
  std::string why = "claimed by " + coordinator_id_;
  // Scored once, at the claim, against the repository at the task's base; the plan follows.
  std::optional<int> total;
  if (scored.ok()) {
    total = scored->total;
    u.score = scored->total;
    why += "; complexity " + std::to_string(scored->total) + "/10 (" + score_summary(*scored) + ")";
  } else {
    spdlog::warn("task {}: cannot score it: {}", t.request.id, scored.error().to_string());
    why += "; not scored (" + scored.error().message + ")";
  }
  const auto outcomes = outcomes_for(t, total, true);
  auto decision = route(t.request, settings_.routing, settings_.agents, total, outcomes ? &*outcomes : nullptr);
  if (decision.ok()) {
    u.plan = plan_name(decision->plan);
    u.reviewer = decision->reviewer;
    why += "; plan " + std::string(plan_name(decision->plan)) + " (" + decision->plan_because + ")";
    if (!decision->learning.empty()) why += "; " + decision->learning;
  }
  // The evidence routing may learn from, kept with the task whatever routing.yaml says.
  if (outcomes) {
    why += "; outcomes:";
    for (const auto& line : describe(*outcomes)) why += " " + line + ";";
    why.pop_back();
  }
  u.reason = why;
  // Refused when the task left DISCOVERED while it was scored (cancelled, say).
  auto s = store_->transition(t.request.id, TaskState::kDiscovered, TaskState::kClaimed, u, now());
  if (!s.ok()) spdlog::warn("task {}: not claimed: {}", t.request.id, s.error().to_string());
}

std::optional<BandOutcomes> Coordinator::outcomes_for(const Task& t, std::optional<int> score, bool always) {
  if (!score || (!always && !settings_.routing.learning.enabled)) return std::nullopt;
  const ScoreBand band = score_band(*score, settings_.routing.scoring);
  auto rows = store_->task_outcomes(t.request.repo, band.min, band.max);
  if (!rows.ok()) {
    spdlog::warn("task {}: cannot read the outcomes of earlier tasks: {}", t.request.id, rows.error().to_string());
    return std::nullopt;
  }
  return summarize(t.request.repo, band, *rows);
}

}  // namespace polyphony
