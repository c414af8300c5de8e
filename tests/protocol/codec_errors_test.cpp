// decode refuses frames whose fields are wrong, and its errors name the offending field.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "protocol/messages.h"
#include "protocol/validation.h"
#include "sample_messages.h"

using namespace polyphony::protocol;
using nlohmann::json;

namespace {

// One way to spoil a valid frame: set (or, when `erase`, remove) the value at `pointer`.
struct Case {
  Message base;
  std::string pointer;
  json value;
  std::string where;
  std::string message;  // a part of the expected message
  bool erase = false;
};

Case erased(Message base, std::string pointer, std::string where, std::string message) {
  return Case{std::move(base), std::move(pointer), nullptr, std::move(where), std::move(message), true};
}

std::string spoil(const Case& c) {
  json j = json::from_msgpack(encode(c.base));
  const json::json_pointer ptr(c.pointer);
  if (c.erase) {
    j[ptr.parent_pointer()].erase(ptr.back());
  } else {
    j[ptr] = c.value;
  }
  const auto bytes = json::to_msgpack(j);
  return std::string(bytes.begin(), bytes.end());
}

void check_refused(const Case& c) {
  INFO("case: " << type_name(c.base) << " " << c.pointer << (c.erase ? " erased" : " = " + c.value.dump()));
  const auto r = decode(spoil(c));
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().code == "protocol");
  CHECK(r.error().where == c.where);
  CHECK_THAT(r.error().message, Catch::Contains(c.message));
}

}  // namespace

TEST_CASE("a field of the wrong type is refused with its full path", "[codec][errors]") {
  const auto d = samples::dispatch();
  const std::vector<Case> cases = {
      {d, "/spec/attempt", "one", "dispatch.spec.attempt", "expected integer, got string"},
      {d, "/spec/epoch", 1.5, "dispatch.spec.epoch", "expected integer, got float"},
      {d, "/spec/title", 12, "dispatch.spec.title", "expected string, got integer"},
      {d, "/spec/cpus", "2", "dispatch.spec.cpus", "expected float, got string"},
      {d, "/spec/agent", json::array(), "dispatch.spec.agent", "expected map, got array"},
      {d, "/spec/agent/command", "run", "dispatch.spec.agent.command", "expected array, got string"},
      {d, "/spec/agent/command/2", 7, "dispatch.spec.agent.command[2]", "expected string, got integer"},
      {d, "/spec/agent/env/HOME", true, "dispatch.spec.agent.env[\"HOME\"]", "expected string, got bool"},
      {d, "/spec/agent/mounts/1/read_only", "no", "dispatch.spec.agent.mounts[1].read_only",
       "expected bool, got string"},
      {d, "/spec", json::object(), "dispatch.spec.task_id", "missing required field"},
      {samples::hello(), "/running/1/epoch", "9", "hello.running[1].epoch", "expected integer, got string"},
      {samples::hello(), "/labels", json::object({{"a", "b"}}), "hello.labels", "expected array, got map"},
      {samples::welcome(), "/heartbeat_interval_ms", json::array(), "welcome.heartbeat_interval_ms",
       "expected integer, got array"},
      {samples::heartbeat(), "/seq", nullptr, "heartbeat.seq", "required field is nil"},
      {samples::log_chunk(), "/data", 5, "log_chunk.data", "expected binary or string, got integer"},
      {samples::cancel(), "/reason", json::array({1}), "cancel.reason", "expected string, got array"},
  };
  for (const Case& c : cases) check_refused(c);
}

