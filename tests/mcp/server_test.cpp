// The MCP server's protocol handling, line by line: malformed JSON-RPC, the initialize
// handshake, tools/list and tools/call, with tools made for the test.
#include <catch2/catch.hpp>

#include <sstream>
#include <thread>

#include "mcp/jsonrpc.h"
#include "mcp/server.h"

using namespace polyphony;
using namespace polyphony::mcp;
using nlohmann::json;

namespace {

json object_schema(json properties, std::vector<std::string> required) {
  return {{"type", "object"},
          {"properties", std::move(properties)},
          {"required", required},
          {"additionalProperties", false}};
}

// echo returns its arguments; fail returns an error; throw throws; block waits for its stop.
std::vector<Tool> test_tools() {
  Tool echo{"echo",
            "Echo",
            "returns its arguments",
            object_schema({{"word", {{"type", "string"}}},
                           {"count", {{"type", "integer"}, {"minimum", 1}, {"maximum", 3}}},
                           {"tags", {{"type", "array"}, {"items", {{"type", "string"}}}, {"maxItems", 2}}}},
                          {"word"}),
            {{"type", "object"}},
            [](const json& a, const std::atomic<bool>&) -> Result<json> { return a; }};
  Tool fail{"fail",
            "Fail",
            "always fails",
            {{"type", "object"}},
            {{"type", "object"}},
            [](const json&, const std::atomic<bool>&) -> Result<json> {
              return make_error("not_found", "no task with this id (see `polyphony status`)", "abc123");
            }};
  Tool thrower{"throw",
               "Throw",
               "throws",
               {{"type", "object"}},
               {{"type", "object"}},
               [](const json&, const std::atomic<bool>&) -> Result<json> { throw std::runtime_error("boom"); }};
  Tool block{"block",
             "Block",
             "returns when stopped",
             {{"type", "object"}},
             {{"type", "object"}},
             [](const json&, const std::atomic<bool>& stop) -> Result<json> {
               const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
               while (!stop.load() && std::chrono::steady_clock::now() < deadline) {
                 std::this_thread::sleep_for(std::chrono::milliseconds(5));
               }
               return json{{"stopped", stop.load()}};
             }};
  return {echo, fail, thrower, block};
}

std::string initialize_line(const std::string& version = "2025-11-25", int id = 1) {
  return json{{"jsonrpc", "2.0"},
              {"id", id},
              {"method", "initialize"},
              {"params",
               {{"protocolVersion", version},
                {"capabilities", json::object()},
                {"clientInfo", {{"name", "test"}, {"version", "1"}}}}}}
      .dump();
}

std::string call_line(int id, const std::string& name, const json& arguments) {
  return json{
      {"jsonrpc", "2.0"}, {"id", id}, {"method", "tools/call"}, {"params", {{"name", name}, {"arguments", arguments}}}}
      .dump();
}

// A server past the handshake.
std::unique_ptr<Server> initialized_server() {
  auto server = std::make_unique<Server>("polyphony", "0.1.0", test_tools());
  REQUIRE(server->handle(initialize_line()));
  REQUIRE_FALSE(server->handle(R"({"jsonrpc":"2.0","method":"notifications/initialized"})"));
  return server;
}

}  // namespace

TEST_CASE("malformed JSON-RPC gets the error JSON-RPC defines, with the id when it is known") {
  struct Case {
    std::string line;
    int code;
    json id;
  };
  const std::vector<Case> cases{
      {"not json at all", kParseError, nullptr},
      {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":", kParseError, nullptr},
      {"", kParseError, nullptr},
      {"[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]", kInvalidRequest, nullptr},
      {"42", kInvalidRequest, nullptr},
      {"\"ping\"", kInvalidRequest, nullptr},
      {"{\"id\":7,\"method\":\"ping\"}", kInvalidRequest, 7},
      {"{\"jsonrpc\":\"1.0\",\"id\":\"a\",\"method\":\"ping\"}", kInvalidRequest, "a"},
      {"{\"jsonrpc\":\"2.0\",\"id\":8}", kInvalidRequest, 8},
      {"{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":12}", kInvalidRequest, 9},
      {"{\"jsonrpc\":\"2.0\",\"id\":{\"x\":1},\"method\":\"ping\"}", kInvalidRequest, nullptr},
      {"{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"ping\"}", kInvalidRequest, nullptr},
      {"{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"ping\",\"params\":\"x\"}", kInvalidRequest, 10},
      {"{\"jsonrpc\":\"2.0\",\"id\":11,\"method\":\"no/such/method\"}", kMethodNotFound, 11},
      {"{\"jsonrpc\":\"2.0\",\"id\":12,\"method\":\"initialize\",\"params\":[1]}", kInvalidParams, 12},
      {"{\"jsonrpc\":\"2.0\",\"id\":13,\"method\":\"initialize\",\"params\":{}}", kInvalidParams, 13},
  };
  Server server("polyphony", "0.1.0", test_tools());
  for (const auto& c : cases) {
    INFO(c.line);
    auto response = server.handle(c.line);
    REQUIRE(response);
    CHECK((*response)["jsonrpc"] == "2.0");
    CHECK((*response)["id"] == c.id);
    CHECK((*response)["error"]["code"] == c.code);
    CHECK_FALSE((*response)["error"]["message"].get<std::string>().empty());
  }
}

