// Encoding then decoding gives back the same message; defaults, extensions and the wire shape.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "protocol/messages.h"
#include "sample_messages.h"

using namespace polyphony::protocol;
using nlohmann::json;

namespace {

json as_json(const std::string& frame) {
  return json::from_msgpack(frame);
}

std::string to_frame(const json& j) {
  const auto bytes = json::to_msgpack(j);
  return std::string(bytes.begin(), bytes.end());
}

Message decode_ok(const std::string& frame) {
  auto r = decode(frame);
  INFO((r.ok() ? std::string() : r.error().to_string()));
  REQUIRE(r.ok());
  return *r;
}

}  // namespace

TEST_CASE("every message type survives an encode and decode round trip", "[codec]") {
  for (const Message& m : samples::all()) {
    INFO(type_name(m));
    CHECK(decode_ok(encode(m)) == m);
  }
}

TEST_CASE("a landed task result round trips with an empty failure kind", "[codec]") {
  TaskResult r = samples::task_result();
  r.outcome = "landed";
  r.failure_kind = "";
  CHECK(decode_ok(encode(r)) == Message(r));
}

TEST_CASE("type_name gives the wire type of each message", "[codec]") {
  const std::vector<std::string> expected = {
      "hello",       "welcome",      "heartbeat",     "dispatch",        "task_update",    "log_chunk",
      "task_result", "result_ack",   "land_request",  "land_grant",      "cancel",         "submit",
      "control",     "client_reply", "workers_query", "workers_reply",   "watch",          "view_query",
      "view_reply",  "goodbye",      "worker_remove", "cleanup_request", "cleanup_report", "cleanup_reply"};
  const auto messages = samples::all();
  REQUIRE(messages.size() == expected.size());
  for (size_t i = 0; i < messages.size(); ++i) CHECK(type_name(messages[i]) == expected[i]);
}

TEST_CASE("a frame is one map with v, type and the fields by their snake_case names", "[codec]") {
  const json j = as_json(encode(samples::dispatch()));
  CHECK(j.at("v") == kProtocolVersion);
  CHECK(j.at("type") == "dispatch");
  CHECK(j.size() == 3);
  const json& spec = j.at("spec");
  CHECK(spec.at("task_id") == "task-42_b");
  CHECK(spec.at("cpus") == 1.5);
  CHECK(spec.at("agent").at("command")[3] == "--verbose");
  CHECK(spec.at("agent").at("env").at("HOME") == "/home/agent");
  CHECK(spec.at("agent").at("mounts")[1].at("read_only") == false);
}

TEST_CASE("doubles are always encoded as float64, even when integral", "[codec]") {
  RunSpec s = samples::run_spec();
  s.cpus = 2.0;
  const std::string frame = encode(Dispatch{s});
  CHECK(as_json(frame).at("spec").at("cpus").is_number_float());
  const std::string key =
      "\xa4"
      "cpus";
  const std::string float64_two("\xcb\x40\x00\x00\x00\x00\x00\x00\x00", 9);
  CHECK(frame.find(key + float64_two) != std::string::npos);
}

TEST_CASE("log chunk data is encoded as MessagePack bin", "[codec]") {
  const json j = as_json(encode(samples::log_chunk()));
  REQUIRE(j.at("data").is_binary());
  CHECK(j.at("data").get_binary().size() == samples::log_chunk().data.size());
}

TEST_CASE("log chunk data may also arrive as a UTF-8 str", "[codec]") {
  json j = as_json(encode(samples::log_chunk()));
  j["data"] = "plain text ✓\n";
  const auto m = decode_ok(to_frame(j));
  CHECK(std::get<LogChunk>(m).data == "plain text ✓\n");
}

TEST_CASE("missing optional fields take the struct defaults", "[codec]") {
  json j = as_json(encode(samples::dispatch()));
  for (const char* key :
       {"body", "task_type", "risk", "cpus", "memory_bytes", "run_timeout_s", "verify_timeout_s", "verify_command"}) {
    j["spec"].erase(key);
  }
  j["spec"]["agent"].erase("env");
  j["spec"]["agent"].erase("mounts");
  RunSpec expected = samples::run_spec();
  expected.body = expected.task_type = expected.risk = expected.verify_command = "";
  expected.cpus = 0;
  expected.memory_bytes = expected.run_timeout_s = expected.verify_timeout_s = 0;
  expected.agent.env.clear();
  expected.agent.mounts.clear();
  CHECK(std::get<Dispatch>(decode_ok(to_frame(j))).spec == expected);
}

