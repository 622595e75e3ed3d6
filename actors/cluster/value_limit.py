"""In a cluster, how many bytes of values a write sends to a peer, and its refusal.

A peer frame is at most 64 MiB (the runtime's limit); a frame over it is dropped by the
sender, so a write carrying a bigger value would be applied at its coordinator only and
time out, and anti-entropy and hand-offs could never move it. So a node with peers
refuses such a write at once, applied nowhere, with ``value_too_large``:

- at planning (``actors.node.actor``): the values a request carries (a SET's, an MSET's,
  an APPEND's, a transaction's, a hash or set command's arguments) over
  ``NodeConfig.max_cluster_value_bytes``;
- at a read-modify-write's coordinator (``actors.cluster.rmw_coordinator``): the value it
  would write (an APPEND's or SETRANGE's result, a hash's whole state, which travels as
  one record) or a transaction's writes together.

Sizes are ``len`` of strings and bytes already in hand (no encoding); other values (a
JSON client's lists and maps) are sized by :func:`actors.store.sizing.estimate_size`
only when they are not strings, and arrive through doors bounded to 1 MiB anyway.
A node alone (no other member) keeps the bound of its doors (``--proto-max-bulk-len``).
"""

from __future__ import annotations

from typing import Any

from actors.protocol.collection import Coll
from actors.protocol.errors import ErrorCode
from actors.protocol.messages import ErrorReply, Set
from actors.protocol.txn_messages import Multi
from actors.store.sizing import estimate_size

__all__ = ["request_value_bytes", "too_large", "value_bytes", "written_bytes"]


def value_bytes(value: Any) -> int:
    """Bytes of ``value`` as a peer message carries it, about: ``len`` of a str or bytes."""
    t = type(value)
    if t is bytes or t is str or t is bytearray:
        return len(value)
    if value is None or t is int or t is float or t is bool:
        return 0
    return estimate_size(value)


def request_value_bytes(request: Any) -> int:
    """Bytes of the values client request ``request`` carries (0 for none)."""
    t = type(request)
    if t is Set:  # the hot path
        return value_bytes(request.value)
    if t is Multi:
        return sum(request_value_bytes(inner) for inner in request.requests)
    entries = getattr(request, "entries", None)  # mset
    if entries is not None:
        return sum(value_bytes(value) for _key, value in entries)
    args = getattr(request, "args", None)  # hash and set commands
    if type(args) is tuple:
        return sum(value_bytes(arg) for arg in args)
    return value_bytes(getattr(request, "value", None))


def written_bytes(old: Any, new: Any) -> int:
    """Bytes of the record a write of ``new`` leaves where ``old`` was (values, or None):
    for a hash or set (a :class:`Coll` delta) its whole state after the delta, since
    anti-entropy and hand-offs carry a key's record in one message; else ``new``'s."""
    if type(new) is not Coll:
        return value_bytes(new)
    items = {**old.items, **new.items} if type(old) is Coll else new.items
    return sum(len(name) + value_bytes(value) for name, (value, _version) in items.items())


def too_large(size: int, limit: int, rid: Any) -> ErrorReply:
    """The refusal of a write sending ``size`` bytes of values to peers (over ``limit``)."""
    return ErrorReply(
        ErrorCode.VALUE_TOO_LARGE,
        f"value too large for a cluster: {size} bytes of values would be replicated in one peer message, "
        f"over max-cluster-value-bytes {limit} (peer frames are at most 64 MiB); nothing was applied",
        rid,
    )
