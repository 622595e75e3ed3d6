"""Key -> partition: a stable hash, the same on every node and in every process.

The keyspace is split into partitions so that nodes can compare, stream and hand off a
partition at a time; which members own a partition is ``actors.cluster.placement``'s job.
Hashes are BLAKE2b of UTF-8 bytes, never Python's ``hash()`` (salted per process).

**Hash tags** (Redis Cluster's): a key holding ``{`` followed later by ``}`` with at least
one character between hashes only what is between the first ``{`` and the first ``}``
after it, so ``{user1}:a`` and ``{user1}:b`` share a partition and a transaction may
touch both. Every other key (no ``{``, ``{}``, no closing ``}``) hashes whole, exactly
as before hash tags existed. The RESP and JSON doors, the cluster and the simulator all
place keys through :func:`partition_of`.
"""

from __future__ import annotations

import hashlib
from typing import Callable

__all__ = ["DEFAULT_PARTITIONS", "MEMO_KEYS", "SUB_BUCKETS", "hash_tag", "partition_of", "slot_lookup", "slot_of", "utf8_bytes"]

DEFAULT_PARTITIONS = 256
#: Sub-buckets per partition: anti-entropy compares a partition's sub-bucket digests when
#: its digest differs, and lists only the sub-buckets that differ (actors.store.partition_digests).
SUB_BUCKETS = 1024

#: Keys whose slot is remembered, per partition and sub-bucket count; past it the memo
#: starts afresh. A quorum write asks for its key's partition at the coordinator and for
#: its slot in every replica's store (its partition index and held digests), and a
#: BLAKE2b costs several times a dict lookup, so most asks are answered from here
#: (bench/RESULTS.md, issue 14). Pure functions: the memo changes no answer.
MEMO_KEYS = 1 << 14
#: Only keys up to this long are remembered: the memo never holds a big key alive.
MEMO_KEY_LEN = 256
_memos: dict[tuple[int, int], dict[str, tuple[int, int]]] = {}


def utf8_bytes(text: str) -> bytes:
    # Lone surrogates can arrive from JSON clients; they must hash, not raise.
    return text.encode("utf-8", "surrogatepass")


def hash_tag(key: str) -> str:
    """What of ``key`` is hashed: its hash tag (see the module docstring), else all of it."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1 : end]
    return key


def partition_of(key: str, partitions: int = DEFAULT_PARTITIONS) -> int:
    """The partition of ``key``: the same on every node, in every process."""
    return slot_of(key, partitions)[0]


def slot_of(key: str, partitions: int = DEFAULT_PARTITIONS, buckets: int = SUB_BUCKETS) -> tuple[int, int]:
    """``(partition, sub-bucket)`` of ``key``, the same on every node: the partition as
    :func:`partition_of`, the sub-bucket from the hash of the whole key (a hash-tagged
    key's partition hashes only its tag), so one hash serves both for an untagged key.
    Remembered for up to :data:`MEMO_KEYS` short keys."""
    memo = _memo(partitions, buckets)
    slot = memo.get(key)
    if slot is None:
        slot = _hashed(key, partitions, buckets)
        if len(key) <= MEMO_KEY_LEN:
            if len(memo) >= MEMO_KEYS:
                memo.clear()
            memo[key] = slot
    return slot


def slot_lookup(partitions: int) -> Callable[[str], tuple[int, int]]:
    """``slot_of(key, partitions)`` as a one-argument function for a caller asking per key
    (a keyspace's partition index and held digests): a remembered key costs one lookup in
    the same memo, without a second call."""
    get = _memo(partitions, SUB_BUCKETS).get  # the memo is cleared, never replaced, so this stays its lookup

    def lookup(key: str) -> tuple[int, int]:
        slot = get(key)
        return slot_of(key, partitions) if slot is None else slot

    return lookup


def _memo(partitions: int, buckets: int) -> dict[str, tuple[int, int]]:
    """The memo of :func:`slot_of` for this placement, made on first use."""
    memo = _memos.get((partitions, buckets))
    if memo is None:
        memo = _memos[(partitions, buckets)] = {}
    return memo


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(utf8_bytes(text), digest_size=8).digest(), "big")


def _hashed(key: str, partitions: int, buckets: int) -> tuple[int, int]:
    """:func:`slot_of` without the memo."""
    if "{" in key:
        tag = hash_tag(key)
        if tag is not key:
            return _hash64(tag) % partitions, (_hash64(key) // partitions) % buckets
    h = _hash64(key)
    return h % partitions, (h // partitions) % buckets
