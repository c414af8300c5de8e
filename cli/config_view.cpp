// The configuration in effect, value by value, with the file:line that set each one.
#include "cli/config_view.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "common/yaml_reader.h"

namespace polyphony::cli {

namespace fs = std::filesystem;
using nlohmann::json;
using Path = std::vector<std::string>;

namespace {

constexpr const char* kRedacted = "<redacted>";

std::string upper(std::string_view s) {
  std::string out;
  for (char c : s) out += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

int mark_line(const YAML::Node& node) {
  const YAML::Mark mark = node.Mark();
  return mark.is_null() || mark.line < 0 ? 0 : mark.line + 1;
}

// The line of the key (or list item) at path[i..] under `node`; 0 when the file leaves it out.
int find_line(const YAML::Node& node, const Path& path, size_t i, int line) {
  if (i == path.size()) return line;
  const std::string& part = path[i];
  if (part.front() == '[') {
    const size_t index = std::stoul(part.substr(1));
    if (!node.IsSequence() || index >= node.size()) return 0;
    const YAML::Node item = node[index];
    return find_line(item, path, i + 1, mark_line(item));
  }
  if (!node.IsMap()) return 0;
  for (const auto& kv : node) {
    if (kv.first.Scalar() != part) continue;
    // `key:` with nothing after it leaves the default, as the loaders read it.
    return kv.second.IsNull() ? 0 : find_line(kv.second, path, i + 1, mark_line(kv.first));
  }
  return 0;
}

std::string text_of(const json& value) {
  if (value.is_string()) return value.get<std::string>().empty() ? "\"\"" : value.get<std::string>();
  if (value.is_null()) return "-";
  if (value.is_array()) {
    std::string out;
    for (const auto& v : value) out += (out.empty() ? "" : ", ") + text_of(v);
    return "[" + out + "]";
  }
  return value.dump();
}

// "4g", "512m", "16k", or bytes: the way config.yaml writes sizes.
std::string size_text(int64_t bytes) {
  for (auto [shift, unit] : {std::pair{30, "g"}, {20, "m"}, {10, "k"}}) {
    if (bytes != 0 && bytes % (int64_t{1} << shift) == 0) return std::to_string(bytes >> shift) + unit;
  }
  return std::to_string(bytes);
}

json redacted_list(const std::vector<std::string>& items) {
  json out = json::array();
  for (const auto& i : items) out.push_back(redact(i));
  return out;
}

json paths(const std::vector<fs::path>& items) {
  json out = json::array();
  for (const auto& p : items) out.push_back(p.string());
  return out;
}

std::string path_text(const fs::path& p) {
  return p.string();
}

// Adds the entries of one file, finding each key's line in the file as it is on disk.
class FileView {
 public:
  FileView(const fs::path& home, std::string file, std::vector<ConfigEntry>& out) : file_(std::move(file)), out_(out) {
    auto doc = YamlReader((home / file_).string()).load();
    if (doc.ok()) root_ = *doc;
  }

  void add(const Path& path, json value) {
    ConfigEntry e;
    e.file = file_;
    for (const auto& part : path) e.key += (e.key.empty() || part.front() == '[' ? "" : ".") + part;
    e.text = text_of(value);
    e.value = std::move(value);
    e.line = line(path);
    out_.push_back(std::move(e));
  }
  // Only when the file sets it (a rule's optional keys).
  void add_if_set(const Path& path, json value) {
    if (line(path) > 0) add(path, std::move(value));
  }
  int line(const Path& path) const { return find_line(root_, path, 0, 0); }

 private:
  std::string file_;
  YAML::Node root_;
  std::vector<ConfigEntry>& out_;
};

void top_level(FileView& v, const Config& c) {
  v.add({"workspace_root"}, path_text(c.workspace_root));
  v.add({"state_db"}, path_text(c.state_db));
  v.add({"queue_db"}, path_text(c.queue_db));
  v.add({"log_dir"}, path_text(c.log_dir));
  v.add({"poll_interval_ms"}, c.poll_interval_ms);
  v.add({"max_concurrency"}, c.max_concurrency);
  v.add({"max_concurrency_per_repo"}, c.max_concurrency_per_repo);
  v.add({"max_attempts"}, c.max_attempts);
  v.add({"review_rounds"}, c.review_rounds);
  v.add({"retry_backoff_base_ms"}, c.retry_backoff_base_ms);
  v.add({"retry_backoff_cap_ms"}, c.retry_backoff_cap_ms);
  v.add({"docker_host"}, redact(c.docker_host));
}

void coordinator(FileView& v, const Config& c) {
  const CoordinatorSecurity& s = c.coordinator_security;
  v.add({"coordinator", "embedded_worker"}, c.embedded_worker);
  v.add({"coordinator", "worker_endpoint"}, redact(c.worker_endpoint));
  v.add({"coordinator", "client_endpoint"}, redact(c.client_endpoint));
  v.add({"coordinator", "http_listen"}, c.http_listen);
  v.add({"coordinator", "http_token_file"}, path_text(c.http_token_file));
  v.add({"coordinator", "heartbeat_interval_ms"}, c.heartbeat_interval_ms);
  v.add({"coordinator", "heartbeat_liveness"}, c.heartbeat_liveness);
  v.add({"coordinator", "lost_worker_expiry_ms"}, c.lost_worker_expiry_ms);
  // Key files are named, never read; the keys listed are public ones.
  v.add({"coordinator", "secret_key_file"}, path_text(s.secret_key_file));
  v.add({"coordinator", "public_key_file"}, path_text(s.public_key_file));
  v.add({"coordinator", "allowed_workers_dir"}, path_text(s.allowed_workers_dir));
  v.add({"coordinator", "allowed_worker_keys"}, s.allowed_worker_keys);
  v.add({"coordinator", "allowed_clients_dir"}, path_text(s.allowed_clients_dir));
  v.add({"coordinator", "allowed_client_keys"}, s.allowed_client_keys);
  v.add({"coordinator", "insecure"}, s.insecure);
}

void worker(FileView& v, const Config& c) {
  const WorkerSecurity& s = c.worker_security;
  v.add({"worker", "coordinator"}, redact(c.coordinator_endpoint));
  v.add({"worker", "capacity"}, c.worker_capacity);
  v.add({"worker", "labels"}, redacted_list(c.worker_labels));
  v.add({"worker", "secret_key_file"}, path_text(s.secret_key_file));
  v.add({"worker", "public_key_file"}, path_text(s.public_key_file));
  v.add({"worker", "coordinator_public_key"}, s.coordinator_public_key);
  v.add({"worker", "coordinator_public_key_file"}, path_text(s.coordinator_public_key_file));
  v.add({"worker", "insecure"}, s.insecure);
}

void container(FileView& v, const ContainerConfig& c) {
  const std::string k = "container";
  v.add({k, "image"}, redact(c.image));
  v.add({k, "network"}, redact(c.network));
  v.add({k, "cpus"}, c.cpus);
  v.add({k, "memory"}, size_text(c.memory_bytes));
  v.add({k, "user"}, std::to_string(c.uid) + ":" + std::to_string(c.gid));
  v.add({k, "run_timeout_s"}, c.run_timeout_s);
  v.add({k, "verify_timeout_s"}, c.verify_timeout_s);
  v.add({k, "stall_timeout_s"}, c.stall_timeout_s);
  v.add({k, "warm"}, c.warm < 0 ? json("the worker's capacity") : json(c.warm));
  v.add({k, "pids_limit"}, c.pids_limit);
  v.add({k, "workspace_limit"}, size_text(c.workspace_limit_bytes));
  v.add({k, "output_limit"}, size_text(c.output_limit_bytes));
  v.add({k, "read_only_root"}, c.read_only_root);
  v.add({k, "cap_add"}, c.cap_add);
  v.add({k, "allowed_images"}, redacted_list(c.allowed_images));
  v.add({k, "allowed_networks"}, redacted_list(c.allowed_networks));
  v.add({k, "allowed_mount_roots"}, c.allowed_mount_roots);
}

void budget(FileView& v, const Path& at, const Budget& b, bool only_if_set) {
  for (auto [key, value] : {std::pair{"max_turns", static_cast<int64_t>(b.max_turns)},
                            {"max_tokens", b.max_tokens},
                            {"max_wall_s", b.max_wall_s}}) {
    Path p = at;
    p.push_back(key);
    if (only_if_set)
      v.add_if_set(p, value);
    else
      v.add(p, value);
  }
}

void repos_and_github(FileView& v, const Config& c) {
  v.add({"repos", "allowed_roots"}, paths(c.repo_allowed_roots));
  for (const auto& [name, r] : c.repos) {
    v.add({"repos", name, "url"}, redact(r.url));
    v.add({"repos", name, "base_branch"}, r.base_branch);
    v.add({"repos", name, "verify"}, redact(r.verify));
  }
  const GithubConfig& g = c.github;
  v.add({"github", "repo"}, g.repo);
  if (!g.enabled()) return;  // the rest applies only in GitHub mode
  v.add({"github", "remote"}, redact(g.remote));
  v.add({"github", "base_branch"}, g.base_branch);
  v.add({"github", "label"}, g.label);
  v.add({"github", "claimed_label"}, g.claimed_label);
  v.add({"github", "filter_labels"}, g.filter_labels);
  v.add({"github", "type_label_prefix"}, g.type_label_prefix);
  v.add({"github", "risk_label_prefix"}, g.risk_label_prefix);
  v.add({"github", "poll_interval_ms"}, g.poll_interval_ms);
  v.add({"github", "auto_merge"}, g.auto_merge);
  v.add({"github", "gh"}, g.gh);
  v.add({"github", "gh_timeout_ms"}, g.gh_timeout_ms);
}

// An identity's variable: where its value comes from, never the value.
json env_source(const IdentityEnv& e) {
  json out;
  if (!e.from_env.empty()) {
    const char* set = std::getenv(e.from_env.c_str());
    out = {{"from_env", e.from_env}, {"set", set != nullptr && *set != '\0'}};
  } else if (!e.from_file.empty()) {
    out = {{"from_file", e.from_file}};
  } else {
    out = {{"value", kRedacted}};
  }
  if (e.optional) out["optional"] = true;
  return out;
}

std::string env_source_text(const json& j) {
  std::string out;
  if (j.contains("from_env")) {
    out = "from_env " + j["from_env"].get<std::string>() + (j["set"].get<bool>() ? " (set" : " (not set");
  } else if (j.contains("from_file")) {
    out = "from_file " + j["from_file"].get<std::string>() + " (";
  } else {
    out = std::string("value ") + kRedacted + " (";
  }
  if (j.contains("optional")) out += out.back() == '(' ? "optional" : ", optional";
  if (out.back() == '(') return out.substr(0, out.size() - 2);
  return out + ")";
}

void identities(FileView& v, const std::map<std::string, Identity>& ids, std::vector<ConfigEntry>& out) {
  for (const auto& [name, id] : ids) {
    for (const auto& e : id.env) {
      v.add({"identities", name, "env", e.name}, env_source(e));
      out.back().text = env_source_text(out.back().value);
    }
    for (size_t i = 0; i < id.files.size(); ++i) {
      v.add({"identities", name, "files", "[" + std::to_string(i) + "]"},
            json{{"host", id.files[i].host_path}, {"as", id.files[i].as}});
      out.back().text = id.files[i].host_path + " as " + id.files[i].as;
    }
    for (size_t i = 0; i < id.mounts.size(); ++i) {
      v.add({"identities", name, "mounts", "[" + std::to_string(i) + "]"},
            json{{"host", id.mounts[i].host_path}, {"container", id.mounts[i].container_path}});
      out.back().text = id.mounts[i].host_path + " -> " + id.mounts[i].container_path + " (read-only)";
    }
    if (id.env.empty() && id.files.empty() && id.mounts.empty()) v.add({"identities", name}, nullptr);
  }
}

// An argv with token-like values redacted, and the value after a flag that names a secret.
json command_of(const std::vector<std::string>& argv) {
  json out = json::array();
  for (size_t i = 0; i < argv.size(); ++i) {
    const bool after_secret_flag = i > 0 && argv[i - 1].rfind("-", 0) == 0 && names_a_secret(argv[i - 1]);
    out.push_back(after_secret_flag ? std::string(kRedacted) : redact(argv[i]));
  }
  return out;
}

void agents(FileView& v, const std::map<std::string, AgentProfile>& all) {
  for (const auto& [name, a] : all) {
    v.add({"agents", name, "command"}, command_of(a.command));
    v.add({"agents", name, "identity"}, a.identity);
    v.add({"agents", name, "tier"}, a.tier);
    v.add({"agents", name, "strengths"}, a.strengths);
    for (const auto& [key, value] : a.env) {
      v.add({"agents", name, "env", key}, names_a_secret(key) ? std::string(kRedacted) : redact(value));
    }
    v.add({"agents", name, "stdin"}, redact(a.stdin_template));
    v.add({"agents", name, "output"}, a.output_format.empty() ? "text" : a.output_format);
    v.add({"agents", name, "config_dir_env"}, a.config_dir_env);
  }
}

void rules(FileView& v, const RoutingPolicy& p) {
  for (size_t i = 0; i < p.rules.size(); ++i) {
    const RouteRule& r = p.rules[i];
    const std::string at = "[" + std::to_string(i) + "]";
    const RouteMatch& m = r.match;
    if (m.task_type) v.add({"rules", at, "match", "task_type"}, *m.task_type);
    if (m.risk) v.add({"rules", at, "match", "risk"}, *m.risk);
    if (!m.labels.empty()) v.add({"rules", at, "match", "labels"}, m.labels);
    if (m.repo) v.add({"rules", at, "match", "repo"}, redact(*m.repo));
    if (m.score_min) v.add({"rules", at, "match", "score", "min"}, *m.score_min);
    if (m.score_max) v.add({"rules", at, "match", "score", "max"}, *m.score_max);
    if (!r.agent.empty()) v.add({"rules", at, "agent"}, r.agent);
    if (r.plan) v.add({"rules", at, "plan"}, plan_name(*r.plan));
    if (r.budget) budget(v, {"rules", at, "budget"}, *r.budget, true);
  }
}

void routing(FileView& v, const RoutingPolicy& p) {
  rules(v, p);
  v.add({"default", "agent"}, p.default_agent);
  v.add({"default", "fallback"}, p.fallback);
  const ScoringPolicy& s = p.scoring;
  v.add({"scoring", "thresholds", "solo_max"}, s.solo_max);
  v.add({"scoring", "thresholds", "review_max"}, s.review_max);
  for (auto [key, c] : {std::pair{"lines_of_code", s.lines_of_code},
                        {"nesting", s.nesting},
                        {"call_sites", s.call_sites},
                        {"security_keywords", s.security_keywords},
                        {"concurrency_keywords", s.concurrency_keywords}}) {
    v.add({"scoring", "cutoffs", key}, json::array({c.one, c.two}));
  }
}

bool is_token_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '+' || c == '/' || c == '=' ||
         c == '.';
}

}  // namespace

bool looks_like_secret(std::string_view value) {
  static const char* const kPrefixes[] = {"sk-",    "sk_",   "ghp_",  "gho_",  "ghu_",  "ghs_", "ghr_", "github_pat_",
                                          "glpat-", "xoxb-", "xoxp-", "xoxa-", "xoxs-", "AKIA", "AIza", "hf_"};
  for (const char* p : kPrefixes) {
    if (value.rfind(p, 0) == 0 && value.size() >= std::string_view(p).size() + 8) return true;
  }
  if (value.size() < 20 || value.front() == '/' || value.front() == '.' || value.front() == '~') return false;
  bool digit = false, lower = false, upper_case = false;
  for (char c : value) {
    if (!is_token_char(c)) return false;
    digit |= std::isdigit(static_cast<unsigned char>(c)) != 0;
    lower |= std::islower(static_cast<unsigned char>(c)) != 0;
    upper_case |= std::isupper(static_cast<unsigned char>(c)) != 0;
  }
  return digit && (lower || upper_case) && ((lower && upper_case) || value.size() >= 32);
}

bool names_a_secret(std::string_view name) {
  const std::string n = upper(name);
  for (const char* word :
       {"TOKEN", "SECRET", "PASSWORD", "PASSWD", "API_KEY", "APIKEY", "PRIVATE", "CREDENTIAL", "AUTH_", "_AUTH"}) {
    if (n.find(word) != std::string::npos) return true;
  }
  return n.size() > 4 && n.compare(n.size() - 4, 4, "_KEY") == 0;
}

std::string redact(std::string_view text) {
  std::string out(text);
  // https://user:password@host/... keeps the user; a bare token as the user goes entirely.
  if (const size_t scheme = out.find("://"); scheme != std::string::npos) {
    const size_t start = scheme + 3;
    const size_t end = out.find_first_of("/?#", start);
    const size_t at = out.rfind('@', end == std::string::npos ? std::string::npos : end);
    if (at != std::string::npos && at > start) {
      const std::string user_info = out.substr(start, at - start);
      const size_t colon = user_info.find(':');
      if (colon != std::string::npos) {
        out.replace(start + colon + 1, at - start - colon - 1, kRedacted);
      } else if (looks_like_secret(user_info)) {
        out.replace(start, at - start, kRedacted);
      }
    }
  }
  if (looks_like_secret(out)) return kRedacted;
  // --token=VALUE, KEY=VALUE
  if (const size_t eq = out.find('='); eq != std::string::npos && eq + 1 < out.size()) {
    if (names_a_secret(out.substr(0, eq)) || looks_like_secret(out.substr(eq + 1))) {
      return out.substr(0, eq + 1) + kRedacted;
    }
  }
  return out;
}

std::vector<ConfigEntry> describe_config(const fs::path& home, const Settings& settings) {
  std::vector<ConfigEntry> out;
  FileView config(home, "config.yaml", out);
  top_level(config, settings.config);
  coordinator(config, settings.config);
  worker(config, settings.config);
  container(config, settings.config.container);
  budget(config, {"budget"}, settings.config.budget, false);
  repos_and_github(config, settings.config);
  FileView ids(home, "identities.yaml", out);
  identities(ids, settings.identities, out);
  FileView ag(home, "agents.yaml", out);
  agents(ag, settings.agents);
  FileView ro(home, "routing.yaml", out);
  routing(ro, settings.routing);
  return out;
}

}  // namespace polyphony::cli
