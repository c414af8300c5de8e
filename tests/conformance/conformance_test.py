#!/usr/bin/python3
"""PROTOCOL.md's conformance test: a client written from the document alone (polyphony_client.py)
submits a task to a real coordinator over TCP with CURVE, watches it (the `watch` request, no
polling) and sees it land on a real bare origin, run by the embedded worker in a real container.

Usage: conformance_test.py --polyphony PATH/TO/polyphony
The Docker engine: $POLYPHONY_TEST_DOCKER_HOST, $DOCKER_HOST, or the usual sockets. Without one
the test fails (it cannot run).
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import polyphony_client  # noqa: E402
from polyphony_test_support import docker_host, make_origin, run  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check(condition, what):
    if not condition:
        raise AssertionError(what)
    print("ok:", what)


def conformance(polyphony, root):
    home = os.path.join(root, "home")
    env = dict(os.environ, POLYPHONY_HOME=home, DOCKER_HOST=docker_host(), POLYPHONY_LOG_LEVEL="info")
    run([polyphony, "init"], env=env)
    keys = os.path.join(home, "keys")
    run([polyphony, "keys", "gen", "--name", "coordinator", "--out", keys], env=env)
    client_keys = os.path.join(root, "client-keys")
    run([polyphony, "keys", "gen", "--name", "conformance", "--out", client_keys], env=env)
    os.makedirs(os.path.join(keys, "clients"))
    shutil.copy(os.path.join(client_keys, "conformance.pub"), os.path.join(keys, "clients"))
    port = free_port()
    with open(os.path.join(home, "config.yaml"), "w") as f:
        f.write(f"""poll_interval_ms: 100
coordinator:
  client_endpoint: tcp://127.0.0.1:{port}
  secret_key_file: keys/coordinator.key
  allowed_clients_dir: keys/clients
  http_listen: "127.0.0.1:0"
container: {{network: none, cpus: 1, memory: 512m, run_timeout_s: 120, verify_timeout_s: 120}}
""")
    origin = make_origin(root, "origin.git", "# conformance\n", "test -f hello.txt")
    log = open(os.path.join(root, "serve.log"), "w")
    serve = subprocess.Popen([polyphony, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        client = polyphony_client.Client(
            f"tcp://127.0.0.1:{port}",
            secret_key_file=os.path.join(client_keys, "conformance.key"),
            public_key_file=os.path.join(client_keys, "conformance.pub"),
            server_key_file=os.path.join(keys, "coordinator.pub"))
        # A bad frame is answered (the client endpoint says what is wrong): also how this test
        # knows the coordinator listens.
        reply = None
        deadline = time.monotonic() + 60
        while reply is None and time.monotonic() < deadline and serve.poll() is None:
            client.send_raw(b"\x01\x02 not a map")
            reply = client.receive(1000)
        check(reply is not None, "the coordinator answers on its CURVE client endpoint")
        check(reply["type"] == "client_reply" and reply["ok"] is False and reply.get("where") == "frame",
              f"a frame that is not MessagePack is answered ok:false, where 'frame' ({reply})")
        unknown = client.request("watch", task_id="no-such-task")
        check(unknown["ok"] is False and unknown["where"] == "task_id",
              f"a watch of an unknown task is refused, where 'task_id' ({unknown})")
        submitted = client.submit(
            "Say hello", origin, agent="scripted",
            body="Do it.\n\n```sh\necho hello > hello.txt\n```\n")
        check(submitted["type"] == "client_reply" and submitted["ok"] is True and submitted["task_id"],
              f"submit is accepted with a task id ({submitted})")
        task_id = submitted["task_id"]
        seen = []
        final = client.watch(task_id, timeout_s=300, on_reply=lambda r: seen.append(r["state"]))
        print("states watched:", seen)
        check(final is not None and final["ok"], f"the watch ends with a final state ({final})")
        check(final["state"] == "LANDED", f"the task LANDED ({final})")
        check(len(seen) >= 2, f"the watch sent the task's news, not only its first standing ({seen})")
        main = run(["git", "-C", origin, "rev-parse", "main"]).strip()
        check(final["merged_commit"] == main, "merged_commit is the origin's main")
        check(run(["git", "-C", origin, "show", "main:hello.txt"]) == "hello\n", "the change is on main")
        # No news after a final state: the watch ended.
        check(client.receive(500) is None, "nothing comes after the final reply")
        queried = client.query(task_id)
        check(queried["state"] == "LANDED", "a query agrees")
        client.close()
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(60)
        except subprocess.TimeoutExpired:
            serve.kill()
        log.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--polyphony", required=True)
    args = parser.parse_args()
    if not docker_host():
        print("no Docker engine: set POLYPHONY_TEST_DOCKER_HOST", file=sys.stderr)
        return 1
    root = tempfile.mkdtemp(prefix="polyphony-conformance-")
    try:
        conformance(args.polyphony, root)
        return 0
    except Exception as e:  # the serve log says why
        print(f"FAILED: {e}", file=sys.stderr)
        log = os.path.join(root, "serve.log")
        if os.path.exists(log):
            print(open(log).read()[-20000:], file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