TEST_CASE("a missing required field is refused by name", "[codec][errors]") {
  const std::vector<Case> cases = {
      erased(samples::dispatch(), "/spec", "dispatch.spec", "missing required field"),
      erased(samples::dispatch(), "/spec/title", "dispatch.spec.title", "missing required field"),
      erased(samples::dispatch(), "/spec/agent/command", "dispatch.spec.agent.command", "missing required field"),
      erased(samples::dispatch(), "/spec/agent/mounts/0/container_path", "dispatch.spec.agent.mounts[0].container_path",
             "missing required field"),
      erased(samples::hello(), "/capacity", "hello.capacity", "missing required field"),
      erased(samples::task_result(), "/branch", "task_result.branch", "missing required field"),
      erased(samples::log_chunk(), "/data", "log_chunk.data", "missing required field"),
      erased(samples::heartbeat(), "/v", "v", "missing required field"),
      erased(samples::heartbeat(), "/type", "type", "missing required field"),
  };
  for (const Case& c : cases) check_refused(c);
}

TEST_CASE("a frame of another protocol version or unknown type is refused", "[codec][errors]") {
  const auto hb = samples::heartbeat();
  const std::vector<Case> cases = {
      {hb, "/v", 2, "v", "protocol version 2 received; this build speaks version 1"},
      {hb, "/v", 0, "v", "protocol version 0 received"},
      {hb, "/v", "1", "v", "expected integer, got string"},
      {hb, "/type", "bogus", "type", "unknown message type \"bogus\"; this build knows hello, welcome"},
      {hb, "/type", 3, "type", "expected string, got integer"},
      {hb, "/type", "Heartbeat", "type", "unknown message type"},
  };
  for (const Case& c : cases) check_refused(c);
}

TEST_CASE("values that make a frame untrustworthy are refused", "[codec][errors]") {
  const auto d = samples::dispatch();
  const std::vector<Case> cases = {
      {d, "/spec/task_id", "../x", "dispatch.spec.task_id", "invalid task id \"../x\""},
      {d, "/spec/task_id", "", "dispatch.spec.task_id", "invalid task id"},
      {d, "/spec/task_id", std::string(65, 'a'), "dispatch.spec.task_id", "invalid task id"},
      {d, "/spec/attempt", 0, "dispatch.spec.attempt", "must be >= 1, got 0"},
      {d, "/spec/attempt", 1LL << 40, "dispatch.spec.attempt", "does not fit in 32 bits"},
      {d, "/spec/epoch", -1, "dispatch.spec.epoch", "must be >= 0, got -1"},
      {d, "/spec/epoch", json(UINT64_MAX), "dispatch.spec.epoch", "does not fit in 64 bits"},
      {d, "/spec/branch", "main", "dispatch.spec.branch", "under polyphony/"},
      {d, "/spec/branch", "polyphony/", "dispatch.spec.branch", "under polyphony/"},
      {d, "/spec/branch", "polyphony/../etc", "dispatch.spec.branch", "under polyphony/"},
      {d, "/spec/branch", "polyphony/x.lock", "dispatch.spec.branch", "under polyphony/"},
      {d, "/spec/branch", "polyphony/a b", "dispatch.spec.branch", "under polyphony/"},
      {d, "/spec/base_branch", "-main", "dispatch.spec.base_branch", "not a valid git branch name"},
      {d, "/spec/cpus", -0.5, "dispatch.spec.cpus", "finite number >= 0"},
      {d, "/spec/memory_bytes", -1, "dispatch.spec.memory_bytes", "must be >= 0"},
      {d, "/spec/image", "", "dispatch.spec.image", "must not be empty"},
      {d, "/spec/title", std::string("nul\0inside", 10), "dispatch.spec.title", "NUL character at byte 3"},
      {d, "/spec/agent/mounts/0/container_path", "home/agent", "dispatch.spec.agent.mounts[0].container_path",
       "must be absolute"},
      {d, "/spec/agent/mounts/0/host_path", "/a:/b", "dispatch.spec.agent.mounts[0].host_path", "hold no ':'"},
      {d, "/spec/agent/env/A=B", "x", "dispatch.spec.agent.env", "invalid variable name \"A=B\""},
      {samples::hello(), "/capacity", 0, "hello.capacity", "must be between 1 and 4096, got 0"},
      {samples::hello(), "/capacity", 4097, "hello.capacity", "must be between 1 and 4096"},
      {samples::hello(), "/worker_id", ".hidden", "hello.worker_id", "invalid id"},
      {samples::hello(), "/running/0/task_id", "a/b", "hello.running[0].task_id", "invalid task id"},
      {samples::welcome(), "/liveness", 0, "welcome.liveness", "must be between 1 and 10000"},
      {samples::task_update(), "/state", "DONE", "task_update.state",
       "must be one of PROVISIONED, RUNNING, VERIFYING; got \"DONE\""},
      {samples::task_update(), "/attempt", 0, "task_update.attempt", "must be >= 1"},
      {samples::log_chunk(), "/stream", "stdout", "log_chunk.stream", "must be one of agent, verify, review, system"},
      {samples::log_chunk(), "/seq", -3, "log_chunk.seq", "must be >= 0"},
      {samples::task_result(), "/outcome", "merged", "task_result.outcome", "must be one of landed, failed"},
      {samples::task_result(), "/failure_kind", "", "task_result.failure_kind", "must be one of agent"},
      {samples::task_result(), "/failure_kind", "oom", "task_result.failure_kind", "got \"oom\""},
      {samples::task_result(), "/commit", "abc123", "task_result.commit", "40 or 64 lowercase hex"},
      {samples::cancel(), "/task_id", "", "cancel.task_id", "invalid task id"},
  };
  for (const Case& c : cases) check_refused(c);
}

