"""The store operations that travel between nodes: what a coordinator asks a replica's store.

A coordinator stamps these (versions, deadlines, tombstone purge times) and sends the very
same objects to its own store and, inside :class:`~actors.protocol.peer_messages.ReplicaRequest`,
to every other owner, whose node hands them to its store unchanged: a replica never
decides anything for itself. They are store operations (:mod:`actors.store.ops` lists
every one, and :mod:`actors.store.apply` applies them) but they live here, below the
store, because :mod:`actors.protocol.peer_codec` puts them on the wire: their fields are
part of peer protocol :data:`~actors.protocol.peer_codec.PROTOCOL_VERSION`, and a change
to one is a change to the protocol.

Invariants: every field is read-only once built (the objects are shared between a
node's actors and its peer links); a ``Version`` a write carries is the one it is
stored under, or the write is refused with the newer version the replica holds.
"""

from __future__ import annotations

from typing import Any

from actors.protocol.messages import message
from actors.protocol.record import Record
from actors.protocol.version import Version

__all__ = ["Apply", "Fetch", "ItemResults", "Remove", "Write"]


@message
class Fetch:
    """Versioned lookup: the result is a tuple of ``Record | None`` (tombstones included).

    ``count``: whether the lookup counts as hits/misses (client reads do, repair does not).
    """

    keys: tuple[str, ...]
    count: bool = True


@message
class Write:
    """Store items ``(key, value, deadline)``; deadline is epoch seconds or None.

    ``replicas``: the owners the coordinator sent the write to; each entry remembers
    them (the Go original's ReplicaIDs), shown by ``inspect``.

    The result is how many items were stored, or the newer ``Version`` a key holds (the
    coordinator re-stamps the write above it), or an ``ErrorReply`` (out of memory).
    """

    items: tuple[tuple[str, Any, float | None], ...]
    version: Version
    replicas: tuple[str, ...] = ()
    #: Answer item by item (:class:`ItemResults`) instead of a count: a coordinator's
    #: run of single-key writes sharing one version, each item still its own task.
    each: bool = False


class ItemResults(tuple):  # type: ignore[type-arg]
    """The answer to a ``Write`` with ``each``: per item, 1 (stored, or already held at
    this version) or the newer :class:`~actors.protocol.version.Version` the replica holds."""

    __slots__ = ()


@message
class Remove:
    """Delete keys; the result is how many existed (or the newer ``Version`` a key holds).

    ``purge_at`` (epoch seconds) keeps a tombstone until then where tombstones are on.
    """

    keys: tuple[str, ...]
    version: Version
    purge_at: float | None = None


@message
class Apply:
    """Merge records last-write-wins; the result is how many changed anything."""

    records: tuple[Record, ...]
