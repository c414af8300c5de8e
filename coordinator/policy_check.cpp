// Checks across the configuration files that loading does not make: references and reachability.
#include "coordinator/policy_check.h"

#include <algorithm>

namespace polyphony {

namespace {

constexpr int kMinScore = 0;
constexpr int kMaxScore = 10;

bool same_or_unset(const std::optional<std::string>& earlier, const std::optional<std::string>& later) {
  return !earlier || (later && *earlier == *later);
}

bool has_score(const RouteMatch& m) {
  return m.score_min || m.score_max;
}

std::string known_agents(const std::map<std::string, AgentProfile>& agents) {
  std::string out;
  for (const auto& [name, a] : agents) out += (out.empty() ? "" : ", ") + name;
  return out;
}

void check_agent(std::vector<PolicyProblem>& out, const std::map<std::string, AgentProfile>& agents,
                 const std::string& agent, int line, const std::string& what) {
  if (agent.empty() || agents.count(agent)) return;
  out.push_back({"routing.yaml", line,
                 what + " names agent '" + agent +
                     "', which agents.yaml does not define (it defines: " + known_agents(agents) + ")"});
}

void check_rules(std::vector<PolicyProblem>& out, const RoutingPolicy& routing) {
  const auto& rules = routing.rules;
  for (size_t j = 0; j < rules.size(); ++j) {
    const RouteMatch& m = rules[j].match;
    if (has_score(m) && m.score_min.value_or(kMinScore) > m.score_max.value_or(kMaxScore)) {
      out.push_back({"routing.yaml", rules[j].line,
                     "rule " + std::to_string(j + 1) + " can never match: its score range " +
                         std::to_string(*m.score_min) + "-" + std::to_string(*m.score_max) + " is empty"});
      continue;
    }
    for (size_t i = 0; i < j; ++i) {
      if (!shadows(rules[i].match, m)) continue;
      out.push_back({"routing.yaml", rules[j].line,
                     "rule " + std::to_string(j + 1) + " can never match: rule " + std::to_string(i + 1) + " (line " +
                         std::to_string(rules[i].line) +
                         ") comes first and matches every task it matches; move it up or narrow rule " +
                         std::to_string(i + 1)});
      break;
    }
  }
}

}  // namespace

bool shadows(const RouteMatch& earlier, const RouteMatch& later) {
  if (!same_or_unset(earlier.task_type, later.task_type) || !same_or_unset(earlier.risk, later.risk) ||
      !same_or_unset(earlier.repo, later.repo)) {
    return false;
  }
  for (const auto& label : earlier.labels) {
    if (std::find(later.labels.begin(), later.labels.end(), label) == later.labels.end()) return false;
  }
  if (!has_score(earlier)) return true;
  if (!has_score(later)) return false;  // `later` also matches tasks without a score
  return earlier.score_min.value_or(kMinScore) <= later.score_min.value_or(kMinScore) &&
         later.score_max.value_or(kMaxScore) <= earlier.score_max.value_or(kMaxScore);
}

std::vector<PolicyProblem> check_policy(const RoutingPolicy& routing, const std::map<std::string, AgentProfile>& agents,
                                        const std::map<std::string, Identity>& identities) {
  std::vector<PolicyProblem> out;
  for (const auto& [name, a] : agents) {
    if (a.identity.empty() || identities.count(a.identity)) continue;
    out.push_back({"agents.yaml", a.line,
                   "agent '" + name + "' uses identity '" + a.identity + "', which identities.yaml does not define"});
  }
  for (size_t i = 0; i < routing.rules.size(); ++i) {
    check_agent(out, agents, routing.rules[i].agent, routing.rules[i].line, "rule " + std::to_string(i + 1));
  }
  check_agent(out, agents, routing.default_agent, routing.default_line, "the default");
  for (const auto& f : routing.fallback) check_agent(out, agents, f, routing.default_line, "the fallback chain");
  check_rules(out, routing);
  std::stable_sort(out.begin(), out.end(), [](const PolicyProblem& a, const PolicyProblem& b) {
    return a.file != b.file ? a.file < b.file : a.line < b.line;
  });
  return out;
}

}  // namespace polyphony
