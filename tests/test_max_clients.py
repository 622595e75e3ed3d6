"""``--max-clients`` against real nodes: the refusal on each port, slots given back, and a
cluster that stays whole while a stranger holds every client slot of one of its nodes."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import msgpack
import pytest

from runtime.resp import encode_command
from tests.cluster import eventually
from tests.limits_support import wait_closed
from runtime.local_cluster import NodeProcess
from tests.rogue_peer import RoguePeer
from tests.wire import Conn

pytestmark = pytest.mark.integration

JSON_REFUSAL = b'{"type":"error","success":false,"error":"max_clients","message":"max number of clients reached"}\n'
RESP_REFUSAL = b"-ERR max number of clients reached\r\n"


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=10)


def read_all_until_closed(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the node writes before it closes ``sock`` (bounded in time and size)."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < 1 << 16 and time.monotonic() < deadline:
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def admitted_stats(port: int) -> dict[str, Any]:
    """The node's stats on a new connection; AssertionError if it is refused."""
    with Conn(port) as conn:
        conn.send(b'{"type":"stats"}\n')
        line = conn.read_line()
    assert line != JSON_REFUSAL, "refused: no free client slot"
    return json.loads(line)["stats"]


def test_clients_over_the_limit_are_refused_on_both_ports_and_slots_are_given_back() -> None:
    node = NodeProcess("node1", "--max-clients", "3", "--resp-port", "0")
    try:
        assert node.resp_port is not None
        held = [Conn(node.port), Conn(node.port)]
        for conn in held:
            assert conn.request({"type": "ping"})["type"] == "pong"
        resp = connect(node.resp_port)
        resp.sendall(encode_command([b"PING"]))
        assert resp.recv(100) == b"+PONG\r\n"

        # The JSON/msgpack port: a client that sends a request gets the refusal line, then EOF.
        refused = connect(node.port)
        refused.sendall(b'{"type":"ping"}\n')
        assert read_all_until_closed(refused) == JSON_REFUSAL
        refused.close()
        # The RESP port refuses at once, as Redis does.
        refused = connect(node.resp_port)
        assert read_all_until_closed(refused) == RESP_REFUSAL
        refused.close()
        # One that says nothing may still be a peer: it is refused after the hello grace (2 s).
        silent = connect(node.port)
        started = time.monotonic()
        assert read_all_until_closed(silent, timeout=5) == JSON_REFUSAL
        assert time.monotonic() - started >= 1.5
        silent.close()

        held.pop().close()  # a slot is given back...

        stats = eventually(lambda: admitted_stats(node.port), timeout=5, what="a client admitted in the free slot")
        assert stats["rejected_connections"] == 3
        resp.sendall(encode_command([b"INFO", b"stats"]))
        time.sleep(0.2)
        info = resp.recv(1 << 16).decode()
        assert "rejected_connections:3" in info and "client_output_buffer_limit_disconnections:0" in info
        resp.close()
        for conn in held:
            conn.close()
    finally:
        node.kill()


def test_a_stranger_holding_every_client_slot_does_not_cut_the_cluster_apart(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """node1 allows 2 clients and a stranger takes both before node2 starts. node2's link
    to node1 arrives over the limit, presents its hello within the grace and is accepted:
    the two nodes see each other and a write at consistency ``all`` succeeds."""
    flags = ("--heartbeat-interval", "0.1", "--down-after", "1", "--replicas", "2")
    first = NodeProcess("node1", "--max-clients", "2", *flags, log_path=tmp_path / "node1.log")
    second = None
    stranger: list[Conn] = []
    try:
        for _ in range(2):
            conn = Conn(first.port)
            assert conn.request({"type": "ping"})["type"] == "pong"
            stranger.append(conn)
        third = connect(first.port)  # the stranger cannot take more
        third.sendall(b'{"type":"ping"}\n')
        assert read_all_until_closed(third) == JSON_REFUSAL
        third.close()

        second = NodeProcess("node2", first.addr, *flags, log_path=tmp_path / "node2.log")

        def converged() -> None:
            with Conn(second.port) as conn:
                members = conn.request({"type": "stats"})["stats"]["cluster"]["members"]
            assert members.get("node1", {}).get("state") == "alive", members
            assert all(m.get("status") == "ready" for m in members.values()), members

        eventually(converged, timeout=15, what="node2 sees node1 alive and ready")
        with Conn(second.port) as conn:
            reply = conn.request({"type": "set", "key": "k", "value": "v", "consistency": "all"})
            assert reply == {"type": "ack", "success": True}, reply
        # node1's own view, asked once a stranger's slot is free: node2 alive, and nothing else refused.
        stranger.pop().close()

        def first_sees_second() -> None:
            stats = admitted_stats(first.port)
            assert stats["cluster"]["members"].get("node2", {}).get("state") == "alive", stats["cluster"]
            assert stats["rejected_connections"] == 1  # the stranger's third connection, no peer

        eventually(first_sees_second, timeout=10, what="node1 sees node2 alive")
        assert "refusing peer connection" not in first.log_tail(200)
    finally:
        for conn in stranger:
            conn.close()
        if second is not None:
            second.kill()
        first.kill()


def test_a_hello_that_never_completes_stays_under_the_client_frame_limit() -> None:
    """A first frame that would be a hello, declaring 10 MiB: it is a client's frame until
    it completes, so past --max-request-bytes (1 MiB) it is refused too_large and closed."""
    node = NodeProcess("node1")
    try:
        sock = connect(node.port)
        header = b"\x82\xa4type\xa5hello\xa3pad\xc6" + (10 << 20).to_bytes(4, "big")  # bin32 of 10 MiB
        try:
            sock.sendall(header + b"\x00" * (2 << 20))
        except OSError:
            pass  # closed under us: what we are checking
        data = read_all_until_closed(sock)
        sock.close()
        assert msgpack.unpackb(data)["error"] == "too_large"
    finally:
        node.kill()


def test_an_accepted_peer_with_a_half_sent_frame_is_closed_after_the_read_timeout() -> None:
    """Peers earn the 64 MiB frame limit, not the right to hold a partial frame forever."""
    node = NodeProcess("node1", "--request-read-timeout", "0.5")
    try:
        sock = RoguePeer.open(node.port, "node2").sock
        sock.sendall(b"\x81\xa1k\xc6" + (8 << 20).to_bytes(4, "big") + b"\x00" * (3 << 20))  # 3 of 8 MiB
        started = time.monotonic()
        closed, _ = wait_closed(sock, timeout=5)
        sock.close()
        assert closed and time.monotonic() - started >= 0.3
        with Conn(node.port) as conn:
            assert conn.request({"type": "stats"})["stats"]["request_read_timeouts"] == 1
    finally:
        node.kill()
