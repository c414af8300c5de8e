// The router: which agent runs a task, and the RunSpec for an attempt. Pure.
#include "coordinator/router.h"

#include <algorithm>

#include "common/ids.h"

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

Result<RouteDecision> route(const TaskRequest& task, const RoutingPolicy& policy,
                            const std::map<std::string, AgentProfile>& agents) {
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
    d.fallback.clear();
    return d;
  }
  for (size_t i = 0; i < policy.rules.size(); ++i) {
    if (rule_matches(policy.rules[i].match, task)) {
      d.agent = policy.rules[i].agent;
      d.because = "routing.yaml:" + std::to_string(policy.rules[i].line) + " (rule " + std::to_string(i + 1) + ")";
      return d;
    }
  }
  d.agent = policy.default_agent;
  d.because = "default";
  return d;
}


std::vector<std::string> expand_command(const std::vector<std::string>& command, const TaskRequest& task,
                                        const std::string& branch) {
  const std::string prompt = task.body.empty() ? task.title : task.title + "\n\n" + task.body;
  std::vector<std::string> out;
  for (std::string arg : command) {
    // One pass per placeholder over the template only, so text from the task that happens to
    // contain "{title}" is never expanded again.
    std::string result;
    size_t i = 0;
    while (i < arg.size()) {
      bool replaced = false;
      for (const auto& [key, value] : {std::pair<std::string, const std::string*>{"{prompt}", &prompt},
                                       {"{title}", &task.title},
                                       {"{task_file}", nullptr},
                                       {"{branch}", &branch}}) {
        if (arg.compare(i, key.size(), key) == 0) {
          result += value ? *value : std::string("/polyphony/task.md");
          i += key.size();
          replaced = true;
          break;
        }
      }
      if (!replaced) result += arg[i++];
    }
    out.push_back(result);
  }
  return out;
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
  s.agent.name = agent.name;
  s.agent.command = expand_command(agent.command, r, s.branch);
  s.agent.env = agent.env;
  for (const auto& [k, v] : identity.env) s.agent.env[k] = v;
  s.agent.mounts = identity.mounts;
  s.image = config.container.image;
  s.network_mode = config.container.network;
  s.cpus = config.container.cpus;
  s.memory_bytes = config.container.memory_bytes;
  s.run_timeout_s = config.container.run_timeout_s;
  s.verify_timeout_s = config.container.verify_timeout_s;
  return s;
}

}  // namespace polyphony
