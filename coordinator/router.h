// The router: which agent runs a task. Pure: no I/O, values in, values out.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/result.h"
#include "coordinator/outcomes.h"
#include "coordinator/task.h"
#include "protocol/messages.h"

namespace polyphony {

struct RouteDecision {
  std::string agent;                  // the implementer
  std::vector<std::string> fallback;  // agents to try next when this one cannot run
  std::string because;                // "--agent", "routing.yaml:12 (rule 2)", "default"
  Plan plan = Plan::kSolo;
  std::string reviewer;          // the review plan's second agent; empty otherwise
  std::string plan_because;      // "score 5 (4-6: review)", "routing.yaml:12 names plan review", ...
  int rule_line = 0;             // line of the matching rule in routing.yaml; 0: none matched
  std::optional<Budget> budget;  // the matching rule's, over config.yaml's
  // The learning rule's account (routing.yaml `learning:`): which agent it picked and on what
  // evidence, and what routing would have picked otherwise; or why it did not decide. Empty
  // when learning is off.
  std::string learning;
  bool learned = false;  // the learning rule picked the implementer
};

// True when every condition `match` names holds for the task.
bool rule_matches(const RouteMatch& match, const TaskRequest& task, std::optional<int> score = std::nullopt);

// An explicit agent wins (solo plan); else the first matching rule top-down (rules with a score
// range match only when `score`, the complexity total, is known); else the default agent.
// The plan is the rule's, else the one the score calls for (policy.scoring), else solo. Agents:
// the rule's or the default agent implements; the strong plan without a rule's agent takes the
// strongest agent (tier strong: the default, else the first in the fallback chain, else by
// name); the review plan adds a different agent as reviewer, a strong one when there is one.
// With policy.learning enabled and `outcomes` (the finished tasks of the task's repo in its
// score band), an agent neither --agent nor a rule names is the cheapest proven one (see
// LearningPolicy); the one routing would have picked otherwise heads the fallback chain.
// Error "usage" when the explicit agent is not in `agents`.
Result<RouteDecision> route(const TaskRequest& task, const RoutingPolicy& policy,
                            const std::map<std::string, AgentProfile>& agents, std::optional<int> score = std::nullopt,
                            const BandOutcomes* outcomes = nullptr);

// Resolved identity material for a container: read-only mounts and env values.
struct ResolvedIdentity {
  std::vector<protocol::Mount> mounts;
  std::map<std::string, std::string> env;
  std::vector<protocol::AgentFile> files;  // copied into the agent's own config directory
};

// Everything the worker needs for one attempt. Placeholders in the agent's command are
// replaced by the task's text as whole argv elements; nothing passes through a shell.
protocol::RunSpec make_run_spec(const Task& task, const AgentProfile& agent, const ResolvedIdentity& identity,
                                const Config& config, int attempt, int64_t epoch);

// What a reviewer is asked: the task as a review request (its {prompt} and task file).
TaskRequest review_request(const TaskRequest& task, const std::string& branch);

// The task as the implementer sees it after a reviewer asked for changes.
TaskRequest rework_request(const TaskRequest& task);

// The task with what earlier attempts got wrong, so the agent does not repeat it.
TaskRequest with_feedback(const TaskRequest& task, const std::string& feedback);

// The agent as a worker runs it: argv expanded for `seen` (the task, or its review request),
// env and read-only mounts of its identity.
protocol::AgentSpec agent_spec(const AgentProfile& agent, const ResolvedIdentity& identity, const TaskRequest& seen,
                               const std::string& branch);

// Substitutes {prompt}, {title}, {task_file}, {branch} in each argv element. An element that
// would pass kMaxArgBytes (the kernel refuses a larger one) becomes kTooLongForArgv instead:
// the whole task is in the task file.
std::vector<std::string> expand_command(const std::vector<std::string>& command, const TaskRequest& task,
                                        const std::string& branch);

// The same substitution for one text (an agent's stdin template), with no size limit.
std::string expand_text(const std::string& text, const TaskRequest& task, const std::string& branch);

inline constexpr size_t kMaxArgBytes = 96 * 1024;
inline constexpr const char* kTooLongForArgv =
    "The task is too long for the command line: it is in /polyphony/task.md. Read that file first and do what it says.";

// The budget of one agent run: the rule's when it sets one, else config.yaml's; its max_wall_s
// (when set) replaces the run timeout.
void apply_budget(protocol::RunSpec& spec, const Budget& budget);

}  // namespace polyphony
