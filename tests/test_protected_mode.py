"""Protected mode (issue 13, item 2), from a real non-loopback address: the test makes a
network namespace joined to this one by a veth pair; the node binds 0.0.0.0 here and the
client runs inside the namespace (``ip netns exec``), so the node sees it come from
10.x.y.2. With no password and protected mode on (the default) such a client gets one
``denied`` error and is closed, on the JSON/msgpack port and the RESP port alike; loopback
clients, a password, or ``--protected-mode no`` let it in; a peer's hello is judged by the
peer handshake, never refused as a client. Everything the test creates is removed, also
when it fails."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgpack
import pytest

from runtime.local_cluster import NodeProcess, ROOT
from tests.wire import Conn

pytestmark = pytest.mark.skipif(
    shutil.which("ip") is None or not hasattr(os, "geteuid") or os.geteuid() != 0,
    reason="needs root and iproute2 to create a network namespace",
)

#: One request, its reply read until the node closes (or 5 s): run inside the namespace.
CLIENT = r"""
import socket, sys
host, port, payload = sys.argv[1], int(sys.argv[2]), sys.stdin.buffer.read()
sock = socket.create_connection((host, port), timeout=10)
sock.sendall(payload)
sock.settimeout(5)
data = b""
try:
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            data += b"<EOF>"
            break
        data += chunk
except socket.timeout:
    pass
