"""The errors a :class:`runtime.client.Client` raises itself, never sent by a node.

Each says whether the request it interrupted may have been applied (``definite``), as the
errors a node sends do (:mod:`actors.protocol.errors`): a client retries safely only when
``definite`` is True.
"""

from __future__ import annotations

from actors.protocol.errors import CacheError, ErrorCode, RequestTimeoutError

__all__ = ["ClientTimeoutError", "ConnectionLostError", "ProtocolError"]


class ConnectionLostError(CacheError):
    """The connection to the node could not be opened, or broke during a request.

    Never sent by a node; raised locally. ``definite`` is per instance: True when the
    request certainly never reached the node (connection refused, name not resolved, the
    node closed the connection right after rejecting an earlier request of the same
    pipeline), False when it may have been applied (the connection broke after sending).
    """

    code = ErrorCode.INTERNAL
    definite = False

    def __init__(self, message: str = "", *, definite: bool = False) -> None:
        super().__init__(message)
        self.definite = definite


class ClientTimeoutError(RequestTimeoutError):
    """The client gave up waiting for the node's reply (a socket timeout).

    A :class:`~actors.protocol.errors.RequestTimeoutError`, so one ``except RequestTimeoutError``
    catches it, but raised locally rather than sent by a node (which lets the CLI tell a
    slow or hung node from a server error reply). The connection is closed because a late
    reply would otherwise be read as the answer to the next request. Indefinite, unless
    not a byte of the request had been sent.
    """

    def __init__(self, message: str = "", *, definite: bool = False) -> None:
        super().__init__(message)
        self.definite = definite


class ProtocolError(CacheError):
    """The node sent something that is not a valid reply to what was asked.

    The stream can no longer be trusted, so the connection is closed. Indefinite.
    """

    code = ErrorCode.INTERNAL
    definite = False
