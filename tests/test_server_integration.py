"""Integration tests: real ``python -m runtime.node`` subprocesses over loopback TCP.

Every read has a deadline, every loop a bound, every socket is closed (``with``), and
every node process is reaped by the ``node`` / ``node_factory`` fixtures.
"""

from __future__ import annotations

import base64
import json
import resource
import shutil
import socket
import struct
import subprocess
import threading
import time
from typing import Any

import msgpack
import pytest

from runtime.local_cluster import NodeProcess
from tests.wire import Conn, MsgpackConn, dumps

pytestmark = pytest.mark.integration

SEED_SET = b'{"type":"set","key":"test","value":"hello","ttl":300}\n'
SEED_ACK = b'{"type":"ack","success":true}\n'
SEED_GET = b'{"type":"get","key":"test"}\n'
SEED_VALUE = b'{"type":"response","value":"hello","success":true}\n'


def stats(conn: Conn) -> dict[str, Any]:
    reply = conn.request({"type": "stats"})
    assert reply["type"] == "stats" and reply["success"] is True, reply
    return reply["stats"]


def wait_for_stats(conn: Conn, predicate, timeout: float = 5.0, interval: float = 0.05) -> dict[str, Any]:
    """Poll ``stats`` until ``predicate(stats)`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    current = stats(conn)
    while not predicate(current):
        assert time.monotonic() < deadline, f"stats never satisfied the condition: {current}"
        time.sleep(interval)
        current = stats(conn)
    return current


# --- the seed's README example, byte for byte -------------------------------------------


def test_readme_example_bytes(node: NodeProcess) -> None:
    with Conn(node.port) as c:
        c.send(SEED_SET)
        assert c.read_line() == SEED_ACK
        c.send(SEED_GET)
        assert c.read_line() == SEED_VALUE
    # As in the README, each command on its own connection.
    with Conn(node.port) as c:
        c.send(SEED_GET)
        assert c.read_line() == SEED_VALUE


@pytest.mark.skipif(shutil.which("nc") is None, reason="nc (OpenBSD netcat) is not installed")
def test_readme_example_with_nc(node: NodeProcess) -> None:
    def nc(line: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["sh", "-c", f"echo '{line}' | nc -N 127.0.0.1 {node.port}"],
            capture_output=True,
            timeout=10,
            check=False,
        )

    done = nc('{"type":"set","key":"test","value":"hello","ttl":300}')
    assert done.returncode == 0, done.stderr
    assert done.stdout == SEED_ACK
    done = nc('{"type":"get","key":"test"}')
    assert done.returncode == 0, done.stderr
    assert done.stdout == SEED_VALUE


def test_half_close_answers_everything_then_closes(node: NodeProcess) -> None:
    with Conn(node.port) as c:
        c.send(SEED_SET + SEED_GET + b'{"type":"ping","id":7}\n')
        c.sock.shutdown(socket.SHUT_WR)
        assert c.read_until_closed(timeout=5) == SEED_ACK + SEED_VALUE + b'{"type":"pong","success":true,"id":7}\n'


def test_basic_commands_and_ids(node: NodeProcess) -> None:
    with Conn(node.port) as c:
        assert c.request({"type": "get", "key": "nope"}) == {"type": "response", "value": None, "success": False}
        assert c.request({"type": "set", "key": "k", "value": {"a": [1, 2.5, None, True]}, "id": "x"}) == {
            "type": "ack", "success": True, "id": "x",
        }
        assert c.request({"type": "get", "key": "k", "id": 1}) == {
            "type": "response", "value": {"a": [1, 2.5, None, True]}, "success": True, "id": 1,
        }
        assert c.request({"type": "delete", "key": "k"}) == {"type": "ack", "success": True, "deleted": True}
        assert c.request({"type": "delete", "key": "k"}) == {"type": "ack", "success": True, "deleted": False}
        assert c.request({"type": "join", "node_id": "node2"}) == {"type": "ack", "success": True}
        assert c.request({"type": "mset", "entries": {"a": 1, "b": "two"}, "ttl": 300}) == {
            "type": "ack", "success": True,
        }
        assert c.request({"type": "mget", "keys": ["a", "zz", "b"]}) == {
            "type": "response",
            "success": True,
            "values": [
                {"key": "a", "value": 1, "found": True},
                {"key": "zz", "value": None, "found": False},
                {"key": "b", "value": "two", "found": True},
            ],
        }
        assert c.request({"type": "ping", "id": [1, "z"]}) == {"type": "pong", "success": True, "id": [1, "z"]}
        # Unknown fields are ignored (the seed's clients send node_id on set).
        assert c.request({"type": "set", "key": "s", "value": 1, "node_id": "node1"}) == {
            "type": "ack", "success": True,
        }


# --- TTL ---------------------------------------------------------------------------------


def test_ttl_expires(node: NodeProcess) -> None:
    with Conn(node.port) as c:
        sent = time.monotonic()
        assert c.request({"type": "set", "key": "short", "value": "v", "ttl": 0.3}) == {
            "type": "ack", "success": True,
        }
        assert c.request({"type": "get", "key": "short"}) == {"type": "response", "value": "v", "success": True}
        deadline = sent + 3.0
        for _ in range(200):
            reply = c.request({"type": "get", "key": "short"})
            if not reply["success"]:
                break
            assert reply["value"] == "v"
            assert time.monotonic() < deadline, "key with ttl 0.3 still there after 3 s"
            time.sleep(0.02)
        observed = time.monotonic()
        assert reply == {"type": "response", "value": None, "success": False}
        assert observed - sent >= 0.28, f"expired after only {observed - sent:.3f}s"


def test_ttl_zero_and_null_never_expire(node_factory) -> None:
    n = node_factory("--cleanup-interval", "0.1")
    with Conn(n.port) as c:
        c.send_json(
            {"type": "set", "key": "zero", "value": 0, "ttl": 0},
            {"type": "set", "key": "null", "value": 1, "ttl": None},
            {"type": "set", "key": "absent", "value": 2},
            {"type": "set", "key": "zero-float", "value": 3, "ttl": 0.0},
            {"type": "mset", "entries": {"m0": 4}, "ttl": 0},
            {"type": "set", "key": "control", "value": 5, "ttl": 0.2},
        )
        assert c.read_jsons(6) == [{"type": "ack", "success": True}] * 6
        assert stats(c)["keys_with_ttl"] == 1
        first = stats(c)["expire_cycles"]
        # Never read "control": only the janitor can remove it. Also wait for more cycles.
        after = wait_for_stats(
            c, lambda s: s["expired_active"] >= 1 and s["expire_cycles"] >= first + 5, timeout=3.0
        )
        assert after["keys"] == 5 and after["keys_with_ttl"] == 0, after
        for key, value in (("zero", 0), ("null", 1), ("absent", 2), ("zero-float", 3), ("m0", 4)):
            assert c.request({"type": "get", "key": key}) == {"type": "response", "value": value, "success": True}
        assert c.request({"type": "get", "key": "control"})["success"] is False


def test_janitor_expires_keys_never_read(node_factory) -> None:
    n = node_factory("--cleanup-interval", "0.1")
    with Conn(n.port) as c:
        entries = {f"vol{i}": i for i in range(200)}
        assert c.request({"type": "mset", "entries": entries, "ttl": 0.2}) == {"type": "ack", "success": True}
        assert c.request({"type": "set", "key": "keep", "value": "forever"}) == {"type": "ack", "success": True}
        before = stats(c)
        assert before["keys"] == 201 and before["keys_with_ttl"] == 200
        assert before["expired_active"] == 0
        after = wait_for_stats(c, lambda s: s["keys"] == 1, timeout=3.0)
        assert after["expired_active"] == 200
        assert after["expired_lazy"] == 0
        assert after["expirations"] == 200
        assert after["keys_with_ttl"] == 0
        assert c.request({"type": "get", "key": "keep"})["value"] == "forever"


# --- pipelining ----------------------------------------------------------------------------


def test_thousand_pipelined_requests_answered_in_order(node: NodeProcess) -> None:
    requests = []
    for i in range(1000):
        key = f"k{(i // 2) % 37}"
        if i % 2 == 0:
            requests.append({"type": "set", "key": key, "value": i, "id": i})
        else:
            requests.append({"type": "get", "key": key, "id": i})
    with Conn(node.port) as c:
        c.send(b"".join(dumps(r) for r in requests))  # one sendall
        replies = c.read_jsons(1000, timeout=15)
        for i, reply in enumerate(replies):
            assert reply["id"] == i, (i, reply)
            if i % 2 == 0:
                assert reply == {"type": "ack", "success": True, "id": i}
            else:
                # The set just before it (same key) has been applied: strict order.
                assert reply == {"type": "response", "value": i - 1, "success": True, "id": i}
        # Nothing extra was sent.
        assert c.request({"type": "ping", "id": "end"}) == {"type": "pong", "success": True, "id": "end"}


# --- msgpack -----------------------------------------------------------------------------


def test_msgpack_client(node: NodeProcess) -> None:
    blob = bytes(range(256)) + b"\x00\xff\xc1"
    with MsgpackConn(node.port) as c:
        assert c.msg_request({"type": "ping", "id": 1}) == {"type": "pong", "success": True, "id": 1}
        assert c.msg_request({"type": "set", "key": "bin", "value": blob, "ttl": 300}) == {
            "type": "ack", "success": True,
        }
        reply = c.msg_request({"type": "get", "key": "bin"})
        assert reply == {"type": "response", "value": blob, "success": True}
        assert type(reply["value"]) is bytes
        assert c.msg_request({"type": "get", "key": "missing"}) == {
            "type": "response", "value": None, "success": False,
        }
        nested = {"list": [1, 2.5, None, True, b"\x01"], "s": "é"}
        assert c.msg_request({"type": "mset", "entries": {"a": nested, "b": 2}}) == {"type": "ack", "success": True}
        assert c.msg_request({"type": "mget", "keys": ["a", "x", "b"], "id": "m"}) == {
            "type": "response",
            "success": True,
            "values": [
                {"key": "a", "value": nested, "found": True},
                {"key": "x", "value": None, "found": False},
                {"key": "b", "value": 2, "found": True},
            ],
            "id": "m",
        }
        assert c.msg_request({"type": "nope"})["error"] == "unknown_type"
        assert c.msg_request({"type": "ping"}) == {"type": "pong", "success": True}
    # The same binary value read by a JSON client: base64 (not valid UTF-8).
    with Conn(node.port) as c:
        assert c.request({"type": "get", "key": "bin"}) == {
            "type": "response",
            "value": {"$base64": base64.b64encode(blob).decode("ascii")},
            "success": True,
        }


def test_msgpack_pipelined_burst(node: NodeProcess) -> None:
    requests = []
    for i in range(500):
        requests.append({"type": "set", "key": f"mp{i % 50}", "value": i.to_bytes(4, "big"), "id": 2 * i})
        requests.append({"type": "get", "key": f"mp{i % 50}", "id": 2 * i + 1})
    with MsgpackConn(node.port) as c:
        c.send(b"".join(msgpack.packb(r, use_bin_type=True) for r in requests))
        replies = c.read_msgs(1000, timeout=15)
        for i in range(500):
            assert replies[2 * i] == {"type": "ack", "success": True, "id": 2 * i}
            assert replies[2 * i + 1] == {
                "type": "response", "value": i.to_bytes(4, "big"), "success": True, "id": 2 * i + 1,
            }
        assert c.msg_request({"type": "ping"}) == {"type": "pong", "success": True}


# --- several connections --------------------------------------------------------------------


def test_two_connections_in_threads_never_get_each_others_replies(node: NodeProcess) -> None:
    errors: list[str] = []
    barrier = threading.Barrier(2, timeout=10)

    def client(name: str) -> None:
        try:
            with Conn(node.port) as c:
                barrier.wait()
                for rnd in range(20):
                    batch = []
                    for j in range(100):
                        rid = f"{name}-{rnd}-{j}"
                        if j % 2 == 0:
                            batch.append({"type": "set", "key": f"{name}{j}", "value": rid, "id": rid})
                        else:
                            batch.append({"type": "get", "key": f"{name}{j - 1}", "id": rid})
                    c.send(b"".join(dumps(r) for r in batch))
                    for j, reply in enumerate(c.read_jsons(len(batch), timeout=10)):
                        rid = f"{name}-{rnd}-{j}"
                        if reply.get("id") != rid:
                            errors.append(f"{name}: expected id {rid}, got {reply}")
                            return
                        if j % 2 == 1 and reply.get("value") != f"{name}-{rnd}-{j - 1}":
                            errors.append(f"{name}: wrong value {reply}")
                            return
        except Exception as exc:  # reported below
            errors.append(f"{name}: {exc!r}")

    threads = [threading.Thread(target=client, args=(name,), daemon=True) for name in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "client threads hung"
    assert errors == []


def test_interleaved_fragments_on_two_connections(node: NodeProcess) -> None:
    """Partial lines alternate between two connections; each gets exactly its own replies."""
    streams = {}
    for name in ("a", "b"):
        streams[name] = b"".join(
            dumps({"type": "set", "key": f"{name}{i}", "value": i, "id": f"{name}{i}"})
            + dumps({"type": "get", "key": f"{name}{i}", "id": f"{name}{i}g"})
            for i in range(100)
        )
    with Conn(node.port) as a, Conn(node.port) as b:
        conns = {"a": a, "b": b}
        offsets = {"a": 0, "b": 0}
        step = 37  # cuts lines in the middle
        for _ in range(10_000):
            if all(offsets[n] >= len(streams[n]) for n in conns):
                break
            for name, conn in conns.items():
                chunk = streams[name][offsets[name] : offsets[name] + step]
                if chunk:
                    conn.send(chunk)
                    offsets[name] += len(chunk)
        for name, conn in conns.items():
            replies = conn.read_jsons(200, timeout=15)
            for i in range(100):
                assert replies[2 * i] == {"type": "ack", "success": True, "id": f"{name}{i}"}
                assert replies[2 * i + 1] == {"type": "response", "value": i, "success": True, "id": f"{name}{i}g"}
            assert conn.request({"type": "ping"}) == {"type": "pong", "success": True}


# --- many idle connections -------------------------------------------------------------------


def test_thousands_of_idle_connections(node: NodeProcess) -> None:
    idle_count = 2000
    needed = idle_count + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {needed}")
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
        except (ValueError, OSError) as exc:
            pytest.skip(f"cannot raise RLIMIT_NOFILE: {exc}")
    idle: list[socket.socket] = []
    try:
        for _ in range(idle_count):
            idle.append(socket.create_connection(("127.0.0.1", node.port), timeout=10))
        with Conn(node.port) as c:
            assert c.request({"type": "ping", "id": "fresh"}) == {"type": "pong", "success": True, "id": "fresh"}
            assert c.request({"type": "set", "key": "k", "value": "v"}) == {"type": "ack", "success": True}
            assert c.request({"type": "get", "key": "k"}) == {"type": "response", "value": "v", "success": True}
            s = wait_for_stats(c, lambda s: s["connections"] == idle_count + 1, timeout=10)
            assert s["connections_total"] >= idle_count + 1
            # The idle connections still work too.
            for sock in (idle[0], idle[idle_count // 2], idle[-1]):
                sock.sendall(b'{"type":"ping"}\n')
                sock.settimeout(10)
                assert sock.recv(100) == b'{"type":"pong","success":true}\n'
            for sock in idle:
                sock.close()
            idle.clear()
            wait_for_stats(c, lambda s: s["connections"] == 1, timeout=10)
        assert node.proc.poll() is None
    finally:
        for sock in idle:
            sock.close()
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        except (ValueError, OSError):
            pass


# --- rude clients ---------------------------------------------------------------------------


def test_clients_disconnecting_mid_line_and_mid_pipeline(node: NodeProcess) -> None:
    # Mid-line: half a request, then close.
    with Conn(node.port) as c:
        c.send(b'{"type":"set","key":"half","val')
    # Mid-pipeline: a big pipeline, close without reading a single reply.
    pipeline = b"".join(
        dumps({"type": "set", "key": f"p{i % 100}", "value": "x" * 50, "id": i}) for i in range(20_000)
    )
    with Conn(node.port) as c:
        c.send(pipeline)
    # Abortive close (RST) in the middle of a pipeline and in the middle of a line.
    with Conn(node.port) as c:
        c.send(pipeline[: len(pipeline) // 2 + 13])
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # A msgpack client leaving half a map behind.
    with Conn(node.port) as c:
        c.send(msgpack.packb({"type": "set", "key": "mp-half", "value": "v" * 100})[:20])

    with Conn(node.port) as c:
        assert c.request({"type": "ping"}) == {"type": "pong", "success": True}
        assert c.request({"type": "get", "key": "half"}) == {"type": "response", "value": None, "success": False}
        assert c.request({"type": "get", "key": "mp-half"})["success"] is False
        assert c.request({"type": "set", "key": "after", "value": 1}) == {"type": "ack", "success": True}
        assert c.request({"type": "get", "key": "after"}) == {"type": "response", "value": 1, "success": True}
        # The server forgot every dead connection.
        wait_for_stats(c, lambda s: s["connections"] == 1, timeout=10)
    assert node.proc.poll() is None


# --- stats ------------------------------------------------------------------------------------


def test_stats_reflect_hits_misses_keys_and_connections(node: NodeProcess) -> None:
    with Conn(node.port) as c:
        s0 = stats(c)
        for field in (
            "keys", "memory_bytes", "hits", "misses", "expired_lazy", "expired_active",
            "expirations", "connections", "connections_total", "uptime_s",
        ):
            assert field in s0, field
        assert s0["keys"] == 0 and s0["hits"] == 0 and s0["misses"] == 0 and s0["memory_bytes"] == 0
        assert s0["connections"] == 1 and s0["connections_total"] == 1
        assert isinstance(s0["uptime_s"], (int, float)) and s0["uptime_s"] >= 0

        c.send_json(
            {"type": "set", "key": "a", "value": "x" * 100},
            {"type": "set", "key": "b", "value": 2},
            {"type": "set", "key": "c", "value": 3},
            {"type": "get", "key": "a"},
            {"type": "get", "key": "b"},
            {"type": "get", "key": "nope"},
            {"type": "mget", "keys": ["c", "nope2"]},
        )
        c.read_lines(7)
        s1 = stats(c)
        assert s1["keys"] == 3
        assert s1["hits"] == 3 and s1["misses"] == 2
        assert s1["memory_bytes"] > 100
        assert c.request({"type": "delete", "key": "a"})["deleted"] is True
        s2 = stats(c)
        assert s2["keys"] == 2 and s2["memory_bytes"] < s1["memory_bytes"]

        with Conn(node.port) as other:
            assert other.request({"type": "ping"})["type"] == "pong"
            s3 = stats(c)
            assert s3["connections"] == 2 and s3["connections_total"] == 2
        s4 = wait_for_stats(c, lambda s: s["connections"] == 1)
        assert s4["connections_total"] == 2
        assert s4["uptime_s"] >= s0["uptime_s"]
        json.dumps(s4)  # plain JSON data
