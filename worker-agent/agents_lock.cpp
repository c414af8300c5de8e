// Parses docker/agents.lock and selects agents from it for `polyphony image build --agents`.
#include "worker-agent/agents_lock.h"

#include <algorithm>
#include <regex>
#include <sstream>

#include "common/sha256.h"
#include "worker-agent/agents_lock_text.h"

namespace polyphony {

const char* const kAgentsLockName = "docker/agents.lock";
const char* const kAgentsLockText = detail::kAgentsLockText;

namespace {

const std::regex kNamePattern("[a-z][a-z0-9-]*");
// npm's rules for new package names: lower case, optionally scoped, URL-safe.
const std::regex kPackagePattern("(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*");
const std::regex kVersionPattern("[0-9]+\\.[0-9]+\\.[0-9]+(-[0-9A-Za-z.-]+)?(\\+[0-9A-Za-z.-]+)?");

std::vector<std::string> fields_of(const std::string& line) {
  std::istringstream in(line.substr(0, line.find('#')));
  std::vector<std::string> out;
  for (std::string f; in >> f;) out.push_back(f);
  return out;
}

// Why `path` is not a usable native-executable path, or "" when it is.
std::string executable_problem(const AgentPin& pin) {
  const std::string& path = pin.native_executable;
  if (path.front() == '/') return "must be relative to node_modules, not absolute";
  std::istringstream parts(path);
  for (std::string part; std::getline(parts, part, '/');) {
    if (part.empty() || part == "." || part == "..") return "must not contain empty, '.' or '..' parts";
  }
  std::string dir = pin.native_package_dir();
  if (!std::regex_match(dir, kPackagePattern) || dir.size() + 1 >= path.size()) {
    return "must name a file inside an npm package (\"@scope/pkg/path\" or \"pkg/path\")";
  }
  return "";
}

// Why the fields of one line are not a pin, or "" when they are.
std::string pin_problem(const std::vector<std::string>& f, const AgentPin& pin) {
  if (f.size() != 4) {
    return "expected 4 fields (name npm-package version native-executable), found " + std::to_string(f.size());
  }
  if (!std::regex_match(pin.name, kNamePattern) || pin.name == "all" || pin.name == "none") {
    return "agent name '" + pin.name + "' must match [a-z][a-z0-9-]* and not be 'all' or 'none'";
  }
  if (!std::regex_match(pin.package, kPackagePattern)) {
    return "'" + pin.package + "' is not an npm package name";
  }
  if (!std::regex_match(pin.version, kVersionPattern)) {
    return "version '" + pin.version + "' of " + pin.package +
           " must be exact (such as 1.2.3 or 1.2.3-rc.1), not a range or tag";
  }
  std::string problem = executable_problem(pin);
  return problem.empty() ? "" : "native executable '" + pin.native_executable + "' " + problem;
}

}  // namespace

std::string AgentPin::canonical() const {
  return name + " " + package + " " + version + " " + native_executable;
}

std::string AgentPin::native_package_dir() const {
  size_t slash = native_executable.find('/');
  if (!native_executable.empty() && native_executable[0] == '@' && slash != std::string::npos) {
    slash = native_executable.find('/', slash + 1);
  }
  return native_executable.substr(0, slash);
}

Result<std::vector<AgentPin>> parse_agents_lock(const std::string& text, const std::string& source) {
  std::vector<AgentPin> pins;
  std::istringstream in(text);
  int number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    auto f = fields_of(line);
    if (f.empty()) continue;
    AgentPin pin;
    if (f.size() == 4) pin = AgentPin{f[0], f[1], f[2], f[3]};
    std::string where = source + ":" + std::to_string(number);
    if (auto problem = pin_problem(f, pin); !problem.empty()) return make_error("config", problem, where);
    auto same = std::find_if(pins.begin(), pins.end(), [&](const AgentPin& p) { return p.name == pin.name; });
    if (same != pins.end()) return make_error("config", "agent '" + pin.name + "' is pinned twice", where);
    pins.push_back(pin);
  }
  return pins;
}

Result<std::vector<AgentPin>> builtin_agents_lock() {
  return parse_agents_lock(kAgentsLockText, kAgentsLockName);
}

Result<std::vector<AgentPin>> select_agents(const std::vector<AgentPin>& lock, const std::string& spec,
                                            const std::string& flag) {
  if (spec == "all") return lock;
  if (spec == "none") return std::vector<AgentPin>{};
  std::string known;
  for (const auto& p : lock) known += (known.empty() ? "" : ", ") + p.name;
  std::vector<std::string> names;
  std::istringstream in(spec);
  for (std::string name; std::getline(in, name, ',');) {
    auto first = name.find_first_not_of(' ');
    name = first == std::string::npos ? "" : name.substr(first, name.find_last_not_of(' ') - first + 1);
    auto pin = std::find_if(lock.begin(), lock.end(), [&](const AgentPin& p) { return p.name == name; });
    if (name.empty() || pin == lock.end()) {
      return make_error("usage",
                        (name.empty() ? std::string("an empty agent name") : "unknown agent '" + name + "'") + " in " +
                            flag + " " + spec + "; " + kAgentsLockName + " pins: " + (known.empty() ? "none" : known) +
                            " (or give all, or none)",
                        flag);
    }
    names.push_back(name);
  }
  if (names.empty()) {
    return make_error("usage", flag + " needs all, none, or agent names such as claude,codex", flag);
  }
  std::vector<AgentPin> out;
  for (const auto& p : lock) {
    if (std::find(names.begin(), names.end(), p.name) != names.end()) out.push_back(p);
  }
  return out;
}

std::string agents_digest(const std::vector<AgentPin>& selected) {
  std::string lines;
  for (const auto& p : selected) lines += p.canonical() + "\n";
  return sha256_hex(lines).substr(0, 12);
}

std::string describe_agents(const std::vector<AgentPin>& selected) {
  if (selected.empty()) return "no agent CLIs";
  std::string out;
  for (const auto& p : selected) out += (out.empty() ? "" : ", ") + p.name + " " + p.version;
  return out;
}

}  // namespace polyphony
