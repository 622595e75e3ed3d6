"""Wire decoders and encoders of the transaction, flush and scan requests
(:mod:`actors.protocol.txn_messages`); their rows are in :mod:`actors.protocol.kinds`.

Shapes (``docs/protocol.md``)::

    {"type": "multi", "requests": [<request>, ...], "watch": [[key, version|null], ...]}
    {"type": "watch", "keys": [key, ...]}        {"type": "unwatch"}
    {"type": "flush"}
    {"type": "scan", "cursor": 0, "match": "user:*", "count": 100}

A ``multi`` holds at most :data:`MAX_MULTI_REQUESTS` requests, none of them a ``multi``,
``watch``, ``flush`` or ``scan``, or anything a node answers from its own state (only data
requests: a transaction is a unit of data); each is decoded by the same decoder as alone,
so it is as hostile-input-safe as they are. ``watch`` (clients leave it out; nodes fill
it in when they forward a transaction) carries version stamps.
"""

from __future__ import annotations

from typing import Any

from actors.protocol.errors import BadRequestError
from actors.protocol.txn_messages import Flush, Multi, Scan, Watch
from actors.protocol.value_depth import DEFAULT_MAX_VALUE_DEPTH
from actors.protocol.version import MAX_LOGICAL, MAX_WALL_MS, Version

__all__ = [
    "MAX_MULTI_REQUESTS",
    "MAX_MATCH_CHARS",
    "MAX_SCAN_COUNT",
    "RESERVED_PREFIX",
    "check_key",
    "decode_flush",
    "decode_multi",
    "decode_scan",
    "decode_unwatch",
    "decode_watch",
    "encode_multi",
    "encode_scan",
    "key_list",
]

#: Keys starting with this are the cluster's flush markers (actors.store.flush_marks):
#: no client may name one.
RESERVED_PREFIX = "\x00flush{"


def check_key(key: str) -> str:
    """``key``, unless it is reserved (a flush marker's)."""
    if key[:1] == "\x00" and key.startswith(RESERVED_PREFIX):
        raise BadRequestError("keys starting with '\\x00flush{' are reserved")
    return key


#: The most requests one transaction may hold (a client's queue is bounded by it too).
MAX_MULTI_REQUESTS = 10_000
#: The longest glob a scan carries (a node forwarding a client's scan sends it to others).
MAX_MATCH_CHARS = 4096
#: The largest COUNT hint a scan step honours.
MAX_SCAN_COUNT = 100_000


def key_list(obj: dict[str, Any]) -> tuple[str, ...]:
    """Field ``keys``: a list of non-empty strings (``mget``'s too)."""
    keys = obj.get("keys")
    if type(keys) is not list:
        raise BadRequestError("field 'keys' must be a list of strings")
    for key in keys:
        if type(key) is not str or not key:
            raise BadRequestError("every key in 'keys' must be a non-empty string")
        check_key(key)
    return tuple(keys)


def _version(raw: Any) -> Version | None:
    if raw is None:
        return None
    if type(raw) is not list or len(raw) != 3:
        raise BadRequestError("a watch version must be [wall_ms, logical, node_id] or null")
    wall_ms, logical, node_id = raw
    if type(wall_ms) is not int or type(logical) is not int or type(node_id) is not str:
        raise BadRequestError("a watch version must be [wall_ms, logical, node_id] or null")
    if not (0 <= wall_ms <= MAX_WALL_MS and 0 <= logical <= MAX_LOGICAL):
        raise BadRequestError("a watch version is out of range")
    return Version(wall_ms, logical, node_id)


def decode_multi(obj: dict[str, Any], rid: Any, max_depth: int = DEFAULT_MAX_VALUE_DEPTH) -> Multi:
    from actors.protocol.codec import decode_request  # (codec imports the kinds table)
    from actors.protocol.kinds import Route, route_of

    raw = obj.get("requests")
    if type(raw) is not list:
        raise BadRequestError("field 'requests' must be a list of requests")
    if len(raw) > MAX_MULTI_REQUESTS:
        raise BadRequestError(f"a multi holds at most {MAX_MULTI_REQUESTS} requests")
    requests = []
    for item in raw:
        request = decode_request(item, max_depth)
        if route_of(request) not in (Route.READ, Route.WRITE, Route.UPDATE) or type(request) is Multi:
            name = item.get("type") if type(item) is dict else None
            raise BadRequestError(f"a multi may hold data requests only, not {name!r}")
        requests.append(request)
    watch_raw = obj.get("watch") or []
    if type(watch_raw) is not list or len(watch_raw) > MAX_MULTI_REQUESTS:
        raise BadRequestError("field 'watch' must be a list of [key, version] pairs")
    watch = []
    for pair in watch_raw:
        if type(pair) is not list or len(pair) != 2 or type(pair[0]) is not str or not pair[0]:
            raise BadRequestError("field 'watch' must be a list of [key, version] pairs")
        watch.append((check_key(pair[0]), _version(pair[1])))
    aborted, exact = obj.get("aborted", False), obj.get("exact", False)
    if type(aborted) is not bool or type(exact) is not bool:
        raise BadRequestError("fields 'aborted' and 'exact' must be true or false")
    return Multi(tuple(requests), rid, tuple(watch), aborted, exact)


def encode_multi(request: Multi) -> dict[str, Any]:
    from actors.protocol.codec import encode_request

    out: dict[str, Any] = {"type": "multi", "requests": [encode_request(r) for r in request.requests]}
    if request.watch:
        out["watch"] = [[key, None if v is None else list(v)] for key, v in request.watch]
    if request.aborted:
        out["aborted"] = True
    if request.exact:
        out["exact"] = True
    return out


def decode_watch(obj: dict[str, Any], rid: Any) -> Watch:
    keys = key_list(obj)
    if not keys:
        raise BadRequestError("field 'keys' must hold at least one key (use 'unwatch' to forget them)")
    return Watch(keys, rid)


def decode_unwatch(obj: dict[str, Any], rid: Any) -> Watch:
    return Watch((), rid)


def decode_flush(obj: dict[str, Any], rid: Any) -> Flush:
    return Flush(rid)


#: SCAN's TYPE names Redis knows are at most 6 characters (``string``); a longer one finds nothing anyway.
MAX_TYPE_NAME_CHARS = 64


def decode_scan(obj: dict[str, Any], rid: Any) -> Scan:
    cursor = obj.get("cursor", 0)
    if type(cursor) is not int or not 0 <= cursor < (1 << 63):
        raise BadRequestError("field 'cursor' must be an integer >= 0 (0 starts a scan)")
    match = obj.get("match")
    if match is not None and (type(match) is not str or len(match) > MAX_MATCH_CHARS):
        raise BadRequestError(f"field 'match' must be a glob pattern (a string of at most {MAX_MATCH_CHARS} characters)")
    count = obj.get("count", 10)
    if type(count) is not int or not 1 <= count:
        raise BadRequestError("field 'count' must be an integer >= 1")
    count_only = obj.get("count_only", False)
    if type(count_only) is not bool:
        raise BadRequestError("field 'count_only' must be true or false")
    kind = obj.get("key_type")
    if kind is not None and (type(kind) is not str or len(kind) > MAX_TYPE_NAME_CHARS):
        raise BadRequestError(f"field 'key_type' must be a type name (string, hash, set; at most {MAX_TYPE_NAME_CHARS} characters)")
    return Scan(cursor, match, count if count_only else min(count, MAX_SCAN_COUNT), rid, count_only, kind)


def encode_scan(request: Scan) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "scan", "cursor": request.cursor, "count": request.count}
    if request.match is not None:
        out["match"] = request.match
    if request.count_only:
        out["count_only"] = True
    if request.kind is not None:
        out["key_type"] = request.kind
    return out
