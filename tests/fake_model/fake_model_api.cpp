// A stand-in model API for running the real `claude` and `codex` CLIs in tests: it speaks the
// Anthropic Messages API (POST /v1/messages, streaming SSE or not) and the OpenAI Responses API
// (POST /v1/responses, streaming SSE) and answers from a script of generic steps (read, write,
// edit, shell, final), each turned into the tool call the CLI offers in the request's `tools`.
//
// The step is chosen statelessly: the number of tool calls already in the conversation is the
// index of the next step, so retries and side requests (title generation, quota checks:
// requests without tools) consume nothing. Side requests get a short plain text. Only the
// scripted failures ("fail") count requests. Every request is appended to --log as one JSON
// line (method, path, headers with credentials redacted, body). See README.md next to this.
//
//   fake_model_api --listen 127.0.0.1:0 --script s.json [--log requests.jsonl] [--port-file F]
#include <httplib.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <regex>
#include <sstream>
#include <string>
#include <thread>

using nlohmann::json;

namespace {

// ---- Options, script, log ----------------------------------------------------------------

struct Options {
  std::string host = "127.0.0.1";
  int port = 0;
  std::string script_path, log_path, port_file;
};

struct State {
  json script = json::object();
  std::string log_path;
  std::mutex log_mutex;
  std::atomic<int> main_requests{0};
  std::atomic<int> ids{0};
};

State state;

[[noreturn]] void usage(const std::string& why) {
  std::cerr << "fake_model_api: " << why << "\n"
            << "usage: fake_model_api --listen HOST:PORT [--script FILE] [--log FILE]"
               " [--port-file FILE]\n";
  std::exit(2);
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (i + 1 >= argc) usage("missing value for " + flag);
    std::string value = argv[++i];
    if (flag == "--listen") {
      auto colon = value.rfind(':');
      if (colon == std::string::npos) usage("--listen wants HOST:PORT");
      o.host = value.substr(0, colon);
      o.port = std::stoi(value.substr(colon + 1));
    } else if (flag == "--script") {
      o.script_path = value;
    } else if (flag == "--log") {
      o.log_path = value;
    } else if (flag == "--port-file") {
      o.port_file = value;
    } else {
      usage("unknown flag " + flag);
    }
  }
  return o;
}

json load_script(const std::string& path) {
  if (path.empty()) return json::object();
  std::ifstream in(path);
  if (!in) usage("cannot read " + path);
  json script = json::parse(in);
  if (script.is_array()) script = json{{"steps", script}};
  return script;
}

std::string redact(const std::string& name, const std::string& value) {
  static const std::regex secret("authorization|api-key|token|cookie", std::regex::icase);
  if (!std::regex_search(name, secret)) return value;
  auto space = value.find(' ');  // keep the scheme: "Bearer <redacted>"
  return (space == std::string::npos ? "" : value.substr(0, space + 1)) + "<redacted>";
}

void log_request(const httplib::Request& req) {
  if (state.log_path.empty()) return;
  json headers = json::object();
  for (const auto& [name, value] : req.headers) headers[name] = redact(name, value);
  json body = json::parse(req.body, nullptr, false);
  if (body.is_discarded()) body = req.body.empty() ? json(nullptr) : json(req.body);
  json line = {{"method", req.method}, {"path", req.path}, {"headers", headers}, {"body", body}};
  std::lock_guard lock(state.log_mutex);
  std::ofstream(state.log_path, std::ios::app) << line.dump() << "\n";
}

std::string next_id(const std::string& prefix) {
  return prefix + std::to_string(++state.ids);
}

// ---- Choosing the step ---------------------------------------------------------------------

struct Turn {
  json step;   // {"read": ...} etc., or {"final": ...}
  json usage;  // {"input_tokens", "output_tokens"}
  std::string model;
};

bool has_tools(const json& body) {
  return body.contains("tools") && !body["tools"].empty();
}

