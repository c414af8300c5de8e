// Polyphony's MCP tools without a coordinator: their schemas, the paging of logs, and the
// errors they give when no coordinator answers.
#include <catch2/catch.hpp>

#include <cstdlib>

#include "mcp/tools.h"
#include "test_support.h"
#include "tool_calls.h"

using namespace polyphony;
using namespace polyphony::mcp;
using namespace polyphony::testing;
using nlohmann::json;

TEST_CASE("the tools are spawn, status, show, logs, wait, cancel, retry, route_explain and team, each with schemas") {
  std::vector<std::string> names;
  for (const auto& t : polyphony_tools({})) {
    names.push_back(t.name);
    INFO(t.name);
    CHECK(t.input_schema["type"] == "object");
    CHECK(t.input_schema["additionalProperties"] == false);
    CHECK(t.output_schema["type"] == "object");
    CHECK_FALSE(t.output_schema["required"].empty());
    CHECK_FALSE(t.description.empty());
    for (const auto& [key, property] : t.input_schema["properties"].items()) {
      INFO(key);
      CHECK(property.contains("type"));
      CHECK(property.contains("description"));
    }
  }
  CHECK(names == std::vector<std::string>{"spawn", "status", "show", "logs", "wait", "cancel", "retry", "route_explain",
                                          "team"});
}

TEST_CASE("a log page is cut at character boundaries: a tail by default, or from an offset") {
  struct Case {
    std::string text;
    int64_t offset;
    int64_t max_bytes;
    std::pair<size_t, size_t> window;
  };
  const std::string e_acute = "\xc3\xa9";  // two bytes
  const std::vector<Case> cases{
      {"0123456789", -1, 4, {6, 10}},         {"0123456789", -1, 40, {0, 10}}, {"0123456789", 2, 3, {2, 5}},
      {"0123456789", 8, 5, {8, 10}},          {"0123456789", 20, 5, {10, 10}}, {"", -1, 5, {0, 0}},
      {"ab" + e_acute + "cd", -1, 3, {4, 6}},  // the tail would start inside é: it starts after it
      {"ab" + e_acute + "cd", 0, 3, {0, 2}},   // the page would end inside é: it ends before it
      {"ab" + e_acute + "cd", 2, 2, {2, 4}},
  };
  for (const auto& c : cases) {
    INFO(c.text << " " << c.offset << " " << c.max_bytes);
    CHECK(log_window(c.text, c.offset, c.max_bytes) == c.window);
  }
}

TEST_CASE("without a running coordinator spawn and wait answer with the CLI's message") {
  TempDir home;
  ToolOptions options;
  options.target.endpoint = "ipc://" + (home.path() / "coordinator.sock").string();
  auto server_ptr = server_for(options);
  Server& server = *server_ptr;
  const std::map<std::string, json> calls{{"spawn", json{{"title", "Do a thing"}, {"repo", home.path().string()}}},
                                          {"wait", json{{"id", "abc"}}}};
  for (const auto& [tool, arguments] : calls) {
    json r = call(server, tool, arguments);
    INFO(r.dump());
    CHECK(r["isError"] == true);
    CHECK_THAT(r["content"][0]["text"].get<std::string>(),
               Catch::Contains("no coordinator listens here") && Catch::Contains("polyphony serve"));
  }
}

TEST_CASE("spawn and team check the task as the CLI does before anything is sent") {
  ToolOptions options;
  options.target.endpoint = "ipc:///nonexistent/coordinator.sock";
  auto server_ptr = server_for(options);
  Server& server = *server_ptr;
  json empty_team = call(server, "team", {{"repo", "/r"}, {"tasks", json::array()}});
  CHECK(empty_team["isError"] == true);
  CHECK(empty_team["content"][0]["text"] == "arguments.tasks: needs at least 1 item(s)");
  json no_title = call(server, "spawn", {{"repo", "/r"}});
  CHECK(no_title["content"][0]["text"] == "arguments.title: is required");
  json bad_member = call(server, "team", {{"repo", "/r"}, {"tasks", {{{"title", "a"}}, {{"body", "no title"}}}}});
  CHECK(bad_member["content"][0]["text"] == "arguments.tasks[1].title: is required");
}
