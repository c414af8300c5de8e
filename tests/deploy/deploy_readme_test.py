#!/usr/bin/python3
"""deploy/README.md, followed literally: the blocks marked ```sh deploy-test=ROLE run as they are
written, in the document's order, each on its host: the coordinator, a worker and a client, each
in a network namespace of its own (joined by a bridge this test makes) with a home of its own.
The programs start as deploy/systemd's units start them (their ExecStart and POLYPHONY_HOME).
What the document leaves to the operator's own means (copying public keys between hosts) this
test does as the document says. A task submitted from the client lands on a real bare origin,
run by the worker in a real container, so the document and the programs cannot drift apart.

Usage: deploy_readme_test.py --source-dir REPO --bin PATH... (polyphony, polyphony-worker,
polyphony-submit). Needs root (ip netns) and a Docker engine ($POLYPHONY_TEST_DOCKER_HOST,
$DOCKER_HOST or the usual sockets); without them it fails.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from polyphony_test_support import docker_host, make_origin, run  # noqa: E402

SUBNET = "10.231.9"
COORDINATOR_ADDRESS = SUBNET + ".1"
# The roles of the marked blocks, in the document's order; the steps between them are this test's.
EXPECTED_ROLES = ["coordinator", "coordinator", "worker", "worker", "client", "coordinator",
                  "coordinator-workers", "client"]


def marked_blocks(readme):
    """[(role, text)] of every fenced block whose info string is `sh deploy-test=ROLE`."""
    blocks = []
    lines = open(readme, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^(`{3,})sh deploy-test=([a-z-]+)\s*$", lines[i])
        if not m:
            i += 1
            continue
        fence, role, body = m.group(1), m.group(2), []
        i += 1
        while i < len(lines) and not re.match("^" + fence + "`*\\s*$", lines[i]):
            body.append(lines[i])
            i += 1
        if i == len(lines):
            raise AssertionError(f"{readme}: the block for {role} is never closed")
        blocks.append((role, "\n".join(body) + "\n"))
        i += 1
    return blocks


def unit(path):
    """(POLYPHONY_HOME, ExecStart argv) of a systemd unit."""
    home, argv = None, None
    for line in open(path, encoding="utf-8"):
        line = line.strip()
        if line.startswith("Environment=POLYPHONY_HOME="):
            home = line.split("=", 2)[2]
        elif line.startswith("ExecStart="):
            argv = line[len("ExecStart="):].split()
    if not home or not argv:
        raise AssertionError(f"{path}: no Environment=POLYPHONY_HOME= or ExecStart=")
    return home, argv


class Network:
    """A hub namespace with a bridge, and a namespace a host joined to it by a veth pair."""

    def __init__(self):
        self.prefix = f"pd{os.getpid() % 100000}-"
        self.namespaces = []
        hub = self.add("hub")
        run(["ip", "-n", hub, "link", "add", "br0", "type", "bridge"])
        run(["ip", "-n", hub, "addr", "add", COORDINATOR_ADDRESS + "/24", "dev", "br0"])
        run(["ip", "-n", hub, "link", "set", "br0", "up"])
        self.hub = hub

    def add(self, name):
        ns = self.prefix + name
        run(["ip", "netns", "add", ns])
        self.namespaces.append(ns)
        run(["ip", "-n", ns, "link", "set", "lo", "up"])
        return ns

    def host(self, name, last_octet):
        ns = self.add(name)
        link = "v" + name
        run(["ip", "-n", self.hub, "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", ns])
        run(["ip", "-n", self.hub, "link", "set", link, "master", "br0"])
        run(["ip", "-n", self.hub, "link", "set", link, "up"])
        run(["ip", "-n", ns, "addr", "add", f"{SUBNET}.{last_octet}/24", "dev", "eth0"])
        run(["ip", "-n", ns, "link", "set", "eth0", "up"])
        return ns

    def close(self):
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


class Host:
    def __init__(self, name, ns, env, log_dir):
        self.name, self.ns, self.env, self.log_dir = name, ns, env, log_dir

    def sh(self, block, cwd):
        print(f"--- {self.name}:\n{block}", flush=True)
        r = subprocess.run(["ip", "netns", "exec", self.ns, "bash", "-euo", "pipefail", "-c", block],
                           env=self.env, cwd=cwd, capture_output=True, text=True, timeout=600)
        print(r.stdout + r.stderr, flush=True)
        if r.returncode != 0:
            raise AssertionError(f"{self.name}: the block exited {r.returncode}")
        return r.stdout

    def start(self, argv, log_name):
        log = open(os.path.join(self.log_dir, log_name), "w")
        return subprocess.Popen(["ip", "netns", "exec", self.ns] + argv, env=self.env, stdout=log,
                                stderr=subprocess.STDOUT)


def installed(argv, bin_dir):
    """The unit's /usr/local/bin/PROGRAM is this build's PROGRAM."""
    return [os.path.join(bin_dir, os.path.basename(argv[0]))] + argv[1:]


def follow(source, bin_dir, root, net, procs):
    blocks = marked_blocks(os.path.join(source, "deploy", "README.md"))
    roles = [role for role, _ in blocks]
    if roles != EXPECTED_ROLES:
        raise AssertionError(f"deploy/README.md's marked blocks are {roles}; this test follows {EXPECTED_ROLES}")
    coordinator_home_default, coordinator_start = unit(os.path.join(source, "deploy/systemd/polyphony-coordinator.service"))
    worker_home_default, worker_start = unit(os.path.join(source, "deploy/systemd/polyphony-worker.service"))
    # The document's homes are the units'.
    for role, default in (("coordinator", coordinator_home_default), ("worker", worker_home_default)):
        first = next(text for r, text in blocks if r == role)
        if "${POLYPHONY_HOME:-" + default + "}" not in first:
            raise AssertionError(f"deploy/README.md's first {role} block does not default POLYPHONY_HOME to the unit's {default}")

    worker_id = net.prefix + "worker1"
    base_env = dict(os.environ, PATH=bin_dir + ":" + os.environ["PATH"], DOCKER_HOST=docker_host(),
                    POLYPHONY_LOG_LEVEL="info")
    homes = {n: os.path.join(root, n) for n in ("coordinator", "worker", "client-home")}
    os.makedirs(homes["client-home"])
    origin = make_origin(root, "demo.git", "# demo\n", 'test "$(cat hello.txt)" = hello')
    coordinator = Host("coordinator", net.hub, dict(base_env, POLYPHONY_HOME=homes["coordinator"],
                                                    HOME=os.path.join(root, "coordinator-user"),
                                                    DEMO_URL=origin, AGENT_NETWORK="none"), root)
    worker = Host("worker", net.host("w1", 11), dict(base_env, POLYPHONY_HOME=homes["worker"],
                                                     HOME=os.path.join(root, "worker-user"),
                                                     COORDINATOR_HOST=COORDINATOR_ADDRESS), root)
    client = Host("client", net.host("c1", 21), dict(base_env, HOME=homes["client-home"],
                                                     COORDINATOR_HOST=COORDINATOR_ADDRESS), root)
    hosts = {"coordinator": coordinator, "coordinator-workers": coordinator, "worker": worker, "client": client}
    c_keys, w_keys = os.path.join(homes["coordinator"], "keys"), os.path.join(homes["worker"], "keys")
    for n, (role, text) in enumerate(blocks):
        if n == 3:  # step 3: the public keys exchanged
            shutil.copy(os.path.join(c_keys, "coordinator.pub"), os.path.join(w_keys, "coordinator.pub"))
            shutil.copy(os.path.join(w_keys, "worker.pub"), os.path.join(c_keys, "workers", worker_id + ".pub"))
        if n == 5:  # step 5: the client's key sent, the coordinator's beside it
            shutil.copy(os.path.join(homes["client-home"], ".polyphony", "alice.pub"), os.path.join(c_keys, "clients"))
            shutil.copy(os.path.join(c_keys, "coordinator.pub"), os.path.join(homes["client-home"], ".polyphony"))
        if n == 6:  # steps 6 and 7: started as their units start them
            procs.append(coordinator.start(installed(coordinator_start, bin_dir), "coordinator.log"))
            procs.append(worker.start([a.replace("%H", worker_id) for a in installed(worker_start, bin_dir)],
                                      "worker.log"))
            wait_registered(coordinator, worker_id, bin_dir, source)
        out = hosts[role].sh(text, source)
        if role == "coordinator-workers" and worker_id not in out:
            raise AssertionError(f"`polyphony workers` does not list {worker_id}")
    hello = run(["git", "-C", origin, "show", "main:hello.txt"])
    if hello != "hello\n":
        raise AssertionError(f"main:hello.txt is {hello!r}")
    print("ok: the task submitted from the client landed on the origin's main")
    return worker_id


def wait_registered(coordinator, worker_id, bin_dir, source):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = subprocess.run(["ip", "netns", "exec", coordinator.ns, os.path.join(bin_dir, "polyphony"), "workers", "--json"],
                           env=coordinator.env, cwd=source, capture_output=True, text=True, timeout=30)
        if r.returncode == 0 and any(w.get("id") == worker_id and w.get("state") != "lost"
                                     for w in json.loads(r.stdout).get("workers", [])):
            return
        time.sleep(0.2)
    raise AssertionError(f"worker {worker_id} never registered with the coordinator")


def remove_containers(worker_id):
    if not worker_id:
        return
    env = dict(os.environ, DOCKER_HOST=docker_host())
    ids = subprocess.run(["docker", "ps", "-aq", "--filter", "label=polyphony.worker=" + worker_id],
                         env=env, capture_output=True, text=True).stdout.split()
    if ids:
        subprocess.run(["docker", "rm", "-f"] + ids, env=env, capture_output=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--source-dir", required=True)
    parser.add_argument("--bin", nargs="+", required=True)
    args = parser.parse_args()
    if os.geteuid() != 0 or not docker_host():
        print("this test needs root (ip netns) and a Docker engine", file=sys.stderr)
        return 1
    root = tempfile.mkdtemp(prefix="polyphony-deploy-")
    os.chmod(root, 0o755)
    bin_dir = os.path.join(root, "bin")
    os.makedirs(bin_dir)
    for program in args.bin:
        os.symlink(os.path.abspath(program), os.path.join(bin_dir, os.path.basename(program)))
    net, procs, worker_id, ok = None, [], "", False
    try:
        net = Network()
        worker_id = net.prefix + "worker1"
        follow(os.path.abspath(args.source_dir), bin_dir, root, net, procs)
        ok = True
    except (AssertionError, subprocess.SubprocessError, OSError) as e:
        print(f"FAILED: {e}", file=sys.stderr)
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
        if not ok:
            for name in ("coordinator.log", "worker.log"):
                path = os.path.join(root, name)
                if os.path.exists(path):
                    print(f"--- {name}\n" + open(path).read()[-15000:], file=sys.stderr)
        if net:
            net.close()
        remove_containers(worker_id)
        shutil.rmtree(root, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