Turn turn_for(size_t index, const json& body) {
  const json& steps = state.script.value("steps", json::array());
  Turn t;
  t.step = index < steps.size() ? steps[index] : json{{"final", "Done."}};
  t.usage = t.step.value("usage", state.script.value("usage", json{{"input_tokens", 100}, {"output_tokens", 20}}));
  t.model = state.script.value("model", body.value("model", "fake-model"));
  return t;
}

// Anthropic: each assistant message with a tool_use block is one step taken.
size_t anthropic_steps_taken(const json& body) {
  size_t n = 0;
  for (const auto& m : body.value("messages", json::array())) {
    if (m.value("role", "") != "assistant" || !m["content"].is_array()) continue;
    for (const auto& block : m["content"])
      if (block.value("type", "") == "tool_use") {
        ++n;
        break;
      }
  }
  return n;
}

// OpenAI Responses: each tool-call item in the input is one step taken.
size_t openai_steps_taken(const json& body) {
  size_t n = 0;
  if (!body.contains("input") || !body["input"].is_array()) return 0;
  for (const auto& item : body["input"]) {
    auto type = item.value("type", "");
    if (type == "function_call" || type == "custom_tool_call" || type == "local_shell_call") ++n;
  }
  return n;
}

// A scripted failure for this main request, or null. `times` -1 fails every request.
json failure_now() {
  if (!state.script.contains("fail")) return nullptr;
  const json& fail = state.script["fail"];
  int n = ++state.main_requests;
  int times = fail.value("times", -1);
  if (times >= 0 && n > times) return nullptr;
  return fail;
}

[[noreturn]] void stall_forever() {
  for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
}

// "stall": true never answers; "stall": "stream" sends the SSE response headers, then nothing.
bool stalled(httplib::Response& res) {
  json stall = state.script.value("stall", json(false));
  if (stall == true) stall_forever();
  if (stall != "stream") return false;
  res.set_chunked_content_provider("text/event-stream", [](size_t, httplib::DataSink&) -> bool { stall_forever(); });
  return true;
}

using ErrorBody = json (*)(int status, const std::string& message);

// For a main request: stalls, or sends the scripted failure and returns true; else false.
bool stall_or_fail(httplib::Response& res, ErrorBody error_body) {
  if (stalled(res)) return true;
  json fail = failure_now();
  if (fail.is_null()) return false;
  res.status = fail.value("status", 500);
  if (fail.contains("retry_after")) res.set_header("retry-after", std::to_string(fail["retry_after"].get<int>()));
  std::string message = fail.value("message", "Scripted failure");
  res.set_content(error_body(res.status, message).dump(), "application/json");
  return true;
}

// ---- Server-sent events --------------------------------------------------------------------

struct Sse {
  std::string out;
  int sequence = 0;
  void event(const std::string& type, json data, bool numbered = false) {
    data["type"] = type;
    if (numbered) data["sequence_number"] = sequence++;
    out += "event: " + type + "\ndata: " + data.dump() + "\n\n";
  }
};

// ---- Anthropic Messages API ----------------------------------------------------------------

// The working directory Claude Code states in its system prompt, to make paths absolute.
std::string claude_cwd(const json& body) {
  static const std::string marker = "Primary working directory: ";
  std::string text = body.dump();  // the marker is in a system block or a message
  auto at = text.find(marker);
  if (at == std::string::npos) return "";
  at += marker.size();
  return text.substr(at, text.find_first_of("\\\"", at) - at);
}

std::string absolute(const std::string& path, const std::string& cwd) {
  if (path.empty() || path[0] == '/' || cwd.empty()) return path;
  return cwd + "/" + path;
}

// The text of the newest tool result in an Anthropic conversation ("" when none).
std::string last_tool_result(const json& body) {
  std::string text;
  for (const auto& m : body.value("messages", json::array())) {
    if (m.value("role", "") != "user" || !m["content"].is_array()) continue;
    for (const auto& block : m["content"]) {
      if (block.value("type", "") != "tool_result") continue;
      const json& c = block.contains("content") ? block["content"] : json("");
      if (c.is_string()) text = c.get<std::string>();
      if (!c.is_array()) continue;
      text.clear();
      for (const auto& part : c) text += part.value("text", "");
    }
  }
  return text;
}