TEST_CASE("a landed result must not carry a failure kind", "[codec][errors]") {
  TaskResult r = samples::task_result();
  r.outcome = "landed";
  const auto decoded = decode(detail::encode_unchecked(r));
  REQUIRE_FALSE(decoded.ok());
  CHECK(decoded.error().where == "task_result.failure_kind");
}

TEST_CASE("hostile text in an error message is escaped and shortened", "[codec][errors]") {
  const auto hb = samples::heartbeat();
  const Case c{hb, "/type", "evil\n\x1b[31m" + std::string(200, 'x'), "type", "\"evil\\x0a\\x1b[31mxxx"};
  check_refused(c);
  const auto r = decode(spoil(c));
  CHECK(r.error().message.find('\n') == std::string::npos);
  CHECK(r.error().message.find(std::string(100, 'x')) == std::string::npos);
  CHECK(r.error().message.size() < 460);  // the list of known types, plus 64 characters of the value
}

TEST_CASE("the lease of a result that fails to decode is still read, and only then", "[codec][errors]") {
  const TaskResult r = samples::task_result();
  struct LeaseCase {
    Case spoiled;
    bool lease_reads;
  };
  const std::vector<LeaseCase> cases = {
      {{r, "/failure_kind", "no-such-kind", "", ""}, true},
      {{r, "/branch", "main", "", ""}, true},
      {{r, "/usage", 7, "", ""}, true},
      {{r, "/task_id", "../etc", "", ""}, false},
      {{r, "/attempt", 0, "", ""}, false},
      {{r, "/epoch", -1, "", ""}, false},
      {erased(r, "/epoch", "", ""), false},
      {{r, "/v", 2, "", ""}, false},
      {{r, "/type", "task_update", "", ""}, false},
      {{samples::task_update(), "/state", "LANDED", "", ""}, false},
  };
  for (const auto& c : cases) {
    INFO("case: " << type_name(c.spoiled.base) << " " << c.spoiled.pointer
                  << (c.spoiled.erase ? " erased" : " = " + c.spoiled.value.dump()));
    const std::string frame = spoil(c.spoiled);
    REQUIRE_FALSE(decode(frame).ok());
    const auto lease = result_lease(frame);
    REQUIRE(lease.has_value() == c.lease_reads);
    if (lease) CHECK(*lease == ResultAck{r.task_id, r.attempt, r.epoch});
  }
  CHECK_FALSE(result_lease("\x81\xa1v").has_value());  // truncated MessagePack
  CHECK_FALSE(result_lease("").has_value());
}
