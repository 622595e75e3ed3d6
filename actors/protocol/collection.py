"""Hashes and sets as replicated values: a version per field or member, merged field by field.

Theory of operation. A key's replicated state is a *join semilattice*, so replicas that
have seen the same writes, in any order, any number of times, hold the same state:

- ``floor``: the version of the newest whole-key replace the state knows of (a ``SET``,
  a ``DEL``, an expiry). Every field or member at or below the floor is erased by it;
- ``items``: ``name -> (value, version)`` for fields and members written after the floor;
  ``value is None`` is a field tombstone (``HDEL``/``SREM``), which keeps an older write
  of that field from coming back through a replica that missed the delete. Names carry
  their type in their first character (``h``: a hash field, ``s``: a set member, whose
  value is ``1``), so a hash and a set created concurrently on one key never mix;
- ``ttl_version``: the version of the newest write that set the key's deadline
  (``EXPIRE``, ``PERSIST``, a whole-key write); a field write has no say in the deadline.
  A deadline-only write also writes the item :data:`TTL_MARK` (never shown), so a state's
  ``ttl_version`` is never above its newest item: when a whole-key write erases every
  item, it is newer than the deadline too, and dropping both loses nothing.

The join (:func:`merge_records`) takes the highest floor, the newer of each item (ties
broken by value, so even forged duplicates merge the same everywhere), drops items at or
below the floor, and the deadline of the highest ``ttl_version``. A plain value or a key
tombstone is the same state with a floor (its version) and no items, so whole-key writes
and field writes merge by one rule: **a whole-key write newer than a field write erases
it; an older one does not erase newer fields** (``docs/consistency.md``).

A write a coordinator plans is a *delta*: a :class:`Coll` whose versions are
:data:`PENDING`, stamped with the write's version where it is applied (:func:`stamp`), so
a re-stamped write (a replica held a newer version) needs no new delta.

Determinism: nothing here iterates a hash-ordered structure into a result without
sorting it (:func:`content_digest`, :func:`view`); merges build dicts in sorted order.
"""

from __future__ import annotations

import hashlib
from typing import Any

from actors.protocol.record import Record
from actors.protocol.version import Version, ZERO

__all__ = [
    "HASH",
    "MEMBER",
    "PENDING",
    "PREFIXES",
    "SET",
    "TTL_MARK",
    "Coll",
    "coll_kind",
    "content_digest",
    "is_coll",
    "live_items",
    "merge_records",
    "prune",
    "stamp",
    "view",
]

#: Name prefixes: a hash field, a set member.
HASH, SET = "h", "s"
#: The item a deadline-only write (``EXPIRE``/``PERSIST`` of a hash or set) writes.
TTL_MARK = "t"
#: Every name's first character is one of these.
PREFIXES = (HASH, SET, TTL_MARK)
#: A set member's value.
MEMBER = 1
#: "The version of the write that carries this delta": stamped where it is applied.
PENDING = Version(-1, 0, "")


class Coll:
    """A collection's state (or a delta, with :data:`PENDING` versions). Read-only once
    built: a write makes a new one (an operation costs time in the number of fields)."""

    __slots__ = ("floor", "items", "ttl_version")

    def __init__(self, items: dict[str, tuple[Any, Version]], floor: Version = ZERO, ttl_version: Version = ZERO) -> None:
        self.items = items
        self.floor = floor
        self.ttl_version = ttl_version

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is Coll
            and self.floor == other.floor
            and self.ttl_version == other.ttl_version
            and self.items == other.items
        )

    def __hash__(self) -> int:
        return hash((self.floor, self.ttl_version, len(self.items)))

    def __repr__(self) -> str:
        items = ", ".join(f"{name!r}: {self.items[name]!r}" for name in sorted(self.items))
        return f"Coll({{{items}}}, floor={self.floor!r}, ttl_version={self.ttl_version!r})"

    @property
    def max_version(self) -> Version:
        """The newest version anywhere in the state (the key's version in a listing)."""
        best = self.floor if self.floor > self.ttl_version else self.ttl_version
        for _, version in self.items.values():
            if version > best:
                best = version
        return best


def is_coll(value: Any) -> bool:
    return type(value) is Coll


def stamp(coll: Coll, version: Version) -> Coll:
    """``coll`` with every :data:`PENDING` version replaced by ``version``."""
    items = {name: (value, version if v == PENDING else v) for name, (value, v) in coll.items.items()}
    return Coll(
        items,
        version if coll.floor == PENDING else coll.floor,
        version if coll.ttl_version == PENDING else coll.ttl_version,
    )


def _rank(value: Any) -> tuple[int, str, Any]:
    """A total order on item values, for two items of one name and one version (only a
    forged or corrupt state has those): the merge must not depend on delivery order."""
    if value is None:
        return (0, "", b"")
    t = type(value)
    if t is bytes or t is str or t is int:
        return (1, t.__name__, value)
    return (2, t.__name__, repr(value))


def _newer(a: tuple[Any, Version], b: tuple[Any, Version]) -> bool:
    """Whether item ``a`` beats item ``b`` of the same name."""
    if a[1] != b[1]:
        return a[1] > b[1]
    return _rank(a[0]) > _rank(b[0])


class _State:
    """A record as the lattice sees it (see the module docstring)."""

    __slots__ = ("deadline", "floor", "items", "purge_at", "scalar", "ttl_version")

    def __init__(self, record: Record) -> None:
        value = record.value
        self.purge_at = record.purge_at
        self.scalar: Record | None = None
        if type(value) is Coll:
            coll = stamp(value, record.version) if _pending(value) else value
            self.floor = coll.floor
            self.items = coll.items
            self.ttl_version = coll.ttl_version
            self.deadline = record.deadline if coll.ttl_version != ZERO else None
        else:
            self.floor = record.version
            self.items = {}
            self.ttl_version = record.version
            self.deadline = record.deadline if record.purge_at is None else None
            if record.purge_at is None:
                self.scalar = record


