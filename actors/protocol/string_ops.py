"""The string read-modify-writes beyond ``incr`` and conditional ``set``: Redis's GETDEL,
GETEX, APPEND and INCRBYFLOAT as client requests of both doors (RESP and JSON/msgpack).

Each is a read-modify-write (``Route.UPDATE`` in :mod:`actors.protocol.kinds`): run by the
key's coordinator one at a time per key, as ``incr`` is, so it is atomic in a cluster
too; what each does to a key is :func:`actors.store.rmw.plan_update`. Wire names are the
lower-case command names (``{"type": "getdel", "key": "k"}``).
"""

from __future__ import annotations

from typing import Any

from actors.protocol.messages import message

__all__ = ["STRING_REQUESTS", "Append", "GetDel", "GetEx", "IncrByFloat"]


@message
class GetDel:
    """Answer the key's value (``Value``) and delete it."""

    key: str
    rid: Any = None
    consistency: str | None = None


@message
class GetEx:
    """Answer the key's value (``Value``) and change its TTL: ``ttl`` seconds from now,
    or the absolute deadline ``at`` (epoch seconds; one already past deletes the key), or
    none at all (``persist``)."""

    key: str
    ttl: float | None = None
    at: float | None = None
    persist: bool = False
    rid: Any = None
    consistency: str | None = None


@message
class Append:
    """Append ``value`` (bytes, or text as UTF-8) to the key's string (absent: empty);
    answers the new length in bytes (``Value``)."""

    key: str
    value: bytes | str
    rid: Any = None
    consistency: str | None = None


@message
class IncrByFloat:
    """Add the decimal ``by`` (text, as Redis's ``strtold`` reads it) to the number stored
    at ``key`` with Redis's 80-bit long double arithmetic; answers and stores the result
    as text (``Value``)."""

    key: str
    by: str
    rid: Any = None
    consistency: str | None = None


#: The request types of this module (``actors.protocol.messages.Request`` names the others).
STRING_REQUESTS = (GetDel, GetEx, Append, IncrByFloat)
