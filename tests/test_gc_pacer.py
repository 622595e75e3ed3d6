"""The GC pacer collects the young generation on a clock, whatever the allocation count."""

from __future__ import annotations

import asyncio
import gc

import pytest

from runtime.gc_pacer import GcPacer


def test_young_objects_are_collected_on_the_clock_when_the_count_never_triggers() -> None:
    thresholds = gc.get_threshold()
    gc.set_threshold(10**9)  # CPython's own trigger never fires: only the pacer collects
    try:
        meta = tuple(["node1", tuple(["node1"])])  # shared by every entry of one writer: old by now
        gc.collect()
        gc.collect()
        assert not gc.is_tracked(meta)
        entry = tuple(["value", 1_700_000_000_000, 3, meta])  # as the keyspace builds them at run time
        assert gc.is_tracked(entry)

        async def run() -> GcPacer:
            pacer = GcPacer(asyncio.get_running_loop(), interval_s=0.005)
            pacer.start()
            for _ in range(1000):  # (a loaded machine runs the timers late: wait for them, up to ~5 s)
                await asyncio.sleep(0.005)
                if pacer.collections >= 3:
                    break
            pacer.stop()
            return pacer

        pacer = asyncio.run(run())
        assert pacer.collections >= 3
        assert not gc.is_tracked(entry)  # the young collection untracked the atomic tuple
    finally:
        gc.set_threshold(*thresholds)


def test_a_disabled_collector_stays_disabled_and_stop_stops() -> None:
    async def run() -> int:
        pacer = GcPacer(asyncio.get_running_loop(), interval_s=0.002)
        gc.disable()
        try:
            pacer.start()
            await asyncio.sleep(0.02)
        finally:
            gc.enable()
        assert pacer.collections == 0
        for _ in range(1000):  # (up to ~2 s on a loaded machine)
            await asyncio.sleep(0.002)
            if pacer.collections:
                break
        pacer.stop()
        after_stop = pacer.collections
        assert after_stop > 0
        await asyncio.sleep(0.02)
        return after_stop - pacer.collections

    assert asyncio.run(run()) == 0


def test_the_interval_must_be_positive() -> None:
    with pytest.raises(ValueError):
        GcPacer(asyncio.new_event_loop(), interval_s=0)


def test_tune_collector_raises_the_young_trigger_and_freezes_start_up() -> None:
    # In a child process: the collector's settings are process-wide (this worker keeps its own).
    import subprocess
    import sys

    code = (
        "import gc; from runtime.gc_pacer import YOUNG_THRESHOLD, tune_collector; "
        "before = gc.get_threshold(); tune_collector(); after = gc.get_threshold(); "
        "assert after == (YOUNG_THRESHOLD,) + before[1:], (before, after); "
        "assert gc.get_freeze_count() > 1000, gc.get_freeze_count(); print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


class _Cycle:
    """Garbage only the cycle collector can free (as a closed RESP connection and its session)."""

    def __init__(self) -> None:
        self.me = self


@pytest.mark.parametrize("ticks_alive", [3, 40])
def test_cycles_that_outlived_ticks_are_collected_by_the_pacer_alone(ticks_alive: int) -> None:
    """A cycle that lived through a few ticks has left the young generation (3: generation
    1; 40: past a generation-1 collection, so generation 2). With CPython's own trigger
    off, as in a node between ticks, the pacer alone must still free it. Before the
    pacer collected the older generations, neither cycle was ever freed."""
    import weakref

    thresholds = gc.get_threshold()
    gc.collect()
    gc.set_threshold(10**9, thresholds[1], thresholds[2])
    try:

        async def run() -> bool:
            pacer = GcPacer(asyncio.get_running_loop(), interval_s=0.002, full_min_interval_s=0.05)
            pacer.start()
            cycle = _Cycle()
            ref = weakref.ref(cycle)
            for _ in range(ticks_alive):
                await asyncio.sleep(0.003)
            del cycle
            for _ in range(1000):  # up to ~3 s: generation 2 waits for its count and the spacing
                await asyncio.sleep(0.003)
                if ref() is None:
                    break
            pacer.stop()
            return ref() is None

        assert asyncio.run(run()), "the pacer never collected a cycle older than one tick"
    finally:
        gc.set_threshold(*thresholds)


def test_entries_holding_a_start_up_tuple_are_untracked_after_tune_collector() -> None:
    """A tuple of atomic contents built at start-up (the node's replica tuple, which every
    entry holds through its interned meta) must be untracked before start-up is frozen:
    frozen, it stays tracked, and then no entry holding it could ever be untracked; every
    entry would survive into the older generations and every full collection would walk
    them all (O(keys) pauses). In a child process: the collector's settings are process-wide."""
    import subprocess
    import sys

    code = (
        "import gc; from runtime.gc_pacer import tune_collector; "
        "replicas = tuple(['n1']); "  # built at start-up, before the collector is tuned
        "tune_collector(); "
        "meta = ('n1', replicas); entry = ('value', 1_700_000_000_000, 0, meta, None); "  # as set_all builds them
        "gc.collect(0); "
        "assert not gc.is_tracked(replicas), 'the start-up tuple was frozen tracked'; "
        "assert not gc.is_tracked(entry), 'an entry stays tracked for good'; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr
