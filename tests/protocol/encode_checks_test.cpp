// Every enum-like value on the wire is checked on encode as decode checks it: a sender cannot
// emit a frame its peer would refuse for one of them.
#include <catch2/catch.hpp>
#include <stdexcept>

#include "protocol/messages.h"
#include "protocol/validation.h"
#include "sample_messages.h"

namespace polyphony::protocol {
namespace {

struct Case {
  std::string kind;   // the value kind this row covers
  Message message;    // one value of that kind outside its list
  std::string where;  // the field encode and decode both name
};

Message dispatch_with(void (*change)(RunSpec&)) {
  Dispatch d = samples::dispatch();
  change(d.spec);
  return d;
}

std::vector<Case> bad_values() {
  TaskUpdate update = samples::task_update();
  update.state = "LANDED";
  LogChunk chunk = samples::log_chunk();
  chunk.stream = "stdout";
  TaskResult outcome = samples::task_result();
  outcome.outcome = "maybe";
  TaskResult kind = samples::task_result();
  kind.failure_kind = "oom";
  TaskResult landed_with_kind = samples::task_result();
  landed_with_kind.outcome = "landed";
  TaskResult role = samples::task_result();
  role.usage[1].role = "boss";
  Control action = samples::control();
  action.action = "delete";
  ClientReply reply = samples::client_reply();
  reply.state = "DONE";
  WorkersReply workers = samples::workers_reply();
  workers.workers[1].state = "asleep";
  return {
      {"plan", dispatch_with([](RunSpec& s) { s.plan = "huge"; }), "dispatch.spec.plan"},
      {"land mode", dispatch_with([](RunSpec& s) { s.land_mode = "rebase"; }), "dispatch.spec.land_mode"},
      {"output format", dispatch_with([](RunSpec& s) { s.agent.output_format = "xml"; }),
       "dispatch.spec.agent.output_format"},
      {"reviewer's output format", dispatch_with([](RunSpec& s) { s.reviewer.output_format = "xml"; }),
       "dispatch.spec.reviewer.output_format"},
      {"task update state", update, "task_update.state"},
      {"log stream", chunk, "log_chunk.stream"},
      {"outcome", outcome, "task_result.outcome"},
      {"failure kind", kind, "task_result.failure_kind"},
      {"failure kind of a landed result", landed_with_kind, "task_result.failure_kind"},
      {"agent run role", role, "task_result.usage[1].role"},
      {"control action", action, "control.action"},
      {"client reply state", reply, "client_reply.state"},
      {"worker state", workers, "workers_reply.workers[1].state"},
  };
}

}  // namespace

TEST_CASE("encode refuses each enum-like value outside its list, naming the field as decode does", "[codec][encode]") {
  for (const Case& c : bad_values()) {
    INFO(c.kind);
    const auto encoded = try_encode(c.message);
    REQUIRE_FALSE(encoded.ok());
    CHECK(encoded.error().code == "protocol");
    CHECK(encoded.error().where == c.where);
    CHECK_THROWS_AS(encode(c.message), std::invalid_argument);
    const auto decoded = decode(detail::encode_unchecked(c.message));
    REQUIRE_FALSE(decoded.ok());
    CHECK(decoded.error().where == c.where);
  }
}

TEST_CASE("encode accepts every valid sample message unchanged", "[codec][encode]") {
  for (const Message& m : samples::all()) {
    INFO(type_name(m));
    const auto encoded = try_encode(m);
    REQUIRE(encoded.ok());
    CHECK(*encoded == detail::encode_unchecked(m));
  }
}

TEST_CASE("encode accepts every failure kind a worker may report and every lifecycle state", "[codec][encode]") {
  for (auto name : kFailureKinds) {
    TaskResult r = samples::task_result();
    r.failure_kind = std::string(name);
    CHECK(try_encode(r).ok());
  }
  for (auto name : kLifecycleStates) {
    ClientReply r = samples::client_reply();
    r.state = std::string(name);
    CHECK(try_encode(r).ok());
  }
}

TEST_CASE("every failure kind reads back from its name, and only the reported ones go on the wire",
          "[codec][failure_kind]") {
  struct Row {
    FailureKind kind;
    std::string_view name;
    bool on_wire;
  };
  const std::vector<Row> rows = {
      {FailureKind::kAgent, "agent", true},
      {FailureKind::kVerify, "verify", true},
      {FailureKind::kInfra, "infra", true},
      {FailureKind::kTimeout, "timeout", true},
      {FailureKind::kConflict, "conflict", true},
      {FailureKind::kCancelled, "cancelled", true},
      {FailureKind::kConfig, "config", true},
      {FailureKind::kReview, "review", true},
      {FailureKind::kAgentUnavailable, "agent_unavailable", true},
      {FailureKind::kBudget, "budget", true},
      {FailureKind::kRepo, "repo", true},
      {FailureKind::kLanding, "landing", true},
      {FailureKind::kIdentity, "identity", false},
      {FailureKind::kProtocol, "protocol", false},
  };
  for (const Row& row : rows) {
    INFO(row.name);
    CHECK(to_string(row.kind) == row.name);
    CHECK(parse_failure_kind(row.name) == row.kind);
    CHECK(is_failure_kind(row.name) == row.on_wire);
  }
  CHECK_FALSE(parse_failure_kind("oom"));
  CHECK_FALSE(parse_failure_kind(""));
  CHECK_FALSE(is_failure_kind(""));
}

}  // namespace polyphony::protocol
