"""How a run recovered: the time from the heal to the last replica catching up, and the
writes the checkers found lost.

:func:`convergence_time` reads the trace, so it is finer than ``RunResult.convergence_s``
(which polls every owner every ``SETTLE_POLL_S``) and works on a real cluster's traces too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sim.runner import RunResult
from sim.traces import TraceEvent

if TYPE_CHECKING:
    from sim.runs import SimRun

__all__ = ["convergence_time", "lost_writes"]


def convergence_time(trace: Sequence[TraceEvent], healed_at: float | None = None) -> float | None:
    """Seconds from the heal to the last replica applying anything after it: when the
    last owner caught up (hints, anti-entropy, read repair, writes still in flight).

    ``healed_at`` defaults to the trace's last ``heal-all`` event (the runner heals
    everything when the workload stops); ``None`` when there is none. ``0.0`` when
    nothing needed applying after the heal. Finer than ``RunResult.convergence_s``, which
    polls every owner every 0.25 s.
    """
    if healed_at is None:
        heals = [t for t, _node, kind, _f in trace if kind == "heal-all"]
        if not heals:
            return None
        healed_at = heals[-1]
    last = healed_at
    for t, _node, kind, _fields in trace:
        if kind == "apply" and t >= healed_at:
            last = max(last, t)
    return last - healed_at


def lost_writes(run: SimRun | RunResult) -> int:
    """Keys whose latest acknowledged write the ``lost-writes`` checker found lost."""
    result = run if isinstance(run, RunResult) else run.result
    return sum(1 for v in result.violations if v.checker == "lost-writes")
