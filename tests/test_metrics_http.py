"""The metrics port against hostile HTTP clients, by shape: huge heads, slow heads, garbage,
many connections, unread answers. After each the node serves /health, /metrics and its
client port. Also /ready's reasons, from stats snapshots."""

from __future__ import annotations

import socket
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.metrics_http import HEAD_TIMEOUT_S, MAX_CONNECTIONS, MAX_HEAD_BYTES, readiness
from tests.cluster import Cluster
from tests.metrics_support import http_get, scrape

STATUS_LINES = (b"HTTP/1.1 400 ", b"HTTP/1.1 404 ", b"HTTP/1.1 405 ", b"HTTP/1.1 431 ", b"HTTP/1.1 200 ")


@pytest.fixture
def node(metrics_node: Cluster) -> Cluster:
    """The session's metrics node (tests/conftest.py), shared with test_metrics."""
    return metrics_node


def _port(node: Cluster) -> int:
    port = node.proc(1).metrics_port
    assert port is not None
    return port


def _exchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send ``data``, then read until the server closes; what it answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # it answered (431) and closed while we were still sending
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except ConnectionResetError:
            pass
        return b"".join(chunks)


def _still_serves(node: Cluster) -> None:
    port = _port(node)
    assert http_get(port, "/health")[0] == 200
    assert "actorcache_requests_total" in scrape(port)
    assert node.request(1, {"type": "ping"})["type"] == "pong"


def test_a_head_over_the_limit_is_answered_431(node: Cluster) -> None:
    huge = b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * (4 * MAX_HEAD_BYTES) + b"\r\n\r\n"
    assert _exchange(_port(node), huge).startswith(b"HTTP/1.1 431 ")
    many = b"GET /metrics HTTP/1.1\r\n" + b"X-H: v\r\n" * 5000 + b"\r\n"
    assert _exchange(_port(node), many).startswith(b"HTTP/1.1 431 ")
    _still_serves(node)


def test_methods_paths_and_head(node: Cluster) -> None:
    port = _port(node)
    assert _exchange(port, b"POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello").startswith(b"HTTP/1.1 405 ")
    assert _exchange(port, b"GET /../../etc/passwd HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 404 ")
    assert _exchange(port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    head = _exchange(port, b"HEAD /metrics HTTP/1.0\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and head.endswith(b"\r\n\r\n")  # headers only
    assert _exchange(port, b"GET /ready?probe=1 HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 200 ")
    _still_serves(node)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.one_of(
        st.binary(max_size=600),
        st.builds(
            lambda method, path, junk: method + b" " + path + b" HTTP/1.1\r\n" + junk + b"\r\n\r\n",
            st.sampled_from([b"GET", b"HEAD", b"PUT", b"", b"G\x00T"]),
            st.binary(max_size=80),
            st.binary(max_size=200),
        ),
    )
)
def test_garbage_gets_an_answer_or_a_close_never_a_hang(node: Cluster, data: bytes) -> None:
    answer = _exchange(_port(node), data + b"\r\n\r\n", timeout=HEAD_TIMEOUT_S + 5)
    assert answer == b"" or answer.startswith(STATUS_LINES), answer[:80]


def test_a_head_that_never_ends_is_dropped_and_others_are_served_meanwhile(node: Cluster) -> None:
    port = _port(node)
    slow = socket.create_connection(("127.0.0.1", port), timeout=HEAD_TIMEOUT_S + 10)
    try:
        slow.sendall(b"GET /metrics HTTP/1.1\r\n")
        began = time.monotonic()
        _still_serves(node)  # while that one dawdles
        for byte in b"X-Slow: 1":  # one byte at a time: the deadline is for the whole head
            slow.sendall(bytes([byte]))
            time.sleep(0.1)
        assert slow.recv(1024) == b""  # closed without an answer
        assert HEAD_TIMEOUT_S - 0.5 <= time.monotonic() - began <= HEAD_TIMEOUT_S + 8
    finally:
        slow.close()
    _still_serves(node)


def test_connections_past_the_limit_push_out_the_oldest_slow_head(node: Cluster) -> None:
    """Idle connections (a slowloris) holding every slot must not fail the health probes:
    a new connection takes the place of the oldest one still sending its head."""
    port = _port(node)
    idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(MAX_CONNECTIONS + 20)]
    try:
        time.sleep(0.5)
        for path in (b"/health", b"/ready", b"/metrics"):
            assert _exchange(port, b"GET %s HTTP/1.1\r\n\r\n" % path).startswith(b"HTTP/1.1 200 ")
        try:
            assert idle[0].recv(1024) == b""  # the oldest was pushed out
        except ConnectionResetError:
            pass
    finally:
        for sock in idle:
            sock.close()
    time.sleep(0.3)
    _still_serves(node)


def test_an_answer_never_read_does_not_hold_the_node(node: Cluster) -> None:
    port = _port(node)
    socks = []
    for _ in range(10):  # ask for the metrics, never read them
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        sock.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
        socks.append(sock)
    try:
        _still_serves(node)
    finally:
        for sock in socks:
            sock.close()


def _stats(status: str = "ready", joined: bool = True, ready: bool = True) -> dict:
    return {"node_id": "n1", "cluster": {"joined": joined, "ready": ready, "members": {"n1": {"status": status}}}}


@pytest.mark.parametrize(
    ("stats", "stopping", "expected"),
    [
        (_stats(), False, (True, "ready")),
        (_stats("warming", ready=False), False, (False, "warming")),
        (_stats("warming", joined=False, ready=False), False, (False, "joining")),
        (_stats("leaving"), False, (False, "leaving")),
        (_stats("left", ready=False), False, (False, "left")),
        (_stats(), True, (False, "stopping")),
        (None, False, (False, "node_unresponsive")),
    ],
)
def test_readiness_reasons(stats: dict | None, stopping: bool, expected: tuple[bool, str]) -> None:
    assert readiness(stats, stopping) == expected
