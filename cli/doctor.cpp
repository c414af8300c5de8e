// The checks of `polyphony doctor` (doctor.h): one function a thing looked at, each returning
// findings; run_doctor strings them together.
#include "cli/doctor.h"

#include <signal.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <set>
#include <sstream>

#include "cli/cli.h"
#include "cli/client_connection.h"
#include "common/process.h"
#include "coordinator/coordinator.h"
#include "protocol/security.h"
#include "worker-agent/agents_lock.h"
#include "worker-agent/docker_client.h"
#include "worker-agent/image_builder.h"

namespace polyphony::cli {

namespace fs = std::filesystem;

namespace {

constexpr auto kProbeTimeout = std::chrono::seconds(60);

// Lists, in a container of the image, the agents its agents.lock says it holds ("holds NAME
// VERSION") and whether each command given as an argument is on PATH or an executable path
// ("found CMD" / "missing CMD"). Data only ever arrives as arguments.
constexpr const char* kProbeScript = R"sh(if [ -r /opt/polyphony/agents/agents.lock ]; then
  while read -r name package version rest; do
    case $name in ''|'#'*) ;; *) echo "holds $name $version" ;; esac
  done < /opt/polyphony/agents/agents.lock
fi
for c do
  case $c in
    */*) if [ -x "$c" ]; then echo "found $c"; else echo "missing $c"; fi ;;
    *) if command -v "$c" >/dev/null 2>&1; then echo "found $c"; else echo "missing $c"; fi ;;
  esac
done
)sh";

Finding ok(std::string check, std::string message, std::string where = {}) {
  return {std::move(check), Health::kOk, std::move(message), std::move(where)};
}
Finding skipped(std::string check, std::string message, std::string where = {}) {
  return {std::move(check), Health::kSkipped, std::move(message), std::move(where)};
}
Finding warning(std::string check, std::string message, std::string where = {}) {
  return {std::move(check), Health::kWarning, std::move(message), std::move(where)};
}
Finding problem(std::string check, std::string message, std::string where = {}) {
  return {std::move(check), Health::kProblem, std::move(message), std::move(where)};
}

std::string gib(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(bytes) / double(int64_t{1} << 30));
  return buf;
}

std::string seconds(int64_t ms) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(ms) / 1000.0);
  return buf;
}

std::string config_file(const Config& c) {
  return (c.home / "config.yaml").string();
}

// "file:line", or for a file that is missing (its built-in default is in use) the same words as
// the loaders' errors (common/yaml_reader.h).
std::string place(const fs::path& file, int line) {
  std::error_code ec;
  if (fs::exists(file, ec)) return file.string() + ":" + std::to_string(line);
  return file.string() + " (missing: built-in default, line " + std::to_string(line) + ")";
}

// Where the Docker socket choice came from, for the person reading.
std::string socket_source(const Config& c) {
  if (!c.docker_host.empty()) return "docker_host in " + config_file(c);
  if (const char* env = std::getenv("DOCKER_HOST"); env != nullptr && *env != '\0') return "$DOCKER_HOST";
  return "found by looking in the usual places";
}

// The engine, when one answers; else nullptr and a problem.
std::unique_ptr<DockerClient> check_engine(const Config& c, std::vector<Finding>& out) {
  auto host = resolve_docker_host(c.docker_host);
  if (!host.ok()) {
    out.push_back(problem("docker", host.error().message, host.error().where));
    return nullptr;
  }
  auto docker = make_docker_client(*host);
  auto version = docker->engine_version();
  if (!version.ok()) {
    out.push_back(problem(
        "docker", "no Docker engine answers at " + *host + " (" + socket_source(c) + "): " + version.error().message,
        *host));
    return nullptr;
  }
  out.push_back(ok("docker",
                   "Docker engine " + version->version + " (API " + version->api_version + ") answers at " + *host +
                       " (" + socket_source(c) + ")",
                   *host));
  return docker;
}

// What the probe container saw.
struct ImageContents {
  std::vector<std::string> holds;  // "claude 2.1.332", from the image's agents.lock
  std::set<std::string> found;
  std::set<std::string> missing;
};

constexpr const char* kProbeLabel = "polyphony.doctor";
constexpr const char* kProbePidLabel = "polyphony.doctor.pid";

// Probes whose doctor died before removing them (a serve killed at start): those of a process
// on this host that no longer exists. A live doctor's probe is never touched.
void reap_orphan_probes(DockerClient& docker) {
  auto probes = docker.list_containers({{kProbeLabel, "probe"}});
  if (!probes.ok()) return;
  for (const auto& p : *probes) {
    const auto it = p.labels.find(kProbePidLabel);
    const pid_t pid = it == p.labels.end() ? 0 : static_cast<pid_t>(std::atoi(it->second.c_str()));
    if (pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH) (void)docker.remove_container(p.id);
  }
}

Result<std::string> run_probe(DockerClient& docker, const Config& c, const std::vector<std::string>& commands) {
  reap_orphan_probes(docker);
  ContainerSpec spec;
  spec.image = c.container.image;
  spec.cmd = {"sh", "-c", kProbeScript, "polyphony-doctor"};
  spec.cmd.insert(spec.cmd.end(), commands.begin(), commands.end());
  spec.user = std::to_string(c.container.uid) + ":" + std::to_string(c.container.gid);
  spec.network_mode = "none";
  spec.labels = {{kProbeLabel, "probe"}, {kProbePidLabel, std::to_string(::getpid())}};
  auto id = docker.create_container(spec);
  if (!id.ok()) return id.error();
  std::string output;
  Status ran = docker.start_container(*id);
  if (ran.ok()) {
    auto code = docker.wait_container(*id, kProbeTimeout);
    if (code.ok()) {
      ran = docker.stream_logs(*id, false, [&](int, std::string_view data) {
        output.append(data);
        return true;
      });
    } else {
      ran = code.error();
    }
  }
  (void)docker.remove_container(*id);
  if (!ran.ok()) return ran.error();
  return output;
}

ImageContents parse_probe(const std::string& output) {
  ImageContents contents;
  std::istringstream in(output);
  std::string word;
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    fields >> word;
    std::string rest;
    std::getline(fields >> std::ws, rest);
    if (word == "holds") contents.holds.push_back(rest);
    if (word == "found") contents.found.insert(rest);
    if (word == "missing") contents.missing.insert(rest);
  }
  return contents;
}

// Whether the image's label is the one this build of polyphony makes for some selection of the
// pinned agents: the image is current.
bool image_is_current(const std::string& label) {
  auto lock = builtin_agents_lock();
  if (!lock.ok() || lock->size() > 12) return false;
  const size_t n = lock->size();
  for (size_t mask = 0; mask < (size_t{1} << n); ++mask) {
    std::vector<AgentPin> selected;
    for (size_t i = 0; i < n; ++i) {
      if (mask & (size_t{1} << i)) selected.push_back((*lock)[i]);
    }
    if (image_version(selected) == label) return true;
  }
  return false;
}

std::string joined(const std::vector<std::string>& items, const std::string& none) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out.empty() ? none : out;
}

// The image is present and current; what it holds, when the probe could look.
std::optional<ImageContents> check_image(DockerClient& docker, const Settings& s, std::vector<Finding>& out) {
  const Config& c = s.config;
  const std::string where = config_file(c) + " container.image";
  auto labels = docker.image_labels(c.container.image);
  if (!labels.ok() && labels.error().code == "not_found") {
    out.push_back(problem(
        "image",
        "the worker image " + c.container.image + " is missing on this engine; build it with: polyphony image build",
        where));
    return std::nullopt;
  }
  if (!labels.ok()) {
    out.push_back(problem(
        "image", "cannot inspect the worker image " + c.container.image + ": " + labels.error().message, where));
    return std::nullopt;
  }
  std::vector<std::string> commands;
  for (const auto& [name, agent] : s.agents) {
    if (!agent.command.empty()) commands.push_back(agent.command[0]);
  }
  auto probed = run_probe(docker, c, commands);
  if (!probed.ok()) {
    out.push_back(problem("image",
                          "the worker image " + c.container.image + " is present but a container of it " +
                              "cannot run: " + probed.error().message,
                          where));
    return std::nullopt;
  }
  ImageContents contents = parse_probe(*probed);
  const auto label = labels->find("polyphony.image.version");
  const std::string version = label == labels->end() ? "" : label->second;
  const std::string holds = "; agent CLIs it holds: " + joined(contents.holds, "none");
  if (version.empty()) {
    out.push_back(warning("image",
                          "the worker image " + c.container.image + " was not built by `polyphony image build` " +
                              "(no polyphony.image.version label)" + holds,
                          where));
  } else if (!image_is_current(version)) {
    out.push_back(warning("image",
                          "the worker image " + c.container.image + " (" + version +
                              ") was built by another polyphony version or agents.lock; `polyphony image "
                              "build` makes the current one" +
                              holds,
                          where));
  } else {
    out.push_back(ok(
        "image", "the worker image " + c.container.image + " is present and current (" + version + ")" + holds, where));
  }
  return contents;
}

// Each agent's CLI is in the image. A missing one is a warning: tasks routed to that agent
// fall back to the next of the chain (README "Routing").
void check_agents(const Settings& s, const ImageContents& contents, std::vector<Finding>& out) {
  for (const auto& [name, agent] : s.agents) {
    const std::string where = place(s.config.home / "agents.yaml", agent.line);
    if (agent.command.empty()) continue;
    const std::string& cmd = agent.command[0];
    if (contents.found.count(cmd)) {
      out.push_back(ok("agent " + name, "`" + cmd + "` is in the image " + s.config.container.image, where));
    } else {
      out.push_back(warning("agent " + name,
                            "`" + cmd + "` is not in the image " + s.config.container.image + ": tasks routed to " +
                                name + " fall back to the next agent of the " +
                                "chain; `polyphony image build --agents ...` installs the pinned "
                                "CLIs (docker/README.md says how to add another)",
                            where));
    }
  }
}

// The network the containers join: "" (the engine's default), bridge, host, none, a
// user-defined network, or container:<name|id>; it must exist on the engine, and the worker's
// allow-list must let it through.
void check_network(DockerClient& docker, const Config& c, std::vector<Finding>& out) {
  const std::string& network = c.container.network;
  const std::string where = config_file(c) + " container.network";
  if (network.empty()) {
    out.push_back(ok("network", "containers get the engine's default network", where));
    return;
  }
  if (!c.container.allowed_networks.empty() &&
      std::find(c.container.allowed_networks.begin(), c.container.allowed_networks.end(), network) ==
          c.container.allowed_networks.end()) {
    out.push_back(problem("network",
                          "network '" + network + "' is not in container.allowed_networks (" +
                              joined(c.container.allowed_networks, "") + "): the worker refuses every task",
                          where));
    return;
  }
  const std::string prefix = "container:";
  if (network.rfind(prefix, 0) == 0) {
    const std::string name = network.substr(prefix.size());
    auto pid = docker.container_pid(name);
    if (!pid.ok() && pid.error().code == "not_found") {
      out.push_back(problem(
          "network",
          "network '" + network + "': the engine has no container '" + name + "'; start it, or fix container.network",
          where));
    } else if (!pid.ok()) {
      out.push_back(problem("network", "network '" + network + "': " + pid.error().message, where));
    } else if (*pid == 0) {
      out.push_back(warning(
          "network",
          "network '" + network + "': container '" + name + "' exists but is not running; tasks fail until it runs",
          where));
    } else {
      out.push_back(ok("network", "containers share the network of the running container '" + name + "'", where));
    }
    return;
  }
  auto exists = docker.network_exists(network == "default" ? "bridge" : network);
  if (!exists.ok()) {
    out.push_back(problem("network", "cannot look up network '" + network + "': " + exists.error().message, where));
  } else if (!*exists) {
    out.push_back(problem("network",
                          "network '" + network +
                              "' not found on the engine: every task would fail to "
                              "start its container; fix container.network (bridge, none, host, "
                              "container:<name> or a network `docker network ls` lists) or create it "
                              "with `docker network create " +
                              network + "`",
                          where));
  } else {
    out.push_back(ok("network", "network '" + network + "' exists on the engine", where));
  }
}

// What an identity's pieces look like on this host, and the problems found on the way.
struct IdentityTally {
  std::string check;                   // "identity <name>"
  std::function<std::string(int)> at;  // its file's place of a line
  size_t problems = 0;
  size_t present = 0;                     // credentials found
  std::vector<std::string> alternatives;  // optional ones not found: variables or paths
};

void tally_env(const IdentityEnv& e, IdentityTally& t, std::vector<Finding>& out) {
  if (e.from_env.empty() && e.from_file.empty()) {
    ++t.present;  // a literal value
    return;
  }
  const char* v = e.from_env.empty() ? nullptr : std::getenv(e.from_env.c_str());
  const std::string source = e.from_env.empty() ? resolve_path(e.from_file, "/").string() : e.from_env;
  const bool found = e.from_env.empty() ? std::ifstream(source).good() : v != nullptr && *v != '\0';
  if (found) {
    ++t.present;
  } else if (e.optional) {
    t.alternatives.push_back(source);
  } else {
    ++t.problems;
    out.push_back(problem(t.check,
                          "env " + e.name + " comes from " +
                              (e.from_env.empty() ? source + ", which cannot be read"
                                                  : "the host variable " + source +
                                                        ", which is not set; export it before starting the "
                                                        "coordinator"),
                          t.at(e.line)));
  }
}

void tally_files_and_mounts(const Identity& id, IdentityTally& t, std::vector<Finding>& out) {
  std::error_code ec;
  for (const auto& f : id.files) {
    const fs::path host = resolve_path(f.host_path, "/");
    if (fs::is_regular_file(host, ec) && std::ifstream(host).good()) {
      ++t.present;
      continue;
    }
    ++t.problems;
    out.push_back(problem(t.check,
                          "copies " + host.string() + " into each agent run, but it is " +
                              (fs::exists(host, ec) ? "not a readable regular file" : "missing") + " on this host",
                          t.at(f.line)));
  }
  for (const auto& m : id.mounts) {
    const fs::path host = resolve_path(m.host_path, "/");
    if (fs::exists(host, ec)) {
      ++t.present;
      continue;
    }
    ++t.problems;
    out.push_back(problem(t.check, "mounts " + host.string() + ", which does not exist on this host", t.at(m.line)));
  }
}

// Each identity resolves here: its required variables set, its files and mounts there. One
// with only optional credentials, none of them set, is a warning: its agents are refused.
void check_identity(const Identity& id, const fs::path& file, const Settings& s, std::vector<Finding>& out) {
  IdentityTally t;
  t.check = "identity " + id.name;
  t.at = [&](int line) { return place(file, line); };
  for (const auto& e : id.env) tally_env(e, t, out);
  tally_files_and_mounts(id, t, out);
  if (t.problems > 0) return;
  if (t.present == 0 && !t.alternatives.empty()) {
    std::vector<std::string> users;
    for (const auto& [name, agent] : s.agents) {
      if (agent.identity == id.name) users.push_back(name);
    }
    std::string any;
    for (const auto& a : t.alternatives) any += (any.empty() ? "" : " or ") + a;
    out.push_back(warning(t.check,
                          "none of its credentials is set (set " + any + "); tasks for " + joined(users, "its agents") +
                              " are refused until one is",
                          t.at(id.line)));
    return;
  }
  out.push_back(
      ok(t.check, "resolves on this host (" + std::to_string(t.present) + " credential(s) present)", t.at(id.line)));
}

// Free space where workspaces go (or the nearest directory above it that exists).
void check_disk(const Config& c, const DoctorOptions& o, std::vector<Finding>& out) {
  fs::path dir = c.workspace_root;
  std::error_code ec;
  while (!dir.empty() && !fs::exists(dir, ec) && dir != dir.parent_path()) dir = dir.parent_path();
  struct statvfs st {};
  if (dir.empty() || ::statvfs(dir.c_str(), &st) != 0) {
    out.push_back(warning("disk", "cannot tell the free space of " + c.workspace_root.string(), "workspace_root"));
    return;
  }
  const int64_t free_bytes = static_cast<int64_t>(st.f_bavail) * static_cast<int64_t>(st.f_frsize);
  const std::string where = config_file(c) + " workspace_root";
  if (free_bytes < o.min_free_disk_bytes) {
    out.push_back(warning("disk",
                          "only " + gib(free_bytes) + " free in " + dir.string() + " (under " +
                              gib(o.min_free_disk_bytes) +
                              "): each task clones and builds there; free "
                              "some, or point workspace_root at a larger disk",
                          where));
  } else {
    out.push_back(ok("disk", gib(free_bytes) + " free in " + dir.string(), where));
  }
}

// The workers' clocks against the coordinator's, as a running serve measured them from their
// heartbeats.
void check_clocks(const Config& c, const DoctorOptions& o, std::vector<Finding>& out) {
  if (!serve_is_running(c.home)) {
    out.push_back(skipped("clock", "not measurable: no `polyphony serve` is running for " + c.home.string() +
                                       " (the coordinator measures its workers' clocks from their heartbeats)"));
    return;
  }
  const std::string endpoint = local_client_endpoint(c.home);
  zmq::context_t ctx;
  auto reply = request(ctx, endpoint, protocol::WorkersQuery{}, std::nullopt);
  const auto* table = reply.ok() ? std::get_if<protocol::WorkersReply>(&*reply) : nullptr;
  if (table == nullptr) {
    out.push_back(
        warning("clock",
                "not measurable: the running serve did not list its workers (" +
                    (reply.ok() ? "it answered with a " + protocol::type_name(*reply) : reply.error().message) + ")",
                endpoint));
    return;
  }
  if (table->workers.empty()) {
    out.push_back(skipped("clock", "not measurable: no worker has registered with the coordinator yet", endpoint));
  }
  for (const auto& w : table->workers) {
    const std::string check = "clock " + w.worker_id;
    if (!w.clock_known) {
      out.push_back(
          skipped(check, "not measurable: worker " + w.worker_id + " has sent no heartbeat carrying its " +
                             "clock (it is older than this polyphony, or has not been idle since it registered)"));
    } else if (std::llabs(w.clock_offset_ms) > o.max_clock_skew_ms) {
      out.push_back(warning(check, "worker " + w.worker_id + "'s clock is " + seconds(std::llabs(w.clock_offset_ms)) +
                                       (w.clock_offset_ms > 0 ? " ahead of" : " behind") + " the coordinator's: " +
                                       "timestamps in logs and commits disagree; run NTP on both hosts "
                                       "(timedatectl set-ntp true)"));
    } else {
      out.push_back(ok(check, "worker " + w.worker_id + "'s clock is within " +
                                  std::to_string(std::llabs(w.clock_offset_ms)) +
                                  " ms of the coordinator's (heartbeat transit included)"));
    }
  }
}

void check_worker_host(const Settings& s, std::vector<Finding>& out) {
  auto docker = check_engine(s.config, out);
  if (!docker) {
    out.push_back(skipped("image", "not checked: no Docker engine answers"));
    out.push_back(skipped("network", "not checked: no Docker engine answers"));
    return;
  }
  auto contents = check_image(*docker, s, out);
  if (contents)
    check_agents(s, *contents, out);
  else
    out.push_back(skipped("agents", "not checked: the image could not be looked into"));
  check_network(*docker, s.config, out);
}

// The first line of `text` that says something, trimmed.
std::string first_line(const std::string& text, const std::string& containing = "") {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    const auto b = line.find_first_not_of(" \t\r");
    if (b == std::string::npos || line.find(containing) == std::string::npos) continue;
    return line.substr(b, line.find_last_not_of(" \t\r") + 1 - b);
  }
  return {};
}

// "gh version 2.23.0 (2023-02-27 ...)" -> "2.23.0"; empty when it does not say.
std::string gh_version(const std::string& out) {
  const std::string prefix = "gh version ";
  const std::string line = first_line(out, prefix);
  if (line.rfind(prefix, 0) != 0) return {};
  return line.substr(prefix.size(), line.find(' ', prefix.size()) - prefix.size());
}

ProcessOptions gh_options(const GithubConfig& g) {
  ProcessOptions o;
  // Short: serve runs these beside its start and waits for them when it stops.
  o.timeout = std::chrono::milliseconds(std::min<int64_t>(g.gh_timeout_ms, 15000));
  o.env = {{"GH_HOST", g.host}, {"GH_PROMPT_DISABLED", "1"}, {"GH_NO_UPDATE_NOTIFIER", "1"}, {"NO_COLOR", "1"}};
  return o;
}

void check_gh_login(const GithubConfig& g, std::vector<Finding>& out) {
  // gh 2.x prints its status on stderr; it exits 0 only when a token works against the host.
  auto r = run_process({g.gh, "auth", "status", "--hostname", g.host}, gh_options(g));
  const std::string said = r.ok() ? first_line(r->err + "\n" + r->out, "Logged in to") : "";
  if (r.ok() && r->exit_code == 0) {
    out.push_back(ok("gh login", said.empty() ? "gh is logged in to " + g.host : said, "github.host"));
    return;
  }
  const std::string why = r.ok() ? first_line(r->err + "\n" + r->out, "X ") : r.error().to_string();
  const std::string token = g.host == "github.com" ? "GH_TOKEN" : "GH_ENTERPRISE_TOKEN";
  out.push_back(problem("gh login",
                        "gh is not logged in to " + g.host + ": run `gh auth login --hostname " + g.host + "` or set " +
                            token + (why.empty() ? "" : " (gh: " + why + ")"),
                        "github.host"));
}

}  // namespace

std::vector<Finding> check_github(const GithubConfig& g) {
  std::vector<Finding> out;
  auto r = run_process({g.gh, "--version"}, gh_options(g));
  if (!r.ok() || r->exit_code != 0) {
    out.push_back(problem("gh",
                          "gh does not run ('" + g.gh + "'" +
                              (r.ok() ? " exited " + std::to_string(r->exit_code) : ": " + r.error().message) +
                              "): install gh " + kGhSupported + " or set github.gh in config.yaml",
                          "github.gh"));
    return out;
  }
  const std::string version = gh_version(r->out);
  int major = 0;
  try {
    major = std::stoi(version);
  } catch (const std::exception&) {
  }
  if (major < 2) {
    out.push_back(warning("gh",
                          "gh " + (version.empty() ? "of unknown version" : version) + " is not a supported version (" +
                              kGhSupported + "): upgrade gh",
                          "github.gh"));
  } else {
    out.push_back(ok("gh", "gh " + version + " (" + g.gh + ")", "github.gh"));
  }
  check_gh_login(g, out);
  return out;
}

const char* health_name(Health health) {
  switch (health) {
    case Health::kOk:
      return "ok";
    case Health::kSkipped:
      return "skipped";
    case Health::kWarning:
      return "warning";
    case Health::kProblem:
      return "problem";
  }
  return "?";
}

namespace {

// The CURVE key files config.yaml names, read as the programs read them at start.
void check_keys(const Config& c, std::vector<Finding>& out) {
  if (!c.coordinator_security.curve() && !c.worker_security.curve()) return;
  const auto problems = protocol::check_key_files(c);
  for (const auto& e : problems) out.push_back(problem("keys", e.message, e.where));
  if (problems.empty()) out.push_back(ok("keys", "the key files exist, are private and match their public halves"));
}

}  // namespace

std::vector<Finding> run_doctor(const Settings& settings, const DoctorOptions& options) {
  std::vector<Finding> out;
  check_keys(settings.config, out);
  if (options.worker_host) check_worker_host(settings, out);
  const fs::path identities = settings.config.home / "identities.yaml";
  for (const auto& [name, identity] : settings.identities) check_identity(identity, identities, settings, out);
  if (options.worker_host) check_disk(settings.config, options, out);
  if (options.measure_clocks) check_clocks(settings.config, options, out);
  if (settings.config.github.enabled()) {
    for (auto& f : check_github(settings.config.github)) out.push_back(std::move(f));
  }
  return out;
}

bool has_problem(const std::vector<Finding>& findings) {
  return std::any_of(findings.begin(), findings.end(), [](const Finding& f) { return f.health == Health::kProblem; });
}

}  // namespace polyphony::cli
