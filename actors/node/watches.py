"""WATCH: the keys each connection watches, and whether one was written since.

A plain object the ``Node`` owns (connections are the node's: a ``ClientBatch`` names
one). Two checks make a transaction's watch, both decided before it writes anything:

- **seen here** (exact on a single node, as Redis's ``touchWatchedKey``): every batch the
  node receives while any key is watched is walked in order (:meth:`touch_batch`); a
  write, delete, read-modify-write, transaction or flush of a watched key marks every
  connection watching it *dirty*, except a transaction marking its own connection (its
  writes come after its check). A dirty connection's next transaction is sealed
  ``aborted``: it runs nothing and answers nil.
- **versions** (what a cluster needs: a write through another node is never seen here).
  On a single node :meth:`watch` stamps each key with a fresh version of this node's
  clock, and the store aborts the transaction if a watched key holds a newer version.
  In a cluster the node reads each watched key at quorum (:meth:`watch_versions`, the
  versions found, ``exact``), and the partition's coordinator aborts the transaction if
  a key's quorum read at EXEC finds another version: exact whatever the clocks say, for
  every write that reached a quorum before the EXEC's read (``docs/consistency.md``). A
  transaction waits on its connection until the WATCH's reads are back (:meth:`reading`).

Invariants: a connection watches at most :data:`MAX_WATCHED_KEYS` keys (a WATCH beyond
is refused); sealing a transaction, an ``unwatch`` or the connection's end forget its
watches; ``_by_key`` holds exactly the (key, connection) pairs of ``_by_conn``. Iteration
orders are insertion orders (dicts), never hash orders.
"""

from __future__ import annotations

from typing import Any, Callable

from actors.protocol.kinds import Route, route_of
from actors.protocol.messages import CollOp
from actors.protocol.txn_messages import Flush, Multi
from actors.protocol.version import Version
from actors.store.coll_ops import COMMANDS

__all__ = ["MAX_WATCHED_KEYS", "Watches"]

#: The most keys one connection may watch at once.
MAX_WATCHED_KEYS = 10_000


