// Child processes through Boost.Process: always an argv vector, never a shell string, always a timeout.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace polyphony {

struct ProcessOptions {
  std::filesystem::path cwd;               // empty: inherit
  std::map<std::string, std::string> env;  // set on top of the inherited environment
  std::vector<std::string> unset_env;      // removed from the inherited environment
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
  std::string stdin_data;  // written to the child's stdin, then closed
  // When set, the child runs as this user (its supplementary groups dropped) instead of as
  // this process: for work in a directory another user owns, such as a user's own clone.
  struct User {
    unsigned uid = 0;
    unsigned gid = 0;
  };
  std::optional<User> run_as;
  // When set and it becomes true, the child is killed (checked every 100 ms): how a caller
  // that is shutting down stops a slow child before its timeout.
  const std::atomic<bool>* cancel = nullptr;
};

struct ProcessResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs argv[0] (searched on PATH when it has no '/') with the rest as arguments.
// Errors: code "not_found" when the program does not exist, "timeout" when it ran
// past options.timeout (it is killed), "cancelled" when options.cancel became true (it is
// killed), "process" when it could not be started.
// A non-zero exit is not an error: check exit_code.
Result<ProcessResult> run_process(const std::vector<std::string>& argv, const ProcessOptions& options = {});

// Like run_process, but a non-zero exit becomes an Error (code `error_code`) whose
// message carries the command and the tail of its stderr.
Result<ProcessResult> run_checked(const std::vector<std::string>& argv, const ProcessOptions& options = {},
                                  const std::string& error_code = "process");

// Full path of `program` found on PATH, or empty.
std::string find_program(const std::string& program);

}  // namespace polyphony
