"""Plain ``GET key`` and ``SET key value``: recognised without the command table, and
their replies built a run at a time.

Why: they are most of what a cache is sent (``redis-benchmark``'s SET and GET, a
pipeline of either). Through the table each costs a lookup, an arity check, a handler
call and a ``Deferred`` tuple, and each reply a builder call. Here one dict lookup
recognises the command, and consecutive plain commands of one kind in a read share one
reply segment: ``+OK`` times the run when every set was acknowledged, else one join.

Same requests, same replies: :func:`take_plain` makes the plain items that stand for
exactly the ``Get``/``Set`` that :func:`~runtime.resp_keyspace.cmd_get` and
:func:`~runtime.resp_strings.cmd_set` make for these commands
(:func:`actors.protocol.edge.typed`; the node then plans, checks memory, versions,
counts and invalidates WATCHes as for any request), and stops at anything else: another spelling
(``Set``), other arguments, an empty or reserved key (the table answers those errors).
The connection only uses it outside MULTI and without passwords on the node (the
table's ACL checks); MONITOR sees every command before either path.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from actors.protocol.messages import ACK, Reply, Value
from runtime.resp import OK
from runtime.resp_keyspace import _b_value
from runtime.resp_strings import _b_set

__all__ = ["RUN_BYTES", "b_get_run", "b_set_run", "take_plain"]

#: Arguments (name included) of each plain command, by the two spellings clients send.
_PLAIN = {b"GET": 2, b"get": 2, b"SET": 3, b"set": 3}
#: A run of GET replies is joined into one reply up to this many bytes; past it the rest
#: is yielded reply by reply, so the connection's output limits still pace big values.
RUN_BYTES = 64 << 10


def take_plain(commands: list[list[bytes]], start: int, requests: list[Any], segments: list[Any], proto: int) -> int:
    """Take the plain GET/SETs at ``commands[start:]``, up to the first command that is
    not one: each becomes its plain item in ``requests`` (a get's key, a set's
    ``(key, value, None)``: :mod:`actors.protocol.edge`; the node's planner puts them in
    its store run as they are), and each run of one kind one segment in ``segments``
    (``[builder, first request, proto, count]``, as the connection's segments are).
    Returns the index of the first command not taken.

    Not one: another spelling (``Set``), other arguments, an empty or reserved key (the
    table answers those errors). One loop over the read rather than a call per command:
    this is most of what a cache is sent."""
    plain = _PLAIN
    run: list[Any] = []
    run_args = 0  # arguments of the open run's commands (2: gets, 3: sets; 0: none yet)
    for i in range(start, len(commands)):
        argv = commands[i]
        n = plain.get(argv[0])
        if n != len(argv):
            break
        raw = argv[1]
        if raw < b"\x01" and (not raw or raw[:7] == b"\x00flush{"):  # errors: the table says them (resp_keyspace._key)
            break
        if n != run_args:
            if run_args:
                run[3] = len(requests) - run[1]
            run = [b_get_run if n == 2 else b_set_run, len(requests), proto, 0]
            segments.append(run)
            run_args = n
        key = raw.decode("utf-8", "surrogateescape")
        requests.append(key if n == 2 else (key, argv[2], None))
    else:
        i = len(commands)
    if run_args:
        run[3] = len(requests) - run[1]
    return i


def b_set_run(replies: Sequence[Reply], start: int, proto: int, count: int) -> bytes:
    """The replies of ``count`` plain sets from ``replies[start]``: ``+OK`` each when all
    were acknowledged (the common case, one C-level count), else each as SET answers it."""
    if count == 1:
        return _b_set(replies, start, proto, None)
    if replies[start : start + count].count(ACK) == count:
        return OK * count
    return b"".join([_b_set(replies, i, proto, None) for i in range(start, start + count)])


def b_get_run(replies: Sequence[Reply], start: int, proto: int, count: int) -> bytes | Iterator[bytes]:
    """The replies of ``count`` plain gets from ``replies[start]``, in one join (one
    iterator past :data:`RUN_BYTES`, see there)."""
    if count == 1:
        return _b_value(replies, start, proto, None)
    parts = []
    size = 0
    end = start + count
    for i in range(start, end):
        reply = replies[i]
        if type(reply) is Value and reply.found and type(reply.value) is bytes:  # (a hit of bytes, inline)
            value = reply.value
            part = b"$%d\r\n%b\r\n" % (len(value), value)
        else:
            part = _b_value(replies, i, proto, None)
        parts.append(part)
        size += len(part)
        if size > RUN_BYTES and i + 1 < end:
            return _parts_after(parts, replies, i + 1, end, proto)
    return b"".join(parts)


def _parts_after(parts: list[bytes], replies: Sequence[Reply], i: int, end: int, proto: int) -> Iterator[bytes]:
    yield b"".join(parts)
    for j in range(i, end):
        yield _b_value(replies, j, proto, None)

