// Shared helpers for tests: temporary directories, real bare repositories, polling with deadlines.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace polyphony::testing {

// A fresh directory under $TMPDIR, removed (recursively) on destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "polyphony-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& rel) const { return path_ / rel; }

 private:
  std::filesystem::path path_;
};

// Runs git with argv in `cwd`; throws std::runtime_error (with stderr) on failure. Returns stdout.
std::string git(const std::filesystem::path& cwd, const std::vector<std::string>& args);

// `s` without its trailing newlines, carriage returns and spaces (e.g. git's one-line output).
std::string trim(std::string s);

// Creates a bare repository at `bare` whose branch `branch` holds `files` (path -> content) in
// one commit. Returns the commit id.
std::string make_bare_repo(const std::filesystem::path& bare, const std::map<std::string, std::string>& files,
                           const std::string& branch = "main");

// Adds one commit with `files` to `branch` of the bare repo (through a scratch clone).
std::string commit_to_bare(const std::filesystem::path& bare, const std::map<std::string, std::string>& files,
                           const std::string& message, const std::string& branch = "main");

// Polls `condition` every 20 ms until it is true or `timeout` passes; returns its last value.
bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout = std::chrono::seconds(30));

// A program running in the background for the length of a test (e.g. `polyphony serve`).
// stop() sends SIGTERM and waits; the destructor stops it if still running (SIGKILL after 10 s).
class BackgroundProcess {
 public:
  BackgroundProcess(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                    const std::filesystem::path& log_file);
  ~BackgroundProcess();
  BackgroundProcess(const BackgroundProcess&) = delete;
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;
  // Returns the exit code.
  int stop();
  void kill9();
  bool running();
  int pid() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A TCP port on 127.0.0.1 that was free a moment ago.
int free_loopback_port();

// Writes a file, creating parent directories.
void write_file(const std::filesystem::path& path, const std::string& content);
std::string read_file(const std::filesystem::path& path);

// The Docker socket tests use: $POLYPHONY_TEST_DOCKER_HOST, else resolve_docker_host("").
// Empty when none exists.
std::string test_docker_host();

}  // namespace polyphony::testing