// A `tool` step's input, with each string "{{result.KEY}}" replaced by KEY of the newest tool
// result (read as JSON): how a script passes an id one tool returned to the next.
json with_results(const json& input, const std::string& result_text) {
  if (input.is_string()) {
    const std::string s = input.get<std::string>();
    if (s.rfind("{{result.", 0) != 0 || s.size() < 12 || s.substr(s.size() - 2) != "}}") return input;
    json result = json::parse(result_text, nullptr, false);
    const std::string key = s.substr(9, s.size() - 11);
    return result.is_object() && result.contains(key) ? result[key] : json(nullptr);
  }
  if (!input.is_object() && !input.is_array()) return input;
  json out = input;
  for (auto& v : out) v = with_results(v, result_text);
  return out;
}

// The content block (text or tool_use) that carries a step to Claude Code.
json claude_block(const json& step, const json& body) {
  auto cwd = claude_cwd(body);
  auto tool = [](const std::string& name, json input) {
    return json{{"type", "tool_use"}, {"id", next_id("toolu_fake_")}, {"name", name}, {"input", input}};
  };
  if (step.contains("tool"))
    return tool(step["tool"]["name"],
                with_results(step["tool"].value("input", json::object()), last_tool_result(body)));
  if (step.contains("read")) return tool("Read", {{"file_path", absolute(step["read"], cwd)}});
  if (step.contains("write"))
    return tool("Write", {{"file_path", absolute(step["write"]["path"], cwd)}, {"content", step["write"]["content"]}});
  if (step.contains("edit"))
    return tool("Edit", {{"file_path", absolute(step["edit"]["path"], cwd)},
                         {"old_string", step["edit"]["old"]},
                         {"new_string", step["edit"]["new"]}});
  if (step.contains("shell")) return tool("Bash", {{"command", step["shell"]}, {"description", "Run a command"}});
  return {{"type", "text"}, {"text", step.value("final", "Done.")}};
}

json anthropic_message(const json& block, const Turn& t) {
  bool tool = block["type"] == "tool_use";
  return {{"id", next_id("msg_fake_")},
          {"type", "message"},
          {"role", "assistant"},
          {"model", t.model},
          {"content", json::array({block})},
          {"stop_reason", tool ? "tool_use" : "end_turn"},
          {"stop_sequence", nullptr},
          {"usage",
           {{"input_tokens", t.usage.value("input_tokens", 0)},
            {"output_tokens", t.usage.value("output_tokens", 0)},
            {"cache_creation_input_tokens", 0},
            {"cache_read_input_tokens", 0}}}};
}

std::string anthropic_stream(const json& message) {
  Sse sse;
  json start = message;
  start["content"] = json::array();
  start["stop_reason"] = nullptr;
  start["usage"]["output_tokens"] = 1;
  sse.event("message_start", {{"message", start}});
  const json& block = message["content"][0];
  json opening = block;
  if (block["type"] == "tool_use") opening["input"] = json::object();
  if (block["type"] == "text") opening["text"] = "";
  sse.event("content_block_start", {{"index", 0}, {"content_block", opening}});
  json delta = block["type"] == "tool_use" ? json{{"type", "input_json_delta"}, {"partial_json", block["input"].dump()}}
                                           : json{{"type", "text_delta"}, {"text", block["text"]}};
  sse.event("content_block_delta", {{"index", 0}, {"delta", delta}});
  sse.event("content_block_stop", {{"index", 0}});
  sse.event("message_delta", {{"delta", {{"stop_reason", message["stop_reason"]}, {"stop_sequence", nullptr}}},
                              {"usage", {{"output_tokens", message["usage"]["output_tokens"]}}}});
  sse.event("message_stop", json::object());
  return sse.out;
}

