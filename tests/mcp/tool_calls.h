// Polyphony's MCP tools driven in-process as an MCP client drives them over stdio: a server past
// the initialize request, and tools/call.
#pragma once

#include <catch2/catch.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "mcp/tools.h"

namespace polyphony::testing {

// A server of polyphony_tools(options) that has answered initialize.
inline std::unique_ptr<mcp::Server> server_for(const mcp::ToolOptions& options) {
  auto server = std::make_unique<mcp::Server>("polyphony", "0.1.0", mcp::polyphony_tools(options));
  REQUIRE(server->handle(nlohmann::json{{"jsonrpc", "2.0"},
                                        {"id", 1},
                                        {"method", "initialize"},
                                        {"params",
                                         {{"protocolVersion", "2025-11-25"},
                                          {"capabilities", nlohmann::json::object()},
                                          {"clientInfo", {{"name", "t"}, {"version", "1"}}}}}}
                             .dump()));
  return server;
}

// The result of a tools/call of `name` (content, structuredContent, isError).
inline nlohmann::json call(mcp::Server& server, const std::string& name, const nlohmann::json& arguments) {
  auto r = server.handle(nlohmann::json{
      {"jsonrpc", "2.0"}, {"id", 2}, {"method", "tools/call"}, {"params", {{"name", name}, {"arguments", arguments}}}}
                             .dump());
  REQUIRE(r);
  REQUIRE(r->contains("result"));
  return (*r)["result"];
}

}  // namespace polyphony::testing
