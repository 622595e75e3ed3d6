"""Persistence against redis-server, same run: snapshot write and load at N keys, set
throughput under each ``appendfsync`` policy, and ping latency during a background save.

``python -m bench.persistence [--keys 1000000] [-n 50000] [--record]``:

1. **Snapshots.** Our node (``--dir``, ``--save ''``) and ``redis-server`` get the same
   data: ``--keys`` keys ``key:<i>`` with 32-byte values (MSET batches), every tenth with a
   one-hour TTL. Then ``SAVE`` is timed on each (the client's wall time), the file sizes
   read, and each server restarted on its file: the time from spawn to the first answered
   PING (Redis answers ``-LOADING`` until loaded; our node starts serving after its load),
   minus the same for an empty data directory, is the load time; DBSIZE is checked.
   Then ``BGSAVE`` on our node while one client pings in a loop: ping p50/p99/max.
2. **Set throughput.** ``redis-benchmark -t set -c 50 -d 32 -n N -P 1`` against each server
   with no log, and ``appendonly yes`` with ``appendfsync no``, ``everysec`` and ``always``.

Servers pinned to CPU 0 and ``redis-benchmark``/clients to CPU 1 with taskset when there are
two CPUs. Every server is stopped and every temporary directory removed however the run ends.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import redis

from bench.resp_redis import bench_args, run_benchmark
from bench.results import RESULTS, machine, record
from bench.servers import RedisServer, conditions, free_port, need_redis_tools, node_server, pin_prefix
from runtime.local_cluster import NodeProcess

HEADING = "Persistence: snapshots and the append-only log against redis-server (`bench/persistence.py`)"


def fill(r: redis.Redis, keys: int) -> None:
    batch = 2000
    value = "v" * 32
    for start in range(0, keys, batch):
        r.mset({f"key:{i}": value for i in range(start, min(keys, start + batch))})
    pipe = r.pipeline(transaction=False)
    for i in range(0, keys, 10):
        pipe.expire(f"key:{i}", 3600)
        if i % 20_000 == 0:
            pipe.execute()
    pipe.execute()


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def ours(directory: str, cpu: int | None, *args: str) -> NodeProcess:
    proc = node_server("bench", "--dir", directory, "--save", "", *args, cpu=cpu)
    return proc


def start_time(start: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    server = start()
    return time.perf_counter() - t0, server


def snapshots(keys: int, cpu: int | None, tools: dict[str, str]) -> list[str]:
    rows = []
    work = tempfile.mkdtemp(prefix="actorcache-persist-bench-")
    try:
        ours_dir, redis_dir, empty_ours, empty_redis = (os.path.join(work, d) for d in ("ours", "redis", "e1", "e2"))
        for d in (ours_dir, redis_dir, empty_ours, empty_redis):
            os.mkdir(d)
        port = free_port()
        with ours(ours_dir, cpu) as node, RedisServer(tools["redis-server"], cpu=cpu, directory=redis_dir, port=port) as rs:
            mine = redis.Redis(port=node.resp_port, socket_timeout=600)
            theirs = redis.Redis(port=rs.port, socket_timeout=600)
            for r in (mine, theirs):
                fill(r, keys)
                assert r.dbsize() == keys
            save_ours = timed(mine.save)
            save_redis = timed(theirs.save)
            pings: list[float] = []
            mine.bgsave()
            bg0 = time.perf_counter()
            while mine.info("persistence")["rdb_bgsave_in_progress"]:
                for _ in range(20):
                    t0 = time.perf_counter()
                    mine.ping()
                    pings.append((time.perf_counter() - t0) * 1000)
            bgsave_s = time.perf_counter() - bg0
            info = mine.info("persistence")
        size_ours = os.path.getsize(os.path.join(ours_dir, "dump.acs"))
        size_redis = os.path.getsize(os.path.join(redis_dir, "dump.rdb"))
        base_ours, node = start_time(lambda: ours(empty_ours, cpu))
        node.terminate()  # type: ignore[attr-defined]
        base_redis, rs2 = start_time(lambda: RedisServer(tools["redis-server"], cpu=cpu, directory=empty_redis))
        rs2.stop()  # type: ignore[attr-defined]
        t_ours, node = start_time(lambda: NodeProcess(
            "bench", "--log-level", "warning", "--resp-port", "0", "--dir", ours_dir, "--save", "",
            prefix=pin_prefix(cpu), stderr=subprocess.DEVNULL, start_timeout=600,
        ))
        try:
            assert redis.Redis(port=node.resp_port).dbsize() == keys  # type: ignore[attr-defined]
        finally:
            node.terminate()  # type: ignore[attr-defined]
        t_redis, rs3 = start_time(lambda: RedisServer(
            tools["redis-server"], cpu=cpu, directory=redis_dir, start_timeout=600,
        ))
        try:
            assert redis.Redis(port=rs3.port).dbsize() == keys  # type: ignore[attr-defined]
        finally:
            rs3.stop()  # type: ignore[attr-defined]
        load_ours, load_redis = t_ours - base_ours, t_redis - base_redis
        rows += [
            "| keys | | ours | redis-server | ours / redis |",
            "|---|---|---|---|---|",
            f"| {keys:,} | SAVE (s) | {save_ours:.2f} | {save_redis:.2f} | {save_ours / save_redis:.1f} |",
            f"| | file size (MB) | {size_ours / 1e6:.1f} | {size_redis / 1e6:.1f} | {size_ours / size_redis:.2f} |",
            f"| | load: start with the file minus start empty (s) | {load_ours:.2f} ({t_ours:.2f} - {base_ours:.2f}) "
            f"| {load_redis:.2f} ({t_redis:.2f} - {base_redis:.2f}) | {load_ours / max(load_redis, 1e-3):.1f} |",
            "",
            f"BGSAVE on our node at {keys:,} keys took {bgsave_s:.2f} s; a client pinging in a loop meanwhile "
            f"({len(pings):,} pings): p50 {statistics.median(pings):.3f} ms, "
            f"p99 {statistics.quantiles(pings, n=100)[98]:.3f} ms, max {max(pings):.1f} ms. The node's own "
            f"account (INFO persistence): its first turn (listing the keys) {info.get('rdb_start_usec', 0) / 1000:.1f} ms, "
            f"its longest slice {info.get('rdb_slice_max_usec', 0) / 1000:.1f} ms (wall time on its event loop).",
        ]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def throughput(requests: int, cpu: int | None, bench_cpu: int | None, tools: dict[str, str]) -> list[str]:
    ns = argparse.Namespace(clients=50, data_size=32, requests=requests)
    policies = [("none", ()), ("no", ("no",)), ("everysec", ("everysec",)), ("always", ("always",))]
    rows = ["| log | ours SET/s | ours p50 / p99 ms | redis SET/s | redis p50 / p99 ms | ours / redis |", "|---|---|---|---|---|---|"]
    for name, policy in policies:
        work = tempfile.mkdtemp(prefix="actorcache-aof-bench-")
        try:
            aof = ("--appendonly", "yes", "--appendfsync", policy[0]) if policy else ()
            with ours(os.path.join(work, "o"), cpu, *aof) as node, RedisServer(
                tools["redis-server"], cpu=cpu, extra=aof, directory=work
            ) as rs:
                timeout = 600
                o = run_benchmark(bench_args(tools["redis-benchmark"], node.resp_port, "set", 1, ns, bench_cpu), node.pid, "set", requests, timeout)  # type: ignore[arg-type]
                t = run_benchmark(bench_args(tools["redis-benchmark"], rs.port, "set", 1, ns, bench_cpu), rs.pid, "set", requests, timeout)
            rows.append(
                f"| {'off' if name == 'none' else 'appendfsync ' + name} | {o.ops_per_s:,.0f} | {o.p50_ms:.3f} / {o.p99_ms:.3f} "
                f"| {t.ops_per_s:,.0f} | {t.p50_ms:.3f} / {t.p99_ms:.3f} | {o.ops_per_s / t.ops_per_s:.2f} |"
            )
            print(rows[-1], file=sys.stderr, flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.persistence")
    p.add_argument("--keys", type=int, default=1_000_000)
    p.add_argument("-n", "--requests", type=int, default=50_000, help="SETs per redis-benchmark run")
    p.add_argument("--skip-snapshots", action="store_true")
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--record", action="store_true")
    args = p.parse_args(argv)
    load_note = conditions()
    tools = need_redis_tools("redis-server", "redis-benchmark")
    pinned = bool(pin_prefix(1))
    cpu, bench_cpu = (0, 1) if pinned else (None, None)
    body = []
    if not args.skip_snapshots:
        body += snapshots(args.keys, cpu, tools) + [""]
        print("\n".join(body), flush=True)
    if not args.skip_throughput:
        rows = throughput(args.requests, cpu, bench_cpu, tools)
        print("\n".join(rows), flush=True)
        body += [f"`redis-benchmark -t set -c 50 -d 32 -n {args.requests} -P 1`, each server with the log settings of the row:", ""] + rows
    if args.record:
        command = "flock /tmp/bench.lock python -m bench.persistence " + " ".join(argv if argv is not None else sys.argv[1:])
        pin = "servers pinned to CPU 0, clients to CPU 1 (taskset)" if pinned else "no CPU pinning"
        record(HEADING, command, "\n".join([machine() + f"; {pin}; {load_note}.", "", *body]), RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