def _pending(coll: Coll) -> bool:
    return coll.floor == PENDING or coll.ttl_version == PENDING or any(v == PENDING for _, v in coll.items.values())


def merge_records(a: Record | None, b: Record | None) -> Record | None:
    """The join of two records of one key: commutative, associative and idempotent.

    Plain records (no collection on either side) merge last-write-wins as they always
    have: the newer one, the tombstone on a tie (``a`` if both tie exactly)."""
    if a is None:
        return _normal(b) if b is not None else None
    if b is None:
        return _normal(a)
    if type(a.value) is not Coll and type(b.value) is not Coll:
        if a.version != b.version:
            return a if a.version > b.version else b
        if (a.purge_at is not None) != (b.purge_at is not None):
            return a if a.purge_at is not None else b
        return a if _record_rank(a) >= _record_rank(b) else b
    sa, sb = _State(a), _State(b)
    floor = sa.floor if sa.floor >= sb.floor else sb.floor
    items: dict[str, tuple[Any, Version]] = {}
    for name in sorted(sa.items.keys() | sb.items.keys()):
        x, y = sa.items.get(name), sb.items.get(name)
        best = x if y is None or (x is not None and _newer(x, y)) else y
        assert best is not None
        if best[1] > floor:
            items[name] = best
    if sa.ttl_version != sb.ttl_version:
        ttl_state = sa if sa.ttl_version > sb.ttl_version else sb
    else:
        ttl_state = sa if _deadline_rank(sa.deadline) >= _deadline_rank(sb.deadline) else sb
    ttl_version, deadline = ttl_state.ttl_version, ttl_state.deadline
    if ttl_version < floor:  # the whole-key write at the floor set (or cleared) the deadline since
        ttl_version, deadline = ZERO, None
    if items:
        coll = Coll(items, floor, ttl_version)
        return Record(a.key, coll, deadline if ttl_version != ZERO else None, coll.max_version)
    scalars = [s.scalar for s in (sa, sb) if s.scalar is not None and s.scalar.version == floor]
    if scalars:
        return merge_records(scalars[0], scalars[-1])
    purges = [s.purge_at for s in (sa, sb) if s.purge_at is not None and s.floor == floor]
    if purges:
        return Record(a.key, None, None, floor, max(purges))
    if floor != ZERO:  # a floor with nothing above it (only a forged state has no items)
        return Record(a.key, Coll({}, floor), None, floor)
    return None


def _normal(record: Record) -> Record | None:
    """A record alone, as the join leaves it (a delta stamped; an empty collection: None)."""
    if type(record.value) is not Coll:
        return record
    return merge_records(record, Record(record.key, Coll({}), None, ZERO))


def _record_rank(record: Record) -> tuple[Any, ...]:
    return (_rank(record.value), _deadline_rank(record.deadline), _deadline_rank(record.purge_at))


def _deadline_rank(deadline: float | None) -> tuple[int, float]:
    return (1, 0.0) if deadline is None else (0, deadline)


def prune(coll: Coll, before_ms: int | None) -> Coll | None:
    """``coll`` without its field tombstones older than ``before_ms`` (None: all of them;
    a single copy needs none), or None when nothing is left (the key is gone)."""
    items = {
        name: item
        for name, item in coll.items.items()
        if item[0] is not None or (before_ms is not None and item[1].wall_ms >= before_ms)
    }
    if not items:
        return None
    return coll if len(items) == len(coll.items) else Coll(items, coll.floor, coll.ttl_version)


# --- what clients see ---------------------------------------------------------------------


def live_items(coll: Coll, kind: str) -> list[tuple[str, Any]]:
    """``(name, value)`` of the live fields (or members) of ``kind``, sorted by name."""
    out = []
    for name in sorted(coll.items):
        value = coll.items[name][0]
        if value is not None and name[0] == kind:
            out.append((name[1:], value))
    return out


def type_name(value: Any) -> str | None:
    """The name Redis's ``TYPE`` gives a live value: ``string``, ``hash`` or ``set``; None for a
    hash or set whose items were all deleted (no key, to a client)."""
    if type(value) is not Coll:
        return "string"
    kind = coll_kind(value)
    return None if kind is None else ("hash" if kind == HASH else "set")


def coll_kind(coll: Coll) -> str | None:
    """The type a client sees: the kind of the newest live item (a hash and a set made
    concurrently on one key: the newer wins); None when no item is live (no key)."""
    best: tuple[Version, str] | None = None
    for name, (value, version) in coll.items.items():
        if value is not None and name[0] != TTL_MARK and (best is None or (version, name) > best):
            best = (version, name)
    return None if best is None else best[1][0]


def view(coll: Coll) -> tuple[str | None, dict[str, Any]]:
    """``(kind, {name: value})`` as a client sees the key (names without their prefix),
    the dict in name order."""
    kind = coll_kind(coll)
    if kind is None:
        return None, {}
    return kind, dict(live_items(coll, kind))


def content_digest(coll: Coll) -> str:
    """A digest of the whole state, in name order: replicas whose newest versions agree
    but whose fields differ must not look in sync to anti-entropy."""
    h = hashlib.blake2b(digest_size=8)
    h.update(repr((tuple(coll.floor), tuple(coll.ttl_version))).encode())
    for name in sorted(coll.items):
        value, version = coll.items[name]
        h.update(repr((name, value, tuple(version))).encode("utf-8", "surrogatepass"))
    return h.hexdigest()
