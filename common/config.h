// The four files under POLYPHONY_HOME (config.yaml, identities.yaml, agents.yaml, routing.yaml):
// their types, loading with file:line errors, and the commented defaults `polyphony init` writes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"

namespace polyphony {

// ~/.polyphony, or $POLYPHONY_HOME when set.
std::filesystem::path polyphony_home();

// Expands a leading "~/" and makes a relative path relative to `base`.
std::filesystem::path resolve_path(const std::string& text, const std::filesystem::path& base);

struct RepoConfig {
  std::string name;         // key under repos:
  std::string url;          // local path or remote URL of the origin
  std::string base_branch;  // empty: the origin's default branch
  std::string verify;       // used when the repo has no .polyphony.yaml
  int line = 0;             // where it was defined in config.yaml
};

struct ContainerConfig {
  std::string image = "polyphony-worker:latest";
  std::string network = "bridge";
  double cpus = 2.0;                 // 0: no limit
  int64_t memory_bytes = 4LL << 30;  // 0: no limit
  int uid = 1000;                    // the non-root user containers run as
  int gid = 1000;
  int64_t run_timeout_s = 3600;
  int64_t verify_timeout_s = 1800;
  int64_t stall_timeout_s = 900;  // agent silent this long is stopped; 0: never
  int warm = -1;                  // warm task containers per worker; -1: its capacity
  // What the worker imposes on every container it starts, whatever a RunSpec says (the agent
  // is hostile: README "Security").
  int64_t pids_limit = 512;                    // processes (and threads) per container; 0: none
  int64_t workspace_limit_bytes = 10LL << 30;  // the workspace's disk use; past it the task fails; 0: none
  int64_t output_limit_bytes = 16LL << 20;     // output kept per attempt; the rest is dropped; 0: none
  bool read_only_root = true;                  // root filesystem read-only; /tmp and $HOME are tmpfs
  std::vector<std::string> cap_add;            // capabilities given back (all are dropped), e.g. NET_BIND_SERVICE
  // The worker's allow-list: a RunSpec naming anything else is refused. Empty: the defaults
  // (the configured image, the configured network, identity mount sources and workspace_root).
  std::vector<std::string> allowed_images;
  std::vector<std::string> allowed_networks;
  std::vector<std::string> allowed_mount_roots;
};

// CURVE on the coordinator's TCP endpoints (config.yaml `coordinator:`). Paths are resolved
// against POLYPHONY_HOME; the files are read when the coordinator starts, not when the config
// loads. `where` maps each key that was set ("secret_key_file", ...) to its "file:line:col".
struct CoordinatorSecurity {
  std::filesystem::path secret_key_file;         // empty: no CURVE (then only ipc, inproc, loopback)
  std::filesystem::path public_key_file;         // optional; must match the secret key
  std::filesystem::path allowed_workers_dir;     // every *.pub in it is an allowed worker key
  std::vector<std::string> allowed_worker_keys;  // Z85 public keys
  std::filesystem::path allowed_clients_dir;     // every *.pub in it is an allowed client key
  std::vector<std::string> allowed_client_keys;
  bool insecure = false;  // plain TCP allowed, on 127.0.0.0/8 only
  std::map<std::string, std::string> where;

  bool curve() const { return !secret_key_file.empty(); }
};

// CURVE of a standalone polyphony-worker (config.yaml `worker:`).
struct WorkerSecurity {
  std::filesystem::path secret_key_file;  // empty: no CURVE
  std::filesystem::path public_key_file;  // optional; must match the secret key
  std::string coordinator_public_key;     // Z85, or
  std::filesystem::path coordinator_public_key_file;
  bool insecure = false;  // plain TCP allowed, on 127.0.0.0/8 only
  std::map<std::string, std::string> where;

  bool curve() const { return !secret_key_file.empty(); }
};

// GitHub Issues as a work source (config.yaml `github:`); absent: the source is off.
struct GithubConfig {
  std::string repo;                 // "owner/name"; empty: GitHub mode is off
  std::string remote;               // a repos: name, git URL or path; empty: https://<host>/<repo>.git
  std::string base_branch;          // PR base; empty: the repos: entry's, else the GitHub default branch
  std::string label = "polyphony";  // issues carrying it become tasks
  std::string claimed_label = "polyphony:claimed";
  std::vector<std::string> filter_labels;   // further labels an issue must carry (e.g. type:bugfix)
  std::string type_label_prefix = "type:";  // label "type:bugfix" sets the task type
  std::string risk_label_prefix = "risk:";  // label "risk:high" sets the risk
  int64_t poll_interval_ms = 60000;
  std::string auto_merge;           // "", "merge", "squash" or "rebase"
  std::string gh = "gh";            // the gh program
  std::string host = "github.com";  // GitHub or a GitHub Enterprise host[:port]; gh's GH_HOST
  int64_t gh_timeout_ms = 60000;
  int line = 0;  // where `github:` is in config.yaml

