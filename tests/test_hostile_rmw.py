"""Read-modify-writes over stored values of hostile shapes: blamed on the input, never a crash.

``incr`` reads the stored value before it writes, so whatever a client managed to store
(a lone surrogate, a number past 64 bits written as text, bytes that are not UTF-8, NaN,
a deep list) reaches the parsing in ``actors/store/rmw.py``. On the code before issue 11, an
``incr`` of a string holding a lone surrogate killed a single node (exit 70). Issue 11:
the request's fault is ``bad_request`` (here, "not an integer", as for any other
non-integer value), ``internal`` only for a server bug; the node and the connection live
on. Over JSON lines and RESP, on a single node and a 3-node cluster (where the ``incr``
runs at the key's coordinator).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.cluster import Cluster
from tests.wire import Conn, MsgpackConn

pytestmark = pytest.mark.integration

#: Stored values, as the raw JSON (or msgpack object) a client writes them.
JSON_VALUES = {
    "lone-surrogate": b'"\\ud800"',
    "lone-low-surrogate": b'"\\udc80"',
    "surrogate-digits": b'"1\\udc80"',
    "text-past-64-bits": b'"99999999999999999999999"',
    "text-float": b'"1e400"',
    "deep-list": b"[" * 100 + b"1" + b"]" * 100,
    "empty-text": b'""',
    "spaces": b'" 1"',
}
MSGPACK_VALUES = {
    "bytes-not-utf8": b"\xff\xfe",
    "nan": float("nan"),
    "minus-zero": -0.0,
    "uint64-max": 2**64 - 1,
}
NOT_AN_INTEGER = {"bad_request"}


@pytest.fixture(scope="module", params=[1, 3], ids=["single-node", "3-node-cluster"])
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(("--resp-port", "0"), log_dir=tmp_path_factory.mktemp(f"rmw-{request.param}"))
    try:
        c.start(request.param)
        yield c
    finally:
        c.close()


def check_incr(problems: list[str], reply: dict, what: str) -> None:
    """An incr's reply: the result, or an error blaming the request (collected, so one run
    reports every value that goes wrong)."""
    if reply.get("type") == "response" or (reply.get("type") == "error" and reply.get("error") in NOT_AN_INTEGER):
        return
    problems.append(f"{what}: the stored value is at fault, not the server: {reply}")


def resp_incr(port: int, key: str) -> bytes:
    """RESP ``INCR key`` (then a ``PING``, so a connection the node dropped is seen)."""
    k = key.encode()
    command = b"*2\r\n$4\r\nINCR\r\n$%d\r\n%s\r\n*1\r\n$4\r\nPING\r\n" % (len(k), k)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(command)
        data = b""
        while not data.endswith(b"+PONG\r\n"):
            chunk = s.recv(1 << 16)
            assert chunk, f"RESP connection closed after INCR {key}: {data!r}"
            data += chunk
    return data[: -len(b"+PONG\r\n")]


def check_resp_incr(problems: list[str], reply: bytes, what: str) -> None:
    if not (reply.startswith((b":", b"-ERR ")) and not reply.startswith(b"-ERR internal")):
        problems.append(f"RESP INCR of {what}: {reply!r}")


def check_alive(cluster: Cluster, what: str) -> None:
    for node_id in cluster.running():
        proc = cluster.proc(node_id)
        assert proc.running, f"{node_id} exited with {proc.proc.returncode} after {what}:\n{proc.log_tail(15)}"


def test_incr_of_hostile_json_values(cluster: Cluster) -> None:
    resp_port = cluster.proc(1).resp_port
    assert resp_port is not None
    problems: list[str] = []
    for name, raw in JSON_VALUES.items():
        key = f"rmw-json-{name}"
        with Conn(cluster.port(1), timeout=10) as c:
            c.send(b'{"type":"set","key":"' + key.encode() + b'","value":' + raw + b"}\n")
            assert c.read_json() == {"type": "ack", "success": True}, name
            check_incr(problems, c.request({"type": "incr", "key": key}), f"incr of {name}")
            check_incr(problems, c.request({"type": "incr", "key": key, "by": -5}), f"incr by -5 of {name}")
            assert c.request({"type": "ping", "id": 1}) == {"type": "pong", "success": True, "id": 1}
        check_resp_incr(problems, resp_incr(resp_port, key), name)
        check_alive(cluster, f"incr of {name}")
    cluster.check_survived("after-json-rmw")
    assert not problems, "\n".join(problems)


def test_incr_of_hostile_msgpack_values(cluster: Cluster) -> None:
    resp_port = cluster.proc(1).resp_port
    assert resp_port is not None
    problems: list[str] = []
    for name, value in MSGPACK_VALUES.items():
        key = f"rmw-msgpack-{name}"
        with MsgpackConn(cluster.port(1), timeout=10) as c:
            assert c.msg_request({"type": "set", "key": key, "value": value}) == {"type": "ack", "success": True}, name
            check_incr(problems, c.msg_request({"type": "incr", "key": key}), f"incr of {name}")
            assert c.msg_request({"type": "ping", "id": 1}) == {"type": "pong", "success": True, "id": 1}
        check_resp_incr(problems, resp_incr(resp_port, key), name)
        check_alive(cluster, f"incr of {name}")
    cluster.check_survived("after-msgpack-rmw")
    assert not problems, "\n".join(problems)
