"""How long a full garbage collection stalls a node holding many keys: plain entries
(exact tuples, which CPython's cyclic GC stops tracking) vs an ``allkeys-lru`` keyspace's
entries (objects an eviction policy updates, which stay tracked).

``python -m bench.gc_pause [--keys 1000000] [--record]`` loads, in this process, a
:class:`~actors.store.keyspace.Keyspace` with N keys (``key:N``, 32 B ``bytes`` values, no TTL,
versions as a node stamps a pipelined burst: one ``wall_ms`` per 1000 writes, logical
counters 0..999), then times ``gc.collect()`` (a full, generation-2 collection: what
CPython runs whenever enough objects have survived into the oldest generation) five times
and reports the median and the slowest. Before each collection one key is overwritten,
as a node under write load always has a fresh entry somewhere. It does the same for the
same keys under ``allkeys-lru`` (its keyspace freed first), and reports the ratio.
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from pathlib import Path

from actors.store.eviction import make_evictor
from actors.store.keyspace import Keyspace
from actors.protocol.version import Version
from bench.results import RESULTS, machine, record
from bench.servers import conditions

HEADING = "GC pause: full gc.collect() with a million keys (`bench/gc_pause.py`)"
ROUNDS = 5
WALL_MS = 1_700_000_000_000


def load(ks: Keyspace, keys: int, value_size: int) -> float:
    """``key:0`` .. ``key:N-1`` to distinct values, 1000 writes per millisecond; seconds taken."""
    t0 = time.perf_counter()
    for start in range(0, keys, 1000):
        wall_ms = WALL_MS + start // 1000
        for logical, i in enumerate(range(start, min(keys, start + 1000))):
            ks.set(f"key:{i}", b"%0*d" % (value_size, i), None, Version(wall_ms, logical, "bench"))
    return time.perf_counter() - t0


def collect_times(ks: Keyspace, keys: int, value_size: int) -> list[float]:
    """Seconds taken by ``gc.collect()``, ``ROUNDS`` times, each after one overwrite."""
    gc.collect()  # settles what the load left young
    times = []
    for r in range(ROUNDS):
        ks.set(f"key:{r % keys}", b"%0*d" % (value_size, r), None, Version(WALL_MS + keys, r, "bench"))
        t0 = time.perf_counter()
        gc.collect()
        times.append(time.perf_counter() - t0)
    return times


def measure(policy: str | None, keys: int, value_size: int) -> dict[str, float]:
    if policy is None:
        ks = Keyspace()
    else:  # a bound no load reaches: the policy's entries, no eviction
        ks = Keyspace(max_memory=1 << 62, evictor=make_evictor(policy, random.Random(1)))
    load_s = load(ks, keys, value_size)
    times = collect_times(ks, keys, value_size)
    tracked = len(gc.get_objects())
    assert len(ks) == keys
    del ks
    gc.collect()
    return {"median": statistics.median(times), "max": max(times), "tracked": tracked, "load": load_s}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gc_pause")
    p.add_argument("--keys", type=int, default=1_000_000)
    p.add_argument("--value-size", type=int, default=32)
    p.add_argument("--record", action="store_true", help="append the figures to bench/RESULTS.md")
    p.add_argument("--results", type=Path, default=RESULTS, help=argparse.SUPPRESS)  # tests record elsewhere
    args = p.parse_args(argv)
    load_note = conditions()  # before we load the machine ourselves

    empty = statistics.median(collect_times(Keyspace(), 1, args.value_size))
    plain = measure(None, args.keys, args.value_size)
    lru = measure("allkeys-lru", args.keys, args.value_size)

    ms = lambda s: f"{s * 1000:.1f}"  # noqa: E731
    table = "\n".join(
        [
            "| entries | full `gc.collect()` median of 5, ms | slowest, ms | GC-tracked objects | load time |",
            "|---|---|---|---|---|",
            f"| plain (default policy): exact tuples | {ms(plain['median'])} | {ms(plain['max'])} "
            f"| {plain['tracked']:,} | {plain['load']:.1f} s |",
            f"| `allkeys-lru`: TrackedEntry objects | {ms(lru['median'])} | {ms(lru['max'])} "
            f"| {lru['tracked']:,} | {lru['load']:.1f} s |",
            f"| (no keys: the interpreter and modules alone) | {ms(empty)} | | | |",
        ]
    )
    ratio = f"allkeys-lru / plain, median full collection: {lru['median'] / plain['median']:.1f}x."
    print(table)
    print(ratio)
    if args.record:
        record(
            HEADING,
            "python -m bench.gc_pause " + " ".join(argv if argv is not None else sys.argv[1:]),
            f"{machine()}; {load_note}; in one process, {args.keys:,} keys (`key:N`), {args.value_size} B `bytes` "
            f"values, no TTL, written to a Keyspace as a node stamps a pipelined burst; then 5 times: overwrite one "
            f"key, time `gc.collect()`. Then the same keys in an `allkeys-lru` Keyspace (the first one freed).\n\n"
            + table
            + "\n\n"
            + ratio,
            path=args.results,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