TEST_CASE("bytes that are not UTF-8 and deep nesting are answered with errors, never a crash") {
  auto server_ptr = initialized_server();
  Server& server = *server_ptr;
  auto bad = server.handle(std::string("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\xfe\"}"));
  REQUIRE(bad);
  CHECK((*bad)["error"]["code"] == kParseError);
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  auto nested = server.handle(deep);
  REQUIRE(nested);
  CHECK(nested->contains("error"));
  // An argument with a NUL and invalid bytes still makes a line.
  auto echoed = server.handle(call_line(2, "echo", {{"word", std::string("a\0b", 3)}}));
  REQUIRE(echoed);
  const std::string line = to_line(*echoed);
  CHECK(line.find('\n') == line.size() - 1);
}

TEST_CASE("notifications and responses from the client get no answer") {
  Server server("polyphony", "0.1.0", test_tools());
  CHECK_FALSE(server.handle(R"({"jsonrpc":"2.0","method":"notifications/initialized"})"));
  CHECK_FALSE(server.handle(R"({"jsonrpc":"2.0","method":"notifications/whatever","params":{}})"));
  CHECK_FALSE(server.handle(R"({"jsonrpc":"2.0","id":5,"result":{}})"));
  CHECK_FALSE(server.handle(R"({"jsonrpc":"2.0","id":5,"error":{"code":1,"message":"x"}})"));
}

TEST_CASE("initialize agrees on the client's revision when supported, else offers the newest") {
  const auto version = GENERATE(std::string("2025-11-25"), std::string("2025-06-18"), std::string("2024-11-05"),
                                std::string("1999-01-01"));
  Server server("polyphony", "0.1.0", test_tools());
  auto response = server.handle(initialize_line(version, 3));
  REQUIRE(response);
  const json& r = (*response)["result"];
  const bool known = version != "1999-01-01";
  CHECK(r["protocolVersion"] == (known ? version : supported_protocol_versions().front()));
  CHECK(r["capabilities"]["tools"].is_object());
  CHECK(r["serverInfo"]["name"] == "polyphony");
  CHECK(r["serverInfo"]["version"] == "0.1.0");
  CHECK(server.protocol_version() == r["protocolVersion"]);
  CHECK(supported_protocol_versions().front() == "2025-11-25");
}

TEST_CASE("tools are refused before initialize, and ping is answered at any time") {
  Server server("polyphony", "0.1.0", test_tools());
  auto ping = server.handle(R"({"jsonrpc":"2.0","id":"p","method":"ping"})");
  REQUIRE(ping);
  CHECK((*ping)["result"] == json::object());
  for (const std::string method : {"tools/list", "tools/call"}) {
    auto r = server.handle(json{{"jsonrpc", "2.0"}, {"id", 4}, {"method", method}}.dump());
    REQUIRE(r);
    CHECK((*r)["error"]["code"] == kInvalidRequest);
    CHECK_THAT((*r)["error"]["message"].get<std::string>(), Catch::Contains("initialize"));
  }
}

TEST_CASE("tools/list gives every tool with its input schema, and its output schema from 2025-06-18 on") {
  auto server_ptr = initialized_server();
  Server& server = *server_ptr;
  auto r = server.handle(R"({"jsonrpc":"2.0","id":2,"method":"tools/list","params":{}})");
  REQUIRE(r);
  const json& tools = (*r)["result"]["tools"];
  REQUIRE(tools.size() == 4);
  CHECK(tools[0]["name"] == "echo");
  CHECK(tools[0]["title"] == "Echo");
  CHECK(tools[0]["inputSchema"]["required"] == json::array({"word"}));
  CHECK(tools[0]["outputSchema"]["type"] == "object");

  Server old("polyphony", "0.1.0", test_tools());
  REQUIRE(old.handle(initialize_line("2024-11-05")));
  auto listed = old.handle(R"({"jsonrpc":"2.0","id":2,"method":"tools/list"})");
  REQUIRE(listed);
  CHECK_FALSE((*listed)["result"]["tools"][0].contains("outputSchema"));
}

TEST_CASE("a tool's result comes back as structured content and as its JSON text") {
  auto server_ptr = initialized_server();
  Server& server = *server_ptr;
  auto r = server.handle(call_line(5, "echo", {{"word", "hi"}, {"count", 2}}));
  REQUIRE(r);
  const json& result = (*r)["result"];
  CHECK(result["isError"] == false);
  CHECK(result["structuredContent"] == json{{"word", "hi"}, {"count", 2}});
  REQUIRE(result["content"].size() == 1);
  CHECK(result["content"][0]["type"] == "text");
  CHECK(json::parse(result["content"][0]["text"].get<std::string>()) == result["structuredContent"]);
}

