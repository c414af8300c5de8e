// The API's JSON shapes, shared with the CLI's --json output.
#include "dashboard/api_json.h"

#include <ctime>

#include "common/log.h"

namespace polyphony::dashboard {

using nlohmann::json;

std::string iso_utc(int64_t ms) {
  if (ms == 0) return "";
  const auto secs = static_cast<std::time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

json task_json(const Task& t) {
  const auto& r = t.request;
  return json{{"id", r.id},
              {"title", redact(r.title)},
              {"state", std::string(to_string(t.state))},
              {"repo", redact(r.repo)},
              {"base_branch", r.base_branch},
              {"task_type", r.task_type},
              {"risk", r.risk},
              {"labels", r.labels},
              {"agent", t.agent.empty() ? r.agent : t.agent},
              {"branch", t.branch},
              {"worker", t.worker},
              {"attempt", t.attempt},
              {"reason", redact(t.reason)},
              {"failure_kind", t.failure_kind},
              {"commit", t.commit},
              {"merged_commit", t.merged_commit},
              {"already_in_base", already_in_base(t)},
              {"score", t.score >= 0 ? json(t.score) : json(nullptr)},
              {"plan", t.plan},
              {"reviewer", t.reviewer},
              {"created_at_ms", r.created_at_ms},
              {"created_at", iso_utc(r.created_at_ms)},
              {"updated_at_ms", t.updated_at_ms},
              {"updated_at", iso_utc(t.updated_at_ms)}};
}

json runs_json(const std::vector<AgentRun>& runs) {
  json out = json::array();
  for (const auto& r : runs) {
    const auto& u = r.usage;
    out.push_back({{"attempt", r.attempt},
                   {"role", u.role},
                   {"agent", u.agent},
                   {"model", u.model},
                   {"turns", u.turns},
                   {"input_tokens", u.input_tokens},
                   {"output_tokens", u.output_tokens},
                   {"cost_usd", u.cost_usd},
                   {"final_message", redact(u.final_message)}});
  }
  return out;
}

json event_json(const TaskEvent& e) {
  return json{{"seq", e.seq},
              {"task_id", e.task_id},
              {"from", e.from},
              {"to", e.to},
              {"attempt", e.attempt},
              {"worker", e.worker},
              {"reason", redact(e.reason)},
              {"failure_kind", e.failure_kind},
              {"at_ms", e.at_ms},
              {"at", iso_utc(e.at_ms)}};
}

json worker_json(const protocol::WorkerStatus& w, int64_t now_ms) {
  return json{{"id", w.worker_id},
              {"hostname", w.hostname},
              {"state", w.state},
              {"heartbeat_age_ms", w.heartbeat_age_ms},
              {"last_heartbeat_at", iso_utc(now_ms - w.heartbeat_age_ms)},
              {"capacity", w.capacity},
              {"load", w.load},
              {"labels", w.labels},
              {"running", w.running},
              {"version", w.version},
              {"image_present", w.image_present},
              {"free_disk_bytes", w.free_disk_bytes},
              {"key", w.key}};
}

}  // namespace polyphony::dashboard
