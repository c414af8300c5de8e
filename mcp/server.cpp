// The MCP lifecycle and tools over JSON-RPC 2.0, and the stdio transport.
#include "mcp/server.h"

#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "mcp/jsonrpc.h"

namespace polyphony::mcp {

using nlohmann::json;

const std::vector<std::string>& supported_protocol_versions() {
  static const std::vector<std::string> versions{"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"};
  return versions;
}

namespace {

std::string type_of(const json& v) {
  if (v.is_object()) return "an object";
  if (v.is_array()) return "an array";
  if (v.is_string()) return "a string";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer() || v.is_number_unsigned()) return "an integer";
  if (v.is_number()) return "a number";
  return "null";
}

std::string a_type(const std::string& type) {
  return type == "object" || type == "array" || type == "integer" ? "an " + type : "a " + type;
}

bool has_type(const json& v, const std::string& type) {
  if (type == "object") return v.is_object();
  if (type == "array") return v.is_array();
  if (type == "string") return v.is_string();
  if (type == "boolean") return v.is_boolean();
  if (type == "integer") return v.is_number_integer() || v.is_number_unsigned();
  if (type == "number") return v.is_number();
  return type == "null" && v.is_null();
}

Status check_object(const json& schema, const json& value, const std::string& where) {
  const json properties = schema.value("properties", json::object());
  for (const auto& name : schema.value("required", json::array())) {
    if (!value.contains(name.get<std::string>())) {
      return make_error("usage", "is required", where + "." + name.get<std::string>());
    }
  }
  for (const auto& [key, v] : value.items()) {
    if (properties.contains(key)) {
      POLY_TRY(check_against_schema(properties[key], v, where + "." + key));
    } else if (schema.value("additionalProperties", true) == false) {
      std::string known;
      for (const auto& [name, _] : properties.items()) known += (known.empty() ? "" : ", ") + name;
      return make_error("usage", "is not an argument of this tool (it takes: " + known + ")", where + "." + key);
    }
  }
  return {};
}

Status check_array(const json& schema, const json& value, const std::string& where) {
  if (schema.contains("minItems") && value.size() < schema["minItems"].get<size_t>()) {
    return make_error("usage", "needs at least " + schema["minItems"].dump() + " item(s)", where);
  }
  if (schema.contains("maxItems") && value.size() > schema["maxItems"].get<size_t>()) {
    return make_error("usage", "takes at most " + schema["maxItems"].dump() + " item(s)", where);
  }
  if (!schema.contains("items")) return {};
  for (size_t i = 0; i < value.size(); ++i) {
    POLY_TRY(check_against_schema(schema["items"], value[i], where + "[" + std::to_string(i) + "]"));
  }
  return {};
}

Status check_range(const json& schema, const json& value, const std::string& where) {
  if (schema.contains("minimum") && value < schema["minimum"]) {
    return make_error("usage", "must be at least " + schema["minimum"].dump() + ", got " + value.dump(), where);
  }
  if (schema.contains("maximum") && value > schema["maximum"]) {
    return make_error("usage", "must be at most " + schema["maximum"].dump() + ", got " + value.dump(), where);
  }
  return {};
}

}  // namespace

Status check_against_schema(const json& schema, const json& value, const std::string& where) {
  if (schema.contains("type")) {
    // One type name, or a list of them (["object", "null"]).
    const json types = schema["type"].is_array() ? schema["type"] : json::array({schema["type"]});
    const bool any = std::any_of(types.begin(), types.end(), [&](const json& t) { return has_type(value, t); });
    if (!any) {
      std::string names;
      for (const auto& t : types) names += (names.empty() ? "" : " or ") + a_type(t.get<std::string>());
      return make_error("usage", "must be " + names + ", got " + type_of(value), where);
    }
  }
  const json choices = schema.value("enum", json::array());
  if (schema.contains("enum") && std::find(choices.begin(), choices.end(), value) == choices.end()) {
    return make_error("usage", "must be one of " + schema["enum"].dump() + ", got " + value.dump(), where);
  }
  if (value.is_object()) return check_object(schema, value, where);
  if (value.is_array()) return check_array(schema, value, where);
  if (value.is_number()) return check_range(schema, value, where);
  return {};
}

Server::Server(std::string name, std::string version, std::vector<Tool> tools)
    : name_(std::move(name)), version_(std::move(version)), tools_(std::move(tools)) {}

std::string Server::protocol_version() const {
  std::lock_guard lock(mutex_);
  return protocol_version_;
}

std::optional<json> Server::handle(std::string_view line) {
  const std::atomic<bool> never{false};
  return handle(line, never);
}

std::optional<json> Server::handle(std::string_view line, const std::atomic<bool>& stop) {
  auto parsed = parse_message(line);
  if (auto* error = std::get_if<json>(&parsed)) return *error;
  if (std::holds_alternative<ClientResponse>(parsed)) return std::nullopt;
  const Request& r = std::get<Request>(parsed);
  if (r.notification) return std::nullopt;  // notifications/initialized, cancelled (serve_stdio), others
  if (!r.params.is_null() && !r.params.is_object()) {
    return error_response(r.id, kInvalidParams, "invalid params: " + r.method + " takes its params as an object");
  }
  const json params = r.params.is_null() ? json::object() : r.params;
  if (r.method == "initialize") return initialize(r.id, params);
  if (r.method == "ping") return result_response(r.id, json::object());
  if (r.method != "tools/list" && r.method != "tools/call") {
    return error_response(r.id, kMethodNotFound, "method not found: " + r.method);
  }
  if (protocol_version().empty()) {
    return error_response(r.id, kInvalidRequest, "the session is not initialized: send initialize first");
  }
  if (r.method == "tools/list") return list_tools(r.id);
  return call_tool(r.id, params, stop);
}

