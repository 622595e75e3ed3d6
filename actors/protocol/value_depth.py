"""How deeply a value may nest: ``--max-value-depth`` (default 128, RedisJSON's limit).

Depth counts containers (lists, tuples, maps): ``"x"`` has depth 0, ``["x"]`` depth 1,
``[["x"]]`` depth 2. Decoders (``actors.protocol.codec``, ``actors.protocol.peer_codec``,
``runtime.framing``) refuse a value deeper than the limit with ``bad_request``, so what
reaches the store, the replicas and the reply encoders is always shallow: every C
encoder and decoder we use recurses (the JSON scanner and encoder count interpreter
frames, msgpack's unpacker and packer stop at 1,024 levels), and so would any walk
written recursively.

:data:`MAX_SUPPORTED_VALUE_DEPTH` is the largest limit those libraries honour with room
for the envelope around a value: a peer frame nests a value up to six levels down,
msgpack's packer refuses more than 511 levels in some releases (1,024 in others), and
the JSON scanner shares the interpreter's recursion limit of 1,000 with the stack it is
called from. A host should not accept a ``--max-value-depth`` above it.
"""

from __future__ import annotations

from typing import Any

from actors.protocol.errors import BadRequestError

__all__ = [
    "DEFAULT_MAX_VALUE_DEPTH",
    "MAX_SUPPORTED_VALUE_DEPTH",
    "depth_error",
    "exceeds_depth",
]

DEFAULT_MAX_VALUE_DEPTH = 128
MAX_SUPPORTED_VALUE_DEPTH = 500


def exceeds_depth(value: Any, limit: int) -> bool:
    """Whether ``value`` nests containers deeper than ``limit``.

    Iterative, level by level: it looks at no more than the first ``limit + 1`` levels
    of the value (a 100,000-deep list costs 129 steps at the default), and holds at
    most one level's containers at a time. A scalar costs two type checks.
    """
    t = type(value)
    if t is not list and t is not dict and t is not tuple:
        return False
    level = [value]
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: list[Any] = []
        push = below.append
        for container in level:
            for item in container.values() if type(container) is dict else container:
                t = type(item)
                if t is list or t is dict or t is tuple:
                    push(item)
        level = below
    return False


def depth_error(limit: int) -> BadRequestError:
    """The error for a value deeper than ``limit`` (the message names the option)."""
    return BadRequestError(f"value nested deeper than --max-value-depth {limit}")

