"""Estimated memory footprint of keys and values, for ``stats`` (and later eviction).

An estimate, not ``sys.getsizeof``: it counts payload bytes plus a fixed overhead per
object, and costs time proportional to the value's size, which decoding it already did.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ENTRY_OVERHEAD", "estimate_size"]

#: Everything an entry costs besides its key's characters and its value: the key's str
#: header, the keyspace and partition-index dict slots, the Entry object, its Version
#: (tuple + int) and bookkeeping. Calibrated on CPython 3.11 (64-bit) against RSS growth at
#: 1,000,000 keys of 32 B values (``python -m bench.memory``: 390 B/key by RSS against 235
#: accounted with the former 160), so that ``--max-memory`` bounds what the process holds.
ENTRY_OVERHEAD = 310

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
