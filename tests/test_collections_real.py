"""Hashes and sets on real processes: the same commands to a real redis-server 7.0 and
to a node's RESP port answer the same (WRONGTYPE and the other error texts included;
replies that list names compared as sets, Redis's order being its hash table's), and a
real 3-node cluster keeps every acknowledged field written concurrently through all three
nodes, also while the key's coordinator is frozen and another node coordinates."""

from __future__ import annotations

import shutil
import threading
from typing import Any

import pytest
import redis

from runtime.local_cluster import NodeProcess
from tests.cluster import Cluster, eventually
from tests.redis_server import redis_server

pytestmark = pytest.mark.integration

#: Every hash and set command, its argument and type errors, expiry of a whole hash, and
#: how string commands meet hashes and sets.
SCRIPT: list[tuple[str, ...]] = [
    ("HSET", "h", "a", "1", "b", "2"), ("HSET", "h", "a", "3"), ("HGET", "h", "a"), ("HGET", "h", "zz"),
    ("HGET", "nokey", "a"), ("HMGET", "h", "a", "x", "b"), ("HGETALL", "h"), ("HDEL", "h", "a", "x"),
    ("HEXISTS", "h", "b"), ("HEXISTS", "h", "a"), ("HLEN", "h"), ("HKEYS", "h"), ("HVALS", "h"),
    ("HINCRBY", "h", "n", "5"), ("HINCRBY", "h", "n", "-7"), ("HINCRBY", "h", "b", "x"), ("HSET", "h", "s", "abc"),
    ("HINCRBY", "h", "s", "1"), ("HSET", "h", "big", "9223372036854775807"), ("HINCRBY", "h", "big", "1"),
    ("HINCRBY", "h", "f", "9223372036854775808"), ("HSET", "h", "bin", b"\x00\xff"), ("HGET", "h", "bin"),
    ("HSCAN", "h", "0"), ("HSCAN", "h", "0", "MATCH", "b*"), ("HSCAN", "h", "0", "MATCH", "b*", "COUNT", "5"),
    ("HSCAN", "h", "0", "COUNT", "0"), ("HSCAN", "h", "x"), ("HSCAN", "h", "0", "FOO", "1"),
    ("HSCAN", "h", "0", "MATCH"),
    ("SET", "str", "v"), ("HSET", "str", "a", "1"), ("HGET", "str", "a"), ("SADD", "str", "m"),
    ("SMEMBERS", "str"), ("HLEN", "str"), ("HGETALL", "str"), ("SISMEMBER", "str", "m"), ("SSCAN", "str", "0"),
    ("SADD", "s", "x", "y", "x"), ("SADD", "s", "y"), ("SREM", "s", "y", "q"), ("SISMEMBER", "s", "x"),
    ("SISMEMBER", "s", "y"), ("SCARD", "s"), ("SMEMBERS", "s"), ("SSCAN", "s", "0"), ("SSCAN", "s", "0", "MATCH", "z*"),
    ("GET", "s"), ("INCR", "h"), ("HSET", "s", "a", "b"), ("HGETALL", "s"), ("SREM", "s", "x"), ("EXISTS", "s"),
    ("SCARD", "s"), ("HDEL", "h", "b", "n", "s", "big", "bin"), ("EXISTS", "h"), ("HLEN", "h"),
    ("HSET", "h", "a"), ("HSET", "h"), ("HGET", "h"), ("SADD", "s"), ("HINCRBY", "h", "f"), ("HMGET", "h"),
    ("EXPIRE", "s2", "100"), ("SADD", "s2", "m"), ("EXPIRE", "s2", "100"), ("TTL", "s2"), ("SADD", "s2", "n"),
    ("TTL", "s2"), ("PERSIST", "s2"), ("TTL", "s2"), ("DEL", "s2"), ("SCARD", "s2"),
    ("SET", "str", "v", "GET"), ("HSET", "x2", "f", "v"), ("SET", "x2", "v", "GET"), ("SET", "x2", "w"),
    ("GET", "x2"), ("HSET", "x3", "f", "v"), ("MGET", "x3", "x2"), ("HMSET", "hm", "a", "1", "b", "2"),
    ("HGETALL", "hm"), ("SMEMBERS", "nokey"), ("HGETALL", "nokey"), ("SCARD", "nokey"), ("HKEYS", "nokey"),
    ("TYPE", "hm"), ("SADD", "ts", "m"), ("TYPE", "ts"), ("TYPE", "str"), ("TYPE", "nokey"),
    ("HSET", "r1", "a", "1"), ("HSET", "r2", "b", "2"), ("RENAME", "r1", "r2"), ("HGETALL", "r2"), ("EXISTS", "r1"),
    ("RENAME", "r2", "str"), ("HGETALL", "str"), ("TYPE", "str"), ("RENAMENX", "ts", "str"), ("GETDEL", "ts"),
    ("APPEND", "ts", "x"), ("INCRBYFLOAT", "ts", "1"), ("GETEX", "ts"), ("STRLEN", "ts"), ("SET", "ts", "v"),
    ("SMEMBERS", "ts"), ("TYPE", "h"),  # (h: every field deleted above, so no key)
    ("SCAN", "0", "TYPE", "hash", "COUNT", "1000"), ("SCAN", "0", "TYPE", "set", "COUNT", "1000"),
    ("SCAN", "0", "TYPE", "string", "COUNT", "1000"), ("SCAN", "0", "TYPE", "list", "COUNT", "1000"),
    ("SCAN", "0", "TYPE", "SET", "MATCH", "s*", "COUNT", "1000"),
]

