"""MULTI, EXEC, DISCARD, WATCH, UNWATCH over RESP: the connection's queue and its one node request.

Between ``MULTI`` and ``EXEC`` a connection's commands are *queued* (answered
``+QUEUED``) instead of sent: :func:`queue_command` runs each command's handler at once
(the node requests it would send, or its ready reply) and keeps the result in the
session's :class:`TxnState`. ``EXEC`` sends every queued request as one
:class:`~actors.protocol.txn_messages.Multi`, the node runs them atomically (one store
operation on a single node; at their partition's coordinator in a cluster), and the
reply is each queued command's reply, built by its own builder from its share of the
transaction's replies: an array, as Redis answers.

Redis's rules, kept: an unknown command, a wrong argument count or an ACL refusal while
queueing answers its error and marks the transaction, whose ``EXEC`` then answers
``-EXECABORT`` and runs nothing; a command's own error (a syntax error, a wrong type) is
its element of ``EXEC``'s array, and the others still run (no rollback); ``EXEC``
answers a nil array when a watched key changed (``WATCH``, :mod:`actors.node.watches`);
``EXEC`` and ``DISCARD`` forget the watches. Differences (``docs/resp.md``): commands
whose replies come from this node's counters (``INFO``) are refused inside a transaction
(the transaction is marked); connection commands (``CLIENT``, ``SELECT``,
``HELLO``, ...) take effect when queued, not at ``EXEC``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from actors.protocol.kinds import Route, route_of
from actors.protocol.messages import Ack, Ping, Reply
from actors.protocol.txn_kinds import MAX_MULTI_REQUESTS
from actors.protocol.txn_messages import Flush, Multi, MultiReply, Scan, Watch
from runtime.resp import OK, error
from runtime.resp_keyspace import _key
from runtime.resp_session import CommandError, Deferred, Session, node_error

__all__ = [
    "TXN_CONTROL", "TxnState", "cmd_discard", "cmd_exec", "cmd_multi", "cmd_unwatch", "cmd_watch", "flag_error",
    "queue_command",
]

#: Commands that run at once inside MULTI (the others are queued).
TXN_CONTROL = frozenset(("exec", "discard", "multi", "watch", "quit", "unwatch"))

#: Commands Redis queues but whose handler must not run at queueing: their element of
#: EXEC's array is this error (Redis 7.0's words). MONITOR run at queueing would turn the
#: connection into a monitor inside its transaction.
_FAILS_AT_EXEC = {"monitor": error("ERR MONITOR isn't allowed for DENY BLOCKING client")}
#: Commands Redis refuses inside MULTI (its ``no-multi`` flag): refused, the transaction marked.
_NO_MULTI = {"save": error("ERR Command not allowed inside a transaction")}

QUEUED = b"+QUEUED\r\n"
PONG = b"+PONG\r\n"
_OOM_QUEUE = error(
    "OOM command not allowed when the queued transactions and partial requests of all clients "
    "> 'max-input-buffer-bytes'"
)
_EXECABORT = error("EXECABORT Transaction discarded because of previous errors.")
_NIL_ARRAY2 = b"*-1\r\n"
_NIL3 = b"_\r\n"


class TxnState:
    """A connection inside MULTI: what it queued (reply bytes, or a handler's Deferred)."""

    __slots__ = ("dirty", "held", "queued", "requests")

    def __init__(self) -> None:
        self.queued: list[bytes | Deferred] = []
        self.requests = 0
        #: Bytes of the queued commands' arguments (their requests hold them until EXEC).
        self.held = 0
        #: A command was refused while queueing: EXEC answers EXECABORT.
        self.dirty = False


def flag_error(s: Session, reply: bytes) -> bytes:
    """``reply``, an error for a command refused before it ran; inside MULTI it marks the
    transaction (Redis's ``flagTransaction``)."""
    if s.txn is not None:
        s.txn.dirty = True
    return reply


def _may_queue(request: Any) -> bool:
    t = type(request)
    return t is Flush or t is Scan or route_of(request) in (Route.READ, Route.WRITE, Route.UPDATE)


def queue_command(name: str, handler: Any, argv: list[bytes], s: Session) -> bytes:
    """Run ``argv``'s handler now and queue what it gives for EXEC; answer ``+QUEUED``.

    Bounded (every byte from the network is hostile, and queued commands are answered,
    so no input limit sees them any more): at most :data:`MAX_MULTI_REQUESTS` queued
    commands, whatever they answer, and at most one command's worth of argument bytes
    (``resp_request_limit``), held in the node's input budget with every other
    connection's partial and queued input (``--max-input-buffer-bytes``: many connections
    each queueing up to their own bound must not pass it); past any of them the command is
    refused and EXEC aborts (Redis refuses a queued command with ``-OOM`` when full)."""
    txn = s.txn
    assert txn is not None
    if len(txn.queued) >= MAX_MULTI_REQUESTS:
        return flag_error(s, error(f"ERR a transaction holds at most {MAX_MULTI_REQUESTS} commands"))
    refusal = _NO_MULTI.get(name)
    if refusal is not None:
        return flag_error(s, refusal)
    result = _FAILS_AT_EXEC.get(name)
    if result is None:
        try:
            result = handler(argv, s)
        except CommandError as exc:
            result = error(exc.message)
    if type(result) is not bytes:
        requests = result[0]
        if len(requests) == 1 and type(requests[0]) is Ping:
            result = PONG
        elif not all(_may_queue(r) for r in requests):
            return flag_error(s, error(f"ERR '{name}' is not supported inside MULTI here (see docs/resp.md)"))
        elif txn.requests + len(requests) > MAX_MULTI_REQUESTS:
            return flag_error(s, error(f"ERR a transaction holds at most {MAX_MULTI_REQUESTS} requests"))
        else:
            size = sum(map(len, argv))
            limit = s.server.resp_request_limit
            if txn.held + size > limit:
                return flag_error(s, error(f"ERR a transaction holds at most {limit} bytes of arguments"))
            if not s.hold(size):
                return flag_error(s, _OOM_QUEUE)
            txn.held += size
            txn.requests += len(requests)
    txn.queued.append(result)
    return QUEUED


def _b_ok(replies: Sequence[Reply], i: int, proto: int, arg: Any) -> bytes:
    reply = replies[i]
    return OK if type(reply) is Ack else node_error(reply)


def _b_execabort(replies: Sequence[Reply], i: int, proto: int, arg: Any) -> bytes:
    return _EXECABORT


def cmd_multi(argv: list[bytes], s: Session) -> bytes | Deferred:
    if s.txn is not None:
        return error("ERR MULTI calls can not be nested")
    s.txn = TxnState()
    return OK


def cmd_discard(argv: list[bytes], s: Session) -> bytes | Deferred:
    if s.txn is None:
        return error("ERR DISCARD without MULTI")
    s.hold(-s.txn.held)
    s.txn = None
    return (Watch(()),), _b_ok, None


def cmd_watch(argv: list[bytes], s: Session) -> bytes | Deferred:
    if s.txn is not None:
        return error("ERR WATCH inside MULTI is not allowed")  # (Redis does not mark the transaction)
    return (Watch(tuple(_key(raw) for raw in argv[1:])),), _b_ok, None


def cmd_unwatch(argv: list[bytes], s: Session) -> bytes | Deferred:
    return (Watch(()),), _b_ok, None


def cmd_exec(argv: list[bytes], s: Session) -> bytes | Deferred:
    txn = s.txn
    if txn is None:
        return error("ERR EXEC without MULTI")
    s.hold(-txn.held)  # (the requests leave for the node: the node's own limits hold them now)
    s.txn = None
    if txn.dirty:
        return (Watch(()),), _b_execabort, None  # (the watches go too, as in Redis)
    requests: list[Any] = []
    parts: list[Any] = []
    for item in txn.queued:
        if type(item) is bytes:
            parts.append(item)
        else:
            reqs, build, arg = item
            parts.append((build, len(requests), arg))
            requests.extend(reqs)
    return (Multi(tuple(requests)),), _b_exec, parts


def _b_exec(replies: Sequence[Reply], i: int, proto: int, parts: list[Any]) -> bytes:
    reply = replies[i]
    if type(reply) is not MultiReply:
        return node_error(reply)  # nothing ran (CROSSSLOT, unavailable) or it may have (timeout)
    if reply.replies is None:
        return _NIL3 if proto == 3 else _NIL_ARRAY2
    subs = reply.replies
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        if type(part) is bytes:
            out.append(part)
            continue
        build, start, arg = part
        built = build(subs, start, proto, arg)
        out.append(built if type(built) is bytes else b"".join(built))
    return b"".join(out)
