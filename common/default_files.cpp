// The commented files `polyphony init` writes; loading them must give the built-in defaults.
#include "common/config.h"

namespace polyphony {

namespace {

constexpr const char* kConfigYaml = R"(# Polyphony configuration (config.yaml).
# Relative paths are relative to this directory; "~/" is your home directory.

# Where per-task clones and per-repo reference mirrors live.
workspace_root: workspaces
# How often (milliseconds) the coordinator looks for new work.
poll_interval_ms: 500
# Tasks running at once on this coordinator, and at most this many on one repo (0: no limit).
# A task holds its slot until its verify passes: the next task starts while it lands.
# Queued tasks are taken fairly across repos.
max_concurrency: 4
max_concurrency_per_repo: 0
# Attempts before a failing task is BLOCKED; retries wait base, 2x base, 4x base ... up to cap
# (milliseconds, +-20% jitter).
max_attempts: 3
retry_backoff_base_ms: 1000
retry_backoff_cap_ms: 60000
# Review plan: how many times the reviewer may send the work back before the attempt fails.
review_rounds: 2
# Docker engine socket; empty: $DOCKER_HOST, /var/run/docker.sock, OrbStack's socket.
docker_host: ""

coordinator:
  # Run a worker inside `polyphony serve` (the single-box default).
  embedded_worker: true
  # Endpoint remote polyphony-worker processes connect to; empty: none.
  # Example: tcp://0.0.0.0:7701
  worker_endpoint: ""
  heartbeat_interval_ms: 1000
  # Missed heartbeats before a worker counts as lost (its tasks are then requeued). A worker
  # whose connection closes is lost after one interval unless it reconnects.
  heartbeat_liveness: 3
  # How long a lost worker stays in `polyphony workers` before it is dropped; 0: until
  # `polyphony workers remove`.
  lost_worker_expiry_ms: 3600000
  # Seconds a clone or fetch of a remote repo may take when the coordinator mirrors it to score
  # a task (off its socket loop); past it the task proceeds unscored, the reason saying why.
  mirror_timeout_s: 600
  # Endpoint polyphony-submit and `polyphony workers` reach from other hosts; empty: only
  # ipc://<this directory>/coordinator.sock. Example: tcp://0.0.0.0:7702
  # client_endpoint: ""
  # CURVE (encryption and key authentication) on every tcp:// endpoint. Make keys with
  # `polyphony keys gen --name coordinator --out keys`; allow a worker or client by putting
  # its .pub file (or its key) in the allow-list.
  # secret_key_file: keys/coordinator.key
  # public_key_file: keys/coordinator.pub        # optional, checked against the secret key
  # allowed_workers_dir: keys/workers             # every *.pub here may connect as a worker
  # allowed_worker_keys: []                       # or list keys (40 Z85 characters) inline
  # allowed_clients_dir: keys/clients             # every *.pub here may use client_endpoint
  # allowed_client_keys: []
  # Without secret_key_file, a tcp:// endpoint is refused unless it is on 127.0.0.0/8 and this
  # is true (plain TCP, for a single machine or tests).
  # insecure: false

# Settings of a standalone `polyphony-worker` on another host.
worker:
  coordinator: tcp://127.0.0.1:7701
  capacity: 4
  # Labels a task can require with a `needs:<label>` task label, e.g. gpu or arch=arm64.
  labels: []
  # CURVE keys: this worker's (its .pub goes into the coordinator's allowed_workers_dir) and
  # the coordinator's public key (a .pub file, or coordinator_public_key: <40 Z85 characters>).
  # secret_key_file: keys/worker1.key
  # coordinator_public_key_file: keys/coordinator.pub
  # Plain TCP to a loopback coordinator, without keys.
  # insecure: false

# What one agent run may spend (0: no limit); a routing rule may set its own `budget:`.
# Turns and tokens are counted from the agent's structured output (agents.yaml `output:`);
# max_wall_s replaces container.run_timeout_s. Passing one stops the agent: the attempt fails
# with reason "budget" and is not retried.
budget:
  max_turns: 0
  max_tokens: 0
  max_wall_s: 0

# Every agent and verify run happens in a container made from this image.
container:
  image: polyphony-worker:latest
  # bridge lets agents reach their APIs; none cuts the container off the network.
  network: bridge
  cpus: 2
  memory: 4g
  # The non-root user (uid:gid) containers run as.
  user: "1000:1000"
  run_timeout_s: 3600
  verify_timeout_s: 1800
  # An agent that prints nothing for this long is stopped (0: never).
  stall_timeout_s: 900
  # Task containers each worker keeps started ahead of tasks, each on a spare checkout of a
  # repo it served last, so an agent starts without waiting for Docker or a clone. Costs a
  # checkout of disk and an idle container each. Default: the worker's capacity; 0: none.
  # warm: 4
  # Limits the worker imposes on every container, whatever the coordinator asks (README
  # "Security"): processes per container, the workspace's disk use (the task fails past it),
  # output kept per attempt (the rest is dropped, with a note).
  pids_limit: 512
  workspace_limit: 10g
  output_limit: 16m
  # Root filesystem read-only (/tmp and /home/agent are tmpfs); every capability is dropped,
  # cap_add gives some back (e.g. [NET_BIND_SERVICE]).
  read_only_root: true
  # cap_add: []
  # The worker's allow-list: a RunSpec naming another image, network mode or mount source is
  # refused. Default: the image and network above, workspace_root and identity mount sources.
  # allowed_images: [polyphony-worker:latest]
  # allowed_networks: [bridge]
  # allowed_mount_roots: [/home/me/.claude]

# Per-repo settings, used when `spawn --repo` names the repo or its url.
# The verify command here applies when the repo has no .polyphony.yaml at its root.
repos: {}
#  allowed_roots: [/srv/git]   # local paths a client (polyphony-submit) may name; default: any
#  myapp:
#    url: /srv/git/myapp.git
#    base_branch: main
#    verify: make test

# GitHub mode (off unless github.repo is set): open issues labelled `polyphony` become tasks,
# claimed with the `polyphony:claimed` label and a comment, and land as pull requests. Needs
# `gh` logged in (gh auth login).
# github:
#   repo: owner/name
#   remote: myapp            # a repos: name, git URL or path; default https://github.com/owner/name.git
#   label: polyphony
#   claimed_label: polyphony:claimed
#   filter_labels: []        # e.g. [type:bugfix]: only issues carrying these too
#   type_label_prefix: "type:"
#   risk_label_prefix: "risk:"
#   poll_interval_ms: 60000
#   auto_merge: ""           # merge, squash or rebase to merge the pull request at once
)";

constexpr const char* kIdentitiesYaml =
    R"(# Credential bundles (identities.yaml). An agent in agents.yaml names the identity it uses.
# The coordinator resolves them and ships them with each task, so workers on other hosts need
# none of these files.
#   env:    values from a literal `value`, the host's environment (`from_env`) or a file
#           (`from_file`); `optional: true` leaves one out when it is not set. They never appear
#           in logs or status. An identity with none of its credentials set is refused.
#   files:  credential or config files copied (never written back) into each agent run's own
#           writable config directory (CLAUDE_CONFIG_DIR, CODEX_HOME): a path, or {host, as}.
#   mounts: host directories mounted read-only (paths on the worker's host).
identities:
  anthropic:
    # An API key, or a subscription: run `claude setup-token` once and export the token it
    # prints as CLAUDE_CODE_OAUTH_TOKEN.
    env:
      ANTHROPIC_API_KEY: {from_env: ANTHROPIC_API_KEY, optional: true}
      CLAUDE_CODE_OAUTH_TOKEN: {from_env: CLAUDE_CODE_OAUTH_TOKEN, optional: true}
  openai:
    # An API key, or a ChatGPT login: `codex login` on this host writes ~/.codex/auth.json;
    # list it under files (see the README on sharing one login between many runs).
    env:
      OPENAI_API_KEY: {from_env: OPENAI_API_KEY, optional: true}
    # files:
    #   - ~/.codex/auth.json
  moonshot:
    env:
      KIMI_API_KEY: {from_env: KIMI_API_KEY, optional: true}
)";

