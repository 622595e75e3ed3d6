"""Client requests and replies of transactions, flush and iteration (Redis's MULTI/EXEC,
WATCH, FLUSHDB, SCAN), apart from :mod:`actors.protocol.messages` because they hold
other requests and replies rather than being single-key operations.

- :class:`Multi`: run ``requests`` atomically (one store operation on a single node; at
  their partition's coordinator in a cluster: ``docs/consistency.md``). ``watch``: the
  keys the connection watched, each with the version stamp taken when it was watched
  (the transaction aborts if any of them holds a newer version); ``aborted``: a watched
  key was already seen written on this node, so nothing runs. Answered by
  :class:`MultiReply`.
- :class:`Watch`: watch ``keys`` for this connection (``unwatch``: forget them all).
  The node keeps the watches per connection (:mod:`actors.node.watches`).
- :class:`Flush`: remove every key (FLUSHDB/FLUSHALL); answered ``Ack``.
- :class:`Scan`: one step of an iteration over every key; answered :class:`ScanReply`.

Every field is read-only once sent (see :mod:`actors.protocol.messages`).
"""

from __future__ import annotations

from typing import Any

from actors.protocol.messages import message
from actors.protocol.version import Version

__all__ = ["TXN_REPLY_TYPES", "Flush", "Multi", "MultiReply", "Scan", "ScanReply", "Watch"]


@message
class Multi:
    """Run ``requests`` (client requests, none a ``multi``) as one atomic transaction."""

    requests: tuple[Any, ...]
    rid: Any = None
    watch: tuple[tuple[str, Version | None], ...] = ()
    aborted: bool = False
    #: ``watch`` holds the versions a quorum read found (a cluster's WATCH: any other
    #: version aborts), not clock stamps (a newer version aborts).
    exact: bool = False

    @property
    def key(self) -> str | None:
        """The first key the transaction touches (its partition is where it runs), or None."""
        for key in self.keys:
            return key
        return None

    @property
    def keys(self) -> tuple[str, ...]:
        """Every key it reads, writes or watches, in order, each once."""
        from actors.protocol.kinds import KINDS  # (kinds imports this module)

        seen: dict[str, None] = {}
        for request in self.requests:
            kind = KINDS.get(type(request))
            if kind is not None:
                for key in kind.keys(request):
                    seen[key] = None
        for key, _ in self.watch:
            seen[key] = None
        return tuple(seen)


@message
class Watch:
    """Watch ``keys`` for this connection's next transaction; no keys: unwatch all."""

    keys: tuple[str, ...]
    rid: Any = None


@message
class Flush:
    """Remove every key of the node (a cluster: of every node)."""

    rid: Any = None


@message
class Scan:
    """One step of a scan: ``cursor`` 0 starts, the reply's cursor 0 ends. ``match``: a
    glob the keys must match; ``count``: how many keys to look at, a hint."""

    cursor: int = 0
    match: str | None = None
    count: int = 10
    rid: Any = None
    #: Answer how many keys (``ScanReply.total``) instead of the keys (DBSIZE).
    count_only: bool = False
    #: Only keys of this Redis type (``string``, ``hash``, ``set``: SCAN's ``TYPE``); None: any.
    kind: str | None = None


@message
class MultiReply:
    """Each request's reply, in order; ``replies`` None: aborted (a watched key changed)."""

    replies: tuple[Any, ...] | None
    rid: Any = None


@message
class ScanReply:
    """The next cursor (0: done) and this step's keys."""

    cursor: int
    keys: tuple[str, ...]
    rid: Any = None
    #: With ``Scan.count_only``: how many keys (``keys`` is empty).
    total: int | None = None


TXN_REPLY_TYPES = (MultiReply, ScanReply)
