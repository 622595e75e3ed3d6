"""Issue 11's first reproducer: one deeply nested value must not take a node (or a cluster) down.

``{"type":"set","key":"deep","value":[[[[...500 levels...["x"]...]]]]}`` killed the Store
actor with a RecursionError and so the node (exit 70), and in a 3-node cluster every
replica of the key. Here the same shape, over JSON lines and msgpack, at depth 500 and
5,000, just over the ``--max-value-depth`` default (129) and at it (128), and through three
request shapes that reach the store by different paths (a plain ``set``, an ``mset``, a
conditional ``set`` that is a read-modify-write, forwarded to the key's coordinator in a
cluster), against a single node and a 3-node cluster. After each: the deep request is
answered ``bad_request`` naming the limit (or, at the limit, stored and read back), the
connection still serves where the framing can resynchronise, every node is alive and
answers ``stats``, and a write/read at consistency ``all`` works.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest

from tests.cluster import Cluster, eventually
from tests.wire import Conn, ConnectionClosed, MsgpackConn

pytestmark = pytest.mark.integration

LIMIT = 128  # --max-value-depth default (RedisJSON's nesting limit)
DEPTHS = [LIMIT, LIMIT + 1, 500, 5_000]
#: msgpack's unpacker nests at most this deep: a deeper frame cannot be decoded at all,
#: so the stream cannot be resynchronised and the node may close the connection after
#: answering the error (runtime/framing.py).
MSGPACK_NEST_LIMIT = 1024
SHAPES = ["set", "mset", "set-nx"]
#: Janitor cycles every 0.1 s, so a stored value it walks is walked before we look.
FLAGS = ("--cleanup-interval", "0.1")


def deep_list(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


def _fields(shape: str, key: str) -> tuple[dict[str, Any], list[str]]:
    """The request around the deep value, and the path to it (as field names)."""
    if shape == "set":
        return {"type": "set", "key": key}, ["value"]
    if shape == "mset":
        return {"type": "mset"}, ["entries", key]
    if shape == "set-nx":
        return {"type": "set", "key": key, "nx": True}, ["value"]
    raise ValueError(shape)


def json_request(shape: str, key: str, depth: int) -> bytes:
    """The request as one JSON line, the value written out bracket by bracket (so any
    depth can be sent, as issue 11 sent it)."""
    fields, path = _fields(shape, key)
    placeholder = "@@deep@@"
    obj: dict[str, Any] = dict(fields)
    if len(path) == 1:
        obj[path[0]] = placeholder
    else:
        obj[path[0]] = {path[1]: placeholder}
    text = json.dumps(obj, separators=(",", ":"))
    deep = "[" * depth + '"x"' + "]" * depth
    return text.replace(json.dumps(placeholder), deep).encode() + b"\n"


def _mp_map_header(n: int) -> bytes:
    assert n < 16
    return bytes([0x80 | n])


def msgpack_request(shape: str, key: str, depth: int) -> bytes:
    """The request as one msgpack map, the value written out level by level
    (``msgpack.packb`` itself refuses to nest past a few hundred levels)."""
    fields, path = _fields(shape, key)
    deep = b"\x91" * depth + msgpack.packb("x")  # fixarray of one element, ``depth`` times
    out = _mp_map_header(len(fields) + 1)
    for k, v in fields.items():
        out += msgpack.packb(k) + msgpack.packb(v)
    out += msgpack.packb(path[0])
    if len(path) == 2:
        out += _mp_map_header(1) + msgpack.packb(path[1])
    return out + deep


def check_refused(reply: Any) -> None:
    assert isinstance(reply, dict) and reply.get("type") == "error", reply
    assert reply.get("success") is False, reply
    assert reply.get("error") == "bad_request", reply
    message = reply.get("message")
    assert isinstance(message, str) and "--max-value-depth" in message and str(LIMIT) in message, (
        f"the error should name the limit (--max-value-depth {LIMIT}): {reply}"
    )


def check_accepted(reply: Any, shape: str) -> None:
    assert reply.get("type") == "ack" and reply.get("success") is True, reply
    if shape == "set-nx":
        assert reply.get("applied") is not False, f"a fresh key: the nx set should apply: {reply}"


@pytest.fixture(scope="module", params=[1, 3], ids=["single-node", "3-node-cluster"])
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A single node (``python -m runtime.node node1 0``, no peers) or a 3-node cluster;
    killed at the end of the module, each node's log tail printed."""
    c = Cluster(FLAGS, log_dir=tmp_path_factory.mktemp(f"deep-{request.param}"))
    try:
        c.start(request.param)
        yield c
    finally:
        c.close()


def _check_node_running(cluster: Cluster, what: str) -> None:
    for node_id in cluster.running():
        proc = cluster.proc(node_id)
        assert proc.running, f"{node_id} exited with {proc.proc.returncode} after {what}:\n{proc.log_tail(15)}"