#: Replies whose order is Redis's hash table's: compared as sorted.
_UNORDERED = {"HGETALL", "SMEMBERS", "HKEYS", "HVALS", "HSCAN", "SSCAN", "SCAN"}


def _reply(client: redis.Redis, command: tuple[Any, ...]) -> Any:
    try:
        out = client.execute_command(*command)
    except redis.ResponseError as exc:
        return ("error", str(exc))
    if command[0] in _UNORDERED:
        if type(out) in (list, tuple) and len(out) == 2 and type(out[1]) is list:  # [cursor, items]
            return (out[0], sorted(out[1]))
        return sorted(out) if isinstance(out, (list, set)) else out
    return out


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_same_replies_as_redis_server() -> None:
    """The script over RESP2, then again (on fresh keys: FLUSHALL between) over RESP3."""
    mismatches = []
    replies = []
    with NodeProcess("node1", "--resp-port", "0") as node, redis_server() as port:
        for protocol in (2, 3):
            ours = redis.Redis(port=node.resp_port, protocol=protocol, socket_timeout=10)
            theirs = redis.Redis(port=port, protocol=protocol, socket_timeout=10)
            try:
                for client in (ours, theirs):
                    client.flushall()
                for command in SCRIPT:
                    a, b = _reply(ours, command), _reply(theirs, command)
                    replies.append(a)
                    if a != b:
                        mismatches.append((protocol, command, a, b))
            finally:
                ours.close()
                theirs.close()
    assert mismatches == []
    assert replies.count(("error", "WRONGTYPE Operation against a key holding the wrong kind of value")) >= 20


# --- a real cluster -------------------------------------------------------------------------------


def test_concurrent_field_writes_through_every_node_all_survive() -> None:
    """Three writers, one per node, each HSETs its own fields of one hash and SADDs its
    own members of one set, pipelined, while the keys' coordinator is frozen for a while
    (the others then coordinate, and its backlog runs when it is thawed): every field and
    member acknowledged is, after the cluster settles, in every node's own copy."""
    with Cluster(flags=("--resp-port", "0", "--request-timeout", "1")) as cluster:
        cluster.start(3)
        acked: dict[str, set[str]] = {"h": set(), "s": set()}
        lock = threading.Lock()
        stop = threading.Event()

        def writer(node: int) -> None:
            client = redis.Redis(port=cluster.proc(node).resp_port, socket_timeout=5)
            try:
                for i in range(40):
                    if stop.is_set():
                        return
                    name = f"n{node}-{i}"
                    for key, command in (("h", ("HSET", "hk", name, f"v{i}")), ("s", ("SADD", "sk", name))):
                        try:
                            client.execute_command(*command)
                        except (redis.ResponseError, redis.ConnectionError, redis.TimeoutError):
                            continue  # indefinite or refused: either way allowed
                        with lock:
                            acked[key].add(name)
            finally:
                client.close()

        coordinator = cluster.locate("hk")[0]
        threads = [threading.Thread(target=writer, args=(n,)) for n in (1, 2, 3)]
        for thread in threads:
            thread.start()
        eventually(lambda: _grown(acked, 5), 20, "writes begin")
        cluster.freeze(coordinator)
        try:
            with lock:
                before = len(acked["h"])
            eventually(lambda: _grown(acked, before + 8), 30, "writes go on through another coordinator")
        finally:
            cluster.thaw(coordinator)
        for thread in threads:
            thread.join(60)
        stop.set()
        assert acked["h"] and acked["s"]

        def every_copy_has_them() -> None:
            for node in cluster.running():
                h = cluster.inspect(node, "hk")["value"]["items"]
                s = cluster.inspect(node, "sk")["value"]["items"]
                assert acked["h"] <= set(h), (node, sorted(acked["h"] - set(h)))
                assert acked["s"] <= set(s), (node, sorted(acked["s"] - set(s)))

        eventually(every_copy_has_them, 30, "every node holds every acknowledged field and member")
        client = redis.Redis(port=cluster.proc(1).resp_port, socket_timeout=5)
        try:
            fields = {k.decode() for k in client.hkeys("hk")}
            assert acked["h"] <= fields and client.hlen("hk") == len(fields)
            assert acked["s"] <= {m.decode() for m in client.smembers("sk")}
        finally:
            client.close()


def _grown(acked: dict[str, set[str]], at_least: int) -> None:
    assert len(acked["h"]) >= at_least, len(acked["h"])
