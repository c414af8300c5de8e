#!/usr/bin/env bash
# Makes sure a Docker engine answers, starting a private dockerd when none does, and prints
# its socket (only that, on stdout), so callers can: export DOCKER_HOST=$(scripts/ensure-docker.sh)
#
# Idempotent. Environment:
#   POLYPHONY_DOCKER_ISOLATED=1 (default) starts the private dockerd without a bridge network
#     or iptables rules (containers then need NetworkMode "none"); 0 gives a normal dockerd.
#   POLYPHONY_DOCKER_RUN_DIR (/run/polyphony-docker), POLYPHONY_DOCKER_DATA_ROOT
#     (/var/lib/polyphony-docker/data), POLYPHONY_DOCKER_LOG (/var/log/polyphony-dockerd.log):
#     where the private dockerd keeps its socket, pidfile, images and log.
#   POLYPHONY_DOCKER_CPU_SHARES=8192 (default): the private dockerd's containers go in the cgroup
#     /polyphony-docker with this CPU weight (cgroup v1 cpu.shares; v2 gets the same share of
#     cpu.weight), so that agents, all in that one group, are not starved by the engine's own
#     processes (dockerd, containerd, the shims and runc, each weighing 1024 on its own) while
#     warm containers are made and removed. 0 leaves containers in the engine's default /docker.
set -euo pipefail

readonly PRIVATE_DIR=${POLYPHONY_DOCKER_RUN_DIR:-/run/polyphony-docker}
readonly PRIVATE_SOCKET="$PRIVATE_DIR/docker.sock"
readonly PRIVATE_HOST="unix://$PRIVATE_SOCKET"
readonly DATA_ROOT=${POLYPHONY_DOCKER_DATA_ROOT:-/var/lib/polyphony-docker/data}
readonly EXEC_ROOT="$PRIVATE_DIR/exec"
readonly PIDFILE="$PRIVATE_DIR/dockerd.pid"
readonly LOG=${POLYPHONY_DOCKER_LOG:-/var/log/polyphony-dockerd.log}
readonly START_TIMEOUT=60

log() { echo "ensure-docker: $*" >&2; }
die() { log "$*"; exit 1; }

# Debian's docker.io client matches its engine's API; /usr/local/bin/docker may be another.
docker_cli() {
  if [[ -x /usr/bin/docker ]]; then echo /usr/bin/docker; else command -v docker || true; fi
}

answers() {  # answers HOST
  local cli
  cli=$(docker_cli)
  [[ -n "$cli" ]] || return 1
  timeout 10 "$cli" -H "$1" version >/dev/null 2>&1
}

existing_engine() {
  if [[ -n "${DOCKER_HOST:-}" ]] && answers "$DOCKER_HOST"; then echo "$DOCKER_HOST"; return 0; fi
  if [[ -S /var/run/docker.sock ]] && answers unix:///var/run/docker.sock; then
    echo unix:///var/run/docker.sock; return 0
  fi
  if [[ -S "$PRIVATE_SOCKET" ]] && answers "$PRIVATE_HOST"; then echo "$PRIVATE_HOST"; return 0; fi
  return 1
}

install_docker() {
  [[ -x /usr/sbin/dockerd && -x /usr/bin/docker ]] && return 0
  [[ $(id -u) -eq 0 ]] || die "dockerd is not installed and installing it needs root: run this script as root"
  log "installing docker.io with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends docker.io >&2
}

