"""An ``mget`` reply is encoded item by item and given up at the output limit.

Found by red-teaming: a 5 KB JSON ``mget`` naming 1,000 times a key that holds a list of
100,000 empty strings built its whole 300 MB reply (891 MB of RSS, an 8 s stall) before
the client was cut off at an 8 MB limit, because only str/bytes values were counted
before encoding. Now the reply stops being built one item past the limit.
"""

from __future__ import annotations

import asyncio
import tracemalloc
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from actors.protocol.edge import BatchReply
from actors.protocol.messages import Values
from runtime.conn_limits import ClientLimits, ConnectionGuard
from runtime.reply_encoding import VALUES_PIECEWISE, encode_json_reply, encode_msgpack_reply, encode_values_reply
from tests.test_connection_limits_unit import Transport, client, run, settle

json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False) | st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8
)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4), max_leaves=12)
items = st.lists(st.tuples(st.text(min_size=1, max_size=6), json_values, st.booleans()), max_size=40)
rids = st.none() | st.integers(0, 1000) | st.text(max_size=5)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(items=items, rid=rids)
def test_piecewise_json_is_the_same_bytes(items: list[Any], rid: Any) -> None:
    reply = Values(tuple(items), rid)
    assert encode_values_reply(reply, False, 1 << 30) == encode_json_reply(reply)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(items=st.lists(st.tuples(st.text(min_size=1, max_size=6), json_values | st.binary(max_size=8), st.booleans()), max_size=40), rid=rids)
def test_piecewise_msgpack_is_the_same_bytes(items: list[Any], rid: Any) -> None:
    reply = Values(tuple(items), rid)
    assert encode_values_reply(reply, True, 1 << 30) == encode_msgpack_reply(reply)


def test_a_reply_far_over_the_budget_is_given_up_one_item_past_it() -> None:
    big = [""] * 100_000  # 300 KB of JSON, 100 KB of msgpack
    reply = Values(tuple(("k", big, True) for _ in range(1_000)), None)
    for use_msgpack in (False, True):
        tracemalloc.start()
        try:
            out = encode_values_reply(reply, use_msgpack, 8 << 20)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        one = len(encode_values_reply(Values((("k", big, True),), None), use_msgpack, 1 << 30))
        assert type(out) is int and 8 << 20 < out <= (8 << 20) + one
        assert peak < 3 * (8 << 20), f"{peak:,} bytes traced while giving up at 8 MiB"


def test_a_client_whose_mget_reply_passes_the_hard_limit_is_cut_off() -> None:
    async def scenario() -> None:
        guard = ConnectionGuard(ClientLimits(output_hard=1 << 20))
        conn, node, transport = client(guard, transport=Transport(drains=True))
        keys = ",".join(['"k"'] * 200)
        conn.data_received(b'{"type":"mget","keys":[' + keys.encode() + b"]}\n")
        (batch,) = node.batches()
        big = [""] * 20_000  # 60 KB of JSON each: 200 of them are 12 MB
        tracemalloc.start()
        try:
            conn.tell(BatchReply(batch.conn, (Values(tuple(("k", big, True) for _ in range(200)), None),)))
            await settle()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert transport.aborted and guard.counters["client_output_buffer_kills"] == 1
        assert len(transport.written) == 0
        assert peak < 4 << 20, f"{peak:,} bytes traced to refuse a 12 MB reply at a 1 MiB limit"

    run(scenario())


def test_a_small_mget_is_written_whole() -> None:
    async def scenario() -> None:
        guard = ConnectionGuard()
        conn, node, transport = client(guard, transport=Transport(drains=True))
        conn.data_received(b'{"type":"mget","keys":["a","b"]}\n')
        (batch,) = node.batches()
        reply = Values(tuple((f"k{i}", [i], True) for i in range(VALUES_PIECEWISE + 5)), None)
        conn.tell(BatchReply(batch.conn, (reply,)))
        await settle()
        assert bytes(transport.written) == encode_json_reply(reply) and not transport.closed

    run(scenario())
