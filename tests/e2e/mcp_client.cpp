// A line-by-line JSON-RPC client over a child's pipes.
#include "mcp_client.h"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <thread>

extern char** environ;

namespace polyphony::testing {

using nlohmann::json;

McpClient::McpClient(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                     const std::filesystem::path& stderr_file) {
  int in[2];
  int out[2];
  REQUIRE(pipe2(in, O_CLOEXEC) == 0);
  REQUIRE(pipe2(out, O_CLOEXEC) == 0);
  std::map<std::string, std::string> all;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string kv(*e);
    const size_t eq = kv.find('=');
    if (eq != std::string::npos) all[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : env) all[k] = v;
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : all) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> c_argv;
  for (auto& a : args) c_argv.push_back(a.data());
  c_argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, stderr_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  const int rc = posix_spawn(&pid_, c_argv[0], &actions, nullptr, c_argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(in[0]);
  ::close(out[1]);
  to_server_ = in[1];
  from_server_ = out[0];
  REQUIRE(rc == 0);
  signal(SIGPIPE, SIG_IGN);  // a server that died shows as a failed write, not a dead test
}

McpClient::~McpClient() {
  if (pid_ > 0) close(std::chrono::seconds(10));
  if (from_server_ >= 0) ::close(from_server_);
}

void McpClient::send_line(const std::string& line) {
  const std::string data = line + "\n";
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(to_server_, data.data() + done, data.size() - done);
    REQUIRE(n > 0);
    done += static_cast<size_t>(n);
  }
}

void McpClient::notify(const std::string& method, const json& params) {
  send_line(json{{"jsonrpc", "2.0"}, {"method", method}, {"params", params}}.dump());
}

json McpClient::read(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (buffer_.find('\n') == std::string::npos) {
    using std::chrono::milliseconds;
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    INFO("waiting for a line from the MCP server; have: " << buffer_);
    REQUIRE(left.count() > 0);
    pollfd p{from_server_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char chunk[65536];
    const ssize_t n = ::read(from_server_, chunk, sizeof chunk);
    INFO("the MCP server closed its stdout");
    REQUIRE(n > 0);
    buffer_.append(chunk, static_cast<size_t>(n));
  }
  const size_t end = buffer_.find('\n');
  const std::string line = buffer_.substr(0, end);
  buffer_.erase(0, end + 1);
  json j = json::parse(line, nullptr, false);
  INFO(line);
  REQUIRE_FALSE(j.is_discarded());
  return j;
}

json McpClient::request(const std::string& method, const json& params, std::chrono::milliseconds timeout) {
  const int id = next_id_++;
  send_line(json{{"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", params}}.dump());
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    json j = read(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()));
    if (j.contains("id") && j["id"] == id) return j;
  }
}

json McpClient::call(const std::string& tool, const json& arguments, std::chrono::milliseconds timeout) {
  json r = request("tools/call", {{"name", tool}, {"arguments", arguments}}, timeout);
  INFO(r.dump());
  REQUIRE(r.contains("result"));
  return r["result"];
}

int McpClient::close(std::chrono::milliseconds timeout) {
  if (to_server_ >= 0) ::close(to_server_);
  to_server_ = -1;
  if (pid_ <= 0) return -1;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (waitpid(pid_, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      pid_ = -1;
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace polyphony::testing
