// JSON-RPC 2.0 parsing and responses.
#include "mcp/jsonrpc.h"

namespace polyphony::mcp {

using nlohmann::json;

namespace {

bool valid_id(const json& id) {
  return id.is_string() || id.is_number_integer() || id.is_number_unsigned();
}

// The id to answer an invalid message with: its own when that is a valid id, else null.
json answer_id(const json& m) {
  if (m.is_object() && m.contains("id") && valid_id(m["id"])) return m["id"];
  return nullptr;
}

}  // namespace

std::variant<Request, ClientResponse, json> parse_message(std::string_view line) {
  json m = json::parse(line, nullptr, false);
  if (m.is_discarded()) return error_response(nullptr, kParseError, "parse error: the line is not JSON");
  if (m.is_array()) {
    return error_response(nullptr, kInvalidRequest,
                          "invalid request: batches are not supported (send one message a line)");
  }
  if (!m.is_object()) return error_response(nullptr, kInvalidRequest, "invalid request: a message is a JSON object");
  if (!m.contains("jsonrpc") || m["jsonrpc"] != "2.0") {
    return error_response(answer_id(m), kInvalidRequest, "invalid request: \"jsonrpc\" must be \"2.0\"");
  }
  if (!m.contains("method")) {
    if (m.contains("id") && (m.contains("result") || m.contains("error"))) return ClientResponse{};
    return error_response(answer_id(m), kInvalidRequest, "invalid request: no \"method\"");
  }
  if (!m["method"].is_string()) {
    return error_response(answer_id(m), kInvalidRequest, "invalid request: \"method\" must be a string");
  }
  Request r;
  r.method = m["method"].get<std::string>();
  if (m.contains("id")) {
    if (!valid_id(m["id"])) {
      return error_response(nullptr, kInvalidRequest, "invalid request: \"id\" must be a string or an integer");
    }
    r.id = m["id"];
  } else {
    r.notification = true;
  }
  if (m.contains("params")) {
    if (!m["params"].is_object() && !m["params"].is_array()) {
      return error_response(answer_id(m), kInvalidRequest, "invalid request: \"params\" must be an object or an array");
    }
    r.params = m["params"];
  }
  return r;
}

json result_response(const json& id, json result) {
  return json{{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}};
}

json error_response(const json& id, int code, const std::string& message, json data) {
  json error{{"code", code}, {"message", message}};
  if (!data.is_null()) error["data"] = std::move(data);
  return json{{"jsonrpc", "2.0"}, {"id", id}, {"error", std::move(error)}};
}

std::string to_line(const json& message) {
  // dump() escapes control characters, so no newline can appear inside the line.
  return message.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace polyphony::mcp