constexpr const char* kAgentsYaml =
    R"(# Agent profiles (agents.yaml): the command run in the container, as an argv list.
# Placeholders: {prompt} (title and body), {title}, {task_file} (/polyphony/task.md), {branch}.
# stdin: what the agent reads on its standard input, with the same placeholders (a task of
#   any size fits there, unlike in an argument).
# output: how its stdout reads: text, claude-stream-json or codex-json; Polyphony reads the
#   model, turns, tokens, cost and final message of each run from it (`polyphony show`).
# config_dir_env: the variable naming the CLI's config directory; each run gets its own,
#   writable, holding copies of its identity's files.
# tier: cheap or strong; the router prefers cheap agents for simple tasks.
agents:
  scripted:
    # Applies the task body's ```diff blocks and runs its ```sh blocks; ships in the image.
    command: [polyphony-scripted-agent, "{task_file}"]
    tier: cheap
    strengths: [scripted, tests, demos]
  claude:
    # Claude Code, headless. The container is the sandbox: permission prompts are off (Claude
    # allows that because the container user is not root).
    command: [claude, -p, --output-format, stream-json, --verbose, --dangerously-skip-permissions]
    stdin: "{prompt}"
    output: claude-stream-json
    config_dir_env: CLAUDE_CONFIG_DIR
    identity: anthropic
    env:
      # No telemetry, error reports, update checks or other calls beside the model API's.
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1"
      DISABLE_AUTOUPDATER: "1"
      DISABLE_TELEMETRY: "1"
      DISABLE_ERROR_REPORTING: "1"
    tier: strong
    strengths: [refactoring, security, architecture]
  codex:
    # Codex, headless; the container is the sandbox, so Codex's own is off. The -c settings
    # stop its analytics, update checks and plugin and app syncs (calls beside the model API's).
    command: [codex, exec, --json, --dangerously-bypass-approvals-and-sandbox, --skip-git-repo-check,
              -c, analytics.enabled=false, -c, feedback.enabled=false, -c, check_for_update_on_startup=false,
              -c, features.plugins=false, -c, features.apps=false, "-"]
    stdin: "{prompt}"
    output: codex-json
    config_dir_env: CODEX_HOME
    identity: openai
    tier: cheap
    strengths: [bugfix, tests]
  kimi:
    # Untested: Kimi's CLI is in no registry Polyphony's image build reaches (docker/README.md
    # says how to add it to the image).
    command: [kimi, --print, -p, "{prompt}"]
    identity: moonshot
    tier: cheap
    strengths: [docs, bugfix]
)";