json anthropic_error(int status, const std::string& message) {
  std::string type = status == 429   ? "rate_limit_error"
                     : status == 401 ? "authentication_error"
                     : status == 529 ? "overloaded_error"
                                     : "api_error";
  return {{"type", "error"}, {"error", {{"type", type}, {"message", message}}}};
}

void handle_messages(const httplib::Request& req, httplib::Response& res) {
  log_request(req);
  json body = json::parse(req.body, nullptr, false);
  if (body.is_discarded()) body = json::object();
  bool is_main = has_tools(body);
  if (is_main && stall_or_fail(res, anthropic_error)) return;
  Turn t = turn_for(is_main ? anthropic_steps_taken(body) : 0, body);
  json block =
      is_main ? claude_block(t.step, body) : json{{"type", "text"}, {"text", state.script.value("side_text", "Fake")}};
  json message = anthropic_message(block, t);
  res.set_header("request-id", next_id("req_fake_"));
  if (body.value("stream", false))
    res.set_content(anthropic_stream(message), "text/event-stream");
  else
    res.set_content(message.dump(), "application/json");
}

void handle_count_tokens(const httplib::Request& req, httplib::Response& res) {
  log_request(req);
  res.set_content(json{{"input_tokens", 100}}.dump(), "application/json");
}

// ---- OpenAI Responses API ------------------------------------------------------------------

// The names of the tools a Responses request offers, with their kind (function / custom).
std::map<std::string, std::string> offered_tools(const json& body) {
  std::map<std::string, std::string> tools;
  for (const auto& tool : body.value("tools", json::array()))
    if (tool.contains("name")) tools[tool["name"]] = tool.value("type", "function");
  return tools;
}

std::string patch_lines(const std::string& text, char prefix) {
  std::string out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out += prefix + line + "\n";
  return out;
}

std::string apply_patch_text(const json& step) {
  std::string patch = "*** Begin Patch\n";
  if (step.contains("write")) {
    patch += "*** Add File: " + step["write"]["path"].get<std::string>() + "\n";
    patch += patch_lines(step["write"]["content"], '+');
  } else {
    patch += "*** Update File: " + step["edit"]["path"].get<std::string>() + "\n@@\n";
    patch += patch_lines(step["edit"]["old"], '-') + patch_lines(step["edit"]["new"], '+');
  }
  return patch + "*** End Patch\n";
}

std::string single_quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// The shell command for a step; write and edit go through the shell only when no apply_patch
// tool is offered (an unknown model name), as the heredoc form Codex intercepts and applies.
std::string step_command(const json& step) {
  if (step.contains("read")) return "cat " + single_quoted(step["read"]);
  if (step.contains("shell")) return step["shell"];
  return "apply_patch <<'PATCH'\n" + apply_patch_text(step) + "PATCH\n";
}

// The JSON in a tool output: all of it, or what follows Codex's "Wall time: ...\nOutput:\n"
// header (from its first line that starts with '{'); empty when there is none.
std::string json_in(const std::string& text) {
  if (!json::parse(text, nullptr, false).is_discarded()) return text;
  for (size_t at = text.find("\n{"); at != std::string::npos; at = text.find("\n{", at + 1)) {
    if (!json::parse(text.substr(at + 1), nullptr, false).is_discarded()) return text.substr(at + 1);
  }
  return "";
}

// The newest tool result in an OpenAI conversation (a function_call_output item), as JSON text.
// Codex gives an MCP tool's result as one string ("Wall time: ...\nOutput:\n" and the tool's
// text) or, for a failed call, as parts of which the last is the tool's text.
std::string last_openai_tool_result(const json& body) {
  std::string text;
  for (const auto& item : body.value("input", json::array())) {
    if (item.value("type", "") != "function_call_output" || !item.contains("output")) continue;
    const json& out = item["output"];
    if (out.is_string()) text = json_in(out.get<std::string>());
    if (!out.is_array()) continue;
    text.clear();
    for (const auto& part : out) {
      if (std::string t = json_in(part.value("text", "")); !t.empty()) text = t;
    }
  }
  return text;
}