TEST_CASE("a mount without read_only is read-only", "[codec]") {
  json j = as_json(encode(samples::dispatch()));
  j["spec"]["agent"]["mounts"][1].erase("read_only");
  CHECK(std::get<Dispatch>(decode_ok(to_frame(j))).spec.agent.mounts[1].read_only);
}

TEST_CASE("a hello with only its required fields decodes", "[codec]") {
  const json j = {{"v", 1},          {"type", "hello"},    {"worker_id", "w1"},
                  {"hostname", "h"}, {"version", "0.1.0"}, {"capacity", 2}};
  Hello expected;
  expected.worker_id = "w1";
  expected.hostname = "h";
  expected.version = "0.1.0";
  expected.capacity = 2;
  CHECK(decode_ok(to_frame(j)) == Message(expected));
}

TEST_CASE("nil in an optional field means absent", "[codec]") {
  json j = as_json(encode(samples::task_update()));
  j["detail"] = nullptr;
  CHECK(std::get<TaskUpdate>(decode_ok(to_frame(j))).detail.empty());
}

TEST_CASE("unknown keys are ignored at every level", "[codec]") {
  json j = as_json(encode(samples::dispatch()));
  j["priority"] = 7;
  j["spec"]["future"] = {{"nested", {1, 2, 3}}};
  j["spec"]["agent"]["mounts"][0]["propagation"] = "rslave";
  CHECK(decode_ok(to_frame(j)) == Message(samples::dispatch()));
}

TEST_CASE("cpus accepts an integer as well as a float", "[codec]") {
  json j = as_json(encode(samples::dispatch()));
  j["spec"]["cpus"] = 2;
  CHECK(std::get<Dispatch>(decode_ok(to_frame(j))).spec.cpus == 2.0);
}

TEST_CASE("extreme but valid integers survive the round trip", "[codec]") {
  RunSpec s = samples::run_spec();
  s.epoch = std::numeric_limits<int64_t>::max();
  s.attempt = std::numeric_limits<int>::max();
  s.memory_bytes = 0;
  Heartbeat h{std::numeric_limits<int64_t>::max(), 0};
  CHECK(decode_ok(encode(Dispatch{s})) == Message(Dispatch{s}));
  CHECK(decode_ok(encode(h)) == Message(h));
}

TEST_CASE("empty strings, arrays and maps round trip", "[codec]") {
  RunSpec s = samples::run_spec();
  s.title = s.body = "";
  s.agent.command.clear();
  s.agent.env.clear();
  s.agent.mounts.clear();
  LogChunk c = samples::log_chunk();
  c.data.clear();
  CHECK(decode_ok(encode(Dispatch{s})) == Message(Dispatch{s}));
  CHECK(decode_ok(encode(c)) == Message(c));
}

TEST_CASE("encode repairs ill-formed UTF-8 and NUL so the frame still decodes", "[codec]") {
  TaskResult r = samples::task_result();
  r.reason = std::string("exit 1: \xff\xfe tail\0end \xe2\x82", 22);
  const auto decoded = decode(encode(r));
  REQUIRE(decoded.ok());
  CHECK(std::get<TaskResult>(*decoded).reason ==
        "exit 1: \xef\xbf\xbd\xef\xbf\xbd tail\xef\xbf\xbd"
        "end \xef\xbf\xbd\xef\xbf\xbd");
}

TEST_CASE("encode leaves log chunk bytes untouched", "[codec]") {
  LogChunk c = samples::log_chunk();
  c.data = std::string("\0\xff\xc3", 3);
  CHECK(std::get<LogChunk>(decode_ok(encode(c))).data == c.data);
}

TEST_CASE("every failure kind a worker may send decodes on the coordinator's side", "[codec]") {
  for (auto kind : kFailureKinds) {
    INFO(kind);
    auto r = samples::task_result();
    r.failure_kind = std::string(kind);
    CHECK(std::get<TaskResult>(decode_ok(encode(Message{r}))).failure_kind == kind);
  }
}
