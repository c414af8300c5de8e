// Loading and validating config.yaml, identities.yaml, agents.yaml and routing.yaml.
#include "common/config.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "common/config_security.h"
#include "common/endpoint_policy.h"
#include "common/yaml_reader.h"

namespace polyphony {

namespace fs = std::filesystem;

fs::path polyphony_home() {
  if (const char* env = std::getenv("POLYPHONY_HOME"); env != nullptr && *env != '\0') return fs::path(env);
  const char* home = std::getenv("HOME");
  return fs::path(home != nullptr && *home != '\0' ? home : "/root") / ".polyphony";
}

fs::path resolve_path(const std::string& text, const fs::path& base) {
  if (text == "~" || text.rfind("~/", 0) == 0) {
    const char* home = std::getenv("HOME");
    fs::path h = home != nullptr ? home : "/root";
    return text.size() <= 2 ? h : h / text.substr(2);
  }
  fs::path p(text);
  return p.is_absolute() ? p : base / p;
}

std::optional<int64_t> parse_bytes(const std::string& text) {
  if (text.empty()) return std::nullopt;
  size_t used = 0;
  long long n = 0;
  try {
    n = std::stoll(text, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  if (n < 0) return std::nullopt;
  std::string unit = text.substr(used);
  for (auto& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (unit == "" || unit == "b") return n;
  if (unit == "k" || unit == "kb" || unit == "kib") return n << 10;
  if (unit == "m" || unit == "mb" || unit == "mib") return n << 20;
  if (unit == "g" || unit == "gb" || unit == "gib") return n << 30;
  return std::nullopt;
}

const RepoConfig* find_repo(const Config& config, const std::string& repo) {
  if (auto it = config.repos.find(repo); it != config.repos.end()) return &it->second;
  for (const auto& [name, rc] : config.repos) {
    if (rc.url == repo) return &rc;
  }
  return nullptr;
}

namespace {

// A reader of `file`, or of its built-in default text when it is missing.
YamlReader reader_of(const fs::path& file) {
  std::error_code ec;
  return fs::exists(file, ec) ? YamlReader(file.string()) : YamlReader::built_in_default(file.string());
}

// The parsed file, or the parsed default text `polyphony init` would write when it is missing.
Result<YAML::Node> load_or_default(const YamlReader& y, const fs::path& file) {
  if (y.is_built_in_default()) return y.load_string(default_config_files()[file.filename().string()]);
  return y.load();
}

// Reads an optional field into `out` with a typed reader; absent keys keep the default.
template <class T, class F>
Status read_opt(const YAML::Node& map, const char* key, T& out, F&& reader) {
  const YAML::Node node = map[key];
  if (!node.IsDefined() || node.IsNull()) return {};
  auto v = reader(node, std::string(key));
  if (!v.ok()) return v.error();
  out = static_cast<T>(*v);
  return {};
}

// A size key ("10g", "512m", a number of bytes) of `container:`.
Status read_size(const YamlReader& y, const YAML::Node& node, const char* key, int64_t& out) {
  if (!node[key].IsDefined() || node[key].IsNull()) return {};
  auto text = y.as_string(node[key], std::string("container.") + key);
  if (!text.ok()) return text.error();
  auto bytes = parse_bytes(*text);
  if (!bytes)
    return y.error(node[key],
                   std::string("container.") + key + " must be a size like 10g or 512m, got '" + *text + "'");
  out = *bytes;
  return {};
}

Status read_list(const YamlReader& y, const YAML::Node& node, const char* key, std::vector<std::string>& out) {
  if (!node[key].IsDefined() || node[key].IsNull()) return {};
  auto list = y.as_string_list(node[key], std::string("container.") + key);
  if (!list.ok()) return list.error();
  out = *list;
  return {};
}

// The limits and the allow-list the worker imposes on its containers.
Status read_lockdown(const YamlReader& y, const YAML::Node& node, ContainerConfig& c) {
  if (node["pids_limit"].IsDefined() && !node["pids_limit"].IsNull()) {
    auto n = y.as_int(node["pids_limit"], "container.pids_limit");
    if (!n.ok()) return n.error();
    if (*n < 0) return y.error(node["pids_limit"], "container.pids_limit must be 0 (no limit) or more");
    c.pids_limit = *n;
  }
  POLY_TRY(read_size(y, node, "workspace_limit", c.workspace_limit_bytes));
  POLY_TRY(read_size(y, node, "output_limit", c.output_limit_bytes));
  if (node["read_only_root"].IsDefined() && !node["read_only_root"].IsNull()) {
    auto b = y.as_bool(node["read_only_root"], "container.read_only_root");
    if (!b.ok()) return b.error();
    c.read_only_root = *b;
  }
  POLY_TRY(read_list(y, node, "cap_add", c.cap_add));
  for (const auto& cap : c.cap_add) {
    const bool ok = !cap.empty() && std::all_of(cap.begin(), cap.end(), [](char ch) {
      return std::isupper(static_cast<unsigned char>(ch)) || ch == '_';
    });
    if (!ok)
      return y.error(node["cap_add"],
                     "container.cap_add takes capability names such as NET_BIND_SERVICE, got '" + cap + "'");
  }
  POLY_TRY(read_list(y, node, "allowed_images", c.allowed_images));
  POLY_TRY(read_list(y, node, "allowed_networks", c.allowed_networks));
  POLY_TRY(read_list(y, node, "allowed_mount_roots", c.allowed_mount_roots));
  for (const auto& root : c.allowed_mount_roots) {
    if (root.empty() || root[0] != '/') {
      return y.error(node["allowed_mount_roots"],
                     "container.allowed_mount_roots takes absolute paths, got '" + root + "'");
    }
  }
  return {};
}

Status read_container(const YamlReader& y, const YAML::Node& node, ContainerConfig& c) {
  POLY_TRY(y.check_keys(node,
                        {"image", "network", "cpus", "memory", "user", "run_timeout_s", "verify_timeout_s",
                         "stall_timeout_s", "warm", "pids_limit", "workspace_limit", "output_limit", "read_only_root",
                         "cap_add", "allowed_images", "allowed_networks", "allowed_mount_roots"},
                        "container"));
  POLY_TRY(read_lockdown(y, node, c));
  auto str = [&](const YAML::Node& n, const std::string& w) { return y.as_string(n, "container." + w); };
  auto num = [&](const YAML::Node& n, const std::string& w) { return y.as_int(n, "container." + w); };
  POLY_TRY(read_opt(node, "image", c.image, str));
  POLY_TRY(read_opt(node, "network", c.network, str));
  POLY_TRY(read_opt(node, "cpus", c.cpus,
                    [&](const YAML::Node& n, const std::string& w) { return y.as_double(n, "container." + w); }));
  POLY_TRY(read_opt(node, "run_timeout_s", c.run_timeout_s, num));
  POLY_TRY(read_opt(node, "verify_timeout_s", c.verify_timeout_s, num));
  POLY_TRY(read_opt(node, "stall_timeout_s", c.stall_timeout_s, num));
  POLY_TRY(read_opt(node, "warm", c.warm, num));
  if (node["warm"].IsDefined() && (c.warm < 0 || c.warm > 256)) {
    return y.error(node["warm"], "container.warm must be between 0 and 256");
  }
  if (node["memory"].IsDefined() && !node["memory"].IsNull()) {
    auto text = y.as_string(node["memory"], "container.memory");
    if (!text.ok()) return text.error();
    auto bytes = parse_bytes(*text);
    if (!bytes) return y.error(node["memory"], "container.memory must be a size like 4g or 512m, got '" + *text + "'");
    c.memory_bytes = *bytes;
  }
  if (node["user"].IsDefined() && !node["user"].IsNull()) {
    auto text = y.as_string(node["user"], "container.user");
    if (!text.ok()) return text.error();
    int uid = -1, gid = -1;
    char extra = 0;
    if (std::sscanf(text->c_str(), "%d:%d%c", &uid, &gid, &extra) != 2 || uid <= 0 || gid < 0) {
      return y.error(node["user"],
                     "container.user must be a non-root uid:gid such as \"1000:1000\", got '" + *text + "'");
    }
    c.uid = uid;
    c.gid = gid;
  }
  if (c.cpus < 0) return y.error(node["cpus"], "container.cpus must not be negative");
  if (c.network.empty())
    return y.error(node["network"], "container.network must not be empty (bridge, none, host, or a network name)");
  return {};
}

Result<Budget> read_budget(const YamlReader& y, const YAML::Node& node, const std::string& what) {
  POLY_TRY(y.check_keys(node, {"max_turns", "max_tokens", "max_wall_s"}, what));
  Budget b;
  b.line = y.line(node);
  auto num = [&](const YAML::Node& n, const std::string& w) { return y.as_int(n, what + "." + w); };
  POLY_TRY(read_opt(node, "max_turns", b.max_turns, num));
  POLY_TRY(read_opt(node, "max_tokens", b.max_tokens, num));
  POLY_TRY(read_opt(node, "max_wall_s", b.max_wall_s, num));
  for (auto [key, v] : {std::pair{"max_turns", static_cast<int64_t>(b.max_turns)},
                        {"max_tokens", b.max_tokens},
                        {"max_wall_s", b.max_wall_s}}) {
    if (v < 0) return y.error(node[key], what + "." + key + " must be 0 (no limit) or more");
  }
  return b;
}

Status read_repos(const YamlReader& y, const YAML::Node& node, Config& c) {
  POLY_TRY(y.expect_map(node, "repos"));
  for (const auto& kv : node) {
    const std::string name = kv.first.Scalar();
    const std::string what = "repos." + name;
    if (name == "allowed_roots") {
      auto roots = y.as_string_list(kv.second, what);
      if (!roots.ok()) return roots.error();
      for (const auto& r : *roots) {
        if (r.empty()) return y.error(kv.second, what + " takes directories, got an empty one");
        c.repo_allowed_roots.push_back(resolve_path(r, c.home));
      }
      continue;
    }
    POLY_TRY(y.check_keys(kv.second, {"url", "base_branch", "verify"}, what));
    RepoConfig rc;
    rc.name = name;
    rc.line = y.line(kv.first);
    auto str = [&](const YAML::Node& n, const std::string& w) { return y.as_string(n, what + "." + w); };
    POLY_TRY(read_opt(kv.second, "url", rc.url, str));
    POLY_TRY(read_opt(kv.second, "base_branch", rc.base_branch, str));
    POLY_TRY(read_opt(kv.second, "verify", rc.verify, str));
    if (rc.url.empty()) return y.error(kv.first, what + " needs a url (a local path or a git URL)");
    if (rc.url.find("://") == std::string::npos && rc.url.find('@') == std::string::npos) {
      rc.url = resolve_path(rc.url, c.home).string();
    }
    c.repos[name] = rc;
  }
  return {};
}

// "owner/name": both parts non-empty, from GitHub's characters.
bool is_github_repo(const std::string& s) {
  const auto slash = s.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == s.size() || s.find('/', slash + 1) != std::string::npos)
    return false;
  return std::all_of(s.begin(), s.end(), [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.' || ch == '/';
  });
}

Status read_github(const YamlReader& y, const YAML::Node& node, Config& c) {
  POLY_TRY(
      y.check_keys(node,
                   {"repo", "remote", "base_branch", "label", "claimed_label", "filter_labels", "type_label_prefix",
                    "risk_label_prefix", "poll_interval_ms", "auto_merge", "gh", "gh_timeout_ms", "host"},
                   "github"));
  GithubConfig& g = c.github;
  g.line = y.line(node);
  auto str = [&](const YAML::Node& n, const std::string& w) { return y.as_string(n, "github." + w); };
  auto num = [&](const YAML::Node& n, const std::string& w) { return y.as_int(n, "github." + w); };
  for (auto [key, field] : {std::pair{"repo", &g.repo},
                            {"remote", &g.remote},
                            {"base_branch", &g.base_branch},
                            {"label", &g.label},
                            {"claimed_label", &g.claimed_label},
                            {"type_label_prefix", &g.type_label_prefix},
                            {"risk_label_prefix", &g.risk_label_prefix},
                            {"auto_merge", &g.auto_merge},
                            {"gh", &g.gh},
                            {"host", &g.host}}) {
    POLY_TRY(read_opt(node, key, *field, str));
  }
  POLY_TRY(read_opt(node, "poll_interval_ms", g.poll_interval_ms, num));
  POLY_TRY(read_opt(node, "gh_timeout_ms", g.gh_timeout_ms, num));
  if (node["filter_labels"].IsDefined() && !node["filter_labels"].IsNull()) {
    auto labels = y.as_string_list(node["filter_labels"], "github.filter_labels");
    if (!labels.ok()) return labels.error();
    g.filter_labels = *labels;
  }
  if (!is_github_repo(g.repo)) {
    return y.error(node["repo"].IsDefined() ? node["repo"] : node,
                   "github.repo must be owner/name, got '" + g.repo + "'");
  }
  if (g.label.empty()) return y.error(node["label"], "github.label must not be empty");
  if (g.claimed_label.empty() || g.claimed_label == g.label) {
    return y.error(node["claimed_label"], "github.claimed_label must be non-empty and differ from github.label");
  }
  if (g.poll_interval_ms < 10) return y.error(node["poll_interval_ms"], "github.poll_interval_ms must be at least 10");
  if (g.gh_timeout_ms < 100) return y.error(node["gh_timeout_ms"], "github.gh_timeout_ms must be at least 100");
  if (!g.auto_merge.empty() && g.auto_merge != "merge" && g.auto_merge != "squash" && g.auto_merge != "rebase") {
    return y.error(node["auto_merge"],
                   "github.auto_merge must be merge, squash or rebase (or absent), got '" + g.auto_merge + "'");
  }
  if (g.gh.empty()) return y.error(node["gh"], "github.gh must name the gh program");
  if (g.host.empty() || g.host.find("://") != std::string::npos || g.host.find('/') != std::string::npos) {
    return y.error(node["host"],
                   "github.host must be a host name such as github.com or ghe.example.com[:port] "
                   "(no scheme, no path), got '" +
                       g.host + "'");
  }
  if (g.remote.empty()) g.remote = "https://" + g.host + "/" + g.repo + ".git";
  if (!c.repos.count(g.remote) && g.remote.find("://") == std::string::npos &&
      g.remote.find('@') == std::string::npos) {
    g.remote = resolve_path(g.remote, c.home).string();
  }
  return {};
}

// coordinator.http_listen and http_token_file: "host:port" with a port, or empty (off); an
// address other than loopback only with a token file.
Status read_http(const YamlReader& y, const YAML::Node& node, Config& c) {
  auto str = [&](const YAML::Node& n, const std::string& w) { return y.as_string(n, "coordinator." + w); };
  POLY_TRY(read_opt(node, "http_listen", c.http_listen, str));
  std::string token_file;
  POLY_TRY(read_opt(node, "http_token_file", token_file, str));
  if (!token_file.empty()) c.http_token_file = resolve_path(token_file, c.home);
  if (c.http_listen.empty()) return {};
  const auto split = parse_http_listen(c.http_listen);
  if (!split) {
    return y.error(node["http_listen"],
                   "coordinator.http_listen must be HOST:PORT (e.g. 127.0.0.1:7780, port 0-65535) "
                   "or empty to turn the dashboard off, got '" +
                       c.http_listen + "'");
  }
  if (!is_loopback_host(split->first) && c.http_token_file.empty()) {
    return y.error(node["http_listen"],
                   "coordinator.http_listen " + c.http_listen +
                       " is not a loopback address: set "
                       "coordinator.http_token_file too (make one with `polyphony keys gen --http`)");
  }
  return {};
}

Status read_coordinator(const YamlReader& y, const YAML::Node& node, Config& c) {
  POLY_TRY(y.check_keys(node,
                        {"embedded_worker", "worker_endpoint", "client_endpoint", "heartbeat_interval_ms",
                         "heartbeat_liveness", "secret_key_file", "public_key_file", "allowed_workers_dir",
                         "allowed_worker_keys", "allowed_clients_dir", "allowed_client_keys", "insecure",
                         "mirror_timeout_s", "http_listen", "http_token_file", "lost_worker_expiry_ms"},
                        "coordinator"));
  POLY_TRY(detail::read_coordinator_security(y, node, c.home, c.coordinator_security));
  auto str = [&](const YAML::Node& n, const std::string& w) { return y.as_string(n, "coordinator." + w); };
  auto num = [&](const YAML::Node& n, const std::string& w) { return y.as_int(n, "coordinator." + w); };
  POLY_TRY(read_opt(node, "embedded_worker", c.embedded_worker,
                    [&](const YAML::Node& n, const std::string& w) { return y.as_bool(n, "coordinator." + w); }));
  POLY_TRY(read_opt(node, "worker_endpoint", c.worker_endpoint, str));
  POLY_TRY(read_opt(node, "client_endpoint", c.client_endpoint, str));
  POLY_TRY(read_opt(node, "heartbeat_interval_ms", c.heartbeat_interval_ms, num));
  POLY_TRY(read_opt(node, "heartbeat_liveness", c.heartbeat_liveness, num));
  if (c.heartbeat_interval_ms < 10)
    return y.error(node["heartbeat_interval_ms"], "coordinator.heartbeat_interval_ms must be at least 10");
  if (c.heartbeat_liveness < 1)
    return y.error(node["heartbeat_liveness"], "coordinator.heartbeat_liveness must be at least 1");
  POLY_TRY(read_opt(node, "lost_worker_expiry_ms", c.lost_worker_expiry_ms, num));
  if (c.lost_worker_expiry_ms < 0) {
    return y.error(node["lost_worker_expiry_ms"], "coordinator.lost_worker_expiry_ms must be 0 (never) or more");
  }
  POLY_TRY(read_opt(node, "mirror_timeout_s", c.mirror_timeout_s, num));
  if (c.mirror_timeout_s < 1) {
    return y.error(node["mirror_timeout_s"], "coordinator.mirror_timeout_s must be at least 1");
  }
  POLY_TRY(read_http(y, node, c));
  return detail::check_coordinator_transport(y, node, c);
}

Status read_worker(const YamlReader& y, const YAML::Node& node, Config& c) {
  POLY_TRY(y.check_keys(node,
                        {"coordinator", "capacity", "labels", "secret_key_file", "public_key_file",
                         "coordinator_public_key", "coordinator_public_key_file", "insecure"},
                        "worker"));
  POLY_TRY(detail::read_worker_security(y, node, c.home, c.worker_security));
  if (node["coordinator"].IsDefined()) c.worker_security.where["coordinator"] = y.where(node["coordinator"]);
  POLY_TRY(read_opt(node, "coordinator", c.coordinator_endpoint,
                    [&](const YAML::Node& n, const std::string& w) { return y.as_string(n, "worker." + w); }));
  POLY_TRY(read_opt(node, "capacity", c.worker_capacity,
                    [&](const YAML::Node& n, const std::string& w) { return y.as_int(n, "worker." + w); }));
  if (node["labels"].IsDefined() && !node["labels"].IsNull()) {
    auto labels = y.as_string_list(node["labels"], "worker.labels");
    if (!labels.ok()) return labels.error();
    c.worker_labels = *labels;
  }
  if (c.worker_capacity < 1 || c.worker_capacity > 4096)
    return y.error(node["capacity"], "worker.capacity must be between 1 and 4096");
  return {};
}

}  // namespace

Result<Config> load_config(const fs::path& file, const fs::path& home) {
  const YamlReader y = reader_of(file);
  auto doc = load_or_default(y, file);
  if (!doc.ok()) return doc.error();
  Config c;
  c.home = home;
  std::string workspace_root = "workspaces";
  const YAML::Node root = *doc;
  if (!root.IsNull()) {
    POLY_TRY(y.check_keys(
        root,
        {"workspace_root", "state_db", "queue_db", "log_dir", "poll_interval_ms", "max_concurrency",
         "max_concurrency_per_repo", "max_attempts", "review_rounds", "retry_backoff_base_ms", "retry_backoff_cap_ms",
         "docker_host", "coordinator", "worker", "container", "budget", "repos", "github"},
        "config.yaml"));
    auto str = [&](const YAML::Node& n, const std::string& w) { return y.as_string(n, w); };
    auto num = [&](const YAML::Node& n, const std::string& w) { return y.as_int(n, w); };
    POLY_TRY(read_opt(root, "workspace_root", workspace_root, str));
    std::string state_db, queue_db, log_dir;
    POLY_TRY(read_opt(root, "state_db", state_db, str));
    POLY_TRY(read_opt(root, "queue_db", queue_db, str));
    POLY_TRY(read_opt(root, "log_dir", log_dir, str));
    if (!state_db.empty()) c.state_db = resolve_path(state_db, home);
    if (!queue_db.empty()) c.queue_db = resolve_path(queue_db, home);
    if (!log_dir.empty()) c.log_dir = resolve_path(log_dir, home);
    POLY_TRY(read_opt(root, "poll_interval_ms", c.poll_interval_ms, num));
    POLY_TRY(read_opt(root, "max_concurrency", c.max_concurrency, num));
    POLY_TRY(read_opt(root, "max_attempts", c.max_attempts, num));
    POLY_TRY(read_opt(root, "review_rounds", c.review_rounds, num));
    if (c.review_rounds < 0 || c.review_rounds > 100)
      return y.error(root["review_rounds"], "review_rounds must be between 0 and 100");
    POLY_TRY(read_opt(root, "max_concurrency_per_repo", c.max_concurrency_per_repo, num));
    POLY_TRY(read_opt(root, "retry_backoff_base_ms", c.retry_backoff_base_ms, num));
    POLY_TRY(read_opt(root, "retry_backoff_cap_ms", c.retry_backoff_cap_ms, num));
    if (c.retry_backoff_base_ms < 0 || c.retry_backoff_cap_ms < c.retry_backoff_base_ms) {
      return y.error(
          root["retry_backoff_cap_ms"].IsDefined() ? root["retry_backoff_cap_ms"] : root["retry_backoff_base_ms"],
          "retry_backoff_base_ms must be >= 0 and retry_backoff_cap_ms at least as large");
    }
    if (c.max_concurrency_per_repo < 0)
      return y.error(root["max_concurrency_per_repo"], "max_concurrency_per_repo must be 0 (no limit) or more");
    POLY_TRY(read_opt(root, "docker_host", c.docker_host, str));
    if (c.poll_interval_ms < 10) return y.error(root["poll_interval_ms"], "poll_interval_ms must be at least 10");
    if (c.max_concurrency < 1 || c.max_concurrency > 4096)
      return y.error(root["max_concurrency"], "max_concurrency must be between 1 and 4096");
    if (c.max_attempts < 1) return y.error(root["max_attempts"], "max_attempts must be at least 1");
    if (root["coordinator"].IsDefined() && !root["coordinator"].IsNull())
      POLY_TRY(read_coordinator(y, root["coordinator"], c));
    if (root["worker"].IsDefined() && !root["worker"].IsNull()) POLY_TRY(read_worker(y, root["worker"], c));
    if (root["container"].IsDefined() && !root["container"].IsNull())
      POLY_TRY(read_container(y, root["container"], c.container));
    if (root["budget"].IsDefined() && !root["budget"].IsNull()) {
      auto b = read_budget(y, root["budget"], "budget");
      if (!b.ok()) return b.error();
      c.budget = *b;
    }
    if (root["repos"].IsDefined() && !root["repos"].IsNull()) POLY_TRY(read_repos(y, root["repos"], c));
    if (root["github"].IsDefined() && !root["github"].IsNull()) POLY_TRY(read_github(y, root["github"], c));
  }
  c.workspace_root = resolve_path(workspace_root, home);
  if (c.state_db.empty()) c.state_db = home / "state.db";
  if (c.queue_db.empty()) c.queue_db = home / "queue.db";
  if (c.log_dir.empty()) c.log_dir = home / "logs";
  return c;
}

namespace {

Result<IdentityEnv> read_identity_env(const YamlReader& y, const std::string& what, const YAML::Node& key,
                                      const YAML::Node& value) {
  IdentityEnv e;
  e.name = key.Scalar();
  e.line = y.line(key);
  if (value.IsScalar()) {
    e.value = value.Scalar();
    return e;
  }
  POLY_TRY(y.check_keys(value, {"value", "from_env", "from_file", "optional"}, what));
  POLY_TRY(read_opt(value, "optional", e.optional,
                    [&](const YAML::Node& n, const std::string& w) { return y.as_bool(n, what + "." + w); }));
  int given = 0;
  for (auto [k, field] : {std::pair{"value", &e.value}, {"from_env", &e.from_env}, {"from_file", &e.from_file}}) {
    if (!value[k].IsDefined()) continue;
    auto s = y.as_string(value[k], what + "." + k);
    if (!s.ok()) return s.error();
    *field = *s;
    ++given;
  }
  if (given != 1) return y.error(value, what + " needs exactly one of value, from_env, from_file");
  return e;
}

// files: a list of paths, or of {host: path, as: name in the config directory}.
Result<std::vector<IdentityFile>> read_identity_files(const YamlReader& y, const YAML::Node& node,
                                                      const std::string& what) {
  if (!node.IsSequence()) return y.error(node, what + " must be a list of paths or {host, as}");
  std::vector<IdentityFile> out;
  for (size_t i = 0; i < node.size(); ++i) {
    const YAML::Node f = node[i];
    const std::string fw = what + "[" + std::to_string(i) + "]";
    IdentityFile file;
    file.line = y.line(f);
    if (f.IsMap()) {
      POLY_TRY(y.check_keys(f, {"host", "as"}, fw));
      auto host = y.as_string(f["host"], fw + ".host");
      if (!host.ok()) return host.error();
      file.host_path = *host;
      POLY_TRY(read_opt(f, "as", file.as,
                        [&](const YAML::Node& n, const std::string& w) { return y.as_string(n, fw + "." + w); }));
    } else {
      auto host = y.as_string(f, fw);
      if (!host.ok()) return host.error();
      file.host_path = *host;
    }
    if (file.host_path.empty()) return y.error(f, fw + " needs a host path");
    if (file.as.empty()) file.as = fs::path(file.host_path).filename().string();
    const fs::path as(file.as);
    bool climbs = as.is_absolute() || file.as.empty();
    for (const auto& part : as) climbs = climbs || part == ".." || part == ".";
    if (climbs)
      return y.error(f, fw + ".as must be a relative path inside the config directory, got '" + file.as + "'");
    out.push_back(file);
  }
  return out;
}

Result<Identity> read_identity(const YamlReader& y, const std::string& name, const YAML::Node& node) {
  const std::string what = "identities." + name;
  Identity id;
  id.name = name;
  id.line = y.line(node);
  if (node.IsNull()) return id;
  POLY_TRY(y.check_keys(node, {"mounts", "files", "env"}, what));
  if (node["files"].IsDefined() && !node["files"].IsNull()) {
    auto files = read_identity_files(y, node["files"], what + ".files");
    if (!files.ok()) return files.error();
    id.files = *files;
  }
  if (node["mounts"].IsDefined() && !node["mounts"].IsNull()) {
    if (!node["mounts"].IsSequence())
      return y.error(node["mounts"], what + ".mounts must be a list of {host, container}");
    for (size_t i = 0; i < node["mounts"].size(); ++i) {
      const YAML::Node m = node["mounts"][i];
      const std::string mw = what + ".mounts[" + std::to_string(i) + "]";
      POLY_TRY(y.check_keys(m, {"host", "container"}, mw));
      IdentityMount mount;
      mount.line = y.line(m);
      auto host = y.as_string(m["host"], mw + ".host");
      if (!host.ok()) return host.error();
      auto cont = y.as_string(m["container"], mw + ".container");
      if (!cont.ok()) return cont.error();
      if (cont->empty() || (*cont)[0] != '/')
        return y.error(m["container"], mw + ".container must be an absolute path, got '" + *cont + "'");
      mount.host_path = *host;
      mount.container_path = *cont;
      id.mounts.push_back(mount);
    }
  }
  if (node["env"].IsDefined() && !node["env"].IsNull()) {
    POLY_TRY(y.expect_map(node["env"], what + ".env"));
    for (const auto& kv : node["env"]) {
      auto e = read_identity_env(y, what + ".env." + kv.first.Scalar(), kv.first, kv.second);
      if (!e.ok()) return e.error();
      id.env.push_back(*e);
    }
  }
  return id;
}

}  // namespace

Result<std::map<std::string, Identity>> load_identities(const fs::path& file) {
  const YamlReader y = reader_of(file);
  auto doc = load_or_default(y, file);
  if (!doc.ok()) return doc.error();
  std::map<std::string, Identity> out;
  const YAML::Node root = *doc;
  if (root.IsNull()) return out;
  POLY_TRY(y.check_keys(root, {"identities"}, "identities.yaml"));
  const YAML::Node ids = root["identities"];
  if (ids.IsNull()) return out;
  POLY_TRY(y.expect_map(ids, "identities"));
  for (const auto& kv : ids) {
    auto id = read_identity(y, kv.first.Scalar(), kv.second);
    if (!id.ok()) return id.error();
    id->line = y.line(kv.first);
    out[kv.first.Scalar()] = *id;
  }
  return out;
}

namespace {

Result<AgentProfile> read_agent(const YamlReader& y, const std::string& name, const YAML::Node& node) {
  const std::string what = "agents." + name;
  POLY_TRY(y.check_keys(node, {"command", "identity", "tier", "strengths", "env", "stdin", "output", "config_dir_env"},
                        what));
  AgentProfile a;
  a.name = name;
  if (!node["command"].IsDefined()) return y.error(node, what + " needs a command (an argv list)");
  auto cmd = y.as_string_list(node["command"], what + ".command");
  if (!cmd.ok()) return cmd.error();
  if (cmd->empty()) return y.error(node["command"], what + ".command must not be empty");
  a.command = *cmd;
  auto str = [&](const YAML::Node& n, const std::string& w) { return y.as_string(n, what + "." + w); };
  POLY_TRY(read_opt(node, "identity", a.identity, str));
  POLY_TRY(read_opt(node, "tier", a.tier, str));
  if (a.tier != "cheap" && a.tier != "strong")
    return y.error(node["tier"], what + ".tier must be cheap or strong, got '" + a.tier + "'");
  POLY_TRY(read_opt(node, "stdin", a.stdin_template, str));
  POLY_TRY(read_opt(node, "output", a.output_format, str));
  if (a.output_format == "text") a.output_format.clear();
  if (!is_known_output_format(a.output_format)) {
    return y.error(node["output"],
                   what + ".output must be text, claude-stream-json or codex-json, got '" + a.output_format + "'");
  }
  POLY_TRY(read_opt(node, "config_dir_env", a.config_dir_env, str));
  bool env_name = !a.config_dir_env.empty() && !std::isdigit(static_cast<unsigned char>(a.config_dir_env[0]));
  for (char c : a.config_dir_env) env_name = env_name && (std::isalnum(static_cast<unsigned char>(c)) || c == '_');
  if (!a.config_dir_env.empty() && !env_name) {
    return y.error(
        node["config_dir_env"],
        what + ".config_dir_env must be a variable name such as CLAUDE_CONFIG_DIR, got '" + a.config_dir_env + "'");
  }
  if (node["strengths"].IsDefined() && !node["strengths"].IsNull()) {
    auto s = y.as_string_list(node["strengths"], what + ".strengths");
    if (!s.ok()) return s.error();
    a.strengths = *s;
  }
  if (node["env"].IsDefined() && !node["env"].IsNull()) {
    auto env = y.as_string_map(node["env"], what + ".env");
    if (!env.ok()) return env.error();
    a.env = *env;
  }
  return a;
}

}  // namespace

bool is_known_output_format(const std::string& format) {
  return format.empty() || format == "claude-stream-json" || format == "codex-json";
}

Result<std::map<std::string, AgentProfile>> load_agents(const fs::path& file) {
  const YamlReader y = reader_of(file);
  auto doc = load_or_default(y, file);
  if (!doc.ok()) return doc.error();
  const YAML::Node root = *doc;
  POLY_TRY(y.check_keys(root, {"agents"}, "agents.yaml"));
  POLY_TRY(y.expect_map(root["agents"], "agents"));
  std::map<std::string, AgentProfile> out;
  for (const auto& kv : root["agents"]) {
    auto a = read_agent(y, kv.first.Scalar(), kv.second);
    if (!a.ok()) return a.error();
    a->line = y.line(kv.first);
    out[a->name] = *a;
  }
  return out;
}

namespace {

Result<RouteMatch> read_match(const YamlReader& y, const YAML::Node& node, const std::string& what) {
  POLY_TRY(y.check_keys(node, {"task_type", "risk", "labels", "repo", "score"}, what));
  RouteMatch m;
  for (auto [k, field] : {std::pair{"task_type", &m.task_type}, {"risk", &m.risk}, {"repo", &m.repo}}) {
    if (!node[k].IsDefined()) continue;
    auto s = y.as_string(node[k], what + "." + k);
    if (!s.ok()) return s.error();
    *field = *s;
  }
  if (node["labels"].IsDefined()) {
    auto l = y.as_string_list(node["labels"], what + ".labels");
    if (!l.ok()) return l.error();
    m.labels = *l;
  }
  if (node["score"].IsDefined()) {
    const YAML::Node s = node["score"];
    POLY_TRY(y.check_keys(s, {"min", "max"}, what + ".score"));
    for (auto [k, field] : {std::pair{"min", &m.score_min}, {"max", &m.score_max}}) {
      if (!s[k].IsDefined()) continue;
      auto v = y.as_int(s[k], what + ".score." + k);
      if (!v.ok()) return v.error();
      if (*v < 0 || *v > 10) return y.error(s[k], what + ".score." + k + " must be between 0 and 10");
      *field = static_cast<int>(*v);
    }
  }
  return m;
}

Result<ScoreCutOffs> read_cutoffs(const YamlReader& y, const YAML::Node& node, const std::string& what) {
  auto v = y.as_string_list(node, what);
  if (!v.ok() || v->size() != 2)
    return y.error(node, what + " must be two integers [one, two]: the measures that score 1 and 2");
  ScoreCutOffs c;
  auto one = y.as_int(node[0], what + "[0]");
  if (!one.ok()) return one.error();
  auto two = y.as_int(node[1], what + "[1]");
  if (!two.ok()) return two.error();
  if (*one < 1 || *two < *one)
    return y.error(
        node, what + " must satisfy 1 <= one <= two, got [" + std::to_string(*one) + ", " + std::to_string(*two) + "]");
  c.one = static_cast<int>(*one);
  c.two = static_cast<int>(*two);
  return c;
}

Status read_thresholds(const YamlReader& y, const YAML::Node& node, ScoringPolicy& s) {
  POLY_TRY(y.check_keys(node, {"solo_max", "review_max"}, "scoring.thresholds"));
  auto num = [&](const YAML::Node& n, const std::string& w) { return y.as_int(n, "scoring.thresholds." + w); };
  POLY_TRY(read_opt(node, "solo_max", s.solo_max, num));
  POLY_TRY(read_opt(node, "review_max", s.review_max, num));
  if (s.solo_max < 0 || s.review_max > 10 || s.solo_max > s.review_max) {
    return y.error(node, "scoring.thresholds must satisfy 0 <= solo_max <= review_max <= 10, got solo_max " +
                             std::to_string(s.solo_max) + ", review_max " + std::to_string(s.review_max));
  }
  return {};
}

Status read_scoring(const YamlReader& y, const YAML::Node& node, ScoringPolicy& s) {
  POLY_TRY(y.check_keys(node, {"thresholds", "cutoffs"}, "scoring"));
  s.line = y.line(node);
  if (node["thresholds"].IsDefined() && !node["thresholds"].IsNull())
    POLY_TRY(read_thresholds(y, node["thresholds"], s));
  const YAML::Node c = node["cutoffs"];
  if (!c.IsDefined() || c.IsNull()) return {};
  POLY_TRY(y.check_keys(c, {"lines_of_code", "nesting", "call_sites", "security_keywords", "concurrency_keywords"},
                        "scoring.cutoffs"));
  for (auto [k, field] : {std::pair{"lines_of_code", &s.lines_of_code},
                          {"nesting", &s.nesting},
                          {"call_sites", &s.call_sites},
                          {"security_keywords", &s.security_keywords},
                          {"concurrency_keywords", &s.concurrency_keywords}}) {
    if (!c[k].IsDefined()) continue;
    auto v = read_cutoffs(y, c[k], std::string("scoring.cutoffs.") + k);
    if (!v.ok()) return v.error();
    *field = *v;
  }
  return {};
}

Status read_learning(const YamlReader& y, const YAML::Node& node, LearningPolicy& l) {
  if (!node.IsMap()) return y.error(node, "learning must be a map (enabled, min_tasks, min_landing_rate)");
  POLY_TRY(y.check_keys(node, {"enabled", "min_tasks", "min_landing_rate"}, "learning"));
  l.line = y.line(node);
  if (node["enabled"].IsDefined()) {
    auto on = y.as_bool(node["enabled"], "learning.enabled");
    if (!on.ok()) return on.error();
    l.enabled = *on;
  }
  if (node["min_tasks"].IsDefined()) {
    auto n = y.as_int(node["min_tasks"], "learning.min_tasks");
    if (!n.ok()) return n.error();
    if (*n < 1 || *n > 1'000'000) {
      return y.error(node["min_tasks"],
                     "learning.min_tasks must be a whole number of tasks from 1, got " + std::to_string(*n));
    }
    l.min_tasks = static_cast<int>(*n);
  }
  if (node["min_landing_rate"].IsDefined()) {
    auto r = y.as_double(node["min_landing_rate"], "learning.min_landing_rate");
    if (!r.ok()) return r.error();
    if (!(*r > 0 && *r <= 1)) {
      return y.error(node["min_landing_rate"],
                     "learning.min_landing_rate must be a share above 0 and at most 1 "
                     "(0.8 for 80%), got " +
                         node["min_landing_rate"].Scalar());
    }
    l.min_landing_rate = *r;
  }
  return {};
}

Result<RouteRule> read_rule(const YamlReader& y, const YAML::Node& r, const std::string& what) {
  POLY_TRY(y.check_keys(r, {"match", "agent", "plan", "budget"}, what));
  RouteRule rule;
  rule.line = y.line(r);
  if (r["budget"].IsDefined() && !r["budget"].IsNull()) {
    auto b = read_budget(y, r["budget"], what + ".budget");
    if (!b.ok()) return b.error();
    rule.budget = *b;
  }
  if (r["match"].IsDefined() && !r["match"].IsNull()) {
    auto m = read_match(y, r["match"], what + ".match");
    if (!m.ok()) return m.error();
    rule.match = *m;
  }
  if (r["plan"].IsDefined()) {
    auto text = y.as_string(r["plan"], what + ".plan");
    if (!text.ok()) return text.error();
    rule.plan = parse_plan(*text);
    if (!rule.plan) return y.error(r["plan"], what + ".plan must be solo, review or strong, got '" + *text + "'");
  }
  if (!r["agent"].IsDefined()) {
    if (rule.plan) return rule;
    return y.error(r, what + " needs an agent or a plan (solo, review, strong)");
  }
  auto agent = y.as_string(r["agent"], what + ".agent");
  if (!agent.ok()) return agent.error();
  rule.agent = *agent;
  return rule;
}

}  // namespace

const char* plan_name(Plan plan) {
  switch (plan) {
    case Plan::kSolo:
      return "solo";
    case Plan::kReview:
      return "review";
    case Plan::kStrong:
      return "strong";
  }
  return "solo";
}

std::optional<Plan> parse_plan(const std::string& text) {
  for (Plan p : {Plan::kSolo, Plan::kReview, Plan::kStrong}) {
    if (text == plan_name(p)) return p;
  }
  return std::nullopt;
}

Result<RoutingPolicy> load_routing(const fs::path& file) {
  const YamlReader y = reader_of(file);
  auto doc = load_or_default(y, file);
  if (!doc.ok()) return doc.error();
  RoutingPolicy p;
  const YAML::Node root = *doc;
  if (root.IsNull()) return p;
  POLY_TRY(y.check_keys(root, {"rules", "default", "scoring", "learning"}, "routing.yaml"));
  if (root["rules"].IsDefined() && !root["rules"].IsNull()) {
    if (!root["rules"].IsSequence()) return y.error(root["rules"], "rules must be a list");
    for (size_t i = 0; i < root["rules"].size(); ++i) {
      auto rule = read_rule(y, root["rules"][i], "rules[" + std::to_string(i) + "]");
      if (!rule.ok()) return rule.error();
      p.rules.push_back(*rule);
    }
  }
  if (root["scoring"].IsDefined() && !root["scoring"].IsNull()) POLY_TRY(read_scoring(y, root["scoring"], p.scoring));
  if (root["learning"].IsDefined() && !root["learning"].IsNull())
    POLY_TRY(read_learning(y, root["learning"], p.learning));
  if (root["default"].IsDefined() && !root["default"].IsNull()) {
    const YAML::Node d = root["default"];
    POLY_TRY(y.check_keys(d, {"agent", "fallback"}, "default"));
    p.default_line = y.line(d);
    POLY_TRY(read_opt(d, "agent", p.default_agent,
                      [&](const YAML::Node& n, const std::string& w) { return y.as_string(n, "default." + w); }));
    if (d["fallback"].IsDefined() && !d["fallback"].IsNull()) {
      auto f = y.as_string_list(d["fallback"], "default.fallback");
      if (!f.ok()) return f.error();
      p.fallback = *f;
    }
  }
  return p;
}

Result<Settings> load_settings(const fs::path& home) {
  Settings s;
  auto config = load_config(home / "config.yaml", home);
  if (!config.ok()) return config.error();
  s.config = *config;
  auto ids = load_identities(home / "identities.yaml");
  if (!ids.ok()) return ids.error();
  s.identities = *ids;
  auto agents = load_agents(home / "agents.yaml");
  if (!agents.ok()) return agents.error();
  s.agents = *agents;
  auto routing = load_routing(home / "routing.yaml");
  if (!routing.ok()) return routing.error();
  s.routing = *routing;

  const std::string agents_file = (home / "agents.yaml").string();
  for (const auto& [name, a] : s.agents) {
    if (!a.identity.empty() && !s.identities.count(a.identity)) {
      return make_error(
          "config", "agent '" + name + "' uses identity '" + a.identity + "', which identities.yaml does not define",
          agents_file + ":" + std::to_string(a.line));
    }
  }
  const std::string routing_file = (home / "routing.yaml").string();
  auto known = [&](const std::string& agent) { return s.agents.count(agent) > 0; };
  for (const auto& r : s.routing.rules) {
    if (!r.agent.empty() && !known(r.agent)) {
      return make_error("config", "rule names agent '" + r.agent + "', which agents.yaml does not define",
                        routing_file + ":" + std::to_string(r.line));
    }
  }
  if (!known(s.routing.default_agent)) {
    return make_error("config", "default agent '" + s.routing.default_agent + "' is not in agents.yaml",
                      routing_file + ":" + std::to_string(s.routing.default_line));
  }
  for (const auto& f : s.routing.fallback) {
    if (!known(f)) {
      return make_error("config", "fallback agent '" + f + "' is not in agents.yaml",
                        routing_file + ":" + std::to_string(s.routing.default_line));
    }
  }
  return s;
}

}  // namespace polyphony
