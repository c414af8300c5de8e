#!/usr/bin/env bash
# Runs the real `claude` or `codex` CLI against the stand-in model API (fake_model_api) in a
# fresh network namespace that has only loopback, so nothing can leave the machine; as a
# non-root user; in a fresh git repository, with a fresh config directory and the prompt on
# stdin. The environment, config file and argv are the ones tests/fake_model/README.md gives.
#
#   run_agent_in_netns.sh claude|codex SCRIPT.json OUT_DIR [PROMPT_FILE]
#
# Run as root (unshare --net, setpriv). OUT_DIR (created afresh) gets: work/ (the repository:
# hello.txt, test.sh, one commit), config/ (CLAUDE_CONFIG_DIR or CODEX_HOME), home/, stdout,
# stderr, rc (the CLI's exit code), seconds, requests.jsonl (the stand-in's request log).
#
# Environment: FAKE_MODEL_API (default: build/tests/fake_model_api of this checkout),
# CLAUDE_BIN, CODEX_BIN (the native binaries), AGENT_UID (default 1000), RETRIES (the CLI's
# retry count, default 0), EXTRA_ENV (more VAR=value words for the CLI's environment),
# TRACE=1 (strace the CLI's connect() calls into OUT_DIR/connects.txt: any address other than
# 127.0.0.1 there is traffic that would have left the machine).
set -euo pipefail

readonly AGENT=$1 SCRIPT=$(realpath "$2") OUT=$3 PROMPT_FILE=${4:-}
readonly ROOT=$(cd "$(dirname "$0")/../.." && pwd)
readonly SERVER=${FAKE_MODEL_API:-$ROOT/build/tests/fake_model_api}
readonly AGENT_UID=${AGENT_UID:-1000} RETRIES=${RETRIES:-0}
readonly PROBE=/opt/agent-probe/node_modules
readonly CLAUDE_BIN=${CLAUDE_BIN:-$PROBE/@anthropic-ai/claude-code/bin/claude.exe}
readonly CODEX_BIN=${CODEX_BIN:-$PROBE/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/bin/codex}

make_repository() {
  rm -rf "$OUT"
  mkdir -p "$OUT/work" "$OUT/config" "$OUT/home"
  git -C "$OUT/work" init -q -b main
  printf 'hello world\n' >"$OUT/work/hello.txt"
  printf 'echo test-ran; cat hello.txt\n' >"$OUT/work/test.sh"
  git -C "$OUT/work" add -A
  git -C "$OUT/work" -c user.name=t -c user.email=t@example.com commit -qm init
  if [[ -n $PROMPT_FILE ]]; then cp "$PROMPT_FILE" "$OUT/prompt"; else echo "Do the task." >"$OUT/prompt"; fi
  chown -R "$AGENT_UID:$AGENT_UID" "$OUT"
}

codex_config() {  # $1: the stand-in's port
  cat <<EOF
model = "gpt-5.5"
model_provider = "fake"
approval_policy = "never"
sandbox_mode = "danger-full-access"
check_for_update_on_startup = false
web_search = "disabled"

[model_providers.fake]
name = "Fake"
base_url = "http://127.0.0.1:$1/v1"
env_key = "FAKE_MODEL_API_KEY"
wire_api = "responses"
request_max_retries = $RETRIES
stream_max_retries = $RETRIES

[analytics]
enabled = false

[feedback]
enabled = false

[features]
plugins = false
apps = false
shell_snapshot = false
EOF
}

# The CLI's environment (env -i: nothing else leaks in) and argv, one word a line.
agent_command() {  # $1: the stand-in's port
  local common=(HOME="$OUT/home" PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8)
  case $AGENT in
    claude)
      printf '%s\n' env -i "${common[@]}" ANTHROPIC_BASE_URL="http://127.0.0.1:$1" \
        ANTHROPIC_API_KEY=sk-ant-fake-key CLAUDE_CONFIG_DIR="$OUT/config" \
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_AUTOUPDATER=1 DISABLE_TELEMETRY=1 \
        DISABLE_ERROR_REPORTING=1 CLAUDE_CODE_MAX_RETRIES="$RETRIES" ${EXTRA_ENV:-} \
        "$CLAUDE_BIN" -p --output-format stream-json --verbose --dangerously-skip-permissions ;;
    codex)
      printf '%s\n' env -i "${common[@]}" CODEX_HOME="$OUT/config" FAKE_MODEL_API_KEY=sk-fake-key \
        ${EXTRA_ENV:-} "$CODEX_BIN" exec --json --dangerously-bypass-approvals-and-sandbox \
        --skip-git-repo-check - ;;
    *) echo "usage: $0 claude|codex SCRIPT.json OUT_DIR [PROMPT_FILE]" >&2; exit 2 ;;
  esac
}

# Inside the namespace: loopback up, the stand-in on a free port, the CLI as AGENT_UID.
inside_namespace() {
  ip link set lo up
  touch "$OUT/requests.jsonl"
  "$SERVER" --listen 127.0.0.1:0 --port-file "$OUT/port" --script "$SCRIPT" \
    --log "$OUT/requests.jsonl" 2>"$OUT/server.err" &
  local server=$!
  for _ in $(seq 100); do [[ -s $OUT/port ]] && break; sleep 0.05; done
  local port
  port=$(cat "$OUT/port")
  [[ $AGENT == codex ]] && codex_config "$port" >"$OUT/config/config.toml"
  chown -R "$AGENT_UID:$AGENT_UID" "$OUT/config"
  mapfile -t command < <(agent_command "$port")
  [[ ${TRACE:-} == 1 ]] && command=(strace -f -qq -e trace=connect -o "$OUT/connects.txt" "${command[@]}")
  local start=$SECONDS rc=0
  (cd "$OUT/work" && setpriv --reuid="$AGENT_UID" --regid="$AGENT_UID" --clear-groups \
    "${command[@]}" <"$OUT/prompt" >"$OUT/stdout" 2>"$OUT/stderr") || rc=$?
  echo "$rc" >"$OUT/rc"
  echo $((SECONDS - start)) >"$OUT/seconds"
  kill "$server"
}

make_repository
export -f inside_namespace agent_command codex_config
export AGENT SCRIPT OUT PROMPT_FILE SERVER AGENT_UID RETRIES CLAUDE_BIN CODEX_BIN EXTRA_ENV TRACE
unshare --net bash -c "set -euo pipefail; inside_namespace"
echo "$AGENT: exit $(cat "$OUT/rc") after $(cat "$OUT/seconds")s; $(wc -l <"$OUT/requests.jsonl") requests"
