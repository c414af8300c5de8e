// docker/agents.lock: the agent CLIs the worker image carries, pinned to exact npm versions.
// Pure: parsing and selection take text and return values; no I/O.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"

namespace polyphony {

// One line of the lock file.
struct AgentPin {
  std::string name;               // the command on PATH in the image: "claude", "codex"
  std::string package;            // npm package: "@anthropic-ai/claude-code"
  std::string version;            // exact version: "2.1.332"
  std::string native_executable;  // under node_modules: "@anthropic-ai/claude-code-linux-x64/claude"

  // "name package version native-executable": the line as it enters the image version.
  std::string canonical() const;
  // The npm package directory holding native_executable ("@scope/pkg" or "pkg"), which the
  // image gets whole.
  std::string native_package_dir() const;

  bool operator==(const AgentPin&) const = default;
};

// The lock file compiled into this program from docker/agents.lock; named so in errors.
extern const char* const kAgentsLockName;
extern const char* const kAgentsLockText;

// Parses lock text: one agent a line ("name npm-package version native-executable"), '#'
// starts a comment, blank lines are skipped. Error "config" with where = "<source>:<line>" for
// a line without exactly four fields, a name that is not [a-z][a-z0-9-]* (or is "all" or
// "none"), an invalid npm package name, a version that is not exact (1.2.3, 1.2.3-rc.1), an
// executable path that is absolute, climbs with "..", or lies outside its package, or a name
// given twice.
Result<std::vector<AgentPin>> parse_agents_lock(const std::string& text, const std::string& source);

// kAgentsLockText parsed; errors as parse_agents_lock (a test keeps the shipped file valid).
Result<std::vector<AgentPin>> builtin_agents_lock();

// The agents `spec` selects from `lock`, in lock order: "all" (every one), "none" (empty), or a
// comma-separated list of names ("claude,codex"; spaces around names allowed). Error "usage"
// naming `flag` for an empty or unknown name, with the names the lock pins.
Result<std::vector<AgentPin>> select_agents(const std::vector<AgentPin>& lock, const std::string& spec,
                                            const std::string& flag = "--agents");

// 12 hex digits of the sha256 of the selected pins' canonical lines, each ending in '\n', in
// lock order; what `awk '!/^[[:space:]]*(#|$)/ {print $1, $2, $3, $4}' agents.lock |
// sha256sum | cut -c1-12` prints for the whole lock. Changes with any selected pin and with
// the selection; comments and spacing in the file do not change it.
std::string agents_digest(const std::vector<AgentPin>& selected);

// "claude 2.1.332, codex 0.171.0", or "no agent CLIs".
std::string describe_agents(const std::vector<AgentPin>& selected);

}  // namespace polyphony
