// JSON-RPC 2.0 messages as MCP's stdio transport carries them: one JSON object a line.
// Pure: no I/O.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <variant>

namespace polyphony::mcp {

// The error codes JSON-RPC 2.0 defines.
inline constexpr int kParseError = -32700;
inline constexpr int kInvalidRequest = -32600;
inline constexpr int kMethodNotFound = -32601;
inline constexpr int kInvalidParams = -32602;
inline constexpr int kInternalError = -32603;

// A request (with an id) or a notification (without one) from the client.
struct Request {
  nlohmann::json id;  // a string or an integer; null for a notification
  bool notification = false;
  std::string method;
  nlohmann::json params;  // an object, or null when absent
};

// A response the client sent to a request of ours; this server sends none, so it is dropped.
struct ClientResponse {};

// Parses one line. Anything that is not a JSON-RPC 2.0 request, notification or response
// yields the error response to send (id null when the line's id is unknown). Never throws.
std::variant<Request, ClientResponse, nlohmann::json> parse_message(std::string_view line);

nlohmann::json result_response(const nlohmann::json& id, nlohmann::json result);
nlohmann::json error_response(const nlohmann::json& id, int code, const std::string& message,
                              nlohmann::json data = nullptr);

// One line of the transport: compact JSON with no newline inside (text that is not valid UTF-8
// gets U+FFFD in place of the bad bytes), then "\n".
std::string to_line(const nlohmann::json& message);

}  // namespace polyphony::mcp
