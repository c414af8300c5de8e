// An MCP client for tests: runs `polyphony mcp` (or any stdio MCP server) with pipes on its
// stdin and stdout and speaks JSON-RPC to it a line at a time, every read with a deadline.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace polyphony::testing {

class McpClient {
 public:
  // Starts argv with `env` over this process's environment; its stderr goes to `stderr_file`.
  McpClient(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
            const std::filesystem::path& stderr_file);
  ~McpClient();
  McpClient(const McpClient&) = delete;
  McpClient& operator=(const McpClient&) = delete;

  // Writes one line (a newline is added).
  void send_line(const std::string& line);
  void notify(const std::string& method, const nlohmann::json& params = nlohmann::json::object());
  // The next line the server writes, parsed; REQUIREs one within `timeout`.
  nlohmann::json read(std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // Sends a request with a fresh id and returns the response to it.
  nlohmann::json request(const std::string& method, const nlohmann::json& params,
                         std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // tools/call; returns the call's result (content, structuredContent, isError).
  nlohmann::json call(const std::string& tool, const nlohmann::json& arguments,
                      std::chrono::milliseconds timeout = std::chrono::seconds(60));
  // Closes the server's stdin and waits for it to exit; returns its exit code (-1: killed).
  int close(std::chrono::milliseconds timeout = std::chrono::seconds(30));

 private:
  pid_t pid_ = -1;
  int to_server_ = -1;
  int from_server_ = -1;
  std::string buffer_;
  int next_id_ = 100;
};

}  // namespace polyphony::testing
