"""What a host tells a node about its client connections, and the node's answers.

A host decodes everything one socket read of a client connection carried into one
:class:`ClientBatch` and tells it to the node; the node answers with exactly one
:class:`BatchReply` per batch, its replies in request order (a request that failed to
decode is already an ``ErrorReply`` in the batch, keeping its place).
:class:`ClientConnected` and :class:`ClientDisconnected` bracket a connection's life.

Invariants: ``conn`` numbers are the host's, unique per node for the host's lifetime;
replies for one connection leave in the order its requests arrived, batch after batch.
"""

from __future__ import annotations

from actors.protocol.messages import Ack, ErrorReply, Reply, ReplyTo, Request, message

__all__ = ["BatchReply", "ClientBatch", "ClientConnected", "ClientDisconnected"]


@message
class ClientBatch:
    """Everything decoded from one socket read of connection ``conn``.

    An item that failed to decode is already an :class:`ErrorReply`, and one the host
    answered itself (an ``auth``, a request the user may not send) is already its reply
    (an ``Ack`` or an ``ErrorReply``); either keeps its place so replies stay in request
    order. The node answers with one :class:`BatchReply`.
    """

    conn: int
    requests: tuple[Request | ErrorReply | Ack, ...]
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
