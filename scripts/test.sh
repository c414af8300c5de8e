#!/usr/bin/env bash
# Installs what is needed, builds, starts Docker and the worker image (scripts/setup.sh), then
# runs the whole test suite: Catch2 unit tests and end-to-end tests with real containers.
set -euo pipefail

cd "$(dirname "$0")/.."
eval "$(scripts/setup.sh --print-env)"
export POLYPHONY_TEST_DOCKER_HOST=$DOCKER_HOST
# Tests make their own POLYPHONY_HOME; never touch the user's.
unset POLYPHONY_HOME
cd "${BUILD_DIR:-build}"
ctest --output-on-failure --timeout 600 -j "$(nproc)" "$@"
