"""``--request-read-timeout`` and ``--timeout`` against a real node (issue 11: "slow
senders are kept forever", "idle connections are never closed").

Short timeouts keep the tests quick; the node's sweep runs every 0.1 s, so a connection
is closed between the timeout and the timeout plus a sweep (plus scheduling slack).
"""

from __future__ import annotations

import socket
import time

import pytest

from tests.limits_support import node_stats, wait_closed
from runtime.local_cluster import NodeProcess
from tests.rogue_peer import RoguePeer
from tests.wire import Conn

pytestmark = pytest.mark.integration

PARTIAL_JSON = b'{"type":"set","key":"slow","value":"' + b"v" * 10_000  # no closing quote, no line end
PARTIAL_MSGPACK = b"\x83\xa4type\xa3set\xa3key\xa4slow\xa5value\xda\x27\x10" + b"v" * 5_000  # str16 of 10,000, half sent
PARTIAL_RESP = b"*3\r\n$3\r\nSET\r\n$4\r\nslow\r\n$10000\r\n" + b"v" * 5_000


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def test_slowloris_connections_are_closed_after_the_request_read_timeout() -> None:
    node = NodeProcess("node1", "--request-read-timeout", "0.5", "--resp-port", "0")
    sockets: list[socket.socket] = []
    try:
        assert node.resp_port is not None
        for _ in range(60):
            sock = connect(node.port)
            sock.sendall(PARTIAL_JSON)
            sockets.append(sock)
        for _ in range(10):
            sock = connect(node.port)
            sock.sendall(PARTIAL_MSGPACK)
            sockets.append(sock)
        for _ in range(10):
            sock = connect(node.resp_port)
            sock.sendall(PARTIAL_RESP)
            sockets.append(sock)
        started = time.monotonic()
        with Conn(node.port) as steady:  # complete requests all along: never partial
            trickled = connect(node.port)  # a request trickled in, but completed in time
            for piece in (b'{"type":"pi', b'ng","id":1', b"}\n"):
                trickled.sendall(piece)
                assert steady.request({"type": "ping"})["type"] == "pong"
                time.sleep(0.1)
            deadline = time.monotonic() + 3.0
            still_open = [s for s in sockets if not wait_closed(s, timeout=max(0.05, deadline - time.monotonic()))[0]]
            assert not still_open, f"{len(still_open)} of {len(sockets)} slow connections were never closed"
            assert time.monotonic() - started >= 0.4
            assert steady.request({"type": "ping"})["type"] == "pong"
        trickled.settimeout(5)
        assert trickled.recv(4096) == b'{"type":"pong","success":true,"id":1}\n'
        trickled.close()
        assert node_stats(node.port)["request_read_timeouts"] == len(sockets)
    finally:
        for sock in sockets:
            sock.close()
        node.kill()


def test_idle_clients_are_closed_after_the_timeout_but_not_active_ones_nor_peers() -> None:
    node = NodeProcess("node1", "--timeout", "1", "--resp-port", "0")
    try:
        assert node.resp_port is not None
        idle_json = connect(node.port)
        idle_resp = connect(node.resp_port)
        peer = RoguePeer.open(node.port, "node2").sock  # a peer's handshake, then nothing for longer than the timeout
        started = time.monotonic()
        with Conn(node.port) as active:
            while time.monotonic() - started < 2.5:  # a request every 0.3 s: never idle a second
                assert active.request({"type": "ping"})["type"] == "pong"
                time.sleep(0.3)
            assert wait_closed(idle_json, timeout=2.0)[0] and wait_closed(idle_resp, timeout=2.0)[0]
            assert not wait_closed(peer, timeout=0.3)[0], "the idle timeout closed a peer connection"
            assert active.request({"type": "stats"})["stats"]["idle_timeouts"] == 2
        for sock in (idle_json, idle_resp, peer):
            sock.close()
    finally:
        node.kill()


def test_without_a_timeout_idle_clients_stay() -> None:
    """The default ``--timeout 0`` never closes an idle client, as Redis's ``timeout 0``."""
    node = NodeProcess("node1", "--request-read-timeout", "0.3")
    try:
        idle = connect(node.port)
        time.sleep(1.0)
        idle.sendall(b'{"type":"ping"}\n')
        idle.settimeout(5)
        assert idle.recv(4096) == b'{"type":"pong","success":true}\n'
        idle.close()
        assert node_stats(node.port)["idle_timeouts"] == 0
    finally:
        node.kill()
