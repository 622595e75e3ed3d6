"""FLUSHDB, FLUSHALL, SCAN and KEYS over RESP, as node requests (``flush``, ``scan``).

``SCAN``'s cursor is the node's (:mod:`actors.store.scan`): the next partition to visit
plus one, so a step returns whole partitions and Redis's guarantee holds (every key
present for the whole scan is returned at least once). ``COUNT`` is a hint of how many
keys to look at (a step returns at least one partition's). ``TYPE`` filters in the
step (the node knows strings, hashes and sets; any other name finds nothing), as in Redis. ``KEYS`` is one scan over every
partition in one request: like Redis's, slow on a big keyspace (it holds the store for
the whole walk), for debugging only. ``FLUSHDB``/``FLUSHALL`` with ``ASYNC`` or ``SYNC``
both flush before answering.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from actors.protocol.messages import Ack, Reply
from actors.protocol.txn_kinds import MAX_MATCH_CHARS, MAX_SCAN_COUNT, MAX_TYPE_NAME_CHARS
from actors.protocol.txn_messages import Flush, Scan, ScanReply
from runtime.resp import OK, array, bulk, error
from runtime.resp_session import SYNTAX_ERROR, Deferred, Session, int_arg, node_error

__all__ = ["cmd_flushall", "cmd_flushdb", "cmd_keys", "cmd_scan"]

#: KEYS walks every partition in one step.
_ALL = 1 << 62


_PATTERN_TOO_LONG = error(f"ERR a pattern is at most {MAX_MATCH_CHARS} characters here (see docs/resp.md)")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _cursor(raw: bytes) -> int | None:
    """A cursor as Redis parses one (``strtoul`` in base 10): an optional sign, then
    digits; ``-1`` wraps as in C, ``""`` is 0, past 2**64 - 1 is invalid (None). Any
    cursor past the last partition ends the scan, so it is capped where every node
    still decodes it."""
    if raw[:1].isspace():
        return None
    digits = raw[1:] if raw[:1] in (b"+", b"-") else raw
    if not digits:
        return 0 if not raw else None
    if not digits.isdigit():
        return None
    value = int(digits)
    if value >= 1 << 64:
        return None
    if raw[:1] == b"-":
        value = -value % (1 << 64)
    return min(value, _ALL)


def _key_bulk(key: str) -> bytes:
    """A key's bytes: a RESP key's exactly (``surrogateescape``); a JSON client's may hold
    lone surrogates no RESP key can, encoded as ``value_bulk`` does (``surrogatepass``)."""
    try:
        return bulk(key.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:
        return bulk(key.encode("utf-8", "surrogatepass"))


def _b_ok(replies: Sequence[Reply], i: int, proto: int, arg: Any) -> bytes:
    reply = replies[i]
    return OK if type(reply) is Ack else node_error(reply)


def _flush(argv: list[bytes]) -> bytes | Deferred:
    if len(argv) > 2 or (len(argv) == 2 and argv[1].upper() not in (b"ASYNC", b"SYNC")):
        return SYNTAX_ERROR
    return (Flush(),), _b_ok, None


def cmd_flushdb(argv: list[bytes], s: Session) -> bytes | Deferred:
    return _flush(argv)


def cmd_flushall(argv: list[bytes], s: Session) -> bytes | Deferred:
    return _flush(argv)


def _b_scan(replies: Sequence[Reply], i: int, proto: int, arg: Any) -> bytes:
    reply = replies[i]
    if type(reply) is not ScanReply:
        return node_error(reply)
    keys = reply.keys
    return array([bulk(b"%d" % reply.cursor), array([_key_bulk(k) for k in keys])])


def cmd_scan(argv: list[bytes], s: Session) -> bytes | Deferred:
    cursor = _cursor(argv[1])
    if cursor is None:
        return error("ERR invalid cursor")
    match: str | None = None
    count = 10
    type_filter: str | None = None
    i = 2
    n = len(argv)
    while i < n:
        opt = argv[i].upper()
        if i + 1 >= n:
            return SYNTAX_ERROR
        if opt == b"MATCH":
            match = _text(argv[i + 1])
            if len(match) > MAX_MATCH_CHARS:
                return _PATTERN_TOO_LONG
            if match == "*":
                match = None
        elif opt == b"COUNT":
            count = int_arg(argv[i + 1])
            if count < 1:
                return SYNTAX_ERROR
        elif opt == b"TYPE":
            type_filter = _text(argv[i + 1].lower())[:MAX_TYPE_NAME_CHARS]
        else:
            return SYNTAX_ERROR
        i += 2
    return (Scan(cursor, match, min(count, MAX_SCAN_COUNT), None, False, type_filter),), _b_scan, None


def _b_keys(replies: Sequence[Reply], i: int, proto: int, arg: Any) -> bytes:
    reply = replies[i]
    if type(reply) is not ScanReply:
        return node_error(reply)
    return array([_key_bulk(k) for k in reply.keys])


def cmd_keys(argv: list[bytes], s: Session) -> bytes | Deferred:
    match = _text(argv[1])
    if len(match) > MAX_MATCH_CHARS:
        return _PATTERN_TOO_LONG
    return (Scan(0, None if match == "*" else match, _ALL),), _b_keys, None
