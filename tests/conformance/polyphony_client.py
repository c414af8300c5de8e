"""A client of Polyphony's client endpoint, written from protocol/PROTOCOL.md alone.

It knows only what the document says: one ZeroMQ DEALER socket, each request and each reply
one frame holding one MessagePack map with "v": 1 and "type" (section 2), CURVE on tcp://
endpoints with Z85 keys read from key files that may hold '#' comment lines (section 10), and
the client requests of section 4: submit, control, watch and workers_query.
"""

import msgpack
import zmq

PROTOCOL_VERSION = 1
FINAL_STATES = {"LANDED", "FAILED", "BLOCKED", "CANCELLED"}


def read_key_file(path):
    """The one Z85 key of a key file: blank lines and lines starting with '#' are ignored."""
    keys = []
    with open(path, encoding="ascii") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                keys.append(line)
    if len(keys) != 1 or len(keys[0]) != 40:
        raise ValueError(f"{path}: expected one line of 40 Z85 characters, found {keys!r}")
    return keys[0].encode("ascii")


class ProtocolError(Exception):
    pass


class Client:
    """One connection (one DEALER socket) to a coordinator's client endpoint."""

    def __init__(self, endpoint, secret_key_file=None, public_key_file=None, server_key_file=None):
        self.context = zmq.Context.instance()
        self.socket = self.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        if secret_key_file:
            self.socket.curve_secretkey = read_key_file(secret_key_file)
            self.socket.curve_publickey = read_key_file(public_key_file)
            self.socket.curve_serverkey = read_key_file(server_key_file)
        self.socket.connect(endpoint)

    def close(self):
        self.socket.close(0)

    def send_raw(self, frame):
        """Sends one frame as it is (for checking how the coordinator answers bad frames)."""
        self.socket.send(frame)

    def send(self, type_, **fields):
        body = {"v": PROTOCOL_VERSION, "type": type_}
        body.update(fields)
        self.socket.send(msgpack.packb(body, use_bin_type=True))

    def receive(self, timeout_ms):
        """The next reply as a dict, or None when none came within timeout_ms."""
        if not self.socket.poll(timeout_ms, zmq.POLLIN):
            return None
        frames = self.socket.recv_multipart()
        if len(frames) != 1:
            raise ProtocolError(f"a reply of {len(frames)} frames; the protocol sends exactly one")
        body = msgpack.unpackb(frames[0], raw=False)
        if not isinstance(body, dict) or body.get("v") != PROTOCOL_VERSION or "type" not in body:
            raise ProtocolError(f"not a version-1 message: {body!r}")
        return body

    def request(self, type_, timeout_ms=10000, **fields):
        self.send(type_, **fields)
        reply = self.receive(timeout_ms)
        if reply is None:
            raise ProtocolError(f"no answer to {type_} within {timeout_ms} ms")
        return reply

    def submit(self, title, repo, body="", agent="", **optional):
        return self.request("submit", title=title, repo=repo, body=body, agent=agent, **optional)

    def query(self, task_id):
        return self.request("control", task_id=task_id, action="query")

    def watch(self, task_id, timeout_s, on_reply=None, renew_s=15):
        """Follows the task with `watch` until a reply in a final state (returned) or the timeout
        (None). Every client_reply of that task is passed to on_reply. The watch is renewed every
        renew_s seconds, as the document advises."""
        import time
        deadline = time.monotonic() + timeout_s
        renewed = float("-inf")
        while time.monotonic() < deadline:
            if time.monotonic() - renewed >= renew_s:
                self.send("watch", task_id=task_id)
                renewed = time.monotonic()
            reply = self.receive(200)
            if reply is None:
                continue
            if reply["type"] != "client_reply":
                raise ProtocolError(f"a watch answered with a {reply['type']}")
            if not reply["ok"]:
                return reply
            if reply.get("task_id") != task_id:
                continue
            if on_reply:
                on_reply(reply)
            if reply.get("state") in FINAL_STATES:
                return reply
        return None
