"""The string read-modify-writes beyond ``incr`` and conditional ``set``: Redis's GETDEL,
GETEX, APPEND, INCRBYFLOAT and RENAME as client requests of both doors (RESP and JSON/msgpack).

Each is a read-modify-write (``Route.UPDATE`` in :mod:`actors.protocol.kinds`): run by the
key's coordinator one at a time per key, as ``incr`` is, so it is atomic in a cluster
too; what each does to a key is :func:`actors.store.rmw.plan_update`. Wire names are the
lower-case command names (``{"type": "getdel", "key": "k"}``).
"""

from __future__ import annotations

from typing import Any

from actors.protocol.messages import message

__all__ = ["STRING_REQUESTS", "Append", "GetDel", "GetEx", "IncrByFloat", "Rename"]


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


@message
class Rename:
    """Move the value (and TTL) of ``key`` to ``new_key``, replacing what it held; with
    ``nx`` only if ``new_key`` does not exist. Answers ``Ack(applied=...)``, or the error
    ``no such key``. Two keys: in a cluster it runs as a one-request transaction, so both
    must be in one partition (``CROSSSLOT`` otherwise, as Redis Cluster answers; hash tags
    ``{user1}:a``/``{user1}:b`` put keys together)."""

    key: str
    new_key: str
    nx: bool = False
    rid: Any = None
    consistency: str | None = None


#: The request types of this module (``actors.protocol.messages.Request`` names the others).
STRING_REQUESTS = (GetDel, GetEx, Append, IncrByFloat, Rename)