@pytest.mark.parametrize("depth", DEPTHS)
def test_deep_value_over_json_lines(cluster: Cluster, depth: int) -> None:
    for shape in SHAPES:
        key = f"deep-json-{shape}-{depth}"
        with Conn(cluster.port(1), timeout=10) as c:
            c.send(json_request(shape, key, depth))
            reply = c.read_json()
            if depth <= LIMIT:
                check_accepted(reply, shape)
            else:
                check_refused(reply)
            # JSON lines resynchronise at the next line: the same connection serves on.
            assert c.request({"type": "ping", "id": "after"}) == {"type": "pong", "success": True, "id": "after"}
            got = c.request({"type": "get", "key": key, "consistency": "all"})
        if depth <= LIMIT:
            assert got == {"type": "response", "value": deep_list(depth), "success": True}, shape
        else:
            assert got == {"type": "response", "value": None, "success": False}, f"{shape}: refused, yet stored"
        _check_node_running(cluster, f"a {shape} of depth {depth}")
    cluster.check_survived(f"after-json-{depth}")


@pytest.mark.parametrize("depth", DEPTHS)
def test_deep_value_over_msgpack(cluster: Cluster, depth: int) -> None:
    for shape in SHAPES:
        key = f"deep-msgpack-{shape}-{depth}"
        with MsgpackConn(cluster.port(1), timeout=10) as c:
            c.send(msgpack_request(shape, key, depth))
            reply = c.read_msgs(1)[0]
            if depth <= LIMIT:
                check_accepted(reply, shape)
            else:
                check_refused(reply)
            if depth <= MSGPACK_NEST_LIMIT:
                # A complete, well-formed frame: the stream goes on.
                assert c.msg_request({"type": "ping", "id": 1}) == {"type": "pong", "success": True, "id": 1}
            else:
                # Past what the unpacker can nest: the node may close, but nothing else.
                try:
                    pong = c.msg_request({"type": "ping", "id": 1}, timeout=5)
                except ConnectionClosed:
                    pong = None
                assert pong in (None, {"type": "pong", "success": True, "id": 1}), pong
        with MsgpackConn(cluster.port(1), timeout=10) as c:
            got = c.msg_request({"type": "get", "key": key, "consistency": "all"})
        if depth <= LIMIT:
            assert got == {"type": "response", "value": deep_list(depth), "success": True}, shape
        else:
            assert got == {"type": "response", "value": None, "success": False}, f"{shape}: refused, yet stored"
        _check_node_running(cluster, f"a {shape} of depth {depth}")
    cluster.check_survived(f"after-msgpack-{depth}")


def test_issue_11_request_exactly(cluster: Cluster) -> None:
    """The 500-level request of issue 11, byte for byte, then the stats of every node."""
    line = b'{"type":"set","key":"deep","value":' + b"[" * 500 + b'"x"' + b"]" * 500 + b"}\n"
    with Conn(cluster.port(1), timeout=10) as c:
        c.send(line)
        check_refused(c.read_json())
    stats = cluster.check_survived("after-issue-11")
    for node_id, s in stats.items():
        assert isinstance(s.get("keys"), int), f"{node_id}: stats without the store's figures: {s}"


def deep_map(depth: int) -> Any:
    value: Any = "x"
    for i in range(depth):
        value = {"k": value} if i % 2 else [value]
    return value


@pytest.mark.timeout(90)
def test_values_at_the_limit_survive_join_and_graceful_leave(tmp_path_factory: pytest.TempPathFactory) -> None:
    """A value nested exactly ``--max-value-depth`` deep is accepted, so every peer path
    must carry it inside its own envelope (a peer frame nests a value a few levels down):
    streamed to a joining node, handed off by a leaving one. Nothing may be lost there."""
    with Cluster(("--replicas", "2", "--leave-timeout", "5", *FLAGS), log_dir=tmp_path_factory.mktemp("deep-handoff")) as c:
        c.start(3)
        values = {f"limit-{i}": (deep_list(LIMIT) if i % 2 else deep_map(LIMIT)) for i in range(40)}
        for key, value in values.items():
            assert c.set(1, key, value, consistency="all") == {"type": "ack", "success": True}, key

        def on_owners(via: str) -> None:
            for key, owners in c.locate_many(list(values), via=via).items():
                for owner in owners:
                    rec = c.inspect(owner, key)
                    assert rec["found"] is True and rec["value"] == values[key], f"{key} on {owner}: {str(rec)[:200]}"

        c.add("node4", peers=["node1"], wait=False)
        c.wait_converged(timeout=15)
        mine = [k for k, owners in c.locate_many(list(values), via="node4").items() if "node4" in owners]
        assert mine, "node4 owns none of 40 keys"
        eventually(lambda: on_owners("node4"), 15.0, "every value streamed to node4's share", interval=0.2)

        assert c.stop("node2") == 0, "graceful leave"
        c.wait_member_state("node2", ["left"], timeout=10)
        eventually(lambda: on_owners("node1"), 15.0, "every value on its owners after node2 left", interval=0.2)
        c.check_survived("after-handoff")
