"""What the Python end-to-end tests (tests/conformance, tests/deploy) share: the Docker engine to
use, running a program that must succeed, and a bare origin seeded with one commit."""

import os
import subprocess


def docker_host():
    """$POLYPHONY_TEST_DOCKER_HOST, $DOCKER_HOST, or the first of the usual sockets; "" for none."""
    for var in ("POLYPHONY_TEST_DOCKER_HOST", "DOCKER_HOST"):
        if os.environ.get(var):
            return os.environ[var]
    for sock in ("/run/polyphony-docker/docker.sock", "/var/run/docker.sock"):
        if os.path.exists(sock):
            return "unix://" + sock
    return ""


def run(argv, **kw):
    """Runs argv (subprocess.run's keywords; timeout 120 s unless given) and returns its stdout;
    a non-zero exit raises AssertionError with its output."""
    r = subprocess.run(argv, capture_output=True, text=True, timeout=kw.pop("timeout", 120), **kw)
    if r.returncode != 0:
        raise AssertionError(f"{argv[:6]} exited {r.returncode}:\n{r.stdout}\n{r.stderr}")
    return r.stdout


def make_origin(root, name, readme, verify):
    """A bare repository root/NAME on branch main whose one commit holds README.md (`readme`) and
    a .polyphony.yaml with `verify`; returns its path."""
    seed, origin = os.path.join(root, "seed"), os.path.join(root, name)
    run(["git", "init", "-q", "-b", "main", seed])
    with open(os.path.join(seed, "README.md"), "w") as f:
        f.write(readme)
    with open(os.path.join(seed, ".polyphony.yaml"), "w") as f:
        f.write(f"verify: {verify}\n")
    git = ["git", "-C", seed, "-c", "user.name=t", "-c", "user.email=t@t"]
    run(git + ["add", "-A"])
    run(git + ["commit", "-q", "-m", "seed"])
    run(["git", "clone", "-q", "--bare", seed, origin])
    return origin
