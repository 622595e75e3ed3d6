"""ACL checks against a real redis-server, every data command: a user's category and key
patterns refuse (``-NOPERM ...``) or allow exactly what Redis 7.0 refuses or allows.

Users: ``r`` (+@read, every key), ``w`` (+@write, every key), ``a`` (+@read +@write on
``app:*``). Each runs every data command of the RESP door (strings, expiry, hashes, sets,
multi-key MGET/MSET/DEL/EXISTS/TOUCH/RENAME with keys inside and outside its pattern) on
both servers; a refusal must be the same refusal, an allowed command allowed on both. A
request path that skips the user's checks (a fast path for SET or GET, say) fails here.
The connection, transaction and admin commands differ on purpose (docs/resp.md, "Clients
and passwords"): they are not in this list.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.local_cluster import NodeProcess
from tests.redis_server import redis_server
from tests.test_resp_watch_differential import _Wire

pytestmark = pytest.mark.integration

ACL = (
    "user default off\nuser r on >p ~* +@read\nuser w on >p ~* +@write\n"
    "user a on >p ~app:* +@read +@write\nuser admin on >p ~* +@all\n"
)
_KEYS = (b"app:k", b"other")


def _commands() -> list[tuple[bytes, ...]]:
    out: list[tuple[bytes, ...]] = []
    for k in _KEYS:
        h, s = k + b"h", k + b"s"
        out += [
            (b"GET", k), (b"SET", k, b"1"), (b"DEL", k), (b"EXISTS", k), (b"INCR", k), (b"DECR", k), (b"INCRBY", k, b"2"),
            (b"DECRBY", k, b"2"), (b"INCRBYFLOAT", k, b"1.5"), (b"APPEND", k, b"x"), (b"STRLEN", k),
            (b"GETRANGE", k, b"0", b"1"), (b"TTL", k), (b"PTTL", k), (b"EXPIRE", k, b"100"), (b"PEXPIRE", k, b"100"),
            (b"EXPIREAT", k, b"99999999999"), (b"PEXPIREAT", k, b"99999999999"), (b"PERSIST", k),
            (b"SETEX", k, b"10", b"v"), (b"PSETEX", k, b"10", b"v"), (b"SETNX", k, b"v"), (b"GETDEL", k), (b"GETEX", k),
            (b"GETEX", k, b"EX", b"10"), (b"GETSET", k, b"v"), (b"TYPE", k), (b"TOUCH", k), (b"EXPIRETIME", k),
            (b"PEXPIRETIME", k), (b"UNLINK", k), (b"SET", k, b"1", b"GET"), (b"SET", k, b"1", b"NX", b"EX", b"5"),
            (b"HSET", h, b"f", b"1"), (b"HGET", h, b"f"), (b"HMGET", h, b"f"), (b"HGETALL", h), (b"HDEL", h, b"f"),
            (b"HEXISTS", h, b"f"), (b"HLEN", h), (b"HKEYS", h), (b"HVALS", h), (b"HINCRBY", h, b"f", b"1"),
            (b"HMSET", h, b"f", b"1"), (b"HSCAN", h, b"0"), (b"SADD", s, b"m"), (b"SREM", s, b"m"), (b"SMEMBERS", s),
            (b"SISMEMBER", s, b"m"), (b"SCARD", s), (b"SSCAN", s, b"0"),
        ]
        for k2 in _KEYS:
            out += [(b"MGET", k, k2), (b"MSET", k, b"1", k2, b"2"), (b"RENAME", k, k2), (b"RENAMENX", k, k2),
                    (b"DEL", k, k2), (b"EXISTS", k, k2), (b"TOUCH", k, k2)]
    return [*out, (b"DBSIZE",), (b"SCAN", b"0"), (b"KEYS", b"*")]


@pytest.fixture(scope="module")
def ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    if shutil.which("redis-server") is None:
        pytest.fail(".ci/run installs redis-server")
    path: Path = tmp_path_factory.mktemp("acl") / "users.acl"
    path.write_text(ACL)
    with NodeProcess("node1", "--resp-port", "0", "--aclfile", str(path)) as node, redis_server("--aclfile", str(path)) as theirs:
        assert node.resp_port is not None
        yield node.resp_port, theirs


def _refusal(reply: object) -> object:
    """A NOPERM error as its text; any other reply as "ran" (its value is not the point)."""
    if isinstance(reply, tuple) and str(reply[1]).startswith("NOPERM"):
        return reply[1]
    return "ran"


@pytest.mark.parametrize("user", ["r", "w", "a"])
def test_every_data_command_is_refused_or_allowed_as_redis_does(ports: tuple[int, int], user: str) -> None:
    differ = []
    wires = [(_Wire(port), _Wire(port)) for port in ports]
    try:
        for admin, client in wires:
            assert admin.run([b"AUTH", b"admin", b"p"]) == [b"OK"]
            assert client.run([b"AUTH", user.encode(), b"p"]) == [b"OK"]
        for command in _commands():
            answers = []
            for admin, client in wires:
                admin.run([b"FLUSHALL"], [b"SET", b"app:k", b"5"], [b"SET", b"other", b"5"])
                answers.append(_refusal(client.run(list(command))[0]))
            if answers[0] != answers[1]:
                differ.append((command, *answers))
    finally:
        for admin, client in wires:
            admin.close()
            client.close()
    assert not differ, differ