class Watches:
    """Watched keys per connection (see the module docstring)."""

    __slots__ = ("_by_conn", "_by_key", "_dirty", "_exact", "_reading")

    def __init__(self) -> None:
        self._by_conn: dict[int, dict[str, Version | None]] = {}
        self._by_key: dict[str, dict[int, None]] = {}
        self._dirty: dict[int, None] = {}
        #: Connections whose watches hold versions read at quorum (a cluster), not stamps.
        self._exact: dict[int, None] = {}
        #: Connections with a cluster WATCH's reads in flight: how many.
        self._reading: dict[int, int] = {}

    def start_reading(self, conn: int) -> None:
        self._reading[conn] = self._reading.get(conn, 0) + 1

    def done_reading(self, conn: int) -> None:
        left = self._reading.get(conn, 0) - 1
        if left > 0:
            self._reading[conn] = left
        else:
            self._reading.pop(conn, None)

    def reading(self, conn: int) -> bool:
        """Whether a WATCH of ``conn`` is still reading its keys' versions."""
        return conn in self._reading

    def watch_versions(self, conn: int, versions: dict[str, Version | None]) -> bool:
        """Watch keys at the versions a quorum read found (a cluster's WATCH); a key
        watched already keeps its first version. False (nothing changes) beyond
        :data:`MAX_WATCHED_KEYS`."""
        mine = self._by_conn.get(conn)
        if mine and conn not in self._exact:  # stamps from before the cluster formed: start over
            self.unwatch(conn)
            mine = None
        new = {k: v for k, v in versions.items() if mine is None or k not in mine}
        if (len(mine) if mine else 0) + len(new) > MAX_WATCHED_KEYS:
            return False
        if new:
            self._exact[conn] = None
            self._insert(conn, mine, new)
        return True

    @property
    def active(self) -> bool:
        """Whether any connection watches anything (else batches need no walk)."""
        return bool(self._by_conn)

    def watched(self, conn: int) -> int:
        return len(self._by_conn.get(conn, ()))

    def watch(self, conn: int, keys: tuple[str, ...], stamp: Callable[[], Version]) -> bool:
        """Watch ``keys`` for ``conn``, each stamped now (a key watched already keeps its
        first stamp, as Redis keeps watching from the first WATCH); False if that would
        exceed :data:`MAX_WATCHED_KEYS` (nothing changes then)."""
        mine = self._by_conn.get(conn)
        new = [key for key in dict.fromkeys(keys) if mine is None or key not in mine]
        if (len(mine) if mine else 0) + len(new) > MAX_WATCHED_KEYS:
            return False
        if new:
            self._insert(conn, mine, dict.fromkeys(new, stamp()))
        return True

    def _insert(self, conn: int, mine: dict[str, Version | None] | None, new: dict[str, Version | None]) -> None:
        """Add ``new`` (keys ``conn`` does not watch yet, at their versions) to ``conn``'s
        table ``mine`` (None: it has none yet) and to the by-key index."""
        if mine is None:
            mine = self._by_conn[conn] = {}
        for key, version in new.items():
            mine[key] = version
            self._by_key.setdefault(key, {})[conn] = None

    def unwatch(self, conn: int) -> None:
        """Forget ``conn``'s watches (UNWATCH, DISCARD, EXEC, the connection's end)."""
        self._dirty.pop(conn, None)
        self._exact.pop(conn, None)
        mine = self._by_conn.pop(conn, None)
        if not mine:
            return
        by_key = self._by_key
        for key in mine:
            conns = by_key.get(key)
            if conns is not None:
                conns.pop(conn, None)
                if not conns:
                    del by_key[key]

    def seal(self, conn: int, multi: Multi) -> Multi:
        """``multi`` carrying ``conn``'s watch (stamps; ``aborted`` if it is dirty); the
        watches are forgotten, as EXEC does in Redis."""
        mine = self._by_conn.get(conn)
        dirty = conn in self._dirty
        if not mine and not dirty:
            return multi
        watch = tuple(mine.items()) if mine else ()
        exact = conn in self._exact
        self.unwatch(conn)
        return Multi(multi.requests, multi.rid, watch, dirty or multi.aborted, exact)

    def touch_batch(self, conn: int, requests: Any) -> None:
        """Mark dirty the connections watching what ``requests`` (one batch of ``conn``,
        in order) write; called only while :attr:`active`.

        The batch is walked when it arrives, before its transactions are sealed, so
        ``conn``'s own writes dirty ``conn`` only up to the batch's first transaction:
        the writes after an EXEC come after its check, as in Redis (a batch
        ``EXEC, SET w`` whose WATCH w came in an earlier read aborted the EXEC here). A
        WATCH later in the batch is not in force yet either way: the store's version
        check sees those writes (``watch``'s stamps)."""
        by_key = self._by_key
        own: int | None = None  # who is spared: nobody until conn's first transaction
        for request in requests:
            if type(request) is Multi:
                for sub in request.requests:
                    self._touch(sub, by_key, conn)
                own = conn
            else:
                self._touch(request, by_key, own)

    def _touch(self, request: Any, by_key: dict[str, dict[int, None]], own: int | None) -> None:
        """Mark dirty who watches what ``request`` writes (``own``: a transaction's connection, spared)."""
        if type(request) is Flush:
            for other in self._by_conn:
                if other != own:
                    self._dirty[other] = None
            return
        route = route_of(request)
        if route is not Route.WRITE and route is not Route.UPDATE:
            return
        if type(request) is CollOp and not COMMANDS.get(request.cmd, ("", False))[1]:
            return  # a hash/set read (HGET, TYPE, ...) runs as an update but writes nothing
        for key in _keys(request):
            conns = by_key.get(key)
            if conns:
                for other in conns:
                    if other != own:
                        self._dirty[other] = None


def _keys(request: Any) -> tuple[str, ...]:
    from actors.node.ordering import keys_of

    return keys_of(request)
