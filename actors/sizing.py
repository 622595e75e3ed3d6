"""Estimated memory footprint of keys and values, for ``stats`` (and later eviction).

An estimate, not ``sys.getsizeof``: it counts payload bytes plus a fixed overhead per
object, and costs time proportional to the value's size, which decoding it already did.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ENTRY_OVERHEAD", "VOLATILE_OVERHEAD", "estimate_size"]

#: Everything an entry costs besides its key's characters and its value: the key's str
#: header, the keyspace dict slot, the entry tuple (80 B) and its version fields (the
#: partition-index slot, once a cluster needs that index, is charged separately:
#: ``keyspace.PARTITION_SLOT``). Calibrated on CPython 3.11 (64-bit) against memory growth
#: at many keys of 32 B values (``python -m bench.memory`` measures it against RSS), so
#: that ``--max-memory`` bounds what the process holds.
ENTRY_OVERHEAD = 196

#: What an entry with a deadline costs on top: its deadline float (the entry tuple has
#: the field either way), and its slots in the keyspace's volatile-key list and position
#: dict (the janitor's sample index), position int included. Measured on CPython 3.11
#: (64-bit) at 1M keys: 103 B/key of RSS more than the same keys without a TTL.
VOLATILE_OVERHEAD = 104

_SCALAR = 32  # int/float/bool/None objects and small headers
_CONTAINER = 56


def estimate_size(value: Any) -> int:
    """Approximate bytes held by ``value`` (a JSON/msgpack value)."""
    t = type(value)
    if t is str:
        return 49 + len(value)
    if t is bytes:
        return 33 + len(value)
    if t is list or t is tuple:
        return _CONTAINER + 8 * len(value) + sum(estimate_size(v) for v in value)
    if t is dict:
        return (
            _CONTAINER * 2
            + 24 * len(value)
            + sum(estimate_size(k) + estimate_size(v) for k, v in value.items())
        )
    return _SCALAR
