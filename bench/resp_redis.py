"""``redis-benchmark`` against our node's ``--resp-port`` and against ``redis-server``, same run.

``python -m bench.resp_redis [-n 300000] [--rounds 3] [--record]`` starts our node (with
``--resp-port``) and a throwaway ``redis-server`` (free loopback port, ``--save ''
--appendonly no``), both pinned with ``taskset`` to CPU 0 and every ``redis-benchmark``
to CPU 1 (when taskset exists and there are two CPUs; the record says which). For each
pipeline depth (``-P 1`` and ``-P 16``) and test (SET, GET) it runs ``redis-benchmark
-c 50 -d 32 -n N -t TEST -P P -q --csv`` against ours, then redis, ``--rounds`` times
interleaved, and reports the median ops/s of each, p50/p99, the server's CPU time per
request (from /proc) and the ratio ours/redis. Both servers are stopped however the
run ends. Missing Debian packages (redis-server, redis-tools) are installed when we
are root with apt-get, else the script says what to install.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import subprocess
import sys
from pathlib import Path
from dataclasses import dataclass

from bench.results import RESULTS, machine, record
from bench.servers import RedisServer, conditions, cpu_seconds, need_redis_tools, node_server, pin_prefix

HEADING = "RESP: redis-benchmark against our node and redis-server (`bench/resp_redis.py`)"


@dataclass
class Run:
    ops_per_s: float
    p50_ms: float
    p99_ms: float
    cpu_us_per_op: float


def parse_csv(text: str) -> dict[str, dict[str, float]]:
    """``redis-benchmark --csv`` output -> {test: {rps, p50_latency_ms, ...}}."""
    rows = [r for r in csv.reader(io.StringIO(text.replace("\r", "\n"))) if r]
    header = next((r for r in rows if r[0] == "test"), None)
    if header is None:
        raise ValueError(f"no CSV header in redis-benchmark output: {text[-500:]!r}")
    out = {}
    for row in rows:
        if row[0] != "test" and len(row) == len(header):
            out[row[0]] = {k: float(v) for k, v in zip(header[1:], row[1:])}
    return out


def bench_args(tool: str, port: int, test: str, pipeline: int, args: argparse.Namespace, cpu: int | None) -> list[str]:
    return [
        *pin_prefix(cpu), tool, "-h", "127.0.0.1", "-p", str(port),
        "-c", str(args.clients), "-d", str(args.data_size), "-n", str(args.requests),
        "-t", test, "-P", str(pipeline), "-q", "--csv",
    ]


def run_benchmark(argv: list[str], server_pid: int, test: str, requests: int, timeout: float) -> Run:
    cpu0 = cpu_seconds(server_pid)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    cpu1 = cpu_seconds(server_pid)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {out.returncode}: {out.stderr.strip()[-500:]}")
    figures = parse_csv(out.stdout)[test.upper()]
    return Run(figures["rps"], figures["p50_latency_ms"], figures["p99_latency_ms"], (cpu1 - cpu0) / requests * 1e6)


def median_run(runs: list[Run]) -> Run:
    """The run with the median ops/s (lower median for an even count)."""
    ordered = sorted(runs, key=lambda r: r.ops_per_s)
    return ordered[(len(ordered) - 1) // 2]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.resp_redis")
    p.add_argument("-n", "--requests", type=int, default=300_000, help="requests per redis-benchmark run (-n)")
    p.add_argument("-c", "--clients", type=int, default=50)
    p.add_argument("-d", "--data-size", type=int, default=32, help="value size in bytes (-d)")
    p.add_argument("--pipelines", default="1,16", help="-P values")
    p.add_argument("--tests", default="set,get")
    p.add_argument("--rounds", type=int, default=3, help="interleaved repetitions; the median is reported")
    p.add_argument("--no-pin", action="store_true", help="do not pin servers and benchmark to CPUs")
    p.add_argument("--record", action="store_true", help="append the figures to bench/RESULTS.md")
    p.add_argument("--results", type=Path, default=RESULTS, help=argparse.SUPPRESS)  # tests record elsewhere
    args = p.parse_args(argv)
    load_note = conditions()  # before we load the machine ourselves
    tools = need_redis_tools("redis-server", "redis-benchmark")
    pinned = not args.no_pin and bool(pin_prefix(1))
    server_cpu, bench_cpu = (0, 1) if pinned else (None, None)
    version = subprocess.run([tools["redis-server"], "--version"], capture_output=True, text=True).stdout.split()
    redis_version = next((w.split("=", 1)[1] for w in version if w.startswith("v=")), "?")

    pipelines = [int(x) for x in args.pipelines.split(",")]
    tests = args.tests.split(",")
    runs: dict[tuple[str, int, str], list[Run]] = {}
    with node_server("bench", cpu=server_cpu) as node, RedisServer(tools["redis-server"], cpu=server_cpu) as redis:
        assert node.resp_port is not None
        servers = {"ours": (node.resp_port, node.pid), "redis": (redis.port, redis.pid)}
        timeout = 120 + args.requests / 1000
        for pipeline in pipelines:
            for _ in range(args.rounds):
                for test in tests:  # set before get: GET reads the key SET wrote
                    for name, (port, pid) in servers.items():
                        cmd = bench_args(tools["redis-benchmark"], port, test, pipeline, args, bench_cpu)
                        run = run_benchmark(cmd, pid, test, args.requests, timeout)
                        runs.setdefault((test, pipeline, name), []).append(run)
                        print(
                            f"  {name:5} {test.upper()} -P {pipeline}: {run.ops_per_s:,.0f} ops/s, "
                            f"p50 {run.p50_ms:.3f} ms, p99 {run.p99_ms:.3f} ms, server CPU {run.cpu_us_per_op:.2f} us/op",
                            file=sys.stderr, flush=True,
                        )

    table = [
        "| test | -P | ours ops/s | ours p50 / p99 ms | ours CPU us/op | redis ops/s | redis p50 / p99 ms | redis CPU us/op | ours / redis |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for test in tests:
        for pipeline in pipelines:
            ours = median_run(runs[(test, pipeline, "ours")])
            theirs = median_run(runs[(test, pipeline, "redis")])
            table.append(
                f"| {test.upper()} | {pipeline} | {ours.ops_per_s:,.0f} | {ours.p50_ms:.3f} / {ours.p99_ms:.3f} "
                f"| {ours.cpu_us_per_op:.2f} | {theirs.ops_per_s:,.0f} | {theirs.p50_ms:.3f} / {theirs.p99_ms:.3f} "
                f"| {theirs.cpu_us_per_op:.2f} | {ours.ops_per_s / theirs.ops_per_s:.2f} |"
            )
    print("\n".join(table), flush=True)
    spread = {
        key: (min(r.ops_per_s for r in rs), max(r.ops_per_s for r in rs)) for key, rs in runs.items()
    }
    spread_text = "; ".join(
        f"{name} {test.upper()} -P {pipeline} {lo:,.0f}-{hi:,.0f}" for (test, pipeline, name), (lo, hi) in spread.items()
    )
    if args.record:
        pin_text = (
            "servers pinned to CPU 0 and redis-benchmark to CPU 1 with `taskset`"
            if pinned
            else "no CPU pinning" + (" (--no-pin)" if args.no_pin else " (taskset missing or a single CPU)")
        )
        record(
            HEADING,
            "python -m bench.resp_redis " + " ".join(argv if argv is not None else sys.argv[1:]),
            f"{machine()}; {load_note}; redis-server {redis_version} (`--save '' --appendonly no`), {pin_text}; each cell "
            f"`redis-benchmark -c {args.clients} -d {args.data_size} -n {args.requests:,} -t TEST -P P -q --csv`, "
            f"ours then redis, {args.rounds} interleaved round(s), the median round shown. Server CPU per request "
            f"from /proc (user + system, all threads). Our node: default options, "
            f"RESP parser {'hiredis' if _have_hiredis() else 'pure Python'}.\n\n"
            + "\n".join(table)
            + f"\n\nops/s range over the rounds: {spread_text}.",
            path=args.results,
        )
    return 0


def _have_hiredis() -> bool:
    if os.environ.get("ACTORCACHE_RESP_PARSER") == "python":
        return False
    try:
        import hiredis  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
