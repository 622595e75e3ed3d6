"""The request kinds table: one complete row per request type, and what each row says."""

from __future__ import annotations

import typing

from actors.protocol.string_ops import STRING_REQUESTS, Append, GetDel, GetEx, IncrByFloat, Rename
from typing import Any

import pytest

from actors.protocol.codec import REQUEST_TYPES, decode_request, encode_request
from actors.protocol.internal import ReadRecord, WriteRecord
from actors.protocol.txn_messages import Flush, Multi, Scan, Watch
from actors.protocol.kinds import KINDS, Route, is_data_request, is_update, is_write, route_of
from actors.protocol.messages import (
    Auth,
    CollOp,
    Delete,
    ErrorReply,
    Expire,
    Get,
    Incr,
    Inspect,
    Join,
    Locate,
    MGet,
    MSet,
    Ping,
    RemoveNode,
    Request,
    Set,
    Save,
    Stats,
    Ttl,
)
from actors.protocol.errors import BadRequestError, ErrorCode

SAMPLES: list[Any] = [
    Get("k", 1, "quorum"),
    Set("k", [1, {"a": 2}], 5.0, 2, "all"),
    Set("k", "v", None, 3, None, "nx", True),
    Set("k", "v", None, None, None, None, False, True),
    Delete("k", 4),
    MGet(("a", "b"), 5),
    MSet((("a", 1), ("b", 2)), 9.0, 6),
    Ping(7),
    Stats(8),
    Join("n2", 9),
    Locate("k", 10),
    Inspect("k", 11),
    RemoveNode("n3", 12),
    Expire("k", 3.0, 13),
    Expire("k", None, 14),
    Ttl("k", 15, "one"),
    Incr("k", -4, 16),
    CollOp("k", "hset", ("f", b"v", "g", 3), 18),
    CollOp("k", "sscan", (0,), 19),
    Auth("alice", "s3cret", 17),
    Auth(None, "s3cret"),
    Set("k", b"v", None, 18, None, "xx", False, False, 1.5),
    Expire("k", None, 19, None, 99.5, "gt"),
    Expire("k", 2.0, 20, None, None, "nx"),
    GetDel("k", 21),
    GetEx("k", 3.0, None, False, 22),
    GetEx("k", None, -1.0, False, 23),
    GetEx("k", None, None, True, 24),
    Append("k", b"tail", 25),
    IncrByFloat("k", "0.1", 26),
    Rename("k", "k2", True, 27),
    Rename("k", "k2"),
]


def test_every_request_type_has_exactly_one_row() -> None:
    assert set(typing.get_args(Request)) | set(STRING_REQUESTS) | {ReadRecord, WriteRecord, Multi, Watch, Flush, Scan} == set(KINDS)


def test_wire_names_keep_their_order_in_errors() -> None:
    assert REQUEST_TYPES == (
        "get", "set", "delete", "mget", "mset", "ping", "stats", "save", "join", "locate", "inspect", "remove_node",
        "expire", "persist", "ttl", "incr", "getdel", "getex", "append", "incrbyfloat", "rename", "auth", "multi", "watch",
        "unwatch", "flush", "scan",
        "hset", "hget", "hmget", "hgetall", "hdel", "hexists", "hlen", "hkeys", "hvals", "hincrby", "hscan", "sadd",
        "srem", "smembers", "sismember", "scard", "sscan", "keytype",
    )


@pytest.mark.parametrize("request_", SAMPLES, ids=lambda r: type(r).__name__)
def test_every_client_kind_round_trips_through_its_row(request_: Any) -> None:
    assert decode_request(encode_request(request_)) == request_


def test_internal_kinds_are_never_on_the_wire() -> None:
    for internal in (ReadRecord("k"), WriteRecord("k", 1, None)):
        with pytest.raises(TypeError, match="not a request"):
            encode_request(internal)
    assert not KINDS[ReadRecord].decoders and not KINDS[WriteRecord].decoders


