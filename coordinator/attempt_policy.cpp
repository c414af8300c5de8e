// Retry, fallback and block decisions, and the RunSpec of each attempt.
#include "coordinator/attempt_policy.h"

#include <algorithm>

namespace polyphony {

int64_t retry_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms, uint64_t random) {
  int64_t d = base_ms;
  for (int i = 1; i < attempt && d < cap_ms; ++i) d *= 2;
  d = std::min(d, cap_ms);
  const int64_t jitter = d / 5;
  if (jitter > 0) d += static_cast<int64_t>(random % static_cast<uint64_t>(2 * jitter + 1)) - jitter;
  return std::max<int64_t>(d, 0);
}

bool is_retryable(FailureKind kind) {
  switch (kind) {
    case FailureKind::kInfra:
    case FailureKind::kTimeout:
    case FailureKind::kConflict:
    case FailureKind::kVerify:
    case FailureKind::kAgentUnavailable:
      return true;
    default:
      return false;
  }
}

std::vector<std::string> agent_chain(const RouteDecision& d, const std::map<std::string, AgentProfile>& agents) {
  std::vector<std::string> chain;
  auto add = [&](const std::string& a) {
    if (!a.empty() && agents.count(a) && std::find(chain.begin(), chain.end(), a) == chain.end()) chain.push_back(a);
  };
  add(d.agent);
  for (const auto& a : d.fallback) add(a);
  return chain;
}

std::optional<std::string> next_in_chain(const std::vector<std::string>& chain, const std::string& after) {
  auto it = std::find(chain.begin(), chain.end(), after);
  if (it == chain.end() || it + 1 == chain.end()) return std::nullopt;
  return *(it + 1);
}

namespace {

std::optional<int> known_score(const Task& task) {
  return task.score >= 0 ? std::optional<int>(task.score) : std::nullopt;
}

bool repeats_failed_tree(const Task& task, FailureKind kind, const std::string& tree) {
  return kind == FailureKind::kVerify && !tree.empty() &&
         std::find(task.failed_trees.begin(), task.failed_trees.end(), tree) != task.failed_trees.end();
}

std::pair<TaskState, TransitionUpdate> blocked(std::string reason) {
  TransitionUpdate b;
  b.reason = std::move(reason);
  return {TaskState::kBlocked, b};
}

// The next agent of the chain takes over at once; this attempt does not count against
// max_attempts, because the task itself was never tried.
std::pair<TaskState, TransitionUpdate> fall_back(const Task& task, const std::string& reason, const Settings& settings,
                                                 const BandOutcomes* outcomes) {
  auto decision = route(task.request, settings.routing, settings.agents, known_score(task), outcomes);
  auto next = decision.ok() ? next_in_chain(agent_chain(*decision, settings.agents), task.agent) : std::nullopt;
  if (!next) return blocked("no agent left in the fallback chain could run; last (" + task.agent + "): " + reason);
  TransitionUpdate r;
  r.worker = "";
  r.reason = "agent " + task.agent + " unavailable, falling back to " + *next + ": " + reason;
  r.next_attempt_at_ms = 0;
  r.budget_start = task.budget_start + 1;
  return {TaskState::kClaimed, r};
}

// What follows a failed attempt: another attempt, BLOCKED, or nothing.
std::optional<std::pair<TaskState, TransitionUpdate>> after_failure(const Task& task, FailureKind kind,
                                                                    const std::string& reason, const std::string& tree,
                                                                    const Settings& settings, int64_t now_ms,
                                                                    uint64_t random, const BandOutcomes* outcomes,
                                                                    bool may_have_landed) {
  if (!is_retryable(kind)) return std::nullopt;
  if (repeats_failed_tree(task, kind, tree)) {
    return blocked("verify failed again on the same tree " + tree.substr(0, 12) +
                   " as an earlier attempt; another attempt would repeat it; last: " + reason);
  }
  if (kind == FailureKind::kAgentUnavailable) return fall_back(task, reason, settings, outcomes);
  const Config& config = settings.config;
  const int used = task.attempt - task.budget_start;
  // An attempt lost after its land grant may have pushed: the last one gets one more attempt,
  // which reports LANDED if it did (an earlier landing is the first thing an attempt checks).
  const bool check_landing = may_have_landed && kind == FailureKind::kInfra && used == config.max_attempts;
  if (used >= config.max_attempts && !check_landing) {
    return blocked("gave up after " + std::to_string(used) + " attempts; last: " + reason);
  }
  TransitionUpdate r;
  r.worker = "";
  r.reason = check_landing ? "one more attempt, past max_attempts: attempt " + std::to_string(task.attempt) +
                                 " was lost after it was granted its landing and may have pushed; " + reason
                           : "retry after " + std::string(to_string(kind)) + " failure: " + reason;
  r.next_attempt_at_ms =
      now_ms + retry_backoff_ms(task.attempt, config.retry_backoff_base_ms, config.retry_backoff_cap_ms, random);
  return std::pair{TaskState::kClaimed, r};
}

}  // namespace