// A `tool` step for Codex: a function call. Codex offers an MCP server's tools in a namespace
// tool ("mcp__polyphony", holding "spawn", ...), and takes a call with that namespace and the
// tool's own name; a script names the tool as Claude Code does ("mcp__polyphony__spawn").
json codex_tool_call(const json& step, const json& body, const std::map<std::string, std::string>& tools) {
  std::string name = step["tool"]["name"];
  json call{
      {"type", "function_call"},
      {"id", next_id("fc_fake_")},
      {"call_id", next_id("call_fake_")},
      {"arguments", with_results(step["tool"].value("input", json::object()), last_openai_tool_result(body)).dump()},
      {"status", "completed"}};
  const auto split = name.rfind("__");
  if (name.rfind("mcp__", 0) == 0 && split != std::string::npos && split > 5 && tools.count(name.substr(0, split)) &&
      tools.at(name.substr(0, split)) == "namespace") {
    call["namespace"] = name.substr(0, split);
    name = name.substr(split + 2);
  }
  call["name"] = name;
  return call;
}

// The output item (message, function_call or custom_tool_call) that carries a step to Codex.
json codex_item(const json& step, const json& body) {
  auto tools = offered_tools(body);
  if (step.contains("tool")) return codex_tool_call(step, body, tools);
  bool patch = step.contains("write") || step.contains("edit");
  if (patch && tools.count("apply_patch")) {
    if (tools["apply_patch"] == "custom")
      return {{"type", "custom_tool_call"}, {"id", next_id("ctc_fake_")},      {"call_id", next_id("call_fake_")},
              {"name", "apply_patch"},      {"input", apply_patch_text(step)}, {"status", "completed"}};
    return {{"type", "function_call"},
            {"id", next_id("fc_fake_")},
            {"call_id", next_id("call_fake_")},
            {"name", "apply_patch"},
            {"arguments", json{{"input", apply_patch_text(step)}}.dump()},
            {"status", "completed"}};
  }
  if (patch || step.contains("read") || step.contains("shell")) {
    std::string command = step_command(step);
    json args;
    std::string name;
    if (tools.count("exec_command")) {
      name = "exec_command";
      args = {{"cmd", command}};
    } else {
      name = tools.count("shell_command") ? "shell_command" : "shell";
      args = name == "shell" ? json{{"command", {"bash", "-lc", command}}} : json{{"command", command}};
    }
    return {{"type", "function_call"},  {"id", next_id("fc_fake_")}, {"call_id", next_id("call_fake_")}, {"name", name},
            {"arguments", args.dump()}, {"status", "completed"}};
  }
  return {
      {"type", "message"},
      {"id", next_id("msg_fake_")},
      {"role", "assistant"},
      {"status", "completed"},
      {"content", {{{"type", "output_text"}, {"text", step.value("final", "Done.")}, {"annotations", json::array()}}}}};
}

json openai_response(const json& item, const Turn& t, const std::string& status) {
  int in = t.usage.value("input_tokens", 0), out = t.usage.value("output_tokens", 0);
  return {{"id", next_id("resp_fake_")},
          {"object", "response"},
          {"created_at", std::time(nullptr)},
          {"status", status},
          {"model", t.model},
          {"output", item.is_null() ? json::array() : json::array({item})},
          {"usage",
           {{"input_tokens", in},
            {"input_tokens_details", {{"cached_tokens", 0}}},
            {"output_tokens", out},
            {"output_tokens_details", {{"reasoning_tokens", 0}}},
            {"total_tokens", in + out}}}};
}