json Server::initialize(const json& id, const json& params) {
  if (!params.contains("protocolVersion") || !params["protocolVersion"].is_string()) {
    return error_response(id, kInvalidParams, "invalid params: initialize needs protocolVersion, a string");
  }
  const std::string asked = params["protocolVersion"].get<std::string>();
  const auto& versions = supported_protocol_versions();
  const bool known = std::find(versions.begin(), versions.end(), asked) != versions.end();
  const std::string agreed = known ? asked : versions.front();
  {
    std::lock_guard lock(mutex_);
    protocol_version_ = agreed;
  }
  return result_response(id, {{"protocolVersion", agreed},
                              {"capabilities", {{"tools", {{"listChanged", false}}}}},
                              {"serverInfo", {{"name", name_}, {"title", "Polyphony"}, {"version", version_}}},
                              {"instructions",
                               "Polyphony runs coding agents in containers, one per task, and lands "
                               "only verified work. spawn or team queue tasks; wait until they end; "
                               "route_explain scores a task without queueing it."}});
}

json Server::list_tools(const json& id) const {
  // Structured results and their schemas came with revision 2025-06-18.
  const bool structured = protocol_version() >= "2025-06-18";
  json list = json::array();
  for (const auto& t : tools_) {
    json entry{{"name", t.name}, {"title", t.title}, {"description", t.description}, {"inputSchema", t.input_schema}};
    if (structured) entry["outputSchema"] = t.output_schema;
    list.push_back(std::move(entry));
  }
  return result_response(id, {{"tools", list}});
}

json Server::call_tool(const json& id, const json& params, const std::atomic<bool>& stop) {
  if (!params.contains("name") || !params["name"].is_string()) {
    return error_response(id, kInvalidParams, "invalid params: tools/call needs name, a string");
  }
  const std::string name = params["name"].get<std::string>();
  auto tool = std::find_if(tools_.begin(), tools_.end(), [&](const Tool& t) { return t.name == name; });
  if (tool == tools_.end()) return error_response(id, kInvalidParams, "unknown tool: " + name);
  const json arguments = params.contains("arguments") ? params["arguments"] : json::object();
  Result<json> out = [&]() -> Result<json> {
    POLY_TRY(check_against_schema(tool->input_schema, arguments, "arguments"));
    try {
      return tool->call(arguments, stop);
    } catch (const std::exception& e) {
      return make_error("internal", std::string("the tool failed: ") + e.what(), name);
    }
  }();
  if (!out.ok()) {
    json text{{"type", "text"}, {"text", out.error().to_string()}};
    return result_response(id, {{"content", json::array({text})}, {"isError", true}});
  }
  json result{{"content", {{{"type", "text"}, {"text", out->dump(2, ' ', false, json::error_handler_t::replace)}}}},
              {"isError", false}};
  if (protocol_version() >= "2025-06-18") result["structuredContent"] = *out;
  return result_response(id, std::move(result));
}

namespace {

// The calls under way, by request id, and the writer they share.
class Calls {
 public:
  explicit Calls(std::ostream& out) : out_(out) {}

  void write(const json& message) {
    std::lock_guard lock(mutex_);
    out_ << to_line(message) << std::flush;
  }

  void start(Server& server, const json& id, std::string line) {
    auto stop = std::make_shared<std::atomic<bool>>(false);
    std::lock_guard lock(mutex_);
    reap();
    const uint64_t n = next_++;
    stops_[id.dump()] = stop;
    threads_[n] = std::thread([this, &server, n, id, stop, line = std::move(line)] {
      auto response = server.handle(line, *stop);
      std::lock_guard lock(mutex_);
      const bool cancelled = cancelled_.erase(id.dump()) > 0;
      stops_.erase(id.dump());
      if (response && !cancelled) out_ << to_line(*response) << std::flush;
      done_.push_back(n);
    });
  }

  void cancel(const json& id) {
    std::lock_guard lock(mutex_);
    if (auto it = stops_.find(id.dump()); it != stops_.end()) {
      it->second->store(true);
      cancelled_.insert(id.dump());
    }
  }

  // Stops every call and waits for each to answer.
  void finish() {
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mutex_);
      for (auto& [_, stop] : stops_) stop->store(true);
      for (auto& [_, t] : threads_) threads.push_back(std::move(t));
      threads_.clear();
      done_.clear();
    }
    for (auto& t : threads) t.join();
  }

 private:
  // Joins the threads of the calls that have answered (under mutex_).
  void reap() {
    for (uint64_t n : done_) {
      threads_[n].join();
      threads_.erase(n);
    }
    done_.clear();
  }

  std::ostream& out_;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<std::atomic<bool>>> stops_;
  std::map<uint64_t, std::thread> threads_;
  std::set<std::string> cancelled_;
  std::vector<uint64_t> done_;
  uint64_t next_ = 0;
};

}  // namespace

void serve_stdio(Server& server, std::istream& in, std::ostream& out) {
  Calls calls(out);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    auto parsed = parse_message(line);
    if (const auto* r = std::get_if<Request>(&parsed)) {
      if (r->notification && r->method == "notifications/cancelled" && r->params.is_object() &&
          r->params.contains("requestId")) {
        calls.cancel(r->params["requestId"]);
        continue;
      }
      if (!r->notification && r->method == "tools/call") {
        calls.start(server, r->id, line);
        continue;
      }
    }
    if (auto response = server.handle(line)) calls.write(*response);
  }
  calls.finish();
}

}  // namespace polyphony::mcp
