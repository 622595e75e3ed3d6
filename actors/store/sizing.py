"""Estimated memory footprint of keys and values, for ``stats`` (and later eviction).

An estimate, not ``sys.getsizeof``: it counts payload bytes plus a fixed overhead per
object, and costs time proportional to the value's size, which decoding it already did.

The walk over a container is iterative (an explicit stack), never recursive: a value
nested deeper than the interpreter's recursion limit is sized like any other (decoders
refuse values past ``--max-value-depth``, but a value that reaches the store some other
way must never turn size accounting into a ``RecursionError``).
"""

from __future__ import annotations

from typing import Any

from actors.protocol.collection import Coll

__all__ = ["BYTES_HEADER", "COLL_ITEM_OVERHEAD", "ENTRY_OVERHEAD", "VOLATILE_OVERHEAD", "estimate_size"]

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
_STR = 49  # str header (compact ASCII); plus one byte per character
_BYTES = 33  # bytes header; plus one byte per byte
#: (public: the keyspace sizes a bytes entry inline, on its hot path)
BYTES_HEADER = _BYTES
_LIST_SLOT = 8  # one pointer per list/tuple item
_DICT_SLOT = 24  # hash, key and value pointers per dict item


def estimate_size(value: Any) -> int:
    """Approximate bytes held by ``value`` (a JSON/msgpack value).

    A str is ``49 + len``, bytes ``33 + len``, a list or tuple ``56 + 8 * len`` plus its
    items, a dict ``112 + 24 * len`` plus its keys and values, anything else 32.
    """
    t = type(value)
    if t is str:  # the hot path: most values are strings or bytes
        return _STR + len(value)
    if t is bytes:
        return _BYTES + len(value)
    if t is list or t is tuple or t is dict:
        return _container_size(value)
    if t is Coll:
        return _coll_size(value)
    return _SCALAR


#: What one field or member of a hash or set costs besides its name's characters and its
#: value: the dict slot, the name's str header, the ``(value, version)`` tuple and the
#: version (a NamedTuple of three, shared by the fields one write wrote, counted whole).
COLL_ITEM_OVERHEAD = _DICT_SLOT + _STR + _CONTAINER + 2 * _LIST_SLOT + _CONTAINER + 3 * _LIST_SLOT


def _coll_size(coll: Coll) -> int:
    """A hash's or set's state: its object and dict, plus each item (tombstones too)."""
    total = 2 * _CONTAINER + _CONTAINER
    for name, (value, _) in coll.items.items():
        t = type(value)
        if t is bytes:
            total += COLL_ITEM_OVERHEAD + len(name) + _BYTES + len(value)
        elif t is str:
            total += COLL_ITEM_OVERHEAD + len(name) + _STR + len(value)
        else:
            total += COLL_ITEM_OVERHEAD + len(name) + (_SCALAR if t is not list and t is not dict else estimate_size(value))
    return total


def _container_size(value: Any) -> int:
    """:func:`estimate_size` of a list, tuple or dict, walked with an explicit stack.

    Scalars, strings and bytes inside a container are added as the container is scanned;
    only nested containers go on the stack, so memory stays proportional to the value
    and depth costs no interpreter frames.
    """
    total = 0
    stack = [value]
    pop = stack.pop
    push = stack.append
    while stack:
        container = pop()
        if type(container) is dict:
            total += 2 * _CONTAINER + _DICT_SLOT * len(container)
            items: Any = (*container, *container.values())
        else:
            total += _CONTAINER + _LIST_SLOT * len(container)
            items = container
        for item in items:
            t = type(item)
            if t is str:
                total += _STR + len(item)
            elif t is bytes:
                total += _BYTES + len(item)
            elif t is list or t is tuple or t is dict:
                push(item)
            else:
                total += _SCALAR
    return total
