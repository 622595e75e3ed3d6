"""What a host tells a node about its client connections, and the node's answers.

A host decodes everything one socket read of a client connection carried into one
:class:`ClientBatch` and tells it to the node; the node answers with exactly one
:class:`BatchReply` per batch, its replies in request order (a request that failed to
decode is already an ``ErrorReply`` in the batch, keeping its place).
:class:`ClientConnected` and :class:`ClientDisconnected` bracket a connection's life.

A *plain* request, a ``get`` or a ``set`` with no id and no option (nearly every request
a cache is sent), may come as what the node's store run needs instead of a typed request:
a get as its key (a ``str``), a set as its store item ``(key, value, None)`` (a
``tuple``). A host whose decoder recognises them sends them so (the JSON lines door,
``runtime/framing.py``): no request object is built for them, nor one for their items.
:func:`typed_requests` gives the ``Get``/``Set`` they stand for, to every part that wants
typed requests (the node's single-node planner takes them as they are).

Invariants: ``conn`` numbers are the host's, unique per node for the host's lifetime;
replies for one connection leave in the order its requests arrived, batch after batch.
"""

from __future__ import annotations

from typing import Any

from actors.protocol.messages import Ack, ErrorReply, Get, Reply, ReplyTo, Request, Set, message

__all__ = ["BatchReply", "ClientBatch", "ClientConnected", "ClientDisconnected", "typed", "typed_requests"]


@message
class ClientBatch:
    """Everything decoded from one socket read of connection ``conn``.

    An item that failed to decode is already an :class:`ErrorReply`, and one the host
    answered itself (an ``auth``, a request the user may not send) is already its reply
    (an ``Ack`` or an ``ErrorReply``); either keeps its place so replies stay in request
    order. The node answers with one :class:`BatchReply`.
    """

    conn: int
    requests: tuple[Request | ErrorReply | Ack | str | tuple[str, Any, None], ...]
    reply_to: ReplyTo


@message
class BatchReply:
    conn: int
    replies: tuple[Reply, ...]


@message
class ClientConnected:
    conn: int


@message
class ClientDisconnected:
    conn: int


def typed(item: Any) -> Any:
    """The ``Get`` or ``Set`` a plain item stands for; any other item as it is."""
    t = type(item)
    if t is str:
        return Get(item)
    if t is tuple:
        return Set(item[0], item[1])
    return item


def typed_requests(requests: tuple[Any, ...]) -> tuple[Any, ...]:
    """``requests`` with every plain item typed (the same tuple when none is plain)."""
    for item in requests:
        t = type(item)
        if t is str or t is tuple:
            return tuple(map(typed, requests))
    return requests
