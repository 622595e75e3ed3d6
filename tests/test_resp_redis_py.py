"""redis-py, unmodified, against a real node's ``--resp-port``: every command, its errors,
expiry, pipelining; with redis-py's pure-Python parsers and with hiredis, over RESP2 and
RESP3 (redis-py 8's default, negotiated with ``HELLO 3``), against nodes parsing with and
without hiredis. Plus raw-socket checks of what
no client library would send: protocol errors, half-close, a client that does not read.

Nodes live for the module (per xdist worker): one per client flavour, so the flavours'
tests do not see each other's keys, and one for the rest; every test uses its own keys.
"""

from __future__ import annotations

import base64
import os
import socket
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from redis._parsers import _HiredisParser, _RESP2Parser, _RESP3Parser
from redis.utils import HIREDIS_AVAILABLE

from runtime.local_cluster import NodeProcess
from tests.wire import Conn

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def nodes() -> Iterator[Callable[[str], NodeProcess]]:
    """A node per name, started on first use, reaped with the module."""
    procs: dict[str, NodeProcess] = {}

    def get(name: str) -> NodeProcess:
        if name not in procs:
            # The node parses with hiredis when it can; the python-* clients' nodes use the
            # pure parser instead, so both serve real clients here.
            saved = os.environ.get("ACTORCACHE_RESP_PARSER")
            os.environ["ACTORCACHE_RESP_PARSER"] = "python" if name.startswith("python") else "auto"
            try:
                procs[name] = NodeProcess("node1", "--resp-port", "0", "--cleanup-interval", "0.05")
            finally:
                if saved is None:
                    del os.environ["ACTORCACHE_RESP_PARSER"]
                else:
                    os.environ["ACTORCACHE_RESP_PARSER"] = saved
        return procs[name]

    try:
        yield get
    finally:
        for proc in procs.values():
            proc.kill()


@pytest.fixture
def node(nodes: Callable[[str], NodeProcess]) -> NodeProcess:
    return nodes("shared")


FLAVOURS = {
    "python-resp2": (_RESP2Parser, 2),
    "hiredis-resp2": (_HiredisParser, 2),
    "python-resp3": (_RESP3Parser, 3),
    "hiredis-resp3": (_HiredisParser, 3),
}


@pytest.fixture(params=list(FLAVOURS))
def r(request: pytest.FixtureRequest, nodes: Callable[[str], NodeProcess]) -> Iterator[redis.Redis]:
    node = nodes(request.param)
    parser, protocol = FLAVOURS[request.param]
    if parser is _HiredisParser:
        assert HIREDIS_AVAILABLE, "hiredis is a dev dependency: pip install -e '.[dev]'"
    pool = redis.ConnectionPool(port=node.resp_port, protocol=protocol, parser_class=parser, socket_timeout=10)
    client = redis.Redis(connection_pool=pool)
    try:
        conn = pool.get_connection()
        assert type(conn._parser) is parser  # connected (HELLO 3 included) with the parser asked for
        pool.release(conn)
        yield client
    finally:
        client.close()