std::string openai_stream(const json& item, const Turn& t) {
  Sse sse;
  json response = openai_response(nullptr, t, "in_progress");
  response.erase("usage");
  sse.event("response.created", {{"response", response}}, true);
  json opening = item;
  if (item["type"] == "message") opening["content"] = json::array();
  opening["status"] = "in_progress";
  sse.event("response.output_item.added", {{"output_index", 0}, {"item", opening}}, true);
  if (item["type"] == "message") {
    std::string text = item["content"][0]["text"];
    sse.event("response.output_text.delta",
              {{"item_id", item["id"]}, {"output_index", 0}, {"content_index", 0}, {"delta", text}}, true);
  }
  sse.event("response.output_item.done", {{"output_index", 0}, {"item", item}}, true);
  json done = openai_response(item, t, "completed");
  done["id"] = response["id"];
  sse.event("response.completed", {{"response", done}}, true);
  return sse.out;
}

json openai_error(int status, const std::string& message) {
  std::string code = status == 429 ? "rate_limit_exceeded" : status == 401 ? "invalid_api_key" : "server_error";
  return {{"error", {{"message", message}, {"type", code}, {"param", nullptr}, {"code", code}}}};
}

void handle_responses(const httplib::Request& req, httplib::Response& res) {
  log_request(req);
  json body = json::parse(req.body, nullptr, false);
  if (body.is_discarded()) body = json::object();
  bool is_main = has_tools(body);
  if (is_main && stall_or_fail(res, openai_error)) return;
  Turn t = turn_for(is_main ? openai_steps_taken(body) : 0, body);
  json item =
      is_main ? codex_item(t.step, body) : codex_item(json{{"final", state.script.value("side_text", "Fake")}}, body);
  res.set_header("x-request-id", next_id("req_fake_"));
  res.set_content(openai_stream(item, t), "text/event-stream");
}

void handle_models(const httplib::Request& req, httplib::Response& res) {
  log_request(req);
  std::string model = state.script.value("model", "fake-model");
  json entry = {{"id", model},
                {"object", "model"},
                {"type", "model"},
                {"display_name", model},
                {"created_at", "2025-01-01T00:00:00Z"}};
  res.set_content(json{{"object", "list"}, {"data", {entry}}, {"models", json::array()}, {"has_more", false}}.dump(),
                  "application/json");
}

// Anything else (probes, telemetry that slipped through) is logged and answered with {}.
void handle_other(const httplib::Request& req, httplib::Response& res) {
  log_request(req);
  res.set_content("{}", "application/json");
}

// ---- Main ----------------------------------------------------------------------------------

void add_routes(httplib::Server& server) {
  server.Post("/v1/messages", handle_messages);
  server.Post("/v1/messages/count_tokens", handle_count_tokens);
  server.Post("/v1/responses", handle_responses);
  server.Post("/responses", handle_responses);
  server.Get("/v1/models", handle_models);
  server.Get("/models", handle_models);
  for (const char* any : {".*"}) {
    server.Get(any, handle_other);
    server.Post(any, handle_other);
    server.Put(any, handle_other);
    server.Delete(any, handle_other);
    server.Patch(any, handle_other);
    server.Options(any, handle_other);
  }
}

void announce_port(int port, const std::string& port_file) {
  if (port_file.empty()) {
    std::cout << port << std::endl;
    return;
  }
  std::string tmp = port_file + ".tmp";
  std::ofstream(tmp) << port << "\n";
  std::rename(tmp.c_str(), port_file.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse_options(argc, argv);
  state.script = load_script(o.script_path);
  state.log_path = o.log_path;
  httplib::Server server;
  server.new_task_queue = [] { return new httplib::ThreadPool(32); };
  add_routes(server);
  int port = o.port == 0 ? server.bind_to_any_port(o.host) : o.port;
  if (o.port != 0 && !server.bind_to_port(o.host, o.port)) port = -1;
  if (port <= 0) {
    std::cerr << "fake_model_api: cannot listen on " << o.host << ":" << o.port << "\n";
    return 1;
  }
  announce_port(port, o.port_file);
  return server.listen_after_bind() ? 0 : 1;
}
