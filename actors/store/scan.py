"""Iterating over a keyspace a step at a time (SCAN, KEYS), and Redis's glob patterns.

**Cursor.** A cursor is ``partition + 1`` of the next partition to visit (0: start, and
the reply's 0: done), the same number on every node because partitions are (keys map to
one by :func:`~actors.store.partitions.partition_of` everywhere). A step returns *every*
live key of each partition it visits, never part of one, and visits partitions until it
has looked at ``count`` keys or run out. So Redis's guarantee holds whatever happens
between steps: a key present for the whole scan is in its partition at the step that
visits that partition, and is returned; a key may be returned more than once only if a
client restarts from an older cursor. What it costs: a step's size is at least one
partition's keys (with the default 256 partitions and a million keys, ~4,000), and the
partition index (:meth:`~actors.store.keyspace.Keyspace.partition_keys`) is built on
the first scan of a single node (30 bytes a key, see ``PARTITION_SLOT``).

**Globs** are Redis's (``stringmatchlen``): ``*``, ``?``, ``[abc]``, ``[^a]``, ``[a-z]``,
``\\x`` escapes. :func:`glob_match` is the iterative two-pointer matcher with one star
backtrack point, so a hostile pattern (``*a*a*a*...b``) costs O(len(pattern) *
len(key)), never exponential time.
"""

from __future__ import annotations

from typing import Any

from actors.protocol.collection import type_name
from actors.store.keyspace import VALUE

__all__ = ["glob_bytes", "glob_match", "scan_step", "signed_byte"]


def signed_byte(ch: str) -> int:
    """A byte as C's ``char`` on the platforms Redis runs on (signed): Redis compares a
    range's ends so, and ``[?-\xc3]`` holds every byte from 0x80 up to ``?``."""
    code = ord(ch)
    return code - 256 if code >= 128 else code


def _class_match(pattern: str, i: int, ch: str) -> tuple[bool, int]:
    """Match ``ch`` against the class starting after ``[`` at ``pattern[i]``; (matched,
    index after ``]``). An unterminated class runs to the end, as in Redis."""
    n = len(pattern)
    negate = i < n and pattern[i] == "^"
    if negate:
        i += 1
    matched = False
    while i < n and pattern[i] != "]":
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            i += 1
            if pattern[i] == ch:
                matched = True
        elif i + 2 < n and pattern[i + 1] == "-":  # (Redis: even ``a-]`` is a range, to ``]``)
            lo, hi = signed_byte(c), signed_byte(pattern[i + 2])
            if lo > hi:
                lo, hi = hi, lo
            if lo <= signed_byte(ch) <= hi:
                matched = True
            i += 2
        elif c == ch:
            matched = True
        i += 1
    return matched != negate, min(i + 1, n) if i < n else n


def glob_bytes(text: str) -> str:
    """``text``'s UTF-8 bytes, one character each (Latin-1): Redis matches bytes, so ``?``
    is one byte of ``é``, not the whole letter. RESP keys are text by ``surrogateescape``;
    a JSON client's may hold lone surrogates, which only ``surrogatepass`` encodes."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("latin-1")


def glob_match(pattern: str, text: str) -> bool:
    """Whether ``text`` matches Redis glob ``pattern`` (see the module docstring), byte by
    byte of their UTF-8 as Redis does."""
    if not pattern.isascii():
        pattern = glob_bytes(pattern)
    if not text.isascii():
        text = glob_bytes(text)
    p = t = 0
    np, nt = len(pattern), len(text)
    star_p = star_t = -1
    while t < nt:
        if p < np:
            c = pattern[p]
            if c == "*":
                while p < np and pattern[p] == "*":
                    p += 1
                if p == np:
                    return True
                star_p, star_t = p, t
                continue
            if c == "?":
                p += 1
                t += 1
                continue
            if c == "[":
                ok, after = _class_match(pattern, p + 1, text[t])
                if ok:
                    p = after
                    t += 1
                    continue
            elif c == "\\" and p + 1 < np:
                if pattern[p + 1] == text[t]:
                    p += 2
                    t += 1
                    continue
            elif c == text[t]:
                p += 1
                t += 1
                continue
        if star_p < 0:
            return False
        star_t += 1  # the last star takes one more character
        p, t = star_p, star_t
    while p < np and pattern[p] == "*":
        p += 1
    return p == np


def scan_step(
    keyspace: Any,
    cursor: int,
    count: int,
    match: str | None,
    wall: float,
    partitions_at_most: int = 0,
    kind: str | None = None,
) -> tuple[int, tuple[str, ...]]:
    """One step from ``cursor``: (next cursor, 0 when done; the live keys found).
    ``partitions_at_most``: visit no more partitions than this (0: no limit); ``kind``: only
    keys of this Redis type (``string``, ``hash``, ``set``; any other name finds none)."""
    partitions = keyspace.partitions
    part = max(cursor - 1, 0)
    last = partitions if partitions_at_most <= 0 else min(partitions, part + partitions_at_most)
    looked = 0
    found: list[str] = []
    while part < last and looked < count:
        for key in keyspace.partition_keys(part):
            looked += 1
            entry = keyspace.entry(key, wall)
            if entry is None:  # a tombstone, or expired now
                continue
            if kind is not None and type_name(entry[VALUE]) != kind:
                continue
            if match is None or glob_match(match, key):
                found.append(key)
        part += 1
    return (0 if part >= partitions else part + 1), tuple(found)
