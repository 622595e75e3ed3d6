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
            await asyncio.sleep(0.05)
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
        await asyncio.sleep(0.02)
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