Steps failure_steps(const Task& task, TaskState from, FailureKind kind, const std::string& reason,
                    const std::string& tree, const Settings& settings, int64_t now_ms, uint64_t random,
                    const BandOutcomes* outcomes, bool may_have_landed) {
  Steps steps;
  if (from != TaskState::kFailed) {
    TransitionUpdate u;
    u.reason = reason;
    u.failure_kind = std::string(to_string(kind));
    if (kind == FailureKind::kVerify) u.failed_tree = tree;
    steps.push_back({TaskState::kFailed, u});
  }
  if (auto next = after_failure(task, kind, reason, tree, settings, now_ms, random, outcomes, may_have_landed)) {
    steps.push_back(*next);
  }
  return steps;
}

std::string implementer(const Task& t, const RouteDecision& decision,
                        const std::map<std::string, AgentProfile>& agents) {
  const auto chain = agent_chain(decision, agents);
  std::string agent = chain.empty() ? decision.agent : chain.front();
  if (t.attempt > 0 && std::find(chain.begin(), chain.end(), t.agent) != chain.end()) {
    agent = t.agent;
    const bool unavailable = t.failure_kind == to_string(FailureKind::kAgentUnavailable);
    if (unavailable) agent = next_in_chain(chain, t.agent).value_or(t.agent);
  }
  return agent;
}

std::string feedback_for(const Task& t) {
  if (t.attempt == 0 || t.failure_kind == to_string(FailureKind::kAgentUnavailable)) return "";
  return t.reason;
}

bool has_reviewer(const RouteDecision& decision, const std::string& implementer) {
  return decision.plan == Plan::kReview && !decision.reviewer.empty() && decision.reviewer != implementer;
}

std::string dispatch_reason(const RouteDecision& d, const std::string& agent, const std::string& worker) {
  return "agent " + agent + " (" + d.because + "), plan " + plan_name(d.plan) +
         (d.reviewer.empty() ? "" : " with reviewer " + d.reviewer) + ", worker " + worker +
         (d.learned ? "; " + d.learning : "");
}

namespace {

// The implementer told what went wrong before (in its prompt and task file).
void add_feedback(protocol::RunSpec& spec, const TaskRequest& request, const std::string& feedback,
                  const AgentProfile& agent) {
  spec.feedback = feedback;
  const TaskRequest told = with_feedback(request, feedback);
  spec.agent.command = expand_command(agent.command, told, spec.branch);
  if (!spec.agent.stdin_text.empty()) spec.agent.stdin_text = expand_text(agent.stdin_template, told, spec.branch);
}

// The review plan: the reviewer's run, and the implementer's when the reviewer asks for changes.
void add_review(protocol::RunSpec& spec, const AttemptInputs& in, const AgentProfile& agent, const Settings& settings) {
  const TaskRequest& request = in.task.request;
  spec.reviewer = agent_spec(settings.agents.at(in.decision.reviewer), *in.reviewer_identity,
                             review_request(request, spec.branch), spec.branch);
  spec.review_rounds = settings.config.review_rounds;
  const TaskRequest rework = rework_request(with_feedback(request, spec.feedback));
  spec.rework_command = expand_command(agent.command, rework, spec.branch);
  if (!agent.stdin_template.empty()) spec.rework_stdin = expand_text(agent.stdin_template, rework, spec.branch);
}

}  // namespace

protocol::RunSpec run_spec(const AttemptInputs& in, const Settings& settings) {
  const Task& task = in.task;
  const AgentProfile& agent = settings.agents.at(task.agent);
  protocol::RunSpec spec = make_run_spec(task, agent, in.identity, settings.config, task.attempt, task.epoch);
  spec.plan = plan_name(in.decision.plan);
  if (task.request.source == "github") spec.land_mode = "branch";  // the coordinator opens a pull request
  if (!in.feedback.empty()) add_feedback(spec, task.request, in.feedback, agent);
  if (in.decision.budget) apply_budget(spec, *in.decision.budget);
  if (has_reviewer(in.decision, task.agent) && in.reviewer_identity != nullptr) add_review(spec, in, agent, settings);
  return spec;
}

}  // namespace polyphony