#: What a node does with each sample, written out independently of the table.
EXPECTED = [
    (Get("k"), Route.READ),
    (MGet(("a",)), Route.READ),
    (Ttl("k"), Route.READ),
    (ReadRecord("k"), Route.READ),
    (Set("k", 1), Route.WRITE),
    (Set("k", 1, ttl=3.0), Route.WRITE),
    (Delete("k"), Route.WRITE),
    (MSet((("a", 1),)), Route.WRITE),
    (WriteRecord("k", 1, None), Route.WRITE),
    (Set("k", 1, cond="xx"), Route.UPDATE),
    (Set("k", 1, get=True), Route.UPDATE),
    (Set("k", 1, keep_ttl=True), Route.UPDATE),
    (Expire("k", 1.0), Route.UPDATE),
    (Expire("k", None), Route.UPDATE),
    (Incr("k"), Route.UPDATE),
    (Set("k", 1, at=5.0), Route.UPDATE),
    (GetDel("k"), Route.UPDATE),
    (GetEx("k"), Route.UPDATE),
    (Append("k", b"x"), Route.UPDATE),
    (IncrByFloat("k", "1"), Route.UPDATE),
    (Rename("k", "k2"), Route.UPDATE),
    (CollOp("k", "hget", ("f",)), Route.UPDATE),
    (Stats(), Route.LOCAL),
    (Inspect("k"), Route.LOCAL),
    (Ping(), Route.NODE),
    (Join("n"), Route.NODE),
    (Locate("k"), Route.NODE),
    (RemoveNode("n"), Route.NODE),
    (Auth(None, "pw"), Route.NODE),
]


@pytest.mark.parametrize(("request_", "route"), EXPECTED, ids=lambda x: type(x).__name__)
def test_routes(request_: Any, route: Route) -> None:
    assert route_of(request_) is route
    assert is_data_request(request_) is (route in (Route.READ, Route.WRITE))
    assert is_update(request_) is (route is Route.UPDATE)
    assert is_write(request_) is (type(request_) in (Set, Delete, MSet, WriteRecord))


def test_a_decode_error_is_no_request() -> None:
    error = ErrorReply(ErrorCode.BAD_REQUEST, "bad")
    assert route_of(error) is None and not is_data_request(error) and not is_update(error) and not is_write(error)


def test_keys_and_items_columns() -> None:
    assert KINDS[MGet].keys(MGet(("a", "b"))) == ("a", "b")
    assert KINDS[MSet].keys(MSet((("a", 1), ("b", 2)))) == ("a", "b")
    assert KINDS[Ping].keys(Ping()) == ()
    assert KINDS[Incr].keys(Incr("n")) == ("n",)
    assert KINDS[Set].items(Set("k", 1, ttl=2.0), 100.0) == (("k", 1, 102.0),)
    assert KINDS[Set].items(Set("k", 1), 100.0) == (("k", 1, None),)
    assert KINDS[MSet].items(MSet((("a", 1), ("b", 2)), ttl=5.0), 10.0) == (("a", 1, 15.0), ("b", 2, 15.0))
    assert KINDS[WriteRecord].items(WriteRecord("k", 1, 42.5), 10.0) == (("k", 1, 42.5),)
    assert {kind.type for kind in KINDS.values() if kind.items is not None} == {Set, MSet, WriteRecord}


def test_acl_categories_column() -> None:
    """Issue 13: what a user needs (@read, @write, @admin) to send each kind; ping and
    auth need nothing, and stats, inspect, remove_node are @admin."""
    categories = {kind.type: kind.category for kind in KINDS.values() if kind.decoders}
    assert categories == {
        Get: "read", MGet: "read", Ttl: "read", Locate: "read",
        Set: "write", Delete: "write", MSet: "write", Expire: "write", Incr: "write",
        GetDel: "write", GetEx: "write", Append: "write", IncrByFloat: "write", Rename: "write", CollOp: "write",
        Stats: "admin", Save: "admin", Inspect: "admin", RemoveNode: "admin", Join: "admin",
        Ping: None, Auth: None,
        Multi: None, Watch: "read", Flush: "admin", Scan: "read",  # a multi: each of its requests' own
    }


def test_auth_field_checks_and_secret_kept_out_of_repr() -> None:
    assert "s3cret" not in repr(decode_request({"type": "auth", "password": "s3cret"}))
    for bad in ({"type": "auth"}, {"type": "auth", "password": 5}, {"type": "auth", "user": "", "password": "x"}):
        with pytest.raises(BadRequestError):
            decode_request(bad)
