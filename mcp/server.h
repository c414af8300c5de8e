// A Model Context Protocol server: the initialize handshake, tools/list and tools/call over
// JSON-RPC 2.0, with the tools it is given. handle() is the protocol (no I/O, testable line by
// line); serve_stdio() is the stdio transport around it.
#pragma once

#include <atomic>
#include <functional>
#include <iosfwd>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace polyphony::mcp {

// The protocol revisions this server speaks, newest first; it answers an initialize with the
// client's revision when it is one of these, else with the newest.
const std::vector<std::string>& supported_protocol_versions();

// One tool: its name, what it does, the JSON Schemas of its arguments and of its result, and
// the call. A call's arguments have been checked against `input_schema` before it runs; it
// returns the structured result (an object matching `output_schema`) or an error, which the
// client gets as a tool result with isError and the error's text. `stop` becomes true when the
// client cancels the call or the server shuts down: a long call returns early then.
struct Tool {
  std::string name;
  std::string title;
  std::string description;
  nlohmann::json input_schema;
  nlohmann::json output_schema;
  std::function<Result<nlohmann::json>(const nlohmann::json& arguments, const std::atomic<bool>& stop)> call;
};

// Checks `value` against the subset of JSON Schema the tools use (type object, string,
// integer, boolean, array; properties, required, additionalProperties false, items, minimum,
// maximum, minItems, maxItems, enum). The error's `where` is the path ("arguments.labels[1]").
Status check_against_schema(const nlohmann::json& schema, const nlohmann::json& value, const std::string& where);

class Server {
 public:
  Server(std::string name, std::string version, std::vector<Tool> tools);

  // Handles one line from the client; returns the response to send, or nullopt (a
  // notification, or a response to us). Malformed input gets a JSON-RPC error, never an
  // exception. Safe to call from several threads at once (tools/call runs concurrently).
  std::optional<nlohmann::json> handle(std::string_view line, const std::atomic<bool>& stop);
  std::optional<nlohmann::json> handle(std::string_view line);

  // The protocol revision agreed at initialize ("" before).
  std::string protocol_version() const;

 private:
  nlohmann::json initialize(const nlohmann::json& id, const nlohmann::json& params);
  nlohmann::json list_tools(const nlohmann::json& id) const;
  nlohmann::json call_tool(const nlohmann::json& id, const nlohmann::json& params, const std::atomic<bool>& stop);

  std::string name_;
  std::string version_;
  std::vector<Tool> tools_;
  mutable std::mutex mutex_;
  std::string protocol_version_;
};

// Reads messages from `in` one line at a time and writes responses to `out`, each tools/call on
// its own thread (a long `wait` does not hold up the others); notifications/cancelled stops the
// call it names, whose response is then not sent. Returns at the end of `in`, once the calls
// under way have stopped and answered.
void serve_stdio(Server& server, std::istream& in, std::ostream& out);

}  // namespace polyphony::mcp