def eventually(check, timeout: float = 5.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(interval)


# --- strings ---------------------------------------------------------------------------


def test_get_set_binary_keys_and_values(r: redis.Redis) -> None:
    every_byte = bytes(range(256))
    assert r.set("s:text", "héllo") is True
    assert r.get("s:text") == "héllo".encode()
    assert r.set("s:bin", every_byte) is True
    assert r.get("s:bin") == every_byte
    assert r.set(b"s:\xff\xfe\x00key", b"v") is True  # not UTF-8: still a key, byte for byte
    assert r.get(b"s:\xff\xfe\x00key") == b"v"
    assert r.get(b"s:\xff\xfe\x00kex") is None
    assert r.set("s:empty", b"") is True and r.get("s:empty") == b""
    assert r.get("s:missing") is None
    big = b"x" * 200_000
    assert r.set("s:big", big) and r.get("s:big") == big


def test_set_options(r: redis.Redis) -> None:
    assert r.set("o:k", "1", nx=True) is True
    assert r.set("o:k", "2", nx=True) is None
    assert r.get("o:k") == b"1"
    assert r.set("o:k", "3", xx=True) is True and r.get("o:k") == b"3"
    assert r.set("o:absent", "3", xx=True) is None and r.get("o:absent") is None
    assert r.set("o:k", "4", get=True) == b"3"
    assert r.set("o:new", "1", get=True) is None and r.get("o:new") == b"1"
    assert r.set("o:k", "5", ex=100) and 99 <= r.ttl("o:k") <= 100
    assert r.set("o:k", "6", keepttl=True) and 99 <= r.ttl("o:k") <= 100 and r.get("o:k") == b"6"
    assert r.set("o:k", "7") and r.ttl("o:k") == -1  # a plain SET drops the TTL, as in Redis
    assert r.set("o:k", "8", px=50_000) and 49_000 < r.pttl("o:k") <= 50_000
    assert r.set("o:k", "9", exat=int(time.time()) + 100) and 98 <= r.ttl("o:k") <= 100
    assert r.set("o:k", "10", pxat=int(time.time() * 1000) + 100_000) and 98 <= r.ttl("o:k") <= 100
    assert r.set("o:k", "11", nx=True, get=True) == b"10" and r.get("o:k") == b"10"
    with pytest.raises(redis.ResponseError, match="^invalid expire time in 'set' command$"):
        r.set("o:k", "v", ex=0)
    with pytest.raises(redis.ResponseError, match="^invalid expire time in 'set' command$"):
        r.execute_command("SET", "o:k", "v", "PX", "-5")
    with pytest.raises(redis.ResponseError, match="^value is not an integer or out of range$"):
        r.execute_command("SET", "o:k", "v", "EX", "soon")
    with pytest.raises(redis.ResponseError, match="^syntax error$"):
        r.execute_command("SET", "o:k", "v", "NX", "XX")
    with pytest.raises(redis.ResponseError, match="^syntax error$"):
        r.execute_command("SET", "o:k", "v", "EX", "1", "KEEPTTL")
    assert r.get("o:k") == b"10"


def test_del_and_exists(r: redis.Redis) -> None:
    r.mset({"d:a": 1, "d:b": 2, "d:c": 3})
    assert r.exists("d:a", "d:b", "d:nope", "d:a") == 3  # repeats count, as in Redis
    assert r.delete("d:a", "d:nope", "d:b", "d:a") == 2
    assert r.exists("d:a") == 0 and r.exists("d:c") == 1
    assert r.delete("d:nope") == 0


def test_mget_mset(r: redis.Redis) -> None:
    assert r.mset({"m:a": "1", "m:b": b"\x00\xff"}) is True
    assert r.mget("m:a", "m:nope", "m:b", "m:a") == [b"1", None, b"\x00\xff", b"1"]
    with pytest.raises(redis.ResponseError, match="^wrong number of arguments for 'mset' command$"):
        r.execute_command("MSET", "m:a", "1", "m:b")


def test_counters(r: redis.Redis) -> None:
    assert r.incr("c:n") == 1
    assert r.incr("c:n") == 2
    assert r.incrby("c:n", 10) == 12
    assert r.decr("c:n") == 11
    assert r.decrby("c:n", 20) == -9
    assert r.get("c:n") == b"-9"
    r.set("c:text", "41")  # a string that holds an integer counts too
    assert r.incr("c:text") == 42 and r.get("c:text") == b"42"
    r.set("c:word", "forty")
    with pytest.raises(redis.ResponseError, match="^value is not an integer or out of range$"):
        r.incr("c:word")
    assert r.get("c:word") == b"forty"
    r.set("c:max", str(2**63 - 1))
    with pytest.raises(redis.ResponseError, match="^increment or decrement would overflow$"):
        r.incr("c:max")
    with pytest.raises(redis.ResponseError, match="^value is not an integer or out of range$"):
        r.execute_command("INCRBY", "c:n", "1.5")
    r.set("c:ttl", "1", ex=100)
    assert r.incr("c:ttl") == 2 and 99 <= r.ttl("c:ttl") <= 100  # INCR keeps the TTL


def test_expiry(r: redis.Redis) -> None:
    assert r.ttl("e:nope") == -2 and r.pttl("e:nope") == -2
    r.set("e:short", "v", px=150)
    assert 0 < r.pttl("e:short") <= 150
    assert r.ttl("e:short") in (0, 1)
    eventually(lambda: r.get("e:short") is None, timeout=3)
    assert r.exists("e:short") == 0 and r.ttl("e:short") == -2

    r.set("e:k", "v")
    assert r.ttl("e:k") == -1
    assert r.expire("e:k", 100) is True and 99 <= r.ttl("e:k") <= 100
    assert r.pexpire("e:k", 100_000) is True and 99_000 < r.pttl("e:k") <= 100_000
    assert r.persist("e:k") is True and r.ttl("e:k") == -1
    assert r.persist("e:k") is False  # no TTL to remove
    assert r.expire("e:nope", 100) is False and r.persist("e:nope") is False
    assert r.pexpire("e:k", 120) is True
    eventually(lambda: r.get("e:k") is None, timeout=3)

    r.set("e:now", "v")
    assert r.expire("e:now", 0) is True  # a deadline already past deletes, as in Redis
    assert r.get("e:now") is None
    assert r.expire("e:now", -1) is False
    with pytest.raises(redis.ResponseError, match="^value is not an integer or out of range$"):
        r.execute_command("EXPIRE", "e:k", "1.5")


def test_connection_and_server_commands(r: redis.Redis) -> None:
    assert r.ping() is True
    assert r.echo("hi there") == b"hi there"
    conn = r.connection_pool.get_connection()  # redis-py's PING maps any answer to a bool
    conn.send_command("PING", "msg")
    assert conn.read_response() == b"msg"
    r.connection_pool.release(conn)
    assert r.execute_command("SELECT", 0) in (True, b"OK", "OK")
    with pytest.raises(redis.ResponseError, match="^DB index is out of range$"):
        r.execute_command("SELECT", 1)
    assert r.client_setname("tester") is True and r.client_getname() in (b"tester", "tester")
    assert isinstance(r.client_id(), int)
    info = r.client_info()
    assert info["name"] == "tester" and info["db"] == 0
    config = r.config_get("save")
    assert config in ({"save": ""}, {b"save": b""})
    assert set(r.config_get("append*")) in ({"appendonly", "appendfsync"}, {b"appendonly", b"appendfsync"})
    assert r.config_get("nonesuch") == {}
    assert r.command_count() >= 20
    with pytest.raises(redis.ResponseError, match="^unknown command 'FOO', with args beginning with: 'a' 'b' $"):
        r.execute_command("FOO", "a", "b")
    with pytest.raises(redis.ResponseError, match="^wrong number of arguments for 'get' command$"):
        r.execute_command("GET")
    with pytest.raises(redis.ResponseError, match="^empty keys are not supported$"):
        r.get("")

    before = r.dbsize()
    r.set("srv:new1", 1)
    r.set("srv:new2", 1, ex=100)
    assert r.dbsize() == before + 2
    info = r.info()
    assert info["redis_version"] == "7.0.0" and info["tcp_port"] == r.connection_pool.connection_kwargs["port"]
    assert info["actorcache_node_id"] == "node1" and info["role"] == "master" and info["cluster_enabled"] == 0
    assert info["connected_clients"] >= 1 and info["used_memory"] > 0
    assert info["db0"]["keys"] == before + 2 and info["db0"]["expires"] >= 1
    assert set(r.info("keyspace")) == {"db0"}
    assert "keyspace_hits" in r.info("stats")
    assert r.info("nonesuch") == {}


def test_pipeline_of_1000_commands_in_order(r: redis.Redis) -> None:
    pipe = r.pipeline(transaction=False)
    expected: list[object] = []
    for i in range(250):
        pipe.set(f"p:{i}", i)
        pipe.get(f"p:{i}")
        pipe.echo(f"e{i}")  # answered without the node, still in its place
        pipe.incr("p:counter")
        expected += [True, str(i).encode(), f"e{i}".encode(), i + 1]
    assert len(pipe) == 1000
    assert pipe.execute() == expected


def test_pipeline_errors_keep_their_place(r: redis.Redis) -> None:
    pipe = r.pipeline(transaction=False)
    pipe.set("pe:a", "x")
    pipe.incr("pe:a")
    pipe.execute_command("NOSUCH")
    pipe.get("pe:a")
    results = pipe.execute(raise_on_error=False)
    assert results[0] is True and results[3] == b"x"
    assert isinstance(results[1], redis.ResponseError) and isinstance(results[2], redis.ResponseError)


def test_quit_closes_and_the_client_reconnects(r: redis.Redis) -> None:
    conn = r.connection_pool.get_connection()
    conn.send_command("QUIT")
    assert conn.read_response() in (b"OK", "OK")
    r.connection_pool.release(conn)
    conn.disconnect()
    assert r.ping() is True


# --- across protocols --------------------------------------------------------------------


def test_values_across_protocols(node: NodeProcess) -> None:
    r = redis.Redis(port=node.resp_port, protocol=2)
    with Conn(node.port) as c:
        r.set("x:utf8", "héllo")
        r.set("x:bin", b"\xff\x00")
        r.set(b"x:\xff", "binary key")
        assert c.request({"type": "get", "key": "x:utf8"})["value"] == "héllo"
        assert c.request({"type": "get", "key": "x:bin"})["value"] == {"$base64": base64.b64encode(b"\xff\x00").decode()}
        # A non-UTF-8 key is the string that surrogateescape decoding makes of it.
        assert c.request({"type": "get", "key": "x:\udcff"})["value"] == "binary key"
        assert c.request({"type": "set", "key": "x:int", "value": 42})["success"] is True
        assert c.request({"type": "set", "key": "x:obj", "value": {"a": [1, None, True]}})["success"] is True
        assert c.request({"type": "set", "key": "x:ttl", "value": "v", "ttl": 100})["success"] is True
        assert r.get("x:int") == b"42" and r.incr("x:int") == 43
        assert c.request({"type": "get", "key": "x:int"})["value"] == 43
        assert r.get("x:obj") == b'{"a":[1,null,true]}'
        assert 99 <= r.ttl("x:ttl") <= 100
    r.close()


# --- raw sockets: what no client library sends --------------------------------------------


def _raw(node: NodeProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", node.resp_port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _read_until_closed(sock: socket.socket, limit: int = 1 << 26) -> bytes:
    out = bytearray()
    while len(out) < limit:
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        out += chunk
    return bytes(out)


def test_protocol_error_answers_earlier_commands_then_closes(node: NodeProcess) -> None:
    with _raw(node) as sock:
        sock.sendall(b"SET raw:k v\r\nGET raw:k\r\n*1\r\n$x\r\nGET raw:k\r\n")
        assert _read_until_closed(sock) == b"+OK\r\n$1\r\nv\r\n-ERR Protocol error: invalid bulk length\r\n"
    with _raw(node) as sock:
        sock.sendall(b'ECHO "unbalanced\r\n')
        assert _read_until_closed(sock) == b"-ERR Protocol error: unbalanced quotes in request\r\n"
    with _raw(node) as sock:  # over --proto-max-bulk-len (512 MB by default): refused before it is read, as Redis
        sock.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870913\r\n")
        assert _read_until_closed(sock) == b"-ERR Protocol error: invalid bulk length\r\n"
    r = redis.Redis(port=node.resp_port)
    assert r.get("raw:k") == b"v"  # the node carries on
    r.close()


def test_half_close_answers_everything(node: NodeProcess) -> None:
    with _raw(node) as sock:
        sock.sendall(b"SET hc:k 1\r\nINCR hc:k\r\nECHO e\r\nGET hc:k\r\n")
        sock.shutdown(socket.SHUT_WR)
        assert _read_until_closed(sock) == b"+OK\r\n:2\r\n$1\r\ne\r\n$1\r\n2\r\n"


def test_quit_on_a_raw_socket(node: NodeProcess) -> None:
    with _raw(node) as sock:
        sock.sendall(b"PING\r\nQUIT\r\nPING\r\n")
        assert _read_until_closed(sock) == b"+PONG\r\n+OK\r\n"


def test_a_client_that_does_not_read_is_paused_not_buffered(node: NodeProcess) -> None:
    value = b"v" * 8192
    r = redis.Redis(port=node.resp_port)
    r.set("bp:big", value)
    n = 3000  # ~25 MB of replies
    reply = b"$8192\r\n" + value + b"\r\n"
    with _raw(node) as sock:
        request = b"GET bp:big\r\n" * n
        sender = __import__("threading").Thread(target=sock.sendall, args=(request,), daemon=True)
        sender.start()
        time.sleep(0.3)  # the node stops reading while its send buffer is full
        got = bytearray()
        while len(got) < n * len(reply):
            chunk = sock.recv(1 << 20)
            assert chunk, "connection closed early"
            got += chunk
        sender.join(timeout=10)
        assert bytes(got) == reply * n
    assert r.ping() is True
    r.close()


def test_sigterm_answers_what_was_read_then_exits_0() -> None:
    proc = NodeProcess("node1", "--resp-port", "0")
    try:
        r = redis.Redis(port=proc.resp_port, protocol=2)
        assert r.set("k", "v") is True
        with _raw(proc) as sock:
            sock.sendall(b"GET k\r\n")
            assert sock.recv(100) == b"$1\r\nv\r\n"
            assert proc.terminate(timeout=10) == 0
            assert _read_until_closed(sock) == b""  # closed by the node on its way out
        r.close()
    finally:
        proc.kill()
