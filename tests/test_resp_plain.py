"""Plain GET/SET outside the command table (runtime/resp_plain.py): the same node requests
as the table makes, the same reply bytes as its builders, and the table still used
wherever its checks apply (MULTI, passwords, other spellings, errors)."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings, strategies as st

from actors.protocol.edge import BatchReply, ClientBatch, typed_requests
from actors.protocol.errors import ErrorCode
from actors.protocol.messages import Ack, ErrorReply, Get, Set, Value
from runtime.acl import Acl
from runtime.resp_commands import dispatch
from runtime.resp_keyspace import _b_value
from runtime.resp_plain import RUN_BYTES, b_get_run, b_set_run, take_plain
from runtime.resp_session import RespServerInfo, Session
from runtime.resp_strings import _b_set
from tests.resp_fakes import connection as _connection

_NAMES = [b"GET", b"get", b"Get", b"SET", b"set", b"sEt", b"GETX", b"SETNX"]
_KEYS = st.one_of(st.sampled_from([b"", b"\x00flush{0}", b"\x00flush", b"k"]), st.binary(max_size=12))
_ARGVS = st.builds(lambda name, rest: [name, *rest], st.sampled_from(_NAMES), st.lists(_KEYS, max_size=4))


@settings(max_examples=400, deadline=None)
@given(_ARGVS)
def test_a_plain_request_is_what_the_table_makes_and_nothing_else_is_one(argv: list[bytes]) -> None:
    requests: list[object] = []
    taken = take_plain([argv], 0, requests, [], 2)
    result = dispatch(argv, Session(1, RespServerInfo()))
    if not taken:  # not plain: another spelling, arguments, or an error the table words
        assert requests == []
        assert not (type(result) is tuple and len(argv) in (2, 3) and argv[0] in (b"GET", b"get", b"SET", b"set"))
    else:
        assert type(result) is tuple and result[0] == typed_requests(tuple(requests))


@settings(max_examples=200, deadline=None)
@given(st.lists(_ARGVS, max_size=8), st.integers(0, 2), st.sampled_from([2, 3]))
def test_plain_commands_are_taken_up_to_the_first_other_in_runs_of_one_kind(
    argvs: list[list[bytes]], start: int, proto: int
) -> None:
    start = min(start, len(argvs))
    requests: list[object] = ["before"]
    segments: list[object] = []
    stop = take_plain(argvs, start, requests, segments, proto)
    expected = []
    for i in range(start, len(argvs)):
        if not take_plain([argvs[i]], 0, expected, [], proto):
            assert stop == i
            break
    else:
        assert stop == len(argvs)
    assert requests[1:] == expected
    kinds = [type(r) for r in expected]
    runs = [[b_get_run if k is str else b_set_run, 1 + i, proto, 1] for i, k in enumerate(kinds)]
    merged: list[list[object]] = []
    for run in runs:  # consecutive requests of one kind share one segment
        if merged and merged[-1][0] is run[0]:
            merged[-1][3] += 1  # type: ignore[operator]
        else:
            merged.append(run)
    assert segments == merged


_REPLIES = st.sampled_from([
    Ack(), Ack(applied=False), Ack(rid=5), Value(b"old", True), Value(None, False), Value("t\u00e9xt", True),
    Value(12, True), Value({"a": [1]}, True), Value(b"\r\n" * 3, True), Value(b"x" * (RUN_BYTES // 3), True),
    ErrorReply(ErrorCode.OUT_OF_MEMORY, "out of memory"), ErrorReply(ErrorCode.INTERNAL, "boom"),
])


def _joined(out: bytes | object) -> bytes:
    return out if type(out) is bytes else b"".join(out)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.lists(_REPLIES, min_size=1, max_size=12), st.integers(0, 3), st.sampled_from([2, 3]))
def test_a_run_replies_as_its_commands_one_by_one(replies: list[object], lead: int, proto: int) -> None:
    padded = tuple([Ack()] * lead + replies + [Ack()])
    count = len(replies)
    one_by_one_sets = b"".join(_b_set(padded, i, proto, None) for i in range(lead, lead + count))
    one_by_one_gets = b"".join(_b_value(padded, i, proto, None) for i in range(lead, lead + count))
    assert _joined(b_set_run(padded, lead, proto, count)) == one_by_one_sets
    assert _joined(b_get_run(padded, lead, proto, count)) == one_by_one_gets


def test_a_run_of_big_values_is_yielded_in_parts() -> None:
    big = Value(b"v" * RUN_BYTES, True)
    out = b_get_run((big, big, big), 0, 2, 3)
    assert type(out) is not bytes
    parts = list(out)  # type: ignore[arg-type]
    assert len(parts) == 3 and b"".join(parts) == b"".join(_b_value((big,), 0, 2, None) for _ in range(3))


def test_runs_around_table_commands_answer_in_order() -> None:
    conn, node, transport = _connection()
    conn.data_received(
        b"SET a 1\r\nset b 2\r\nGET a\r\nget b\r\nECHO x\r\nGET a\r\nSet c 3\r\nSET d 4\r\nGET\r\nSET e 5\r\n"
    )
    (batch,) = node.told
    assert isinstance(batch, ClientBatch)
    assert typed_requests(batch.requests) == (
        Set("a", b"1"), Set("b", b"2"), Get("a"), Get("b"), Get("a"), Set("c", b"3"), Set("d", b"4"), Set("e", b"5"),
    )
    oom = ErrorReply(ErrorCode.OUT_OF_MEMORY, "full")
    conn.tell(BatchReply(3, (Ack(), oom, Value(b"1", True), Value(None, False), Value(b"1", True), Ack(), Ack(), Ack())))
    assert transport.written == [
        b"+OK\r\n-OOM full\r\n$1\r\n1\r\n$-1\r\n$1\r\nx\r\n$1\r\n1\r\n+OK\r\n+OK\r\n"
        b"-ERR wrong number of arguments for 'get' command\r\n+OK\r\n"
    ]


def test_inside_multi_plain_commands_are_queued_by_the_table() -> None:
    conn, node, transport = _connection()
    conn.data_received(b"SET a 1\r\nMULTI\r\nSET a 2\r\nGET a\r\nEXEC\r\nGET a\r\n")
    (batch,) = node.told
    assert typed_requests(batch.requests)[0] == Set("a", b"1") and typed_requests(batch.requests)[-1] == Get("a")
    assert len(batch.requests) == 3  # the two queued commands travel in EXEC's one request
    conn.data_received(b"MULTI\r\n")
    conn.data_received(b"GET a\r\n")
    assert transport.written == [] and len(node.told) == 1  # queued, nothing sent to the node
    assert conn.session.txn is not None


def test_with_passwords_every_command_goes_through_the_checks() -> None:
    acl = Acl.requirepass("secret")
    conn, node, transport = _connection(RespServerInfo(acl=acl))
    conn.data_received(b"SET a 1\r\nGET a\r\n")
    assert node.told == []
    assert transport.written == [b"-NOAUTH Authentication required.\r\n-NOAUTH Authentication required.\r\n"]


def test_plain_runs_are_sent_when_the_loop_runs() -> None:
    """The connection is driven on a loop as the host drives it (nothing here needs one,
    but the writer's pump may arm a call_soon when replies exceed a turn's bytes)."""

    async def main() -> list[bytes]:
        conn, node, transport = _connection()
        conn.data_received(b"".join(b"SET k%d v\r\n" % i for i in range(40)))
        (batch,) = node.told
        conn.tell(BatchReply(3, tuple(Ack() for _ in batch.requests)))
        await asyncio.sleep(0)
        return transport.written

    assert asyncio.run(main()) == [b"+OK\r\n" * 40]
