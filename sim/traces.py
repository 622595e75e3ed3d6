"""Traces: the timeline a run leaves, read back and cut into pieces.

A trace is a list of ``(t, node, kind, fields)`` events: ``SimHost.trace`` in memory, or
JSON lines (``python -m sim.run --trace``, ``python -m runtime.node --trace``) written by
:func:`trace_lines` and read by :func:`load_trace`, one file or several (a real cluster
writes one per node). The JSON-lines form is one schema for both worlds, so everything
that reads traces reads the simulator's and real nodes' alike.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

from actors.kernel.trace import trace_line

__all__ = ["TraceEvent", "alternate_writes", "load_trace", "trace_lines", "window"]

TraceEvent = tuple[float, str, str, dict[str, Any]]


def trace_lines(trace: Iterable[TraceEvent]) -> list[str]:
    """The JSON-lines form of a trace: one event per line, keys sorted, times rounded to 1 µs."""
    return [trace_line(t, node, kind, fields) for t, node, kind, fields in trace]


def _event(obj: Mapping[str, Any]) -> TraceEvent:
    fields = dict(obj)
    return (float(fields.pop("t")), str(fields.pop("node")), str(fields.pop("kind")), fields)


def load_trace(*sources: str | os.PathLike[str] | Iterable[str]) -> list[TraceEvent]:
    """Events from JSON-lines trace files (paths) or iterables of lines, merged by time.

    Each line is one object with ``t``, ``node``, ``kind`` and the event's fields (the
    form :func:`trace_lines` writes). Several sources (one file per real node) merge into
    one timeline; events at the same time keep their order within a source. Blank lines
    are skipped; a line cut short by a killed process (the last one) is dropped.
    """
    events: list[tuple[float, int, int, TraceEvent]] = []
    for index, source in enumerate(sources):
        if isinstance(source, (str, os.PathLike)):
            with open(source, encoding="utf-8") as f:
                lines = f.read().splitlines()
        else:
            lines = list(source)
        for n, line in enumerate(lines):
            line = line.strip()
            if not line:
                continue
            try:
                event = _event(json.loads(line))
            except json.JSONDecodeError:
                if n == len(lines) - 1:
                    continue  # a torn last line
                raise
            events.append((event[0], index, n, event))
    events.sort(key=lambda e: e[:3])
    return [e[3] for e in events]


def window(trace: Iterable[TraceEvent], start: float = -math.inf, end: float = math.inf) -> list[TraceEvent]:
    """The events with ``start <= t < end`` (e.g. one half of a run, to calibrate on one
    and compare on the other)."""
    return [e for e in trace if start <= e[0] < end]


def alternate_writes(trace: Iterable[TraceEvent]) -> tuple[list[TraceEvent], list[TraceEvent]]:
    """Two traces, each with every other ``write`` (and its ``apply`` events); every other
    event goes to both. Calibrate on one and compare on the other: both halves see the
    same machine at the same times, so a busy spell affects them alike."""
    halves: tuple[list[TraceEvent], list[TraceEvent]] = ([], [])
    group: dict[tuple[str, tuple[Any, ...]], int] = {}
    writes = 0
    for event in trace:
        _t, _node, kind, fields = event
        if kind in ("write", "apply"):
            key = (fields["key"], tuple(fields["version"]))
            if kind == "write" and key not in group:
                group[key] = writes % 2
                writes += 1
            if key in group:
                halves[group[key]].append(event)
                continue
        halves[0].append(event)
        halves[1].append(event)
    return halves
