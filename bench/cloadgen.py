"""The compiled JSON-lines load generator (``bench/loadgen.c``): built on first use, run as a subprocess.

``python -m bench.cloadgen --port P --conns 50 --pipeline 16 --workload mix --duration 3``
prints one JSON line (ops, errors, ops_per_s, p50_ms, p99_ms), as ``python -m
bench.loadgen`` does. :func:`run_load` takes the same ``argparse`` namespace as
:func:`bench.loadgen.run_load` (``--addr`` a single ``host:port``; no TLS, password or
rate) and returns a :class:`CLoadResult` with the same ``ops_per_s`` and ``percentile``.

Why: one Python process drove the bare server to only ~37k ops/s at pipeline 1, so it
was the bottleneck, not the server. The C one is a single thread on epoll; pin it to its
own core (``--cpu``, or ``taskset``) and it stays out of the way.

The binary is compiled with ``cc -O2`` into ``bench/.build/`` (ignored by git), named by a
hash of the source, so an edited ``loadgen.c`` is rebuilt. Every run is bounded by its
duration and request cap; for get and mix every key is set first (not measured), so gets
hit and a reply without ``"success":true`` counts as an error.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench.loadgen import add_load_shape
from runtime.addresses import parse_address

__all__ = ["CLoadResult", "binary", "compiler", "parser", "run_load"]

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "loadgen.c"
BUILD = HERE / ".build"


def compiler() -> str | None:
    """The C compiler to use (``$CC``, else ``cc``, ``gcc``, ``clang``), or None."""
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    return None


def binary() -> Path:
    """The built load generator, compiling it first when this source has not been built."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    out = BUILD / f"loadgen-{digest}"
    if out.exists():
        return out
    cc = compiler()
    if cc is None:
        raise RuntimeError("no C compiler (cc, gcc or clang) to build bench/loadgen.c")
    BUILD.mkdir(exist_ok=True)
    (BUILD / ".gitignore").write_text("*\n")
    tmp = out.with_suffix(f".tmp{os.getpid()}")
    subprocess.run([cc, "-O2", "-o", str(tmp), str(SOURCE)], check=True, capture_output=True, text=True)
    tmp.replace(out)
    return out


@dataclass
class CLoadResult:
    ops: int
    errors: int
    seconds: float
    #: (upper bound in µs, count) per non-empty histogram bucket, ascending.
    histogram: list[tuple[int, int]] = field(default_factory=list)
    prefill_errors: int = 0
    #: CPU seconds (user + system) the generator used over the measured run (prefill excluded).
    cpu_seconds: float = 0.0

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        """The ``q`` quantile of per-request latency, in ms (bucket upper bound, ~3%)."""
        total = sum(n for _, n in self.histogram)
        if not total:
            return float("nan")
        rank = min(total - 1, int(q * total))
        seen = 0
        for upper, n in self.histogram:
            seen += n
            if seen > rank:
                return upper / 1000
        return self.histogram[-1][0] / 1000


def run_load(args: argparse.Namespace, cpu: int | None = None) -> CLoadResult:
    """Run ``bench/loadgen.c`` as ``args`` say (pinned to ``cpu`` when given); its result."""
    host, port = parse_address(args.addr)
    argv = [
        str(binary()), "--host", host, "--port", str(port), "--conns", str(args.conns),
        "--pipeline", str(args.pipeline), "--workload", args.workload, "--keys", str(args.keys),
        "--value-size", str(args.value_size), "--duration", str(args.duration),
        "--max-requests", str(args.max_requests), "--seed", str(getattr(args, "seed", 1)),
    ]
    if getattr(args, "no_prefill", False):
        argv.append("--no-prefill")
    if cpu is not None and shutil.which("taskset") and (os.cpu_count() or 1) > cpu:
        argv = ["taskset", "-c", str(cpu), *argv]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=args.duration + 90, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"bench/loadgen.c exited with {out.returncode}: {out.stderr.strip()}")
    r = json.loads(out.stdout)
    return CLoadResult(r["ops"], r["errors"], r["seconds"], [tuple(b) for b in r["hist"]], r["prefill_errors"], r["cpu_s"])


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.cloadgen")
    p.add_argument("--addr", default=None, help="host:port (default 127.0.0.1:PORT)")
    p.add_argument("--port", type=int, default=8081)
    add_load_shape(p)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-prefill", action="store_true", help="do not set every key first (gets may miss: errors)")
    p.add_argument("--cpu", type=int, default=None, help="pin the load generator to this CPU (taskset)")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    args = parser().parse_args(argv)
    if args.addr is None:
        args.addr = f"127.0.0.1:{args.port}"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    r = run_load(args, cpu=args.cpu)
    print(json.dumps({
        "ops": r.ops, "errors": r.errors, "ops_per_s": round(r.ops_per_s),
        "p50_ms": round(r.percentile(0.5), 3), "p99_ms": round(r.percentile(0.99), 3),
        "cpu_s": round(r.cpu_seconds, 3),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