TEST_CASE("arguments that break the tool's schema are a tool error naming the argument") {
  struct Case {
    json arguments;
    std::string text;
  };
  const std::vector<Case> cases{
      {json::object(), "arguments.word: is required"},
      {{{"word", 3}}, "arguments.word: must be a string, got an integer"},
      {{{"word", "x"}, {"count", 0}}, "arguments.count: must be at least 1, got 0"},
      {{{"word", "x"}, {"count", 4}}, "arguments.count: must be at most 3, got 4"},
      {{{"word", "x"}, {"count", "2"}}, "arguments.count: must be an integer, got a string"},
      {{{"word", "x"}, {"tags", {"a", 1}}}, "arguments.tags[1]: must be a string, got an integer"},
      {{{"word", "x"}, {"tags", {"a", "b", "c"}}}, "arguments.tags: takes at most 2 item(s)"},
      {{{"word", "x"}, {"colour", "red"}},
       "arguments.colour: is not an argument of this tool (it takes: count, tags, word)"},
      {json::array(), "arguments: must be an object, got an array"},
  };
  auto server_ptr = initialized_server();
  Server& server = *server_ptr;
  for (const auto& c : cases) {
    INFO(c.arguments.dump());
    auto r = server.handle(call_line(6, "echo", c.arguments));
    REQUIRE(r);
    CHECK((*r)["result"]["isError"] == true);
    CHECK((*r)["result"]["content"][0]["text"] == c.text);
  }
}

TEST_CASE("a schema may allow several types, and names them all when none matches") {
  const json schema{{"type", {"string", "null"}}};
  CHECK(check_against_schema(schema, "x", "arguments.a").ok());
  CHECK(check_against_schema(schema, nullptr, "arguments.a").ok());
  auto wrong = check_against_schema(schema, 3, "arguments.a");
  REQUIRE_FALSE(wrong.ok());
  CHECK(wrong.error().to_string() == "arguments.a: must be a string or a null, got an integer");
}

TEST_CASE("a failing tool answers with isError and the error as the CLI prints it, a throwing one too") {
  auto server_ptr = initialized_server();
  Server& server = *server_ptr;
  auto failed = server.handle(call_line(7, "fail", json::object()));
  REQUIRE(failed);
  CHECK((*failed)["result"]["isError"] == true);
  CHECK((*failed)["result"]["content"][0]["text"] == "abc123: no task with this id (see `polyphony status`)");
  CHECK_FALSE((*failed)["result"].contains("structuredContent"));
  auto thrown = server.handle(call_line(8, "throw", json::object()));
  REQUIRE(thrown);
  CHECK((*thrown)["result"]["isError"] == true);
  CHECK_THAT((*thrown)["result"]["content"][0]["text"].get<std::string>(), Catch::Contains("boom"));
}

TEST_CASE("an unknown tool or a call without a name is a protocol error") {
  auto server_ptr = initialized_server();
  Server& server = *server_ptr;
  auto unknown = server.handle(call_line(9, "nope", json::object()));
  REQUIRE(unknown);
  CHECK((*unknown)["error"]["code"] == kInvalidParams);
  CHECK((*unknown)["error"]["message"] == "unknown tool: nope");
  auto nameless = server.handle(R"({"jsonrpc":"2.0","id":10,"method":"tools/call","params":{"arguments":{}}})");
  REQUIRE(nameless);
  CHECK((*nameless)["error"]["code"] == kInvalidParams);
}

TEST_CASE("over stdio a cancelled call is stopped and not answered, while other requests are") {
  Server server("polyphony", "0.1.0", test_tools());
  std::istringstream in(initialize_line() + "\n" + R"({"jsonrpc":"2.0","method":"notifications/initialized"})" + "\n" +
                        call_line(20, "block", json::object()) + "\n\n" +
                        R"({"jsonrpc":"2.0","id":21,"method":"ping"})" + "\r\n" + "oops\n" +
                        R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":20}})" + "\n");
  std::ostringstream out;
  const auto started = std::chrono::steady_clock::now();
  serve_stdio(server, in, out);
  CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(15));  // block was stopped
  std::vector<json> answers;
  std::istringstream lines(out.str());
  for (std::string line; std::getline(lines, line);) answers.push_back(json::parse(line));
  REQUIRE(answers.size() == 3);
  CHECK(answers[0]["id"] == 1);
  CHECK(answers[1]["id"] == 21);
  CHECK(answers[2]["error"]["code"] == kParseError);
}

TEST_CASE("over stdio the end of input stops the calls under way, which still answer") {
  Server server("polyphony", "0.1.0", test_tools());
  std::istringstream in(initialize_line() + "\n" + call_line(30, "block", json::object()) + "\n" +
                        call_line(31, "echo", {{"word", "w"}}) + "\n");
  std::ostringstream out;
  serve_stdio(server, in, out);
  std::map<int, json> by_id;
  std::istringstream lines(out.str());
  for (std::string line; std::getline(lines, line);) {
    json j = json::parse(line);
    by_id[j["id"].get<int>()] = j;
  }
  REQUIRE(by_id.size() == 3);
  CHECK(by_id[30]["result"]["structuredContent"]["stopped"] == true);
  CHECK(by_id[31]["result"]["structuredContent"]["word"] == "w");
}
