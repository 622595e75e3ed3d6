"""``--max-input-buffer-bytes`` against a real node (issue 11: "300 connections each
holding a half-sent 1 MiB line cost 317 MiB").

Partial requests of all connections share one budget; past it the node closes the
connection holding the most, then the next, until under. The read timeout is set long
here so that only the budget closes anything.
"""

from __future__ import annotations

import socket
import time

import pytest

from tests.limits_support import memory_mib, node_stats, wait_closed
from runtime.local_cluster import NodeProcess
from tests.wire import Conn

pytestmark = pytest.mark.integration


def partial_line(size: int) -> bytes:
    """The first ``size`` bytes of a set request whose line never ends."""
    head = b'{"type":"set","key":"k","value":"'
    return head + b"v" * (size - len(head))


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def test_past_the_budget_the_connection_holding_the_most_is_closed_first() -> None:
    node = NodeProcess("node1", "--max-input-buffer-bytes", "1M", "--request-read-timeout", "60")
    sizes = {"a": 200_000, "b": 500_000, "c": 300_000, "d": 200_000}  # a+b+c fit in 1 MiB; d does not
    socks: dict[str, socket.socket] = {}
    try:
        for name, size in sizes.items():
            socks[name] = connect(node.port)
            socks[name].sendall(partial_line(size))
            time.sleep(0.3)  # let the node read it all before the next one
        assert wait_closed(socks["b"], timeout=5)[0], "the largest partial request was not closed"
        for name in ("a", "c", "d"):  # the others complete their requests and are answered
            socks[name].sendall(b'"}\n')
            socks[name].settimeout(5)
            assert socks[name].recv(4096) == b'{"type":"ack","success":true}\n', name
        stats = node_stats(node.port)
        assert stats["input_buffer_kills"] == 1 and stats["request_read_timeouts"] == 0
    finally:
        for sock in socks.values():
            sock.close()
        node.kill()


def test_many_half_sent_large_lines_keep_the_node_within_the_budget() -> None:
    """100 connections each hold 1,000,000 bytes of a line (100 MB offered) under an 8 MiB
    budget: the node's peak RSS stays within the budget plus a fixed margin, and it serves."""
    budget_mib, margin_mib = 8, 40
    node = NodeProcess("node1", "--max-input-buffer-bytes", f"{budget_mib}M", "--request-read-timeout", "60")
    socks: list[socket.socket] = []
    try:
        with Conn(node.port) as conn:
            assert conn.request({"type": "ping"})["type"] == "pong"
        before = memory_mib(node.pid)
        line = partial_line(1_000_000)
        for _ in range(100):
            sock = connect(node.port)
            try:
                sock.sendall(line)
            except OSError:
                pass  # already closed by the node: that is the budget at work
            socks.append(sock)
        time.sleep(0.5)
        after = memory_mib(node.pid)
        assert after["peak"] - before["rss"] < budget_mib + margin_mib, (before, after)
        stats = node_stats(node.port)
        assert stats["input_buffer_kills"] >= 100 - budget_mib, stats["input_buffer_kills"]
        with Conn(node.port) as conn:
            assert conn.request({"type": "set", "key": "k", "value": "v"})["success"] is True
    finally:
        for sock in socks:
            sock.close()
        node.kill()
