"""The clock bound: refuse what a peer stamped further in the future than clocks can disagree.

A version (HLC stamp) is ``(wall_ms, logical, node_id)``. Last-write-wins trusts it, and
every node's :class:`~actors.protocol.version.HybridClock` moves past what it observes,
so one version from the far future would win every later write to its key and drag every
clock forward for good. Clocks of honest nodes differ by at most ``max_clock_skew_s``
(``--max-clock-skew``, CockroachDB's max-offset); anything stamped further ahead than
this node's wall clock plus that bound is not a clock difference but a fault or a forgery.

Rules (every place a node takes a version from a peer goes through here):

- a peer's replica op (``Write``/``Remove``) beyond the bound is not stored and not
  observed by the clock; its answer is an ``unavailable`` error for that op, so the
  coordinator counts a refusal, never an ack (a skewed coordinator's writes fail, they are
  not acknowledged and then lost);
- an ``Apply`` (read repair, push) keeps only the records within the bound;
- a replica's answer carrying a record or a conflict version beyond the bound counts as
  that replica's refusal (the read or write fails if too few others answer);
- every refusal is counted (``versions_refused`` in ``stats``), traced
  (``version_refused``: who sent it, how far beyond the bound) and logged (:class:`RefusalLog`: a
  peer's 1st, 2nd, 4th, 8th... refusal of a kind, so a flood of them cannot flood the log).

Pure functions of the message, the limit and nothing else: the callers count, and trace
and log through a :class:`RefusalLog`.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from actors.protocol.errors import ErrorCode
from actors.protocol.messages import ErrorReply
from actors.protocol.record import Record
from actors.protocol.replica_ops import Apply, ItemResults
from actors.protocol.version import Version

__all__ = ["RefusalLog", "Refused", "bound_ops", "bound_records", "bound_results", "limit_ms", "refusal"]

#: (how many versions a message carried beyond the limit, the furthest one's wall_ms)
Refused = tuple[int, int]


def limit_ms(wall_s: float, max_skew_s: float) -> int:
    """The latest ``wall_ms`` a peer's version may carry at local wall time ``wall_s``."""
    return int(wall_s * 1000) + int(max_skew_s * 1000)


def refusal(wall_ms: int, limit: int) -> ErrorReply:
    """The answer for an op or a replica result refused for its version."""
    return ErrorReply(
        ErrorCode.UNAVAILABLE,
        f"unavailable: a version {wall_ms - limit} ms beyond the max clock skew ahead of this node's clock was refused",
    )


def bound_records(records: tuple[Record, ...], limit: int) -> tuple[tuple[Record, ...], Refused]:
    """``records`` without those stamped beyond ``limit`` (the same tuple when none is)."""
    furthest = 0
    for record in records:
        if record is not None and record.version.wall_ms > limit:
            break
    else:
        return records, (0, 0)
    kept = []
    refused = 0
    for record in records:
        if record is not None and record.version.wall_ms > limit:
            refused += 1
            furthest = max(furthest, record.version.wall_ms)
        else:
            kept.append(record)
    return tuple(kept), (refused, furthest)


def bound_ops(ops: tuple[Any, ...], limit: int) -> tuple[tuple[tuple[int, Any], ...], dict[int, ErrorReply], Refused]:
    """Split a peer's replica ops: ``(admitted (index, op) pairs, refused index -> error,
    (count, furthest))``. An ``Apply`` loses its records beyond the limit (refused whole,
    if that leaves none)."""
    admitted: list[tuple[int, Any]] = []
    errors: dict[int, ErrorReply] = {}
    refused = furthest = 0
    for index, op in enumerate(ops):
        version = getattr(op, "version", None)
        if version is not None:
            if version.wall_ms > limit:
                refused += 1
                furthest = max(furthest, version.wall_ms)
                errors[index] = refusal(version.wall_ms, limit)
                continue
        elif type(op) is Apply:
            kept, (n, far) = bound_records(op.records, limit)
            if n:
                refused += n
                furthest = max(furthest, far)
                if not kept:
                    errors[index] = refusal(far, limit)
                    continue
                op = Apply(kept)
        admitted.append((index, op))
    return tuple(admitted), errors, (refused, furthest)


def _result_beyond(result: Any, limit: int) -> int:
    """The furthest ``wall_ms`` beyond ``limit`` in one op's answer (0: none)."""
    t = type(result)
    if t is Version:
        return result.wall_ms if result.wall_ms > limit else 0
    if t is tuple:  # a fetch: records (or None)
        far = 0
        for record in result:
            if record is not None and record.version.wall_ms > limit:
                far = max(far, record.version.wall_ms)
        return far
    if t is ItemResults:
        far = 0
        for item in result:
            if type(item) is Version and item.wall_ms > limit:
                far = max(far, item.wall_ms)
        return far
    return 0


def bound_results(results: tuple[Any, ...], limit: int) -> tuple[tuple[Any, ...], Refused]:
    """A replica's answers with each answer carrying a version beyond ``limit`` replaced by a
    refusal (an ``ItemResults`` item by item); the same tuple when none does."""
    out: list[Any] | None = None
    refused = furthest = 0
    for i, result in enumerate(results):
        far = _result_beyond(result, limit)
        if not far:
            continue
        if out is None:
            out = list(results)
        refused += 1
        furthest = max(furthest, far)
        if type(result) is ItemResults:
            out[i] = ItemResults(
                refusal(item.wall_ms, limit) if type(item) is Version and item.wall_ms > limit else item for item in result
            )
        else:
            out[i] = refusal(far, limit)
    if out is None:
        return results, (0, 0)
    return tuple(out), (refused, furthest)


#: Peers and kinds a RefusalLog counts at most (peers are authenticated: a handful).
_LOG_KEYS = 1024


class RefusalLog:
    """Reports refusals from beyond the clock bound: each one traced through ``trace`` when
    given (``version_refused``: who sent it, how many versions, how far beyond the bound, in
    which message; a heartbeat's refusal is traced by its caller as its own event), and
    logged at a peer's 1st, 2nd, 4th, 8th... of each kind (a flood cannot flood the log)."""

    def __init__(self, logger: logging.Logger, node_id: str, trace: Callable[..., None] | None = None) -> None:
        self.logger = logger
        self.node_id = node_id
        self.trace = trace
        self._counts: dict[tuple[str, str], int] = {}

    def note(self, peer: str, kind: str, refused: int, ahead_ms: int) -> None:
        if self.trace is not None:
            self.trace("version_refused", peer=peer, versions=refused, beyond_ms=ahead_ms, message=kind)
        key = (peer, kind)
        n = self._counts.get(key, 0) + 1
        if n == 1 and len(self._counts) >= _LOG_KEYS:
            self._counts.clear()
        self._counts[key] = n
        if n & (n - 1) == 0:
            self.logger.warning(
                "%s: refused %d version(s) in a %s from %s, up to %d ms beyond the max clock skew ahead of this "
                "node's clock (refusal %d from it)",
                self.node_id, refused, kind, peer, ahead_ms, n,
            )