constexpr const char* kRoutingYaml = R"(# Routing rules (routing.yaml): evaluated top-down, the first match wins.
# A match may name task_type, risk, labels (all must be present), repo, and a range of the
# complexity score (score: {min: 4, max: 6}). A rule names an agent, a plan (solo: one
# agent; review: the agent implements, a second, strong agent reviews; strong: the strongest
# agent directly), or both. Without a plan, the score picks it. `polyphony config check`
# reports unknown agents and rules an earlier rule shadows.
rules:
  # Tasks whose body scripts the change (```diff / ```sh blocks) need no model.
  - match: {task_type: scripted}
    agent: scripted
  - match: {labels: [docs]}
    agent: kimi
  - match: {risk: high}
    agent: claude
# When no rule matches. The fallback chain is tried when an agent cannot run at all.
default:
  agent: codex
  fallback: [claude, kimi]
# The complexity score (0-10: five dimensions of 0-2; `polyphony route --explain` shows them).
scoring:
  # 0..solo_max: solo plan; up to review_max: review plan; above: strong plan.
  thresholds: {solo_max: 3, review_max: 6}
  # [one, two]: a measure at or above `one` scores 1, at or above `two` scores 2.
  cutoffs:
    lines_of_code: [150, 600]       # non-blank lines of the files the task touches
    nesting: [4, 6]                 # deepest scope in those files
    call_sites: [4, 12]             # calls of the functions the task names
    security_keywords: [1, 3]       # distinct auth/PII words in the task and those files
    concurrency_keywords: [1, 3]    # distinct lock/transaction words
# Routing that learns from outcomes. The state DB keeps how earlier tasks of each repo ended,
# per agent and score band (the bands of the thresholds above); `polyphony route --explain`
# shows it. When enabled, a task whose agent no rule names (and no --agent) goes to the
# cheapest agent (tier cheap before strong, then the lower cost a task) that finished at least
# min_tasks tasks of this repo in the task's band and landed at least min_landing_rate of them;
# the strong plan takes only strong agents. The agent it replaced heads the fallback chain, and
# the task's history says what it picked, why, and what it replaced.
learning:
  enabled: false
  min_tasks: 5
  min_landing_rate: 0.8
)";

}  // namespace

std::map<std::string, std::string> default_config_files() {
  return {{"config.yaml", kConfigYaml},
          {"identities.yaml", kIdentitiesYaml},
          {"agents.yaml", kAgentsYaml},
          {"routing.yaml", kRoutingYaml}};
}

}  // namespace polyphony
