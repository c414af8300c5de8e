// The router: which agent runs a task. Pure: no I/O, values in, values out.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/result.h"
#include "coordinator/task.h"
#include "protocol/messages.h"

namespace polyphony {

struct RouteDecision {
  std::string agent;
  std::vector<std::string> fallback;  // agents to try next when this one cannot run
  std::string because;                // "--agent", "routing.yaml:12 (rule 2)", "default"
};

// True when every condition `match` names holds for the task.
bool rule_matches(const RouteMatch& match, const TaskRequest& task, std::optional<int> score = std::nullopt);

// An explicit agent wins; else the first matching rule top-down; else the default agent.
// Error "usage" when the explicit agent is not in `agents`.
Result<RouteDecision> route(const TaskRequest& task, const RoutingPolicy& policy,
                            const std::map<std::string, AgentProfile>& agents);

// Resolved identity material for a container: read-only mounts and env values.
struct ResolvedIdentity {
  std::vector<protocol::Mount> mounts;
  std::map<std::string, std::string> env;
};

// Everything the worker needs for one attempt. Placeholders in the agent's command are
// replaced by the task's text as whole argv elements; nothing passes through a shell.
protocol::RunSpec make_run_spec(const Task& task, const AgentProfile& agent, const ResolvedIdentity& identity,
                                const Config& config, int attempt, int64_t epoch);

// Substitutes {prompt}, {title}, {task_file}, {branch} in each argv element.
std::vector<std::string> expand_command(const std::vector<std::string>& command, const TaskRequest& task,
                                        const std::string& branch);

}  // namespace polyphony
