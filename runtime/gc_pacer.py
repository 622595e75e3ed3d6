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

The older generations are the pacer's too. An explicit ``gc.collect(0)`` counts towards
generation 1's threshold but never collects it: only CPython's allocation trigger looks
at the older thresholds, and between ticks it no longer fires. Left at that, garbage in a
reference cycle that outlived one tick (a closed RESP connection and its session, say)
was never collected: 3,000 one-shot RESP connections cost a node 2.7 MB, for good. So a
tick collects generation 1 as well when its count passed its threshold (it holds only
what survived the last few ticks: cheap), and everything when generation 2's did, at
most once per :data:`FULL_MIN_INTERVAL_S` and rarely enough that full collections take
at most :data:`FULL_SHARE` of the time (spacing = last full pause / share).
"""

from __future__ import annotations

import asyncio
import gc
import time

from actors.kernel.latency import Histogram

__all__ = ["DEFAULT_INTERVAL_S", "FULL_MIN_INTERVAL_S", "FULL_SHARE", "YOUNG_THRESHOLD", "GcPacer", "tune_collector"]

#: How often the young generation is collected besides CPython's own trigger.
DEFAULT_INTERVAL_S = 0.01

#: The shortest spacing of the pacer's full collections, in seconds.
FULL_MIN_INTERVAL_S = 10.0

#: The most of the time full collections may take (their spacing is the last one's pause / this).
FULL_SHARE = 0.01

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

    One full collection runs first, so that start-up's tuples of atomic contents are
    untracked before they are frozen: a frozen object stays tracked for good, and a tuple
    holding a tracked one can never be untracked. The node's replica tuple (``("n1",)``)
    is built at start-up; every entry the keyspace stores holds it through its interned
    ``(node_id, replicas)`` meta. Frozen tracked, it kept every entry tracked: each one
    survived its young collection and piled up in the older generations (one tracked
    tuple per key), and the pacer's full collections walked them all: 145 ms at 300,000
    keys (about 0.4 s at 1M), against 5 ms with it untracked. After a load from disk
    that collection walks the loaded entries once (about 0.4 s at 1M keys), then never.
    """
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, oldest)
    gc.collect()
    gc.freeze()


class GcPacer:
    """Collects the young generation every ``interval_s`` on ``loop``. Being a timer that
    fires all the time anyway, it also measures the loop: how late each tick runs
    (``lag``: a loop busy with long turns runs timers late) and how long each collection
    it runs stalls it (``pauses``), for the node's metrics (runtime/metrics.py)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        interval_s: float = DEFAULT_INTERVAL_S,
        full_min_interval_s: float = FULL_MIN_INTERVAL_S,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        self._loop = loop
        self._interval_s = interval_s
        self._full_min_interval_s = full_min_interval_s
        self._full_next = loop.time() + full_min_interval_s  # no full collection before this
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0
        self.collections = 0
        self.lag = Histogram()
        self.pauses = Histogram()

    def start(self) -> None:
        if self._handle is None:
            self._arm()

    def _generation(self) -> int:
        """The oldest generation this tick collects (see the module's docstring)."""
        _, middle, oldest = gc.get_count()
        _, middle_threshold, oldest_threshold = gc.get_threshold()
        if oldest >= oldest_threshold and self._loop.time() >= self._full_next:
            return 2
        return 1 if middle >= middle_threshold else 0

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
            generation = self._generation()
            gc.collect(generation)
            pause = time.perf_counter() - began
            self.pauses.observe(pause)
            if generation == 2:
                self._full_next = self._loop.time() + max(self._full_min_interval_s, pause / FULL_SHARE)
            self.collections += 1
        self._arm()
