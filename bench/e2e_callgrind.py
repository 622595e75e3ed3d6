"""A whole node process under callgrind, a fixed number of requests: instructions per request end to end.

``python -m bench.e2e_callgrind --tree /tmp/a7 --tree . --workload set --pipeline 16 --requests 20000``

Why: end to end, CPU per request is measured over a duration on a shared machine, and two
runs minutes apart differ by more than the change under test. An instruction count does
not drift with the machine's load. Each ``--tree`` (a checkout: ``git archive`` of a commit
extracted somewhere, or ``.``) runs ``python -m runtime.node`` under ``valgrind
--tool=callgrind`` (pinned to core 0); the compiled load generator (``bench/loadgen.c``,
pinned to core 1) first warms it (``--warm`` requests, every key set first for get and
mix), then the counters are zeroed (``callgrind_control -z``), exactly ``--requests``
requests are sent, and the counters are dumped. What is counted is everything the node
process ran in between: the event loop, the socket system calls' user-side wrappers (not
the kernel), the collector, timers, the request code.

Caveats, said with every result: under valgrind the node runs ~50x slower while the load
generator does not, so (a) every loop pass finds every connection readable (batches are
as large as ``--conns`` x ``--pipeline`` allow), unlike a real run: compare per batch
shapes with ``--conns 1``; and (b) work driven by the clock (the GC pacer's ticks, the
stats watcher, the connection sweep, the janitor) fires ~50x more often per request than
in a real run, more still when the machine is loaded. So the output splits the count by
the loop's phases (inclusive cost of ``uv__io_poll``: reads, decoding, writes, driven by
requests only; ``uv__run_idle``: call_soon callbacks, the actor turns, plus what timers
start; ``uv__run_timers``; ``gc_collect_main``), and measures the node idle for
``--idle`` seconds after the load to say what share of the count the clock drives.
For get and mix the load generator sets every key first and gives that 60 s: under
valgrind, on a busy machine, use a few connections only with ``--keys 1000`` or fewer.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench import cloadgen

OUT = Path("/tmp/e2e_callgrind")


def _start(tree: Path, label: str, extra: list[str]) -> tuple[subprocess.Popen[str], int, Path]:
    OUT.mkdir(exist_ok=True)
    out = OUT / f"cg.{label}"
    for old in (out, Path(f"{out}.1")):
        old.unlink(missing_ok=True)
    cmd = [
        "taskset", "-c", "0", "valgrind", "--tool=callgrind", "--dump-instr=no", f"--callgrind-out-file={out}",
        sys.executable, "-m", "runtime.node", f"cg{label}", "0", "--log-level", "warning", *extra,
    ]
    proc = subprocess.Popen(cmd, cwd=tree, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"node in {tree} exited before listening")
        m = re.search(r"listening on [\d.]+:(\d+)", line)
        if m:
            return proc, int(m.group(1)), out
    raise RuntimeError("node did not listen within 600 s")


def _load(port: int, args: argparse.Namespace, n: int, prefill: bool) -> str:
    cmd = [
        "taskset", "-c", "1", str(cloadgen.binary()), "--port", str(port), "--conns", str(args.conns),
        "--pipeline", str(args.pipeline), "--workload", args.workload, "--keys", str(args.keys),
        "--value-size", str(args.value_size), "--duration", "3600", "--max-requests", str(n),
        *([] if prefill else ["--no-prefill"]),
    ]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=3600).stdout


#: Top-level phases of one uvloop pass, by the libuv/CPython C function whose inclusive cost is the phase's.
PHASES = {
    "io": "uv__io_poll",  # reads, data_received (decoding), writes
    "call_soon": "uv__run_idle",  # actor turns, tasks' steps
    "timers": "uv__run_timers",  # the GC pacer, sweeps, sleeps waking
    "gc": "gc_collect_main",  # every collection, wherever it ran
}


def costs(dump: Path) -> dict[str, int]:
    """The dump's total and each phase's inclusive instructions (``callgrind_annotate``)."""
    text = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(dump)], capture_output=True, text=True, check=True
    ).stdout
    found: dict[str, int] = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \(.*?\)\s+(.+)$", line)
        if not m:
            continue
        n = int(m.group(1).replace(",", ""))
        if "PROGRAM TOTALS" in line:
            found["total"] = n
            continue
        function = m.group(2).split(" [")[0].rsplit(":", 1)[-1]
        for phase, name in PHASES.items():
            if function == name and phase not in found:
                found[phase] = n
    return found


def measure(tree: Path, label: str, args: argparse.Namespace) -> tuple[dict[str, float], str]:
    """Instructions per request the node in ``tree`` ran over ``args.requests`` requests,
    in total and by phase, and the share of them the same node runs idle in as long
    (``args.idle`` seconds measured after: the clock-driven work's scale)."""
    proc, port, out = _start(tree, label, args.node_args.split())
    try:
        _load(port, args, args.warm, prefill=True)
        subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True)
        began = time.monotonic()
        result = _load(port, args, args.requests, prefill=False)
        loaded_s = time.monotonic() - began
        subprocess.run(["callgrind_control", "-d", "loaded", str(proc.pid)], check=True, capture_output=True)
        idle_s = 0.0
        if args.idle > 0:
            began = time.monotonic()
            time.sleep(args.idle)
            subprocess.run(["callgrind_control", "-d", "idle", str(proc.pid)], check=True, capture_output=True)
            idle_s = time.monotonic() - began
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    loaded = costs(Path(f"{out}.1"))  # (callgrind numbers the dumps it is asked for)
    idle = costs(Path(f"{out}.2")) if idle_s else {}
    per = {k: v / args.requests for k, v in loaded.items()}
    # What the same node runs idle for as long as the loaded run took: the clock-driven
    # work's scale (an estimate: under load a tick walks more, so it costs more).
    per["idle_share"] = (idle.get("total", 0) * loaded_s / idle_s) / loaded["total"] if idle_s else 0.0
    note = (f"loaded {loaded_s:.1f} s, idle {idle_s:.1f} s ({idle.get('total', 0) / idle_s / 1e6 if idle_s else 0:.1f}M "
            f"instructions/s idle); load: {result.strip()[:100]}")
    return per, note


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tree", type=Path, action="append", required=True, help="a checkout (repeatable)")
    p.add_argument("--workload", choices=("set", "get", "mix"), default="set")
    p.add_argument("--pipeline", type=int, default=16)
    p.add_argument("--conns", type=int, default=50)
    p.add_argument("--requests", type=int, default=20_000)
    p.add_argument("--warm", type=int, default=20_000)
    p.add_argument("--keys", type=int, default=10_000)
    p.add_argument("--value-size", type=int, default=100)
    p.add_argument("--node-args", default="", help="more node options, space-separated")
    p.add_argument("--idle", type=float, default=10.0, help="seconds idle measured after the load (0: none)")
    args = p.parse_args(argv)
    print(f"{args.workload} P{args.pipeline}, {args.conns} connections, {args.requests:,} requests after {args.warm:,}; "
          f"load {os.getloadavg()[0]:.1f}")
    for i, tree in enumerate(args.tree):
        per, note = measure(tree.resolve(), f"{i}{args.workload}{args.pipeline}c{args.conns}", args)
        print(f"{tree}: instructions per request: "
              + ", ".join(f"{k} {per.get(k, 0):,.0f}" for k in ("total", *PHASES))
              + f"; idle for as long: {per['idle_share']:.0%} of the total [{note}]", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
