#!/usr/bin/env bash
# The single-box demo: sets everything up (scripts/setup.sh), makes a sample repository with a
# bare origin, spawns three tasks with the scripted agent, serves until they end, and shows two
# LANDED (their commits on the origin's main) and one BLOCKED because its verify fails. A verify
# failure is retried (max_attempts: 3) unless the retry makes a tree whose verify already failed;
# the other two tasks land meanwhile, so a retry works on a newer main and makes a new tree: the
# task usually runs attempts 1, 2 and 3, then is BLOCKED with the last reason.
#
# Environment: DEMO_DIR (default: a new temporary directory), DEMO_NETWORK (default none).
set -euo pipefail

cd "$(dirname "$0")/.."
readonly ROOT=$(pwd)
eval "$(scripts/setup.sh --print-env)"

readonly DEMO_DIR=${DEMO_DIR:-$(mktemp -d /tmp/polyphony-demo.XXXXXX)}
export POLYPHONY_HOME=$DEMO_DIR/home
readonly ORIGIN=$DEMO_DIR/sample.git
say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

say "polyphony init (POLYPHONY_HOME=$POLYPHONY_HOME)"
polyphony init --force
# The private test dockerd has no bridge network; agents in this demo need none.
sed -i "s/^  network: bridge/  network: ${DEMO_NETWORK:-none}/" "$POLYPHONY_HOME/config.yaml"

say "a sample repository with a bare origin at $ORIGIN"
git init -q --bare -b main "$ORIGIN"
seed=$DEMO_DIR/seed
git clone -q "$ORIGIN" "$seed" 2>/dev/null
mkdir -p "$seed/tests"
cat > "$seed/greet.sh" <<'SH'
#!/bin/sh
# Prints a greeting.
echo "Hello, ${1:-world}!"
SH
cat > "$seed/tests/run.sh" <<'SH'
#!/bin/sh
# The sample's test suite: every tests/*.test file is a command that must succeed.
set -e
for t in tests/*.test; do sh "$t" || { echo "FAIL $t"; exit 1; }; echo "ok $t"; done
SH
echo 'test "$(sh greet.sh Ada)" = "Hello, Ada!"' > "$seed/tests/greet.test"
echo 'verify: sh tests/run.sh' > "$seed/.polyphony.yaml"
git -C "$seed" add -A
git -C "$seed" -c user.name=Demo -c user.email=demo@localhost commit -qm "Sample project"
git -C "$seed" push -q origin main

say "spawn three tasks"
t1=$(polyphony spawn "Add a farewell script" --repo "$ORIGIN" --agent scripted --type feature --body-file /dev/stdin <<'MD'
Add bye.sh and its test.

```sh
printf '#!/bin/sh\necho "Goodbye, ${1:-world}!"\n' > bye.sh
echo 'test "$(sh bye.sh Ada)" = "Goodbye, Ada!"' > tests/bye.test
```
MD
)
t2=$(polyphony spawn "Document greet.sh in the README" --repo "$ORIGIN" --agent scripted --type docs --body-file /dev/stdin <<'MD'
```diff
--- /dev/null
+++ b/README.md
@@ -0,0 +1,3 @@
+# Sample
+
+`sh greet.sh NAME` prints a greeting.
```
MD
)
t3=$(polyphony spawn "Break the greeting" --repo "$ORIGIN" --agent scripted --type bugfix --body-file /dev/stdin <<'MD'
This change makes the test fail, so verify refuses it and nothing lands.

```sh
sed -i 's/Hello/Howdy/' greet.sh
```
MD
)
echo "spawned: $t1 $t2 $t3" >&2
polyphony status

say "polyphony serve (coordinator + embedded worker), until all three tasks end"
log=$DEMO_DIR/serve.log
polyphony serve > "$log" 2>&1 &
serve_pid=$!
trap 'kill $serve_pid 2>/dev/null || true' EXIT
# The web dashboard (coordinator.http_listen): open it to watch the tasks land live.
for _ in $(seq 50); do [[ -s $POLYPHONY_HOME/dashboard.url ]] && break; sleep 0.2; done
[[ -s $POLYPHONY_HOME/dashboard.url ]] && say "watch live: $(cat "$POLYPHONY_HOME/dashboard.url") (metrics at /metrics)"
deadline=$((SECONDS + 300))
while (( SECONDS < deadline )); do
  open=$(polyphony status --json | grep -c '"state": "\(DISCOVERED\|CLAIMED\|ROUTED\|PROVISIONED\|RUNNING\|VERIFYING\)"' || true)
  [[ "$open" == 0 ]] && break
  sleep 1
done
kill "$serve_pid"; wait "$serve_pid" 2>/dev/null || true
trap - EXIT

say "polyphony status"
polyphony status
say "polyphony logs $t3"
polyphony logs "$t3"
say "the origin's main branch"
git --git-dir="$ORIGIN" log --oneline --graph main

landed=$(polyphony status --json | grep -c '"state": "LANDED"' || true)
blocked=$(polyphony status --json | grep -c '"state": "BLOCKED"' || true)
if [[ "$landed" == 2 && "$blocked" == 1 ]]; then
  say "demo OK: two tasks LANDED on the origin's main, one BLOCKED by its failing verify (see $DEMO_DIR)"
else
  say "demo FAILED: expected 2 LANDED and 1 BLOCKED; serve log: $log"
  tail -50 "$log" >&2
  exit 1
fi
