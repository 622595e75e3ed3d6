"""The stack over RESP, same run: hiredis and uvloop in the node and a bare server, beside redis-server.

``python -m bench.stack_resp [--requests 100000] [--rounds 2] [--record]`` starts, pinned to
CPU 0: redis-server, the bare RESP dict server (:mod:`bench.bare_resp_server`) with the
pure-Python parser on asyncio and with hiredis on uvloop, and the node's ``--resp-port``
with hiredis off (``ACTORCACHE_RESP_PARSER=python``) or on, on asyncio or uvloop. Each
cell is ``redis-benchmark -c 50 -d 32 -r 100000 -n N -t set|get -P 1|16 -q --csv`` on
CPU 1 (N is ``--requests`` at P1, 5x that at P16), parsed by :mod:`bench.resp_redis`;
``--rounds`` rounds, the server order reversed every other round, the median round
shown. It prints ops/s (p99) and the server's CPU per request (/proc) per server and cell, each accelerator's gain in the node,
node / bare on the same stack, and each server / redis-server. ``--record`` appends to
``bench/RESULTS.md``. A server that fails a cell shows ``failed``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

from bench.resp_redis import Run, bench_args, median_run, run_benchmark
from bench.results import RESULTS, machine, record
from bench.servers import RedisServer, conditions, need_redis_tools, node_server, pin_prefix
from runtime.local_cluster import NodeProcess

SERVER_CPU, BENCH_CPU = 0, 1
HEADING = "The stack over RESP: hiredis and uvloop in the node and a bare server, beside redis-server (`bench/stack_resp.py`)"
SERVERS = (
    "redis-server",
    "bare asyncio+python",
    "bare uvloop+hiredis",
    "node asyncio+python",
    "node asyncio+hiredis",
    "node uvloop+python",
    "node uvloop+hiredis",
)


class _Redis:
    """redis-server with the ``port``/``pid``/``terminate`` of a NodeProcess."""

    def __init__(self, path: str, cpu: int | None) -> None:
        self.server = RedisServer(path, cpu=cpu)
        self.port, self.pid = self.server.port, self.server.pid

    def terminate(self) -> None:
        self.server.stop()


def start(name: str, tools: dict[str, str], cpu: int | None) -> tuple[object, int, int]:
    """(handle with terminate(), RESP port, pid) of server ``name``."""
    if name == "redis-server":
        r = _Redis(tools["redis-server"], cpu)
        return r, r.port, r.pid
    kind, stack = name.split(" ")
    loop, parser = stack.split("+")
    if kind == "bare":
        command = [sys.executable, "-m", "bench.bare_resp_server"]
        b = NodeProcess("bare", "--loop", loop, "--parser", parser, command=command, prefix=pin_prefix(cpu), stderr=subprocess.DEVNULL)
        return b, b.port, b.pid
    env = ["env", f"ACTORCACHE_RESP_PARSER={'python' if parser == 'python' else 'auto'}"]
    n = NodeProcess(
        "bench", "--log-level", "warning", "--resp-port", "0", "--event-loop", loop,
        prefix=[*pin_prefix(cpu), *env], stderr=subprocess.DEVNULL,
    )
    assert n.resp_port is not None
    return n, n.resp_port, n.pid


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.stack_resp")
    p.add_argument("-n", "--requests", type=int, default=100_000, help="requests per redis-benchmark run at P1 (5x at P16)")
    p.add_argument("-c", "--clients", type=int, default=50)
    p.add_argument("-d", "--data-size", type=int, default=32)
    p.add_argument("--pipelines", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16])
    p.add_argument("--tests", type=lambda s: s.split(","), default=["set", "get"])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--servers", type=lambda s: s.split(","), default=list(SERVERS), help=argparse.SUPPRESS)
    p.add_argument("--record", action="store_true")
    p.add_argument("--results", type=Path, default=RESULTS, help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    load_note = conditions()
    tools = need_redis_tools("redis-server", "redis-benchmark")
    pinned = bool(pin_prefix(BENCH_CPU))
    server_cpu, bench_cpu = (SERVER_CPU, BENCH_CPU) if pinned else (None, None)
    runs: dict[tuple[str, str, int], list[Run]] = {}
    failed: dict[str, str] = {}
    handles: dict[str, tuple[object, int, int]] = {}
    try:
        for name in args.servers:
            try:
                handles[name] = start(name, tools, server_cpu)
            except Exception as exc:  # noqa: BLE001 - reported, not fatal
                failed[name] = f"did not start: {exc}"[:200]
        for rnd in range(args.rounds):
            order = list(handles) if rnd % 2 == 0 else list(reversed(handles))
            for pipeline in args.pipelines:
                n = args.requests * (1 if pipeline == 1 else 5)
                for test in args.tests:  # set before get: gets read what sets wrote
                    for name in order:
                        if name in failed:
                            continue
                        _, port, pid = handles[name]
                        cmd = [*bench_args(tools["redis-benchmark"], port, test, pipeline, argparse.Namespace(
                            clients=args.clients, data_size=args.data_size, requests=n), bench_cpu), "-r", "100000"]
                        try:
                            runs.setdefault((name, test, pipeline), []).append(run_benchmark(cmd, pid, test, n, 120 + n / 1000))
                        except Exception as exc:  # noqa: BLE001
                            failed[name] = str(exc)[:200]
    finally:
        for handle, _, _ in handles.values():
            handle.terminate()  # type: ignore[attr-defined]

    columns = [(t, p) for p in args.pipelines for t in args.tests]

    def ops(name: str, t: str, p: int) -> float | None:
        rs = runs.get((name, t, p))
        return median_run(rs).ops_per_s if rs and name not in failed else None

    def cpu(name: str, t: str, p: int) -> float | None:
        rs = runs.get((name, t, p))
        return statistics.median(r.cpu_us_per_op for r in rs) if rs and name not in failed else None

    def ratio(a: float | None, b: float | None) -> str:
        return f"{a / b:.2f}" if a and b else "-"

    head = " | ".join(f"{t.upper()} P{p}" for t, p in columns)
    rows = [f"| server | {head} |", "|---|" + "---|" * len(columns)]
    for name in args.servers:
        cells = []
        for t, p in columns:
            v = ops(name, t, p)
            cells.append("failed" if v is None else f"{v:,.0f} ({median_run(runs[(name, t, p)]).p99_ms:.2f} ms)")
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    rows += ["", f"| server CPU us per request | {head} |", "|---|" + "---|" * len(columns)]
    for name in args.servers:
        rows.append(f"| {name} | " + " | ".join("failed" if (c := cpu(name, t, p)) is None else f"{c:.2f}" for t, p in columns) + " |")
    ratios = [f"| ratio | {head} |", "|---|" + "---|" * len(columns)]
    pairs = [
        ("node: hiredis / python parser (asyncio)", "node asyncio+hiredis", "node asyncio+python"),
        ("node: uvloop / asyncio (python parser)", "node uvloop+python", "node asyncio+python"),
        ("node: uvloop+hiredis / asyncio+python", "node uvloop+hiredis", "node asyncio+python"),
        ("bare: uvloop+hiredis / asyncio+python", "bare uvloop+hiredis", "bare asyncio+python"),
        ("node / bare, asyncio+python", "node asyncio+python", "bare asyncio+python"),
        ("node / bare, uvloop+hiredis", "node uvloop+hiredis", "bare uvloop+hiredis"),
        *((f"{s} / redis-server", s, "redis-server") for s in args.servers if s != "redis-server"),
    ]
    for label, a, b in pairs:
        if a in args.servers and b in args.servers:
            ratios.append(f"| {label} | " + " | ".join(ratio(ops(a, t, p), ops(b, t, p)) for t, p in columns) + " |")
    for label, a, b in pairs[:4]:  # the gains again, in the server's CPU per request (b's over a's)
        if a in args.servers and b in args.servers:
            ratios.append(f"| {label}, CPU per request (inverse) | " + " | ".join(ratio(cpu(b, t, p), cpu(a, t, p)) for t, p in columns) + " |")
    text = "\n".join(rows) + "\n\n" + "\n".join(ratios)
    print(text, flush=True)
    for name, why in failed.items():
        print(f"failed: {name}: {why}", file=sys.stderr)
    if args.record:
        where = "servers on CPU 0 and redis-benchmark on CPU 1 (`taskset`)" if pinned else "not pinned"
        record(
            HEADING,
            "python -m bench.stack_resp " + " ".join(argv if argv is not None else sys.argv[1:]),
            f"{machine()}; {load_note}. {where}; each cell `redis-benchmark -c {args.clients} -d {args.data_size} -r 100000 "
            f"-n N -t TEST -P P -q --csv` (N {args.requests:,} at P1, {5 * args.requests:,} at P16), median of {args.rounds} "
            f"rounds (server order reversed every other round); ops/s (p99). Bare: `bench/bare_resp_server.py` on the node's "
            f"own parsers (runtime/resp.py); node hiredis off: `ACTORCACHE_RESP_PARSER=python`."
            + (f" Failed: {'; '.join(f'{k}: {v}' for k, v in failed.items())}." if failed else "")
            + "\n\n" + text,
            args.results,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
