"""Wire error codes and the typed exceptions behind them.

Split by blame and certainty (as h11 and Maelstrom do): the client's fault
(``bad_request``, ``too_large``, ``unknown_type``, ``unauthorized``, and the client
authentication codes ``noauth``, ``wrongpass``, ``noperm``, ``denied``) is definite: nothing
was applied, and retrying the same request will fail the same way. ``unavailable`` is
definite too (nothing was applied) but worth retrying later. ``timeout`` and
``internal`` are indefinite: the request may or may not have been applied.

The same classes are raised by the codec on the server and by the client library on
receiving an error reply, so one ``except BadRequestError`` means the same everywhere.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "BadRequestError",
    "CacheError",
    "CrossSlotError",
    "DeniedError",
    "ErrorCode",
    "InternalError",
    "MaxClientsError",
    "NoAuthError",
    "NoPermError",
    "OutOfMemoryError",
    "RequestTimeoutError",
    "TooLargeError",
    "UnauthorizedError",
    "UnavailableError",
    "UnknownTypeError",
    "ValueTooLargeError",
    "WrongPassError",
    "error_for",
]


class ErrorCode(StrEnum):
    BAD_REQUEST = "bad_request"
    TOO_LARGE = "too_large"
    UNKNOWN_TYPE = "unknown_type"
    UNAVAILABLE = "unavailable"
    TIMEOUT = "timeout"
    UNAUTHORIZED = "unauthorized"
    OUT_OF_MEMORY = "out_of_memory"
    MAX_CLIENTS = "max_clients"
    NOAUTH = "noauth"
    WRONGPASS = "wrongpass"
    NOPERM = "noperm"
    DENIED = "denied"
    CROSSSLOT = "crossslot"
    INTERNAL = "internal"
    WRONG_TYPE = "wrongtype"
    VALUE_TOO_LARGE = "value_too_large"


class CacheError(Exception):
    """Base of every error the cache reports; ``code`` is the fixed wire code."""

    code: ErrorCode = ErrorCode.INTERNAL
    #: True when the request was certainly not applied (safe to retry a write).
    definite: bool = False

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


class BadRequestError(CacheError):
    code = ErrorCode.BAD_REQUEST
    definite = True


class TooLargeError(CacheError):
    code = ErrorCode.TOO_LARGE
    definite = True


class UnknownTypeError(CacheError):
    code = ErrorCode.UNKNOWN_TYPE
    definite = True


class UnavailableError(CacheError):
    code = ErrorCode.UNAVAILABLE
    definite = True


class RequestTimeoutError(CacheError):
    code = ErrorCode.TIMEOUT
    definite = False


class UnauthorizedError(CacheError):
    code = ErrorCode.UNAUTHORIZED
    definite = True


class OutOfMemoryError(CacheError):
    """``--max-memory`` is reached and the policy is ``noeviction`` (or nothing is evictable).

    Definite on a single node (nothing was stored); in a cluster a write refused by too
    many owners is reported with this code as soon as W acks became impossible, while
    the owners that had room may still have stored it (the message says so).
    """

    code = ErrorCode.OUT_OF_MEMORY
    definite = True


class MaxClientsError(CacheError):
    """The node already serves ``--max-clients`` connections: this one is refused (and
    closed) before anything is read. Definite: nothing was applied; retry later."""

    code = ErrorCode.MAX_CLIENTS
    definite = True


class NoAuthError(CacheError):
    """The node requires a password (``--requirepass``, ``--aclfile``) and this connection
    has not authenticated yet: only ``ping`` and ``auth`` are answered before it."""

    code = ErrorCode.NOAUTH
    definite = True


class WrongPassError(CacheError):
    """An ``auth`` named an unknown or disabled user, or the wrong password (one message
    for all three, as Redis: the reply never says which)."""

    code = ErrorCode.WRONGPASS
    definite = True


class NoPermError(CacheError):
    """The authenticated user may not run this request (its category, ``@read``,
    ``@write`` or ``@admin``, or one of its keys is outside the user's key patterns)."""

    code = ErrorCode.NOPERM
    definite = True


class DeniedError(CacheError):
    """Protected mode: no password is configured and the connection came from a
    non-loopback address; the node answered this one error and closed it."""

    code = ErrorCode.DENIED
    definite = True


class CrossSlotError(CacheError):
    """A transaction (or multi-key request that must be atomic) names keys of more than
    one partition, in a cluster; nothing was applied (Redis Cluster's ``CROSSSLOT``).
    Keys sharing a hash tag (``{user1}:a``, ``{user1}:b``) share a partition."""

    code = ErrorCode.CROSSSLOT
    definite = True


class WrongTypeError(CacheError):
    """A hash or set command on a key holding another type (or a string command on a
    hash or set): Redis's ``WRONGTYPE``. Definite: nothing was applied."""

    code = ErrorCode.WRONG_TYPE
    definite = True


class ValueTooLargeError(CacheError):
    """In a cluster, a write whose values would travel to a peer in one message larger
    than ``--max-cluster-value-bytes`` (peer frames are at most 64 MiB): refused at once,
    applied nowhere. Unlike ``too_large`` the connection stays open. Definite."""

    code = ErrorCode.VALUE_TOO_LARGE
    definite = True


class InternalError(CacheError):
    code = ErrorCode.INTERNAL
    definite = False


_BY_CODE: dict[str, type[CacheError]] = {
    cls.code.value: cls
    for cls in (
        BadRequestError,
        TooLargeError,
        UnknownTypeError,
        UnavailableError,
        RequestTimeoutError,
        UnauthorizedError,
        OutOfMemoryError,
        MaxClientsError,
        NoAuthError,
        WrongPassError,
        NoPermError,
        DeniedError,
        CrossSlotError,
        ValueTooLargeError,
        InternalError,
        WrongTypeError,
        ValueTooLargeError,
    )
}


def error_for(code: str, message: str = "") -> CacheError:
    """The typed exception for a wire code (unknown codes become :class:`CacheError`)."""
    cls = _BY_CODE.get(code)
    if cls is None:
        err = CacheError(f"{code}: {message}")
        return err
    return cls(message)