sys.stdout.write(data.hex())
"""


@dataclass
class Namespace:
    name: str
    host_ip: str  # this namespace's end: where the node is reached

    def run(self, *argv: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
        run = subprocess.run(
            ["ip", "netns", "exec", self.name, *argv], input=stdin, capture_output=True, timeout=60, cwd=ROOT
        )
        return subprocess.CompletedProcess(run.args, run.returncode, run.stdout.decode(), run.stderr.decode())

    def exchange(self, port: int, payload: bytes) -> bytes:
        """Send ``payload`` from inside the namespace; the reply (``<EOF>`` if closed)."""
        run = self.run(sys.executable, "-c", CLIENT, self.host_ip, str(port), stdin=payload)
        assert run.returncode == 0, run.stderr
        return bytes.fromhex(run.stdout)


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def netns() -> Iterator[Namespace]:
    tag = os.getpid() % 100_000
    name, outer, inner = f"acpm{tag}", f"vacpa{tag}", f"vacpb{tag}"
    subnet = f"10.213.{tag % 250}"
    try:
        _ip("netns", "add", name)
        _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", name)
        _ip("addr", "add", f"{subnet}.1/24", "dev", outer)
        _ip("link", "set", outer, "up")
        _ip("netns", "exec", name, "ip", "addr", "add", f"{subnet}.2/24", "dev", inner)
        _ip("netns", "exec", name, "ip", "link", "set", inner, "up")
        _ip("netns", "exec", name, "ip", "link", "set", "lo", "up")
    except subprocess.CalledProcessError as exc:
        subprocess.run(["ip", "link", "del", outer], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
        pytest.skip(f"cannot create a network namespace here: {exc.stderr.decode(errors='replace').strip()}")
    try:
        yield Namespace(name, f"{subnet}.1")
    finally:
        subprocess.run(["ip", "link", "del", outer], capture_output=True, timeout=30)
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


def _resp(*args: str) -> bytes:
    return b"".join([b"*%d\r\n" % len(args), *(b"$%d\r\n%s\r\n" % (len(a), a.encode()) for a in args)])


def test_protected_mode_refuses_non_loopback_clients(netns: Namespace) -> None:
    with NodeProcess("node1", "--host", "0.0.0.0", "--resp-port", "0") as node:
        assert node.resp_port is not None
        json_reply = netns.exchange(node.port, b'{"type":"set","key":"k","value":1}\n')
        assert json_reply.endswith(b"<EOF>")
        (line,) = json_reply.removesuffix(b"<EOF>").splitlines()
        error = json.loads(line)
        assert error["error"] == "denied"
        assert "protected mode" in error["message"] and "--protected-mode no" in error["message"]
        assert "--requirepass" in error["message"]

        silent = netns.exchange(node.port, b"")  # (a stranger that says nothing holds no slot for long)
        assert json.loads(silent.removesuffix(b"<EOF>"))["error"] == "denied" and silent.endswith(b"<EOF>")
        # Nor does one whose first msgpack frame never comes whole (the start of a hello, say).
        partial = netns.exchange(node.port, b"\x85\xa4type\xa5hello")
        assert partial.endswith(b"<EOF>") and msgpack.unpackb(partial.removesuffix(b"<EOF>"))["error"] == "denied"

        packed = netns.exchange(node.port, msgpack.packb({"type": "get", "key": "k"}))
        assert packed.endswith(b"<EOF>")
        assert msgpack.unpackb(packed.removesuffix(b"<EOF>"))["error"] == "denied"

        resp = netns.exchange(node.resp_port, _resp("PING"))
        assert resp.startswith(b"-DENIED actorcache is running in protected mode") and resp.endswith(b"\r\n<EOF>")
        # A client that sent much more than the node read still gets the refusal, then EOF
        # (the node reads and drops the rest instead of resetting the connection over it).
        flood = netns.exchange(node.resp_port, _resp("SET", "k", "v" * 1000) * 300)
        assert flood.startswith(b"-DENIED ") and flood.endswith(b"\r\n<EOF>")
        flood = netns.exchange(node.port, b'{"type":"set","key":"k","value":"%s"}\n' % (b"v" * 1000) * 300)
        assert flood.startswith(b'{"type":"error"') and flood.endswith(b"<EOF>")

        if shutil.which("redis-cli"):
            cli = netns.run("redis-cli", "-h", netns.host_ip, "-p", str(node.resp_port), "set", "k", "v")
            assert "DENIED" in cli.stdout + cli.stderr

        # Nothing was written, and a loopback client is served as ever.
        with Conn(node.port) as local:
            assert local.request({"type": "get", "key": "k"}) == {"type": "response", "value": None, "success": False}
            stats = local.request({"type": "stats"})["stats"]
        assert stats["rejected_connections"] >= 4


def test_a_peer_hello_is_judged_by_the_handshake_not_refused_as_a_client(netns: Namespace) -> None:
    from actors.protocol.peer_codec import encode_hello

    hello = msgpack.packb(encode_hello("stranger", f"{netns.host_ip}:1", 256), use_bin_type=True)
    with NodeProcess("node1", "--host", "0.0.0.0") as node:
        reply = netns.exchange(node.port, hello)
    assert reply.endswith(b"<EOF>")
    error = msgpack.unpackb(reply.removesuffix(b"<EOF>"))
    assert error["error"] == "unauthorized"  # the peer rule (no cluster secret: loopback peers only)


def test_a_password_or_protected_mode_no_lets_them_in(netns: Namespace) -> None:
    with NodeProcess("node1", "--host", "0.0.0.0", "--protected-mode", "no", "--resp-port", "0") as node:
        assert node.resp_port is not None
        served = netns.exchange(node.port, b'{"type":"set","key":"k","value":1}\n{"type":"get","key":"k"}\n')
        assert [json.loads(x)["type"] for x in served.removesuffix(b"<EOF>").splitlines()] == ["ack", "response"]
        assert netns.exchange(node.resp_port, _resp("GET", "k")) == b"$1\r\n1\r\n"
    with NodeProcess("node1", "--host", "0.0.0.0", "--requirepass", "pw", "--resp-port", "0") as node:
        assert node.resp_port is not None
        served = netns.exchange(
            node.port, b'{"type":"get","key":"k"}\n{"type":"auth","password":"pw"}\n{"type":"get","key":"k"}\n'
        )
        replies = [json.loads(x) for x in served.removesuffix(b"<EOF>").splitlines()]
        assert [r.get("error") or r["type"] for r in replies] == ["noauth", "ack", "response"]
        assert netns.exchange(node.resp_port, _resp("AUTH", "pw") + _resp("PING")) == b"+OK\r\n+PONG\r\n"


#: Inside the namespace: a peer holding the cluster secret handshakes, waits past the
#: silence grace, and reports whether the node still holds the link open.
PEER = r"""
import socket, sys, time
from tests.rogue_peer import RoguePeer
host, port, secret = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
peer = RoguePeer.open(port, "node9", f"{host}:1", host=host, secret=secret)
time.sleep(3)
try:
    frame = peer.closed_by_node(timeout=1.0)
    print("closed", frame)
except (socket.timeout, TimeoutError):
    print("open")
"""


def test_an_authenticated_peer_from_outside_is_no_client(netns: Namespace, tmp_path: Path) -> None:
    """With a cluster secret, a peer on another machine completes the handshake and keeps
    its link: protected mode (no client password here) is about clients only."""
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(b"a-cluster-secret-for-this-test")
    secret_file.chmod(0o600)
    with NodeProcess("node1", "--host", "0.0.0.0", "--cluster-secret-file", str(secret_file)) as node:
        run = netns.run(sys.executable, "-c", PEER, netns.host_ip, str(node.port), secret_file.read_text())
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "open", run.stdout
