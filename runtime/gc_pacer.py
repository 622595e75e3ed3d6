"""Young-generation garbage collection on a clock as well as on CPython's allocation count.

Why: CPython runs a young (generation 0) collection when *allocations minus
deallocations* of tracked objects pass 700. A cache under steady overwrite load
allocates one new entry and frees the old one per write: the count stands still while
every new entry still joins the young generation's list. Nothing collects it until some
other burst of allocations does, and that collection then walks everything accumulated:
with 1,000,000 keys under ~150k overwrites/s, young collections of 60-110 ms (measured
with ``gc.callbacks``), each one a stall of the whole node. Collecting the young
generation every few milliseconds keeps each collection to what that interval created,
and untracks the entry tuples (atomic contents) as soon as possible.
"""

from __future__ import annotations

import asyncio
import gc
import time

from actors.kernel.latency import Histogram

__all__ = ["DEFAULT_INTERVAL_S", "YOUNG_THRESHOLD", "GcPacer", "tune_collector"]

#: How often the young generation is collected besides CPython's own trigger.
DEFAULT_INTERVAL_S = 0.01

#: CPython's own young-generation trigger in a node (its default is 700).
YOUNG_THRESHOLD = 10_000


def tune_collector() -> None:
    """Set the collector up for a node that paces it: raise the young generation's
    trigger from 700 to :data:`YOUNG_THRESHOLD` and freeze what start-up allocated.

    Why: a request allocates a handful of tracked objects (request, batch, envelope,
    reply), nearly all freed by reference counting before any collection sees them. At
    200k requests/s the default trigger runs about three thousand young collections a
    second, each with its fixed cost, and every tenth a middle one: 10-15% of a node's
    CPU at pipeline 16 (measured in process, pinned, same minutes). With the pacer
    collecting the young generation every :data:`DEFAULT_INTERVAL_S` anyway, a higher
    trigger only drops collections that found little; one young collection still walks
    at most what 10,000 allocations left alive. Frozen start-up objects (modules,
    classes, the node's actors) are never walked by the full collections again.
    """
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, oldest)
    gc.freeze()


class GcPacer:
    """Collects the young generation every ``interval_s`` on ``loop``. Being a timer that
    fires all the time anyway, it also measures the loop: how late each tick runs
    (``lag``: a loop busy with long turns runs timers late) and how long each collection
    it runs stalls it (``pauses``), for the node's metrics (runtime/metrics.py)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        self._loop = loop
        self._interval_s = interval_s
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0
        self.collections = 0
        self.lag = Histogram()
        self.pauses = Histogram()

    def start(self) -> None:
        if self._handle is None:
            self._arm()

    def _arm(self) -> None:
        self._due = self._loop.time() + self._interval_s
        self._handle = self._loop.call_at(self._due, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        self.lag.observe(max(0.0, self._loop.time() - self._due))
        if gc.isenabled():  # someone who disabled the collector meant it
            began = time.perf_counter()
            gc.collect(0)
            self.pauses.observe(time.perf_counter() - began)
            self.collections += 1
        self._arm()