  bool enabled() const { return !repo.empty(); }
};

// What one agent run may spend (config.yaml `budget:`, a routing rule's `budget:` over it).
// 0: no limit. Passing a limit stops the agent; the attempt fails with kind "budget".
struct Budget {
  int max_turns = 0;       // model turns, as the agent's structured output counts them
  int64_t max_tokens = 0;  // input + output tokens, as it reports them
  int64_t max_wall_s = 0;  // its run time; 0: container.run_timeout_s
  int line = 0;            // where it was set (0: not set)
};

struct Config {
  std::filesystem::path home;            // the directory the files came from
  std::filesystem::path workspace_root;  // default <home>/workspaces
  std::filesystem::path state_db;        // default <home>/state.db
  std::filesystem::path queue_db;        // default <home>/queue.db
  std::filesystem::path log_dir;         // default <home>/logs
  int64_t poll_interval_ms = 500;
  int max_concurrency = 4;
  int max_concurrency_per_repo = 0;  // 0: no limit beyond max_concurrency
  int max_attempts = 3;
  int review_rounds = 2;  // times a reviewer may send the work back

  int64_t retry_backoff_base_ms = 1000;  // first retry waits about this long (+-20% jitter)
  int64_t retry_backoff_cap_ms = 60000;  // doubling stops here
  std::string docker_host;               // empty: auto-detect
  // Coordinator endpoints. worker_endpoint empty: only the embedded worker.
  std::string worker_endpoint;
  std::string client_endpoint;
  bool embedded_worker = true;
  // The web dashboard and /metrics (`polyphony serve`): "host:port", empty: off. Any address
  // but loopback needs http_token_file, a file holding the bearer token clients must send.
  std::string http_listen = "127.0.0.1:7780";
  std::filesystem::path http_token_file;
  int64_t heartbeat_interval_ms = 1000;
  int heartbeat_liveness = 3;
  // A worker lost (silent past its liveness budget) for this long leaves the worker table; 0: never.
  int64_t lost_worker_expiry_ms = 3600000;
  // How long the coordinator's clone or fetch of a remote repo (the mirror it scores tasks
  // against) may take; past it the tasks waiting on it proceed unscored.
  int64_t mirror_timeout_s = 600;
  // For a standalone polyphony-worker.
  std::string coordinator_endpoint = "tcp://127.0.0.1:7701";
  int worker_capacity = 4;
  std::vector<std::string> worker_labels;
  CoordinatorSecurity coordinator_security;
  WorkerSecurity worker_security;
  ContainerConfig container;
  Budget budget;
  std::map<std::string, RepoConfig> repos;
  // repos.allowed_roots: the local-path repos a client on the client endpoint may name must lie
  // under one of these (symlinks resolved). Empty: any local git repository.
  std::vector<std::filesystem::path> repo_allowed_roots;
  GithubConfig github;
};

struct IdentityMount {
  std::string host_path;
  std::string container_path;
  int line = 0;
};

struct IdentityEnv {
  std::string name;
  std::string value;      // literal value, or
  std::string from_env;   // name of a host environment variable, or
  std::string from_file;  // path of a file whose content (trimmed) is the value
  int line = 0;
  bool optional = false;  // from_env / from_file: left out when unset or missing
};

// A credential or config file copied into the agent's own config directory for each run.
struct IdentityFile {
  std::string host_path;  // on the coordinator's host ("~/" allowed)
  std::string as;         // its path in the config directory; default: the file's name
  int line = 0;
};

struct Identity {
  std::string name;
  std::vector<IdentityMount> mounts;
  std::vector<IdentityEnv> env;
  int line = 0;
  std::vector<IdentityFile> files;
};

struct AgentProfile {
  std::string name;
  // argv run in the container. Placeholders: {prompt} (title, blank line, body),
  // {title}, {task_file} (the task as markdown, /polyphony/task.md), {branch}.
  std::vector<std::string> command;
  std::string identity;        // empty: none
  std::string tier = "cheap";  // "cheap" or "strong"
  std::vector<std::string> strengths;
  std::map<std::string, std::string> env;  // non-secret env for the container
  int line = 0;
  // What the agent reads on stdin, with the same placeholders as command ("{prompt}"); empty:
  // nothing. A task of any size fits there, unlike in an argv element.
  std::string stdin_template;
  // How its stdout reads: "" (plain text), "claude-stream-json" or "codex-json"; the worker
  // reads the run's model, turns, tokens, cost and final message from it.
  std::string output_format;
  // The variable that names the CLI's config directory (CLAUDE_CONFIG_DIR, CODEX_HOME): each run
  // gets its own writable one, holding copies of its identity's files.
  std::string config_dir_env;
};

// The structured output formats an agent profile may name.
bool is_known_output_format(const std::string& format);

struct RouteMatch {
  std::optional<std::string> task_type;
  std::optional<std::string> risk;
  std::vector<std::string> labels;  // all must be present on the task
  std::optional<std::string> repo;
  std::optional<int> score_min;
  std::optional<int> score_max;
};

// How carefully a task is done: one cheap agent alone, an implementer and a reviewer, or the
// strongest agent directly.
enum class Plan { kSolo, kReview, kStrong };

// "solo", "review", "strong".
const char* plan_name(Plan plan);
// nullopt when `text` names no plan.
std::optional<Plan> parse_plan(const std::string& text);

struct RouteRule {
  RouteMatch match;
  std::string agent;  // empty only when the rule names a plan
  std::optional<Plan> plan;
  std::optional<Budget> budget;  // over config.yaml's for the tasks it matches
  int line = 0;
};

// Cut-offs of one scoring dimension: a measure >= one scores 1, >= two scores 2.
struct ScoreCutOffs {
  int one = 1;
  int two = 2;
};

// The complexity score's thresholds (routing.yaml `scoring:`). Totals 0..solo_max are the
// solo plan, solo_max+1..review_max the review plan, above review_max the strong plan.
struct ScoringPolicy {
  int solo_max = 3;
  int review_max = 6;
  ScoreCutOffs lines_of_code{150, 600};     // non-blank lines of the touched files
  ScoreCutOffs nesting{4, 6};               // deepest scope in a touched file
  ScoreCutOffs call_sites{4, 12};           // call sites of the symbols involved
  ScoreCutOffs security_keywords{1, 3};     // distinct auth/PII keywords found
  ScoreCutOffs concurrency_keywords{1, 3};  // distinct lock/transaction keywords found
  int line = 0;                             // where `scoring:` is in routing.yaml (0: defaults)
};

// Routing that learns from outcomes (routing.yaml `learning:`), off by default. When on, a task
// whose agent no --agent and no rule names goes to the cheapest agent (tier cheap before strong,
// then the lower cost a task, then the default's order) that finished at least min_tasks tasks
// of this repo in the task's score band and landed at least min_landing_rate of them; for the
// strong plan only agents of tier strong qualify.
struct LearningPolicy {
  bool enabled = false;
  int min_tasks = 5;
  double min_landing_rate = 0.8;
  int line = 0;  // where `learning:` is in routing.yaml (0: defaults)
};

struct RoutingPolicy {
  std::vector<RouteRule> rules;
  std::string default_agent = "scripted";
  std::vector<std::string> fallback;
  int default_line = 0;
  ScoringPolicy scoring;
  LearningPolicy learning;
};

// Everything under POLYPHONY_HOME, validated across files (agents name known identities,
// routing names known agents).
struct Settings {
  Config config;
  std::map<std::string, Identity> identities;
  std::map<std::string, AgentProfile> agents;
  RoutingPolicy routing;
};

// Each loader reports the first problem as Error{"config", what is wrong, "file:line:col"}.
// A missing file yields the defaults (as `polyphony init` would write them).
Result<Config> load_config(const std::filesystem::path& file, const std::filesystem::path& home);
Result<std::map<std::string, Identity>> load_identities(const std::filesystem::path& file);
Result<std::map<std::string, AgentProfile>> load_agents(const std::filesystem::path& file);
Result<RoutingPolicy> load_routing(const std::filesystem::path& file);

// Loads all four from `home` and checks the references between them.
Result<Settings> load_settings(const std::filesystem::path& home);

// The commented default files, keyed by file name.
std::map<std::string, std::string> default_config_files();

// Parses "4g", "512m", "1024k", "123" (bytes). nullopt when malformed.
std::optional<int64_t> parse_bytes(const std::string& text);

// Finds the repo config whose name is `repo` or whose url equals `repo`.
const RepoConfig* find_repo(const Config& config, const std::string& repo);

}  // namespace polyphony
