"""Pipelined JSON-lines load generator: several processes, many connections each.

Every connection writes ``pipeline`` requests in one write, reads that many replies,
and repeats until the run's duration or request cap is reached (always bounded).
Latency is measured per request as the time from its batch's write to its reply.

``python -m bench.loadgen --addr 127.0.0.1:8081 --conns 50 --pipeline 16 --workload mix``

``--tls-cafile CA.pem`` speaks TLS (verifying the node against that CA); ``--password``
authenticates each connection first (``auth``, not counted in the figures).

``--addr`` may name several servers (``a:1,b:2,c:3``): connections go to them in turn.
``--rate R`` caps the total at about R requests/s (0, the default: as fast as replies
come back): each connection sends its batches on a fixed schedule (``conns * pipeline /
R`` seconds apart, starting at a random phase), waiting when ahead, never catching up
by bursting when behind.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import ssl
import sys
import time
from dataclasses import dataclass

from runtime.addresses import parse_address

__all__ = ["LoadResult", "add_load_shape", "run_load"]


@dataclass
class LoadResult:
    ops: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _request(rng: random.Random, workload: str, keys: int, value: str) -> bytes:
    key = f"key:{rng.randrange(keys)}"
    is_get = workload == "get" or (workload == "mix" and rng.random() < 0.9)
    if is_get:
        return b'{"type":"get","key":"' + key.encode() + b'"}\n'
    return b'{"type":"set","key":"' + key.encode() + b'","value":"' + value.encode() + b'"}\n'


async def _connection(host: str, port: int, args: argparse.Namespace, seed: int, stop_at: float, cap: int, out: list) -> None:
    tls = ssl.create_default_context(cafile=args.tls_cafile) if getattr(args, "tls_cafile", None) else None
    reader, writer = await asyncio.open_connection(host, port, limit=1 << 24, ssl=tls)
    password = getattr(args, "password", None)
    if password is not None:
        writer.write(json.dumps({"type": "auth", "password": password}).encode() + b"\n")
        reply = await reader.readline()
        if b'"error"' in reply[:40] or not reply:
            raise ConnectionError(f"auth refused: {reply[:200]!r}")
    rng = random.Random(seed)
    value = "x" * args.value_size
    ops = errors = 0
    lat: list[float] = []
    rate = getattr(args, "rate", 0.0)
    interval = args.conns * args.pipeline / rate if rate > 0 else 0.0
    next_at = time.perf_counter() + rng.random() * interval
    try:
        while time.perf_counter() < stop_at and ops < cap:
            batch = b"".join(_request(rng, args.workload, args.keys, value) for _ in range(args.pipeline))
            if interval:
                delay = next_at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                    if time.perf_counter() >= stop_at:
                        break
                next_at = max(next_at, time.perf_counter()) + interval
            t0 = time.perf_counter()
            writer.write(batch)
            for _ in range(args.pipeline):
                line = await reader.readline()
                if not line:
                    raise ConnectionError("server closed the connection")
                if b'"error"' in line[:40]:
                    errors += 1
            dt = (time.perf_counter() - t0) * 1000
            lat.append(dt)
            ops += args.pipeline
    finally:
        writer.close()
    out.append((ops, errors, lat))


async def _process_main(
    args: argparse.Namespace, conns: int, seed: int, start_at: float, first: int = 0
) -> tuple[int, int, float, list[float]]:
    addrs = [parse_address(a) for a in args.addr.split(",")]
    delay = start_at - time.time()
    if delay > 0:
        await asyncio.sleep(delay)
    t0 = time.perf_counter()
    stop_at = t0 + args.duration
    cap = max(1, args.max_requests // max(1, args.conns))
    out: list = []
    targets = [addrs[(first + i) % len(addrs)] for i in range(conns)]
    await asyncio.gather(
        *(_connection(host, port, args, seed * 1000 + i, stop_at, cap, out) for i, (host, port) in enumerate(targets))
    )
    elapsed = time.perf_counter() - t0
    ops = sum(o for o, _, _ in out)
    errors = sum(e for _, e, _ in out)
    lat = [x for _, _, ls in out for x in ls]
    return ops, errors, elapsed, lat


def _worker(args: argparse.Namespace, conns: int, seed: int, start_at: float, queue: multiprocessing.Queue, first: int = 0) -> None:
    queue.put(asyncio.run(_process_main(args, conns, seed, start_at, first)))


def run_load(args: argparse.Namespace) -> LoadResult:
    """Run the load described by ``args`` in ``args.procs`` processes; merge their results."""
    queue: multiprocessing.Queue = multiprocessing.Queue()
    per_proc = [args.conns // args.procs + (1 if i < args.conns % args.procs else 0) for i in range(args.procs)]
    start_at = time.time() + 0.3
    procs = [
        multiprocessing.Process(target=_worker, args=(args, n, i + 1, start_at, queue, sum(per_proc[:i])))
        for i, n in enumerate(per_proc)
        if n
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=args.duration + 60) for _ in procs]
    for p in procs:
        p.join(timeout=10)
    ops = sum(r[0] for r in results)
    errors = sum(r[1] for r in results)
    seconds = max(r[2] for r in results)
    # Per-request latency ~ per-batch latency (every request in a batch waits for the batch).
    lat = [x for r in results for x in r[3]]
    return LoadResult(ops, errors, seconds, lat)


def add_load_shape(p: argparse.ArgumentParser) -> None:
    """The options both load generators (this one and :mod:`bench.cloadgen`) share: the load's shape."""
    p.add_argument("--conns", type=int, default=50)
    p.add_argument("--pipeline", type=int, default=1)
    p.add_argument("--workload", choices=["get", "set", "mix"], default="mix")
    p.add_argument("--value-size", type=int, default=32)
    p.add_argument("--keys", type=int, default=10_000)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--max-requests", type=int, default=10_000_000)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.loadgen")
    p.add_argument("--addr", default="127.0.0.1:8081", help="host:port, or several comma-separated (connections go to each in turn)")
    add_load_shape(p)
    p.add_argument("--procs", type=int, default=1)
    p.add_argument("--rate", type=float, default=0.0, help="total requests/s to aim at (default 0: unlimited)")
    p.add_argument("--tls-cafile", metavar="CA.pem", help="speak TLS, verifying the server against this CA")
    p.add_argument("--password", help="authenticate every connection with this password first")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    r = run_load(args)
    print(json.dumps({"ops": r.ops, "errors": r.errors, "ops_per_s": round(r.ops_per_s), "p50_ms": round(r.percentile(0.5), 3), "p99_ms": round(r.percentile(0.99), 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
