"""What client authentication costs per request after ``auth``, measured in process:
``python -m bench.auth_gate [--rounds 15] [--record]`` (pin it: ``taskset -c 1``).

A JSON-lines connection's per-read work up to the node is decoding the read
(``JsonLinesDecoder.feed``) and, with passwords configured, :meth:`AuthGate.admit` on the
decoded items. This times, on the same reads of a ``get``/``set`` mix at pipeline 1 and 16:
decoding alone (a node without passwords: no gate exists), decoding plus the gate of a
user with every permission (``--requirepass``), and plus the gate of a restricted user
(``+@read +@write ~app:*``: category and key pattern checked per request). Rounds
alternate the three so they see the same machine; the figure is each mode's fastest
round (the least disturbed by other processes, as ``timeit`` reports), per request, and the
gate's share of decoding. End to end (node, sockets, load generator) the same
question is answered by ``bench/tls.py``'s ``auth`` column.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Callable

from bench.results import machine, record
from runtime.acl import Acl
from runtime.client_auth import AuthGate
from runtime.framing import JsonLinesDecoder

HEADING = "Client authentication: per-request cost of the auth gate (`bench/auth_gate.py`)"


def _reads(pipeline: int, count: int) -> list[bytes]:
    reads = []
    for i in range(count):
        lines = []
        for j in range(pipeline):
            n = i * pipeline + j
            if n % 2:
                lines.append(b'{"type":"set","key":"app:%d","value":"%s"}\n' % (n % 1000, b"v" * 32))
            else:
                lines.append(b'{"type":"get","key":"app:%d"}\n' % (n % 1000))
        reads.append(b"".join(lines))
    return reads


def _time(reads: list[bytes], admit: Callable[[list[Any]], list[Any]] | None) -> float:
    decoder = JsonLinesDecoder(1 << 20)
    feed = decoder.feed
    started = time.perf_counter()
    if admit is None:
        for data in reads:
            feed(data)
    else:
        for data in reads:
            admit(feed(data))
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.auth_gate")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--requests", type=int, default=64_000, help="requests per round and mode")
    parser.add_argument("--record", action="store_true", help="append the figures to bench/RESULTS.md")
    args = parser.parse_args(argv)
    acl = Acl.parse("user admin on >pw allkeys +@all\nuser app on >pw ~app:* +@read +@write\n")
    rows = []
    for pipeline in (1, 16):
        reads = _reads(pipeline, args.requests // pipeline)
        gates = {}
        for name in ("admin", "app"):
            gate = AuthGate(acl)
            gate.user = acl.users[name]
            gates[name] = gate.admit
        modes: dict[str, Callable[[list[Any]], list[Any]] | None] = {
            "none": None, "all-permitted": gates["admin"], "restricted": gates["app"],
        }
        times: dict[str, list[float]] = {mode: [] for mode in modes}
        for round_ in range(args.rounds):
            order = list(modes) if round_ % 2 == 0 else list(reversed(modes))
            for mode in order:
                times[mode].append(_time(reads, modes[mode]) / args.requests * 1e9)
        med = {mode: min(values) for mode, values in times.items()}  # the least disturbed round
        rows.append(
            f"| {pipeline} | {med['none']:.0f} | {med['all-permitted']:.0f} "
            f"| {med['all-permitted'] - med['none']:+.0f} "
            f"({(med['all-permitted'] / med['none'] - 1) * 100:+.1f}%) | {med['restricted']:.0f} "
            f"| {med['restricted'] - med['none']:+.0f} ({(med['restricted'] / med['none'] - 1) * 100:+.1f}%) |"
        )
    body = "\n".join([
        f"{machine()}; {args.rounds} alternating rounds of {args.requests:,} requests per mode "
        "(get/set mix, 32 B values); each mode's fastest round, ns per request.",
        "",
        "| pipeline | decode only (no passwords) ns | + gate, all-permitted user ns | gate cost | "
        "+ gate, restricted user ns | gate cost |",
        "|---|---|---|---|---|---|",
        *rows,
    ])
    print(body)
    if args.record:
        command = "python -m bench.auth_gate --record"
        if _pinned():
            command = "taskset -c 1 " + command
        record(HEADING, command, body)
    return 0


def _pinned() -> bool:
    try:
        import os

        return len(os.sched_getaffinity(0)) == 1
    except (AttributeError, OSError):
        return False


if __name__ == "__main__":
    sys.exit(main())
