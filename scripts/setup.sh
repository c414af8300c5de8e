#!/usr/bin/env bash
# Installs every dependency (Debian bookworm packages), builds Polyphony, makes sure a Docker
# engine answers (starting a private dockerd when none does) and builds the worker image with
# the agent CLIs pinned in docker/agents.lock (npm downloads them once into the image build's
# cache under /var/cache/polyphony; later runs reuse it).
# Idempotent. Prints `export` lines for DOCKER_HOST and PATH on stdout when --print-env is given.
#
# Environment: BUILD_DIR (default build), BUILD_TYPE (default RelWithDebInfo),
#   POLYPHONY_WERROR (ON or OFF: compiler warnings are errors; .ci/run sets ON; unset, ON when
#   CI is set, else whatever the build directory was configured with, OFF for a new one).
set -euo pipefail

cd "$(dirname "$0")/.."
readonly ROOT=$(pwd)
readonly BUILD_DIR=${BUILD_DIR:-$ROOT/build}
readonly BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo}

log() { echo "setup: $*" >&2; }

readonly PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libzmq3-dev cppzmq-dev libmsgpack-cxx-dev libyaml-cpp-dev libsqlite3-dev libgit2-dev
  libboost-dev libboost-filesystem-dev libboost-system-dev
  libspdlog-dev catch2 libcurl4-openssl-dev nlohmann-json3-dev libcpp-httplib-dev libcli11-dev
  docker.io debootstrap iproute2 gh openssl libssl-dev
  chromium python3-prometheus-client python3-zmq python3-msgpack clang-format universal-ctags
)

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  # npm installs the agent CLIs at image-build time. Any npm will do (a nodesource nodejs
  # brings its own, and Debian's npm would conflict with it): Debian's only when there is none.
  command -v npm >/dev/null || missing+=(npm)
  if [[ ${#missing[@]} -eq 0 ]]; then
    log "all packages present"
    return
  fi
  if [[ $(id -u) -ne 0 ]]; then
    log "missing packages: ${missing[*]}; run this script as root to install them"
    exit 1
  fi
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
}

# The dashboard's browser test drives Debian's chromium with puppeteer-core, pinned, installed by
# npm once into a cache directory (the tests find it there, or under $POLYPHONY_BROWSER_TEST_DIR).
readonly BROWSER_TEST_DIR=${POLYPHONY_BROWSER_TEST_DIR:-/var/cache/polyphony/browser-test}
readonly PUPPETEER_CORE=puppeteer-core@24.43.1

install_browser_driver() {
  local installed=$BROWSER_TEST_DIR/node_modules/puppeteer-core/package.json
  if [[ -f $installed ]] && grep -q "\"version\": \"${PUPPETEER_CORE#*@}\"" "$installed"; then
    return
  fi
  log "installing $PUPPETEER_CORE into $BROWSER_TEST_DIR"
  mkdir -p "$BROWSER_TEST_DIR"
  npm install --prefix "$BROWSER_TEST_DIR" --cache "$BROWSER_TEST_DIR/.npm" --no-audit --no-fund \
    "$PUPPETEER_CORE" >&2
}

# -DPOLYPHONY_WERROR=... when CI or the caller asks for a value; nothing otherwise.
werror_args() {
  local werror=${POLYPHONY_WERROR:-}
  [[ -z "$werror" && -n "${CI:-}" ]] && werror=ON
  case "${werror^^}" in
    "") ;;
    ON|OFF) echo "-DPOLYPHONY_WERROR=${werror^^}" ;;
    *) log "POLYPHONY_WERROR must be ON or OFF, not '$werror'"; exit 2 ;;
  esac
}

build() {
  local werror
  werror=$(werror_args)
  log "building ($BUILD_TYPE) in $BUILD_DIR${werror:+ with $werror}"
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="$BUILD_TYPE" ${werror:+"$werror"} >&2
  cmake --build "$BUILD_DIR" -j "$(nproc)" >&2
}

install_packages
install_browser_driver
build
DOCKER_HOST=$("$ROOT/scripts/ensure-docker.sh")
export DOCKER_HOST
log "Docker engine at $DOCKER_HOST"
"$BUILD_DIR/cli/polyphony" image build >&2
if [[ "${1:-}" == "--print-env" ]]; then
  echo "export DOCKER_HOST=$DOCKER_HOST"
  echo "export PATH=$BUILD_DIR/cli:\$PATH"
fi
