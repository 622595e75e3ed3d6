"""Hashes and sets survive a restart from the data directory (red team 2, session 24).

Before: msgpack could not pack a ``Coll``, so every append-only log block holding a hash or
set failed (logged, the values lost on restart) and ``SAVE``/``BGSAVE`` failed outright as
soon as one hash existed (no snapshot at all: strings lost with it).
"""

from __future__ import annotations

import tempfile

import pytest
import redis

from actors.persist.records import decode_stored, stored_record
from actors.protocol.errors import BadRequestError
from runtime.local_cluster import NodeProcess


def _fill(r: redis.Redis) -> None:
    r.hset("h", mapping={"a": "1", "b": "2", "c": "3"})
    r.hdel("h", "b")
    r.hincrby("h", "n", 5)
    r.sadd("s", "x", "y", "z")
    r.srem("s", "y")
    r.set("k", "v")
    r.hset("ttl", "f", "1")
    r.expire("ttl", 1000)


def _check(r: redis.Redis) -> None:
    assert r.hgetall("h") == {b"a": b"1", b"c": b"3", b"n": b"5"}
    assert r.smembers("s") == {b"x", b"z"}
    assert r.get("k") == b"v"
    assert r.type("h") == b"hash" and r.type("s") == b"set"
    assert r.hget("ttl", "f") == b"1" and 900 < r.ttl("ttl") <= 1000


@pytest.mark.parametrize("how", ["appendonly", "save"])
def test_hashes_and_sets_survive_a_restart(how: str) -> None:
    data = tempfile.mkdtemp(prefix="persist-colls-")
    flags = ["--resp-port", "0", "--dir", data] + (["--appendonly", "yes"] if how == "appendonly" else [])
    with NodeProcess("node1", *flags) as node:
        r = redis.Redis(port=node.resp_port, socket_timeout=10)
        _fill(r)
        if how == "save":
            assert r.save() is True
        r.close()
    with NodeProcess("node1", *flags) as node:
        r = redis.Redis(port=node.resp_port, socket_timeout=10)
        try:
            _check(r)
        finally:
            r.close()


def test_stored_record_of_a_collection_is_checked_on_load() -> None:
    """A tagged stored record decodes through the peer decoder's checks: a wrong tag or a
    field newer than its record is refused, not loaded."""
    good = [
        "h",
        [None, None, [["ha", "1", 5, 0, "n1"]]],
        None,
        [5, 0, "n1"],
        None,
        ["n1"],
        "c",
    ]
    record, replicas = decode_stored(good)
    assert replicas == ("n1",) and record.value.items["ha"][0] == "1"
    for bad in (good[:6] + ["x"], good[:4] + [1.0] + good[5:], good[:3] + [[4, 0, "n1"]] + good[4:]):
        with pytest.raises(BadRequestError):
            decode_stored(bad)
    assert stored_record("h", None, None)[4] == 0
