// What follows an attempt, and what the next one is given. Pure: values in, decisions out;
// time and randomness are arguments.
//
// - Failure: retry after a backoff, fall back to the next agent of the chain, block, or rest
//   FAILED (failure_steps).
// - Dispatch: which agent implements the attempt (implementer) and the whole RunSpec a worker
//   runs (run_spec), assembled in one place.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/config.h"
#include "coordinator/router.h"
#include "coordinator/state_store.h"
#include "coordinator/task.h"
#include "protocol/messages.h"

namespace polyphony {

using protocol::FailureKind;

// Retry policy: exponential backoff from base to cap, with +-20% jitter drawn from `random`.
int64_t retry_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms, uint64_t random);

// Whether a failure of this kind is worth another attempt.
bool is_retryable(FailureKind kind);

// The agents that may implement a task, in order: the routed one, then its fallback chain
// (agents not in `agents` and repeats left out).
std::vector<std::string> agent_chain(const RouteDecision& decision, const std::map<std::string, AgentProfile>& agents);

// The agent after `after` in the chain; nullopt when it is the last or not in it.
std::optional<std::string> next_in_chain(const std::vector<std::string>& chain, const std::string& after);

// The transitions that record a failed attempt of `task` (now in state `from`), in one
// transaction: FAILED (unless it already is), then what follows: CLAIMED again (a retry after a
// backoff from `now_ms`, `random` its jitter; or at once with the next agent of the chain when
// the agent was unavailable), BLOCKED (attempts used up, the same tree failed verify again, no
// agent left), or nothing (not retryable: it rests FAILED until a user retries it). `outcomes`:
// what routing learns from (route()), so the chain is the one the dispatch routed with.
// `may_have_landed`: the attempt was granted its landing, so it may have pushed before it was
// lost; an infra failure of the last attempt then gets one more attempt to find out.
using Steps = std::vector<std::pair<TaskState, TransitionUpdate>>;
Steps failure_steps(const Task& task, TaskState from, FailureKind kind, const std::string& reason,
                    const std::string& tree, const Settings& settings, int64_t now_ms, uint64_t random,
                    const BandOutcomes* outcomes = nullptr, bool may_have_landed = false);

// The agent that implements the next attempt of `task`: the chain's first; on a retry the one
// that ran before, or after an unavailable agent the next in the chain.
std::string implementer(const Task& task, const RouteDecision& decision,
                        const std::map<std::string, AgentProfile>& agents);

// What earlier attempts got wrong, shown to the next one: the last failure's reason, unless the
// agent never ran (unavailable) or this is the first attempt.
std::string feedback_for(const Task& task);

// Whether the attempt has a reviewer of its own: the review plan with an agent other than the
// implementer.
bool has_reviewer(const RouteDecision& decision, const std::string& implementer);

// The history line of a dispatch: the agent and why, the plan, the reviewer, the worker, and
// the learning rule's account when it picked the agent.
std::string dispatch_reason(const RouteDecision& decision, const std::string& agent, const std::string& worker);

// Everything run_spec needs besides the settings.
struct AttemptInputs {
  const Task& task;  // as routed: attempt, epoch, branch and agent set
  const RouteDecision& decision;
  const ResolvedIdentity& identity;                     // the implementer's
  const ResolvedIdentity* reviewer_identity = nullptr;  // when has_reviewer()
  std::string feedback;                                 // feedback_for(the task before it was routed)
};

// The whole RunSpec of one attempt: the agent's argv and stdin (with the feedback when there is
// some), the plan, the land mode (a GitHub task lands on its branch: a pull request follows),
// the budget, and for the review plan the reviewer and the implementer's rework argv and stdin.
protocol::RunSpec run_spec(const AttemptInputs& in, const Settings& settings);

}  // namespace polyphony
