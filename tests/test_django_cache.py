"""Django 5.2's built-in ``RedisCache``, unmodified, against a node's RESP port and against
a real redis-server 7.0: every public call of the cache API, the same calls in the same
order on both, and every result compared (issue 16). ``set_many`` sends ``MULTI``,
``MSET``, ``EXPIRE``..., ``EXEC``; ``clear`` sends ``FLUSHDB``; large values (2 MB and
64 MB, pickled) go through ``set``/``get``/``set_many``/``get_many``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

django = pytest.importorskip("django")

from django.conf import settings  # noqa: E402
from django.core.cache.backends.redis import RedisCache  # noqa: E402

from runtime.local_cluster import NodeProcess  # noqa: E402
from tests.redis_server import needs_redis_server, redis_server  # noqa: E402

pytestmark = [pytest.mark.integration, needs_redis_server]

if not settings.configured:
    settings.configure()

#: 2 MB and 64 MB (decimal: a 64 MiB pickle would pass the node's default
#: --client-output-buffer-limit of 64 MiB, which cuts off a client whose unsent replies
#: exceed it; docs/resp.md).
LARGE = [b"\x01" * 2_000_000, bytes(range(256)) * 250_000]


@pytest.fixture(scope="module")
def caches() -> Iterator[tuple[RedisCache, RedisCache]]:
    with NodeProcess("node1", "--resp-port", "0") as node, redis_server() as theirs:
        ours = RedisCache(f"redis://127.0.0.1:{node.resp_port}", {"TIMEOUT": 300})
        reference = RedisCache(f"redis://127.0.0.1:{theirs}", {"TIMEOUT": 300})
        try:
            yield ours, reference
        finally:
            ours.close()
            reference.close()


def _outcome(call: Callable[[], Any]) -> Any:
    try:
        return ("ok", call())
    except Exception as exc:  # noqa: BLE001 - an exception is an outcome to compare too
        return ("raised", type(exc).__name__, str(exc))


#: The cache API, call by call: (name, function of the cache). Keys are made by Django
#: (``:1:name``, versions ``:2:``...), values pickled but for ints.
CALLS: list[tuple[str, Callable[[RedisCache], Any]]] = [
    ("clear", lambda c: c.clear()),
    ("get missing", lambda c: c.get("a")),
    ("get default", lambda c: c.get("a", "dflt")),
    ("set", lambda c: c.set("a", {"x": [1, 2, None]})),
    ("get", lambda c: c.get("a")),
    ("set int", lambda c: c.set("n", 41)),
    ("incr", lambda c: c.incr("n")),
    ("incr by", lambda c: c.incr("n", 10)),
    ("decr", lambda c: c.decr("n", 3)),
    ("incr missing", lambda c: c.incr("nope")),
    ("decr missing", lambda c: c.decr("nope")),
    ("add existing", lambda c: c.add("a", "other")),
    ("add new", lambda c: c.add("b", "bee")),
    ("add timeout 0", lambda c: c.add("z", "zed", timeout=0)),
    ("get after add 0", lambda c: c.get("z")),
    ("has_key", lambda c: (c.has_key("a"), c.has_key("nope"))),
    ("get_many", lambda c: c.get_many(["a", "b", "nope", "n"])),
    ("set_many", lambda c: c.set_many({"m1": 1, "m2": "two", "m3": [3]})),
    ("set_many timeout", lambda c: c.set_many({"t1": 1, "t2": 2}, timeout=100)),
    ("set_many no timeout", lambda c: c.set_many({"p1": "forever"}, timeout=None)),
    ("get_many after", lambda c: c.get_many(["m1", "m2", "m3", "t1", "t2", "p1"])),
    ("ttl set_many", lambda c: [c._cache.get_client().ttl(c.make_key(k)) > 90 for k in ("t1", "t2")]),
    ("ttl none", lambda c: c._cache.get_client().ttl(c.make_key("p1"))),
    ("set timeout 0", lambda c: c.set("a", "gone", timeout=0)),
    ("get after 0", lambda c: c.get("a")),
    ("set forever", lambda c: c.set("f", "ever", timeout=None)),
    ("touch forever", lambda c: c.touch("f", None)),
    ("touch", lambda c: c.touch("f", 100)),
    ("touch missing", lambda c: c.touch("nope", 10)),
    ("get_or_set new", lambda c: c.get_or_set("g", "made")),
    ("get_or_set old", lambda c: c.get_or_set("g", "other")),
    ("get_or_set callable", lambda c: c.get_or_set("h", lambda: "called")),
    ("delete", lambda c: c.delete("b")),
    ("delete missing", lambda c: c.delete("b")),
    ("delete_many", lambda c: c.delete_many(["m1", "m2", "nope"])),
    ("get_many deleted", lambda c: c.get_many(["m1", "m2", "m3"])),
    ("versions", lambda c: (c.set("v", "one", version=1), c.set("v", "two", version=2), c.get("v", version=2))),
    ("incr_version", lambda c: (c.incr_version("v", version=2), c.get("v", version=3), c.get("v", version=2))),
    ("decr_version", lambda c: (c.decr_version("v", version=3), c.get("v", version=2))),
    ("incr_version missing", lambda c: c.incr_version("nope")),
    ("binary and unicode", lambda c: (c.set("bin", b"\x00\xff\r\n"), c.set("uni", "é🎉"), c.get_many(["bin", "uni"]))),
    ("large set", lambda c: [c.set(f"big{i}", v) for i, v in enumerate(LARGE)]),
    ("large get", lambda c: [c.get(f"big{i}") == v for i, v in enumerate(LARGE)]),
    ("large set_many", lambda c: c.set_many({"bm1": LARGE[0], "bm2": LARGE[1]}, timeout=60)),
    ("large get_many", lambda c: [value == LARGE[i] for i, value in enumerate(c.get_many(["bm1", "bm2"]).values())]),
    ("large delete_many", lambda c: c.delete_many(["big0", "big1", "bm1", "bm2"])),
    ("short timeout", lambda c: (c.set("s", "short", timeout=1), c.add("s2", "short", timeout=1), c.get("s"))),
]
#: After a pause longer than the short timeouts.
LATER: list[tuple[str, Callable[[RedisCache], Any]]] = [
    ("expired", lambda c: (c.get("s"), c.get("s2"), c.has_key("s"), c.add("s", "again"))),
    ("clear again", lambda c: c.clear()),
    ("empty", lambda c: c.get_many(["a", "f", "g", "h", "n", "p1", "t1"])),
]


def test_django_redis_cache_matches_redis_server(caches: tuple[RedisCache, RedisCache]) -> None:
    ours, reference = caches
    mismatches = []
    got: dict[str, Any] = {}
    for phase in (CALLS, LATER):
        for name, call in phase:
            mine, theirs = _outcome(lambda: call(ours)), _outcome(lambda: call(reference))
            got[name] = mine
            if mine != theirs:
                mismatches.append(f"{name}: ours {str(mine)[:200]}, redis {str(theirs)[:200]}")
        if phase is CALLS:
            time.sleep(1.5)
    assert not mismatches, "\n".join(mismatches)
    assert len(got) == 50
    # What both answered is what Django documents (the comparison alone would pass two
    # caches that both failed):
    assert got["decr"] == ("ok", 49) and got["incr missing"][0] == "raised"
    assert got["get_many after"] == ("ok", {"m1": 1, "m2": "two", "m3": [3], "t1": 1, "t2": 2, "p1": "forever"})
    assert got["ttl set_many"] == ("ok", [True, True]) and got["ttl none"] == ("ok", -1)
    assert got["large get"] == ("ok", [True, True]) and got["large get_many"] == ("ok", [True, True])
    assert got["expired"] == ("ok", (None, None, False, True)) and got["empty"] == ("ok", {})
