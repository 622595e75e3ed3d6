"""Where a key lives: key -> partition by a stable hash, partition -> owners by
rendezvous (highest-random-weight) hashing over the cluster's members.

Rendezvous hashing (Thaler & Ravishankar, 1998) is consistent hashing without a ring to
maintain: every member gets a score per partition from a stable hash of
``(member, partition)`` and the ``replicas`` highest scores own the partition. Adding a
member moves only the partitions where it scores in the top ``replicas``; removing one
moves only the partitions it owned. Nothing else moves, and every node computes the
same owners from the same member list, in any order it learned them.

Hashes are BLAKE2b of UTF-8 bytes, never Python's ``hash()`` (salted per process).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from actors.store.partitions import DEFAULT_PARTITIONS, utf8_bytes

__all__ = ["Placement"]


def _score(member: str, partition: int) -> bytes:
    return hashlib.blake2b(utf8_bytes(member), digest_size=8, salt=partition.to_bytes(8, "big")).digest()


class Placement:
    """Owners of every partition for one member set: an immutable table.

    ``owners(p)`` lists the owners best first; the order is the same on every node, so
    "the first reachable owner" means the same replica everywhere.
    """

    __slots__ = ("_owners", "members", "partitions", "replicas")

    def __init__(self, members: Iterable[str], replicas: int, partitions: int = DEFAULT_PARTITIONS) -> None:
        if replicas < 1:
            raise ValueError("replicas must be at least 1")
        if partitions < 1:
            raise ValueError("partitions must be at least 1")
        self.members: tuple[str, ...] = tuple(sorted(set(members)))
        self.partitions = partitions
        self.replicas = min(replicas, len(self.members))
        if not self.members:
            self._owners: tuple[tuple[str, ...], ...] = ((),) * partitions
            return
        table = []
        for p in range(partitions):
            ranked = sorted(self.members, key=lambda m, p=p: _score(m, p), reverse=True)
            table.append(tuple(ranked[: self.replicas]))
        self._owners = tuple(table)

    def owners(self, partition: int) -> tuple[str, ...]:
        return self._owners[partition]

    def owned_by(self, member: str) -> list[int]:
        """The partitions ``member`` owns, ascending."""
        return [p for p, owners in enumerate(self._owners) if member in owners]
