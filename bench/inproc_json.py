"""The node's Python per JSON-lines request, in process: no sockets, no load generator.

``python -m bench.inproc_json [--conns 50] [--pipeline 1] [--rounds 2000] [--workload set]``

A real node (its actors on a real event loop, uvloop and orjson as the node picks them)
and ``--conns`` real :class:`~runtime.connection.ClientConnection` objects on transports
that only keep what is written. Each round, every connection gets ``--pipeline``
requests in one ``data_received`` (as when each socket was readable once in a loop pass),
then the loop runs until every reply is written. The figure is CPU time per request (process time: the machine may be busy):
every line of our Python the request costs (decoding, the actor turns, the store, the
reply's encoding) and the loop's passes, none of the send and receive system calls a
server pays whoever writes it. Compare two checkouts by running this from each
(``cd A && python -m bench.inproc_json``), alternating, on a quiet core. For instruction
counts under callgrind (the difference of two ``--rounds``), ``--quiet-timers --no-gc``
keep clock-driven work and the collector's rare full walks out of the difference.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from typing import Any

from actors.config import NodeConfig
from actors.node.system import spawn_node
from runtime.event_loop import run_on
from runtime.framing import use_json_codec
from runtime.host import real_ctx
from runtime.loop_scheduler import LoopScheduler
from runtime.server import CacheServer


class _Transport:
    """Enough of a transport for a connection: writes are counted, nothing is sent."""

    #: Reply lines written on every transport.
    written = 0

    def __init__(self) -> None:
        self.closing = False

    def write(self, data: bytes) -> None:
        _Transport.written += data.count(10)
        if b'"error"' in data:
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

    def can_write_eof(self) -> bool:
        return False


def _lines(workload: str, conn: int, pipeline: int, keys: int, value: str, round_: int) -> bytes:
    out = []
    for i in range(pipeline):
        n = (round_ * 7919 + conn * 131 + i * 17) % keys
        op = workload if workload != "mix" else ("set" if (round_ + conn + i) % 10 == 0 else "get")
        if op == "set":
            out.append(b'{"type":"set","key":"key:%d","value":"%s"}\n' % (n, value.encode()))
        else:
            out.append(b'{"type":"get","key":"key:%d"}\n' % n)
    return b"".join(out)


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
    await asyncio.sleep(0.05)
    conns = []
    for _ in range(args.conns):
        conn = server._new_connection()  # noqa: SLF001 - the server's own factory, without a listener
        transport = _Transport()
        conn.connection_made(transport)  # type: ignore[arg-type]
        conns.append((conn, transport))
    value = "v" * args.value_size
    for k in range(0, args.keys, 100):  # every key set first: gets hit
        conns[0][0].data_received(b"".join(
            b'{"type":"set","key":"key:%d","value":"%s"}\n' % (n, value.encode()) for n in range(k, min(k + 100, args.keys))
        ))
        while conns[0][0].busy:
            await asyncio.sleep(0)
    payloads = [[_lines(args.workload, c, args.pipeline, args.keys, value, r) for c in range(args.conns)] for r in range(16)]
    per_request: list[float] = []
    for rep in range(args.repeats):
        expected = _Transport.written
        start = time.process_time()
        for r in range(args.rounds):
            batch = payloads[r % 16]
            for (conn, _), data in zip(conns, batch):
                conn.data_received(data)
            expected += args.conns * args.pipeline
            while _Transport.written < expected:
                await asyncio.sleep(0)
        elapsed = time.process_time() - start
        per_request.append(elapsed / (args.rounds * args.conns * args.pipeline) * 1e6)
    refs.stop()
    await asyncio.sleep(0.05)
    return per_request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conns", type=int, default=50)
    parser.add_argument("--pipeline", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workload", choices=("set", "get", "mix"), default="set")
    parser.add_argument("--value-size", type=int, default=100)
    parser.add_argument("--keys", type=int, default=10000)
    parser.add_argument("--event-loop", default="auto")
    parser.add_argument("--json-codec", default="auto")
    parser.add_argument("--profile", help="write a cProfile of the run here")
    parser.add_argument("--quiet-timers", action="store_true", help="node timers at an hour (for instruction counts)")
    parser.add_argument(
        "--no-gc", action="store_true",
        help="collector off (for instruction counts: a generation-2 collection in one run and not another moves "
        "the difference of two runs by thousands of instructions per request)",
    )
    args = parser.parse_args()
    use_json_codec(args.json_codec)
    gc.collect()
    if args.no_gc:
        gc.disable()
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    results = run_on(args.event_loop, _run(args))
    if args.profile:
        profiler.disable()
        profiler.dump_stats(args.profile)
    print(
        f"{args.workload} P{args.pipeline}, {args.conns} connections: "
        f"{statistics.median(results):.2f} us per request (median of {len(results)}; "
        f"min {min(results):.2f}, max {max(results):.2f})"
    )


if __name__ == "__main__":
    main()
