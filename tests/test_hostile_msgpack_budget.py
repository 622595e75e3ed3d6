"""Half-sent msgpack frames stay within ``--max-input-buffer-bytes`` (issue 11, by shape).

The issue's slowloris sent JSON lines; the same shape in msgpack (a client's frame, or a
peer's frame after a completed handshake, which earns the 64 MiB peer frame limit: a
node without a cluster secret accepts any loopback peer) must be held to the same budget: what the node holds for partial input, in RSS,
stays within the budget plus a fixed margin (the margin ``tests/test_input_budget.py``
allows for JSON lines), and the node serves on.
"""

from __future__ import annotations

import socket
import time

import pytest

from tests.limits_support import memory_mib, node_stats
from tests.rogue_peer import RoguePeer
from runtime.local_cluster import NodeProcess
from tests.wire import Conn

pytestmark = pytest.mark.integration

BUDGET_MIB, MARGIN_MIB = 64, 40


def partial_frame(size: int) -> bytes:
    """A msgpack ``set`` whose binary value declares ``size`` bytes; all but 1 KiB sent."""
    head = b"\x83\xa4type\xa3set\xa3key\xa1k\xa5value"  # {"type": "set", "key": "k", "value": ...}
    return head + b"\xc6" + size.to_bytes(4, "big") + b"\0" * (size - 1024)


def hold(port: int, payloads: list[bytes], peers: bool) -> list[socket.socket]:
    socks = []
    for i, payload in enumerate(payloads):
        if peers:
            sock = RoguePeer.open(port, f"intruder{i}").sock
        else:
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        socks.append(sock)
        try:
            sock.sendall(payload)
        except OSError:
            pass  # closed by the node already: the budget at work
    return socks


def run(payloads: list[bytes], peers: bool = False) -> None:
    node = NodeProcess("node1", "--max-input-buffer-bytes", f"{BUDGET_MIB}M", "--request-read-timeout", "60")
    socks: list[socket.socket] = []
    try:
        with Conn(node.port) as conn:
            assert conn.request({"type": "ping"})["type"] == "pong"
        before = memory_mib(node.pid)
        socks = hold(node.port, payloads, peers)
        time.sleep(0.5)
        after = memory_mib(node.pid)
        offered = sum(map(len, payloads)) / (1 << 20)
        assert after["peak"] - before["rss"] < BUDGET_MIB + MARGIN_MIB, (
            f"{offered:.0f} MiB of partial frames offered under a {BUDGET_MIB} MiB budget: RSS {before} -> {after}"
        )
        assert node_stats(node.port)["input_buffer_kills"] >= 1
        with Conn(node.port) as conn:
            assert conn.request({"type": "set", "key": "k", "value": "v"}) == {"type": "ack", "success": True}
    finally:
        for sock in socks:
            sock.close()
        node.kill()


def test_half_sent_client_msgpack_frames_stay_within_the_budget() -> None:
    """100 connections each hold ~1 MB of a msgpack frame (100 MB offered)."""
    run([partial_frame(1_000_000)] * 100)


def test_half_sent_peer_frames_after_a_forged_hello_stay_within_the_budget() -> None:
    """4 connections each complete the peer handshake (so 64 MiB frames are allowed) and
    then hold ~30 MiB of a frame (120 MiB offered)."""
    run([partial_frame(30 << 20)] * 4, peers=True)
