"""The store operations of many batches in one node turn leave as one store call, plain
gets and sets as runs of one operation each (actors/node/turn_call.py); every request
must still see exactly the requests the node handled before it.

Several connections' batches are told to a single node at once (on the simulator host
they are all handled in one turn), mixing plain requests with read-modify-writes,
conditional sets, deletes and pings on a few keys; the replies must equal those of a
dict that applies the batches one after another, in the order they were told.
(A run's version stamped when the run is sent, not when it begins, made a read-modify-
write planned after the run's set lose to it: ``SET k 1, INCR k, GET k`` read 1.)
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from actors.config import NodeConfig

from actors.protocol.errors import ErrorCode
from actors.protocol.messages import Ack, Delete, ErrorReply, Get, Incr, MGet, Ping, Pong, Set, Value, Values

KEYS = st.sampled_from(["a", "b", "c"])
VALUES = st.integers(-5, 5) | st.sampled_from(["x", "y"])

REQUESTS = st.one_of(
    st.builds(Get, KEYS),
    st.builds(Get, KEYS),
    st.builds(Set, KEYS, VALUES),
    st.builds(Set, KEYS, VALUES),
    st.builds(lambda k, v, c: Set(k, v, cond=c), KEYS, VALUES, st.sampled_from(["nx", "xx"])),
    st.builds(Delete, KEYS),
    st.builds(Incr, KEYS, st.integers(-3, 3)),
    st.builds(lambda ks: MGet(tuple(ks)), st.lists(KEYS, min_size=1, max_size=3)),
    st.builds(Ping),
)
BATCHES = st.lists(st.lists(REQUESTS, min_size=1, max_size=4), min_size=1, max_size=12)


def _model(batches: list[list[Any]]) -> list[tuple[Any, ...]]:
    """The replies of a dict applying every request in order."""
    data: dict[str, Any] = {}
    out = []
    for batch in batches:
        replies: list[Any] = []
        for r in batch:
            t = type(r)
            if t is Get:
                replies.append(Value(data.get(r.key), r.key in data))
            elif t is MGet:
                replies.append(Values(tuple((k, data.get(k), k in data) for k in r.keys)))
            elif t is Set and r.cond is None:
                data[r.key] = r.value
                replies.append(Ack())
            elif t is Set:
                applies = (r.key in data) == (r.cond == "xx")
                if applies:
                    data[r.key] = r.value
                replies.append(Ack(applied=applies))
            elif t is Delete:
                replies.append(Ack(deleted=r.key in data))
                data.pop(r.key, None)
            elif t is Incr:
                old = data.get(r.key, 0)
                if type(old) is not int:
                    replies.append(ErrorReply(ErrorCode.BAD_REQUEST, "value is not an integer or out of range"))
                else:
                    data[r.key] = old + r.by
                    replies.append(Value(old + r.by, True))
            else:
                replies.append(Pong())
        out.append(tuple(replies))
    return out


@pytest.mark.parametrize("bounded", [False, True], ids=["unbounded", "max-memory"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=BATCHES)
def test_batches_of_one_turn_see_every_request_before_them(host: Any, bounded: bool, batches: list[list[Any]]) -> None:
    """``bounded``: with ``--max-memory`` (far above what the test stores), so a set run
    takes the store's memory check item by item."""
    if "node1" not in host.nodes:
        host.start_node(config=NodeConfig(max_memory=64 << 20, eviction_policy="allkeys-lru") if bounded else None)
    host.request([Delete("a"), Delete("b"), Delete("c")])
    conns = [host.connect() for _ in batches]
    futures = [host.submit(batch, conn=conn) for batch, conn in zip(batches, conns)]
    got = [f.get(timeout=10) for f in futures]
    for conn in conns:
        host.disconnect(conn)
    assert got == _model(batches)
