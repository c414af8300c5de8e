// The router: which agent runs a task, and the RunSpec for an attempt. Pure.
#include "coordinator/router.h"

#include <algorithm>

#include "common/ids.h"
#include "coordinator/scoring.h"

namespace polyphony {

bool rule_matches(const RouteMatch& m, const TaskRequest& task, std::optional<int> score) {
  if (m.task_type && *m.task_type != task.task_type) return false;
  if (m.risk && *m.risk != task.risk) return false;
  if (m.repo && *m.repo != task.repo) return false;
  for (const auto& label : m.labels) {
    if (std::find(task.labels.begin(), task.labels.end(), label) == task.labels.end()) return false;
  }
  if (m.score_min || m.score_max) {
    if (!score) return false;
    if (m.score_min && *score < *m.score_min) return false;
    if (m.score_max && *score > *m.score_max) return false;
  }
  return true;
}

namespace {

bool is_strong(const std::map<std::string, AgentProfile>& agents, const std::string& name) {
  auto it = agents.find(name);
  return it != agents.end() && it->second.tier == "strong";
}

// Candidates in order of preference: the default, the fallback chain, then every agent by name.
std::vector<std::string> preference(const RoutingPolicy& policy, const std::map<std::string, AgentProfile>& agents) {
  std::vector<std::string> out{policy.default_agent};
  out.insert(out.end(), policy.fallback.begin(), policy.fallback.end());
  for (const auto& [name, a] : agents) out.push_back(name);
  return out;
}

// The first preferred agent that is not `except` and, when `strong` is set, of tier strong.
std::string pick(const RoutingPolicy& policy, const std::map<std::string, AgentProfile>& agents, bool strong,
                 const std::string& except = {}) {
  for (const auto& name : preference(policy, agents)) {
    if (name != except && agents.count(name) && (!strong || is_strong(agents, name))) return name;
  }
  return {};
}

// The strong plan's implementer, once the rule (or default) is known.
void staff_implementer(RouteDecision& d, const RoutingPolicy& policy, const std::map<std::string, AgentProfile>& agents,
                       bool agent_chosen) {
  if (d.plan != Plan::kStrong || agent_chosen) return;
  if (std::string strong = pick(policy, agents, true); !strong.empty()) {
    d.agent = strong;
  } else {
    d.plan_because += "; no agent has tier strong, so " + d.agent + " runs it";
  }
}

// The review plan's reviewer: another agent than the implementer, a strong one when there is one.
void staff_reviewer(RouteDecision& d, const RoutingPolicy& policy, const std::map<std::string, AgentProfile>& agents) {
  if (d.plan != Plan::kReview) return;
  d.reviewer = pick(policy, agents, true, d.agent);
  if (d.reviewer.empty()) d.reviewer = pick(policy, agents, false, d.agent);
  if (d.reviewer.empty()) {
    d.plan = Plan::kSolo;
    d.plan_because += "; no second agent to review, so solo";
  }
}

void choose_plan(RouteDecision& d, const std::optional<Plan>& rule_plan, const ScoringPolicy& scoring,
                 std::optional<int> score) {
  if (rule_plan) {
    d.plan = *rule_plan;
    d.plan_because = "routing.yaml:" + std::to_string(d.rule_line) + " names plan " + plan_name(*rule_plan);
  } else if (score) {
    d.plan = plan_for(*score, scoring);
    d.plan_because = "score " + std::to_string(*score) + "; solo 0-" + std::to_string(scoring.solo_max) + ", review " +
                     std::to_string(scoring.solo_max + 1) + "-" + std::to_string(scoring.review_max) + ", strong " +
                     std::to_string(scoring.review_max + 1) + "-10";
  } else {
    d.plan = Plan::kSolo;
    d.plan_because = "no score";
  }
}

std::string percent(double share) {
  return std::to_string(static_cast<int>(share * 100 + 0.5)) + "%";
}

// Whether `a` costs less than `b`: tier cheap before strong, then the lower known cost a task,
// then the earlier in the preference order.
bool cheaper(const std::string& a, const std::string& b, const BandOutcomes& o,
             const std::map<std::string, AgentProfile>& agents, const std::vector<std::string>& order) {
  const bool a_strong = is_strong(agents, a), b_strong = is_strong(agents, b);
  if (a_strong != b_strong) return !a_strong;
  const auto ca = o.agents.at(a).cost_per_task(), cb = o.agents.at(b).cost_per_task();
  if (ca && cb && *ca != *cb) return *ca < *cb;
  return std::find(order.begin(), order.end(), a) < std::find(order.begin(), order.end(), b);
}

// The agents of `agents` whose record in the band meets the policy, cheapest first.
std::vector<std::string> proven(const BandOutcomes& o, const RoutingPolicy& policy,
                                const std::map<std::string, AgentProfile>& agents, bool strong_only) {
  const LearningPolicy& l = policy.learning;
  std::vector<std::string> out;
  for (const auto& [name, a] : o.agents) {
    if (!agents.count(name) || (strong_only && !is_strong(agents, name))) continue;
    if (a.tasks >= l.min_tasks && a.landing_rate() + 1e-9 >= l.min_landing_rate) out.push_back(name);
  }
  const std::vector<std::string> order = preference(policy, agents);
  std::sort(out.begin(), out.end(),
            [&](const std::string& a, const std::string& b) { return cheaper(a, b, o, agents, order); });
  return out;
}

// The learning rule (policy.learning): picks the implementer from the outcomes when no --agent
// and no rule names one, and says why in d.learning either way.
void learn(RouteDecision& d, const RoutingPolicy& policy, const std::map<std::string, AgentProfile>& agents,
           bool agent_chosen, std::optional<int> score, const BandOutcomes* outcomes) {
  const LearningPolicy& l = policy.learning;
  if (!l.enabled) return;
  const std::string where = "learning (routing.yaml:" + std::to_string(l.line) + ")";
  if (agent_chosen) {
    d.learning = where + " not used: routing.yaml:" + std::to_string(d.rule_line) + " names the agent";
    return;
  }
  if (!score || !outcomes) {
    d.learning = where + " not used: " + (score ? "no outcomes were recorded" : "the task has no score, so no band");
    return;
  }
  const bool strong = d.plan == Plan::kStrong;
  const std::string bar = "landed at least " + percent(l.min_landing_rate) + " of at least " +
                          std::to_string(l.min_tasks) + " tasks scored " + band_text(outcomes->band) + " here";
  const auto candidates = proven(*outcomes, policy, agents, strong);
  if (candidates.empty()) {
    d.learning = where + " did not decide: no agent" + (strong ? " of tier strong" : "") + " " + bar +
                 "; routing as configured picks " + d.agent;
    return;
  }
  const std::string& best = candidates.front();
  d.learned = true;
  d.learning = where + " picked " + best + ", the cheapest" + (strong ? " strong" : "") + " agent that " + bar + " (" +
               describe(best, outcomes->agents.at(best), outcomes->band) + ")";
  if (best == d.agent) {
    d.learning += "; routing as configured picks it too";
    return;
  }
  d.learning += "; otherwise " + d.agent + " (" + d.because + ")";
  std::vector<std::string> chain{d.agent};
  for (const auto& a : policy.fallback) {
    if (a != best && std::find(chain.begin(), chain.end(), a) == chain.end()) chain.push_back(a);
  }
  d.fallback = chain;
  d.agent = best;
}

}  // namespace

Result<RouteDecision> route(const TaskRequest& task, const RoutingPolicy& policy,
                            const std::map<std::string, AgentProfile>& agents, std::optional<int> score,
                            const BandOutcomes* outcomes) {
  RouteDecision d;
  d.fallback = policy.fallback;
  if (!task.agent.empty()) {
    if (!agents.count(task.agent)) {
      std::string known;
      for (const auto& [name, a] : agents) known += (known.empty() ? "" : ", ") + name;
      return make_error("usage", "unknown agent '" + task.agent + "' (agents.yaml defines: " + known + ")", "--agent");
    }
    d.agent = task.agent;
    d.because = "--agent";
    d.plan_because = "--agent runs solo";
    d.fallback.clear();
    if (policy.learning.enabled) {
      d.learning =
          "learning (routing.yaml:" + std::to_string(policy.learning.line) + ") not used: --agent names the agent";
    }
    return d;
  }
  const RouteRule* rule = nullptr;
  for (size_t i = 0; i < policy.rules.size() && !rule; ++i) {
    if (!rule_matches(policy.rules[i].match, task, score)) continue;
    rule = &policy.rules[i];
    d.rule_line = rule->line;
    d.because = "routing.yaml:" + std::to_string(rule->line) + " (rule " + std::to_string(i + 1) + ")";
  }
  const bool agent_chosen = rule && !rule->agent.empty();
  d.agent = agent_chosen ? rule->agent : policy.default_agent;
  if (!rule) d.because = "default";
  if (rule) d.budget = rule->budget;
  choose_plan(d, rule ? rule->plan : std::nullopt, policy.scoring, score);
  staff_implementer(d, policy, agents, agent_chosen);
  learn(d, policy, agents, agent_chosen, score, outcomes);
  staff_reviewer(d, policy, agents);
  return d;
}

std::string expand_text(const std::string& text, const TaskRequest& task, const std::string& branch) {
  const std::string prompt = task.body.empty() ? task.title : task.title + "\n\n" + task.body;
  // One pass over the template only, so text from the task that happens to contain "{title}" is
  // never expanded again.
  std::string result;
  size_t i = 0;
  while (i < text.size()) {
    bool replaced = false;
    for (const auto& [key, value] : {std::pair<std::string, const std::string*>{"{prompt}", &prompt},
                                     {"{title}", &task.title},
                                     {"{task_file}", nullptr},
                                     {"{branch}", &branch}}) {
      if (text.compare(i, key.size(), key) == 0) {
        result += value ? *value : std::string("/polyphony/task.md");
        i += key.size();
        replaced = true;
        break;
      }
    }
    if (!replaced) result += text[i++];
  }
  return result;
}

std::vector<std::string> expand_command(const std::vector<std::string>& command, const TaskRequest& task,
                                        const std::string& branch) {
  std::vector<std::string> out;
  for (const std::string& arg : command) {
    std::string expanded = expand_text(arg, task, branch);
    out.push_back(expanded.size() > kMaxArgBytes ? std::string(kTooLongForArgv) : std::move(expanded));
  }
  return out;
}

void apply_budget(protocol::RunSpec& spec, const Budget& budget) {
  spec.max_turns = budget.max_turns;
  spec.max_tokens = budget.max_tokens;
  if (budget.max_wall_s > 0) {
    spec.run_timeout_s = budget.max_wall_s;
    spec.run_timeout_is_budget = true;
  }
}

TaskRequest review_request(const TaskRequest& task, const std::string& branch) {
  TaskRequest r = task;
  r.title = "Review: " + task.title;
  r.body = "You are reviewing another agent's work on branch " + branch +
           " (checked out read-only at /workspace; `git log` and `git diff` against the base show it). "
           "Do not change files. Write your verdict to " +
           std::string(protocol::kVerdictFile) +
           ": its first line `approve` or `changes requested`, then your comments.\n\n"
           "The task was:\n\n" +
           task.title + (task.body.empty() ? "" : "\n\n" + task.body);
  return r;
}

TaskRequest rework_request(const TaskRequest& task) {
  TaskRequest r = task;
  r.body += std::string(r.body.empty() ? "" : "\n\n") +
            "A reviewer requested changes to your work on this branch: read /polyphony/review.md and address them.";
  return r;
}

TaskRequest with_feedback(const TaskRequest& task, const std::string& feedback) {
  if (feedback.empty()) return task;
  TaskRequest r = task;
  r.body += std::string(r.body.empty() ? "" : "\n\n") + "An earlier attempt failed; do not repeat it:\n" + feedback;
  return r;
}

protocol::AgentSpec agent_spec(const AgentProfile& agent, const ResolvedIdentity& identity, const TaskRequest& seen,
                               const std::string& branch) {
  protocol::AgentSpec a;
  a.name = agent.name;
  a.command = expand_command(agent.command, seen, branch);
  a.env = agent.env;
  for (const auto& [k, v] : identity.env) a.env[k] = v;
  a.mounts = identity.mounts;
  if (!agent.stdin_template.empty()) a.stdin_text = expand_text(agent.stdin_template, seen, branch);
  a.output_format = agent.output_format;
  a.config_env = agent.config_dir_env;
  a.files = identity.files;
  return a;
}

protocol::RunSpec make_run_spec(const Task& task, const AgentProfile& agent, const ResolvedIdentity& identity,
                                const Config& config, int attempt, int64_t epoch) {
  const TaskRequest& r = task.request;
  protocol::RunSpec s;
  s.task_id = r.id;
  s.attempt = attempt;
  s.epoch = epoch;
  s.title = r.title;
  s.body = r.body;
  s.task_type = r.task_type;
  s.risk = r.risk;
  const RepoConfig* rc = find_repo(config, r.repo);
  s.repo_url = rc ? rc->url : r.repo;
  s.base_branch = !r.base_branch.empty() ? r.base_branch : (rc ? rc->base_branch : "");
  s.verify_command = rc ? rc->verify : "";
  s.branch = task.branch.empty() ? task_branch(r.id, r.title) : task.branch;
  s.agent = agent_spec(agent, identity, r, s.branch);
  s.image = config.container.image;
  s.network_mode = config.container.network;
  s.cpus = config.container.cpus;
  s.memory_bytes = config.container.memory_bytes;
  s.run_timeout_s = config.container.run_timeout_s;
  s.verify_timeout_s = config.container.verify_timeout_s;
  s.stall_timeout_s = config.container.stall_timeout_s;
  apply_budget(s, config.budget);
  return s;
}

}  // namespace polyphony
