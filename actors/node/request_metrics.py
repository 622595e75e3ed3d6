"""Requests by command and outcome, and their latency by command and consistency level.

Counted by the ``Node`` actor when a batch's replies leave (:meth:`ReplyOrder.flush`):
latency is from the batch's arrival at the node (the coordinator accepting it) to its
reply being handed to the host, the same figure for every request of the batch (replies
leave together, in order). Plain integers in the actor; exported on demand through
``stats`` (runtime/metrics.py makes Prometheus families of them, the simulator a summary).

Labels are bounded by construction: ``command`` is a request kind's wire name (the
kinds table, plus ``invalid`` for what failed to decode and ``auth`` for what the host
answered itself), ``outcome`` is ``ok`` or an :class:`~actors.protocol.errors.ErrorCode`,
``consistency`` a level of :data:`~actors.protocol.consistency.CONSISTENCY_LEVELS` or
``none`` for requests that are not coordinated reads or writes. Never a key.
"""

from __future__ import annotations

from bisect import bisect_left
from operator import attrgetter
from typing import Any

from actors.kernel.latency import LATENCY_BUCKETS_S, Histogram
from actors.protocol.kinds import Route, route_of, wire_name
from actors.protocol.edge import typed
from actors.protocol.messages import Ack, ErrorReply, Expire

__all__ = ["RequestMetrics"]

#: ``command`` of a request that failed to decode (its slot holds the ErrorReply).
INVALID = "invalid"
_CONSISTENCY = attrgetter("consistency")
_NO_LEVEL = frozenset((None,))

#: The commands table's key of an ``Expire`` without a TTL (wire name ``persist``).
PERSIST = "persist"


class _Command:
    """One request type's counters: replies by outcome, latency by consistency level."""

    __slots__ = ("default_level", "latency", "name", "outcomes", "routed")

    def __init__(self, name: str, default_level: str) -> None:
        self.name = name
        #: The level a request without its own ``consistency`` gets (``none``: not coordinated).
        self.default_level = default_level
        self.routed = default_level != "none"
        self.outcomes: dict[str, int] = {}
        self.latency: dict[str, Histogram] = {}


class RequestMetrics:
    """Counts of one node's client requests; ``read_level``/``write_level``: its defaults."""

    __slots__ = ("_commands", "_leveled", "_read_level", "_write_level")

    def __init__(self, read_level: str, write_level: str) -> None:
        self._read_level = read_level
        self._write_level = write_level
        self._commands: dict[Any, _Command] = {}
        #: Per request type: whether it has a ``consistency`` field.
        self._leveled: dict[type, bool] = {}

    def record(self, requests: tuple[Any, ...], replies: list[Any], seconds: float) -> None:
        """A batch's replies left ``seconds`` after it arrived.

        Hot path: a batch is mostly one kind of request answered ok, which C-level passes
        over the batch recognise (every reply not an error, one type, one ``consistency``)
        and count at once. Other batches are walked for runs of the same type and level
        answered ok, counted once per run (:meth:`_add`); errors and ``expire`` (two wire
        names for one type) one by one."""
        bucket = bisect_left(LATENCY_BUCKETS_S, seconds)
        if len(requests) == 1:  # pipeline 1: no run to find
            request, reply = requests[0], replies[0]
            outcome = reply.code.value if type(reply) is ErrorReply else "ok"
            self._add(request, getattr(request, "consistency", None), outcome, 1, bucket, seconds)
            return
        if requests:  # the common batch, one kind answered ok, in three passes of C loops
            first = requests[0]
            t = type(first)
            if t is not Expire and ErrorReply not in map(type, replies) and len(set(map(type, requests))) == 1:
                leveled = self._leveled.get(t)
                if leveled is None:
                    leveled = self._leveled[t] = hasattr(first, "consistency")
                levels = set(map(_CONSISTENCY, requests)) if leveled else _NO_LEVEL
                if len(levels) == 1:
                    self._add(first, next(iter(levels)), "ok", len(requests), bucket, seconds)
                    return
        run_type: Any = None
        run_level: Any = None
        run = 0
        for request, reply in zip(requests, replies):
            t = type(request)
            level = getattr(request, "consistency", None)
            if type(reply) is ErrorReply or t is Expire:
                self._add(request, level, reply.code.value if type(reply) is ErrorReply else "ok", 1, bucket, seconds)
            elif t is run_type and level == run_level:
                run += 1
            else:
                if run:
                    self._add(run_request, run_level, "ok", run, bucket, seconds)
                run_type, run_level, run_request, run = t, level, request, 1
        if run:
            self._add(run_request, run_level, "ok", run, bucket, seconds)

    def _add(self, request: Any, level: str | None, outcome: str, n: int, bucket: int, seconds: float) -> None:
        """Count ``n`` requests like ``request`` (its ``consistency``: ``level``) answered ``outcome``."""
        t = type(request)
        key = PERSIST if t is Expire and request.persist else t  # one type, two wire names
        command = self._commands.get(key)
        if command is None:
            command = self._learn(request, key)
        outcomes = command.outcomes
        outcomes[outcome] = outcomes.get(outcome, 0) + n
        level = (level or command.default_level) if command.routed else "none"
        histogram = command.latency.get(level)
        if histogram is None:
            histogram = command.latency[level] = Histogram()
        histogram.counts[bucket] += n
        histogram.sum += seconds * n

    def _learn(self, request: Any, key: Any) -> _Command:
        t = type(request)
        if t is str or t is tuple:  # a plain get or set (actors.protocol.edge): counted as one
            typed_request = typed(request)
            command = self._commands.get(type(typed_request)) or self._learn(typed_request, type(typed_request))
            self._commands[key] = command
            return command
        if t is ErrorReply:
            name, level = INVALID, "none"
        elif t is Ack:
            name, level = "auth", "none"
        else:
            route = route_of(request)
            name = wire_name(request)
            level = {Route.READ: self._read_level, Route.WRITE: self._write_level}.get(route, "none")  # type: ignore[arg-type]
        command = self._commands[key] = _Command(name, level)
        return command

    def snapshot(self) -> dict[str, Any]:
        """``stats`` form: ``requests_by_command`` ({command: {outcome: n}}) and
        ``request_latency`` ({command: {level: histogram}}), commands in name order."""
        commands = sorted(dict.fromkeys(self._commands.values()), key=lambda c: c.name)  # (plain items share theirs)
        return {
            "requests_by_command": {c.name: dict(sorted(c.outcomes.items())) for c in commands if c.outcomes},
            "request_latency": {
                c.name: {level: h.snapshot() for level, h in sorted(c.latency.items())} for c in commands if c.latency
            },
        }
