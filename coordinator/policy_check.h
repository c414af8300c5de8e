// `polyphony config check`: what loading alone does not catch in the four files, each with the
// file and line to fix: routing rules naming unknown agents and rules that can never match.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/config.h"

namespace polyphony {

struct PolicyProblem {
  std::string file;  // "routing.yaml", "agents.yaml"
  int line = 0;
  std::string message;
};

// True when `earlier` matches every task `later` matches (its conditions are a subset of
// `later`'s and its score range covers `later`'s), so `later` can never be reached.
bool shadows(const RouteMatch& earlier, const RouteMatch& later);

// Every problem found, in file order: unknown agents in rules, the default and the fallback
// chain; agents naming unknown identities; rules shadowed by an earlier rule; rules whose score
// range is empty.
std::vector<PolicyProblem> check_policy(const RoutingPolicy& routing, const std::map<std::string, AgentProfile>& agents,
                                        const std::map<std::string, Identity>& identities);

}  // namespace polyphony
