"""Key -> partition: a stable hash, the same on every node and in every process.

The keyspace is split into partitions so that nodes can compare, stream and hand off a
partition at a time; which members own a partition is ``actors.cluster.placement``'s job.
Hashes are BLAKE2b of UTF-8 bytes, never Python's ``hash()`` (salted per process).
"""

from __future__ import annotations

import hashlib

__all__ = ["DEFAULT_PARTITIONS", "partition_of", "utf8_bytes"]

DEFAULT_PARTITIONS = 256


def utf8_bytes(text: str) -> bytes:
    # Lone surrogates can arrive from JSON clients; they must hash, not raise.
    return text.encode("utf-8", "surrogatepass")


def partition_of(key: str, partitions: int = DEFAULT_PARTITIONS) -> int:
    """The partition of ``key``: the same on every node, in every process."""
    digest = hashlib.blake2b(utf8_bytes(key), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions
