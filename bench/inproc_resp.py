"""The node's Python per RESP request, in process: no sockets, no redis-benchmark.

``python -m bench.inproc_resp [--test set] [--pipeline 16] [--conns 50] [--rounds 400]``

A real node (its actors on a real event loop, as ``runtime.node`` starts them: the
collector tuned and paced, uvloop when the node would pick it, hiredis when installed
unless ``ACTORCACHE_RESP_PARSER=python``) and ``--conns`` real
:class:`~runtime.resp_connection.RespConnection` objects on transports that only count
what is written. Each round every connection gets ``--pipeline`` commands in one
``data_received``, the shape of ``redis-benchmark -c 50 -d 32 -r 100000 -t TEST -P P``
(random keys ``key:%012d`` below 100,000, 32-byte values; every key set first, so gets
hit), then the loop runs until every reply is written. The figure is CPU time (process
time: the machine may be busy) per request: every line of our Python and the loop's
passes, none of the socket system calls. Compare two checkouts by running this from each,
alternating (``--a DIR`` does it: each repeat runs both, in turn, as subprocesses). For
instruction counts under callgrind (the difference of two ``--rounds``), ``--no-pacer
--quiet-timers --no-gc`` keep clock-driven work and the collector's rare full walks out of
the difference.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from actors.config import NodeConfig
from actors.node.system import spawn_node
from runtime.event_loop import run_on
from runtime.gc_pacer import DEFAULT_INTERVAL_S, GcPacer, tune_collector
from runtime.host import real_ctx
from runtime.loop_scheduler import LoopScheduler
from runtime.server import CacheServer

#: Keys drawn from (redis-benchmark -r 100000); --keys changes it.
KEYS = 100_000


class _Transport:
    """Enough of a transport for a connection: replies are counted, nothing is sent."""

    #: Replies written on every transport (each reply's first line ends a ``+OK`` or ``$32``).
    written = 0
    mark = b"+OK\r\n"

    def __init__(self) -> None:
        self.closing = False

    def write(self, data: bytes) -> None:
        _Transport.written += data.count(_Transport.mark)
        if data[:1] == b"-" or b"\r\n-" in data:
            raise SystemExit(f"the node answered an error: {data[:200]!r}")

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name in ("peername", "sockname") else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        self.closing = True


def _commands(test: str, keys: list[int], value: bytes) -> bytes:
    if test == "set":
        return b"".join(b"*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$%d\r\n%b\r\n" % (k, len(value), value) for k in keys)
    return b"".join(b"*2\r\n$3\r\nGET\r\n$16\r\nkey:%012d\r\n" % k for k in keys)


async def _run(args: argparse.Namespace) -> list[float]:
    loop = asyncio.get_running_loop()
    scheduler = LoopScheduler(loop)
    scheduler.bind_thread()
    server = CacheServer()
    # --quiet-timers: the node's clock-driven work (heartbeats every 0.2 s, expiry cycles) grows with
    # the run's wall time, which under callgrind on a busy machine is minutes and varies.
    config = NodeConfig(heartbeat_interval_s=3600.0, cleanup_interval_s=3600.0, anti_entropy_interval_s=3600.0) \
        if args.quiet_timers else NodeConfig()
    refs = spawn_node(real_ctx("n1", scheduler), config)
    server.attach(refs.node)
    await server.start_resp("127.0.0.1", 0, node_id="n1", start_serving=False)
    await asyncio.sleep(0.05)
    conns = []
    for _ in range(args.conns):
        conn = server._new_resp_connection()  # noqa: SLF001 - the server's own factory, without a listener
        conn.connection_made(_Transport())  # type: ignore[arg-type]
        conns.append(conn)
    value = b"x" * args.data_size
    _Transport.mark = b"+OK\r\n"
    keys = args.keys
    for k in range(0, keys, 500):  # every key set first: gets hit
        conns[0].data_received(_commands("set", list(range(k, min(k + 500, keys))), value))
        while conns[0].busy:
            await asyncio.sleep(0)
    _Transport.mark = b"+OK\r\n" if args.test == "set" else b"$%d\r\n" % args.data_size
    rng = random.Random(1)
    payloads = [
        [_commands(args.test, [rng.randrange(keys) for _ in range(args.pipeline)], value) for _ in range(args.conns)]
        for _ in range(64)
    ]
    tune_collector()
    if args.no_gc:
        gc.disable()
    pacer = GcPacer(loop, args.gc_interval)
    if not args.no_pacer:
        pacer.start()
    per_request: list[float] = []
    began, paused = time.process_time(), pacer.pauses.sum
    for _ in range(args.repeats):
        expected = _Transport.written
        start = time.process_time()
        for r in range(args.rounds):
            for conn, data in zip(conns, payloads[r % 64]):
                conn.data_received(data)
            expected += args.conns * args.pipeline
            while _Transport.written < expected:
                await asyncio.sleep(0)
        per_request.append((time.process_time() - start) / (args.rounds * args.conns * args.pipeline) * 1e6)
    args.pacer_share = (pacer.pauses.sum - paused) / max(1e-9, time.process_time() - began)
    pacer.stop()
    refs.stop()
    await asyncio.sleep(0.05)
    return per_request


def _compare(args: argparse.Namespace, argv: list[str]) -> None:
    """Run this benchmark from ``--a`` and from this checkout, alternating, one process each;
    each run's figure is its least disturbed repeat (the fastest: others' work on a shared
    core only ever adds to it)."""
    here = Path(__file__).resolve().parent.parent
    rest = [a for a in argv if a != "--a" and a != str(args.a)]
    figures: dict[str, list[float]] = {"A": [], "B": []}
    for i in range(args.pairs):
        for name, where in ((("A", args.a), ("B", here)) if i % 2 == 0 else (("B", here), ("A", args.a))):
            out = subprocess.run(  # this script, on that checkout's code (it may predate the script)
                [sys.executable, __file__, *rest, "--repeats", "3"], cwd=where, capture_output=True, text=True,
                check=True, env=dict(os.environ, PYTHONPATH=str(where)),
            ).stdout
            figures[name].append(float(out.split("; min ")[1].split(",")[0]))  # the least disturbed repeat
    a, b = statistics.median(figures["A"]), statistics.median(figures["B"])
    ratios = [y / x for x, y in zip(figures["A"], figures["B"])]
    print(
        f"{args.test.upper()} P{args.pipeline}: A {a:.2f} us, B {b:.2f} us per request; "
        f"B/A {statistics.median(ratios):.2f} (pairs {', '.join(f'{r:.2f}' for r in ratios)}); A = {args.a}"
    )


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m bench.inproc_resp", description=__doc__.splitlines()[0])
    p.add_argument("--test", choices=("set", "get"), default="set")
    p.add_argument("--pipeline", type=int, default=16)
    p.add_argument("--conns", type=int, default=50)
    p.add_argument("--rounds", type=int, default=400)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--data-size", type=int, default=32)
    p.add_argument("--keys", type=int, default=KEYS)
    p.add_argument("--event-loop", default="auto")
    p.add_argument("--no-pacer", action="store_true", help="no timed young collections (for instruction counts)")
    p.add_argument("--gc-interval", type=float, default=DEFAULT_INTERVAL_S, help="the pacer's interval (runtime/gc_pacer.py)")
    p.add_argument("--quiet-timers", action="store_true", help="node timers at an hour (for instruction counts)")
    p.add_argument(
        "--no-gc", action="store_true",
        help="collector off (for instruction counts: a generation-2 collection in one run and not another moves "
        "the difference of two runs by thousands of instructions per request)",
    )
    p.add_argument("--a", type=Path, help="another checkout: run both, alternating, and print B/A")
    p.add_argument("--pairs", type=int, default=4, help="with --a: runs of each")
    args = p.parse_args(argv)
    if not (1 <= args.pipeline <= 1000 and 1 <= args.conns <= 1000 and 1 <= args.rounds <= 100_000):
        p.error("--pipeline 1..1000, --conns 1..1000, --rounds 1..100000")
    if args.a is not None:
        _compare(args, argv)
        return
    gc.collect()
    results = run_on(args.event_loop, _run(args))
    print(
        f"{args.test.upper()} P{args.pipeline}, {args.conns} connections: {statistics.median(results):.2f} us per request "
        f"(median of {len(results)}; min {min(results):.2f}, max {max(results):.2f}; pid {os.getpid()}); "
        f"paced young collections {args.pacer_share:.1%} of the CPU time"
    )


if __name__ == "__main__":
    main()