# True when PID is a live process named NAME (a zombie awaiting its reaper counts as gone).
process_alive() {  # process_alive PID NAME
  [[ -n "$1" && -r "/proc/$1/stat" ]] || return 1
  [[ "$(cat "/proc/$1/comm" 2>/dev/null)" == "$2" ]] || return 1
  [[ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" != Z ]]
}

# dockerd reuses the containerd its pidfile names while that pid exists, even as a zombie.
clear_stale_containerd() {
  local pidfile="$EXEC_ROOT/containerd/containerd.pid" pid
  [[ -f "$pidfile" ]] || return 0
  pid=$(cat "$pidfile" 2>/dev/null || true)
  process_alive "$pid" containerd && return 0
  log "removing the stale containerd pidfile $pidfile"
  rm -f "$pidfile"
}

# A dockerd that was killed leaves its pidfile and socket behind; dockerd refuses to start
# while the pidfile names a live process, and a stale socket would look like an engine.
clear_stale_state() {
  if [[ -f "$PIDFILE" ]]; then
    local pid
    pid=$(cat "$PIDFILE" 2>/dev/null || true)
    if process_alive "$pid" dockerd; then
      log "dockerd (pid $pid) is running but not answering yet; waiting for it"
      return 0
    fi
    log "removing the stale pidfile $PIDFILE (pid ${pid:-?} is gone)"
    rm -f "$PIDFILE"
  fi
  if [[ -S "$PRIVATE_SOCKET" ]]; then
    log "removing the stale socket $PRIVATE_SOCKET"
    rm -f "$PRIVATE_SOCKET"
  fi
  clear_stale_containerd
}

dockerd_running() {
  [[ -f "$PIDFILE" ]] && process_alive "$(cat "$PIDFILE" 2>/dev/null)" dockerd
}

# Makes the cgroup the private dockerd's containers go in, with POLYPHONY_DOCKER_CPU_SHARES as
# its weight, and prints its path; prints nothing and fails when there is no weight to set.
weighted_cgroup_parent() {
  local shares=${POLYPHONY_DOCKER_CPU_SHARES:-8192} name=polyphony-docker
  [[ "$shares" =~ ^[0-9]+$ ]] || die "POLYPHONY_DOCKER_CPU_SHARES must be a number, not '$shares'"
  ((shares > 0)) || return 1
  if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
    # cgroup v2: cpu.weight is 1..10000 with 100 the default, as 1024 is for cpu.shares.
    local weight=$((shares * 100 / 1024))
    ((weight >= 1 && weight <= 10000)) || weight=$((weight < 1 ? 1 : 10000))
    echo +cpu >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null || true
    if mkdir -p "/sys/fs/cgroup/$name" 2>/dev/null && echo "$weight" >"/sys/fs/cgroup/$name/cpu.weight" 2>/dev/null; then
      log "containers go in /$name, CPU weight $weight"
      echo "/$name"
      return 0
    fi
  elif [[ -d /sys/fs/cgroup/cpu ]]; then
    if mkdir -p "/sys/fs/cgroup/cpu/$name" 2>/dev/null && echo "$shares" >"/sys/fs/cgroup/cpu/$name/cpu.shares" 2>/dev/null; then
      log "containers go in /$name, cpu.shares $shares"
      echo "/$name"
      return 0
    fi
  fi
  log "cannot set a CPU weight for containers here; they keep the engine's default cgroup"
  return 1
}

start_dockerd() {
  [[ $(id -u) -eq 0 ]] || die "starting the private dockerd needs root: run this script as root, or start Docker yourself"
  mkdir -p "$PRIVATE_DIR" "$DATA_ROOT" "$EXEC_ROOT" "$(dirname "$LOG")"
  local args=(--host "$PRIVATE_HOST" --data-root "$DATA_ROOT" --exec-root "$EXEC_ROOT"
              --pidfile "$PIDFILE")
  if [[ "${POLYPHONY_DOCKER_ISOLATED:-1}" == 1 ]]; then
    args+=(--bridge=none --iptables=false --ip6tables=false)
  fi
  if parent=$(weighted_cgroup_parent); then
    args+=(--cgroup-parent "$parent")
  fi
  log "starting dockerd on $PRIVATE_HOST (log: $LOG)"
  nohup /usr/sbin/dockerd "${args[@]}" >>"$LOG" 2>&1 </dev/null &
  disown || true
}

wait_for_engine() {
  local deadline=$((SECONDS + START_TIMEOUT))
  while ((SECONDS < deadline)); do
    if answers "$PRIVATE_HOST"; then return 0; fi
    sleep 1
  done
  log "dockerd did not answer on $PRIVATE_HOST within ${START_TIMEOUT}s; the end of $LOG:"
  tail -n 20 "$LOG" >&2 || true
  return 1
}

main() {
  local host
  if host=$(existing_engine); then
    echo "$host"
    return 0
  fi
  install_docker
  clear_stale_state
  dockerd_running || start_dockerd
  wait_for_engine || exit 1
  echo "$PRIVATE_HOST"
}

main "$@"
