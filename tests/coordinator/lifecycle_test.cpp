// The lifecycle: every allowed transition, and every other one refused.
#include <catch2/catch.hpp>

#include <set>

#include "coordinator/lifecycle.h"
#include "protocol/messages.h"

using namespace polyphony;
using S = TaskState;

TEST_CASE("exactly the documented transitions are allowed") {
  const std::set<std::pair<S, S>> allowed{
      {S::kDiscovered, S::kClaimed},  {S::kClaimed, S::kRouted},      {S::kRouted, S::kProvisioned},
      {S::kProvisioned, S::kRunning}, {S::kRunning, S::kVerifying},   {S::kVerifying, S::kLanded},
      {S::kRouted, S::kFailed},       {S::kProvisioned, S::kFailed},  {S::kRunning, S::kFailed},
      {S::kVerifying, S::kFailed},    {S::kFailed, S::kClaimed},      {S::kFailed, S::kBlocked},
      {S::kBlocked, S::kClaimed},     {S::kVerifying, S::kRunning},   {S::kDiscovered, S::kCancelled},
      {S::kClaimed, S::kCancelled},   {S::kRouted, S::kCancelled},    {S::kProvisioned, S::kCancelled},
      {S::kRunning, S::kCancelled},   {S::kVerifying, S::kCancelled}, {S::kFailed, S::kCancelled},
  };
  for (S from : all_task_states()) {
    for (S to : all_task_states()) {
      INFO(to_string(from) << " -> " << to_string(to));
      CHECK(can_transition(from, to) == (allowed.count({from, to}) == 1));
    }
  }
}

TEST_CASE("state names round-trip and unknown names are refused") {
  for (S s : all_task_states()) CHECK(parse_task_state(to_string(s)) == s);
  CHECK_FALSE(parse_task_state("DONE").has_value());
  CHECK_FALSE(parse_task_state("landed").has_value());
}

TEST_CASE("finished and active states are told apart") {
  for (S s : {S::kLanded, S::kFailed, S::kBlocked, S::kCancelled}) CHECK(is_finished(s));
  for (S s : {S::kRouted, S::kProvisioned, S::kRunning, S::kVerifying}) {
    CHECK(is_active(s));
    CHECK_FALSE(is_finished(s));
  }
  CHECK_FALSE(is_active(S::kClaimed));
  CHECK(active_task_states() == std::vector<S>{S::kRouted, S::kProvisioned, S::kRunning, S::kVerifying});
}

TEST_CASE("the protocol's list of lifecycle states is the lifecycle's, in order", "[lifecycle]") {
  REQUIRE(polyphony::protocol::kLifecycleStates.size() == polyphony::all_task_states().size());
  for (size_t i = 0; i < polyphony::all_task_states().size(); ++i) {
    CHECK(polyphony::protocol::kLifecycleStates[i] == polyphony::to_string(polyphony::all_task_states()[i]));
  }
}
