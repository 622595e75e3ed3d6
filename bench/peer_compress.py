"""Peer link compression: wire bytes and CPU per key, with and without, same run.

``python -m bench.peer_compress [--keys 200000] [--writes 50000] [--modes on,off] [--record]``:
for each ``--peer-compress`` mode in turn (``--modes``, default ``on`` then ``off``; on
loopback ``auto`` sends as ``off`` does), a 3-node cluster (``--replicas 3``, quorum writes):

- quorum writes: ``--writes`` SETs through node1's RESP port, pipelined 16 deep (the
  shape of ``bench.cluster_throughput``'s load: single-key writes, each a replica request
  to the two co-owners);
- warming: ``--keys`` keys filled with MSET batches of 500, then node3 SIGKILLed and
  restarted empty on its port; until its ``stats`` says ``ready`` it is refilled by
  streaming from node1 and node2.

Values are JSON-like records of ~90 bytes that differ per key (a user id, a name, a score),
not a repeated byte. Reported per phase: the bytes the peer links wrote (every node's
``peer_links.wire_bytes``, the handshakes included) and the CPU seconds of the three node
processes (/proc utime + stime), each divided by the keys written or warmed. Every process
is stopped however the run ends.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import redis

from bench.results import RESULTS, machine, record
from bench.servers import conditions
from bench.warm_restart import mset, stats, wait_ready
from runtime.local_cluster import NodeProcess

HEADING = "Peer compression: wire bytes and CPU per key, on vs off (`bench/peer_compress.py`)"
FLAGS = ("--log-level", "warning", "--replicas", "3", "--request-timeout", "10", "--resp-port", "0")
_TICK = os.sysconf("SC_CLK_TCK")


def value(i: int) -> str:
    return f'{{"user":{i},"name":"user{i}","email":"user{i}@example.com","score":{(i * 7919) % 100003 / 1000:.3f}}}'


def cpu(node: NodeProcess) -> float:
    fields = Path(f"/proc/{node.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def wire_bytes(nodes: list[NodeProcess]) -> int:
    return sum(stats(n).get("peer_links", {}).get("wire_bytes", 0) for n in nodes)


def run_mode(mode: str, keys: int, writes: int) -> dict[str, tuple[float, float, float]]:
    flags = (*FLAGS, "--peer-compress", mode)
    nodes: list[NodeProcess] = []
    try:
        n1 = NodeProcess("node1", *flags, port=0, stderr=None, start_timeout=120)
        nodes.append(n1)
        n2 = NodeProcess("node2", n1.addr, *flags, port=0, stderr=None, start_timeout=120)
        nodes.append(n2)
        n3 = NodeProcess("node3", n1.addr, n2.addr, *flags, port=0, stderr=None, start_timeout=120)
        nodes.append(n3)
        for n in nodes:
            wait_ready(n, 60)
        time.sleep(1)
        r = redis.Redis(port=n1.resp_port, socket_timeout=120)
        out: dict[str, tuple[float, float, float]] = {}
        # quorum writes
        b0, c0, t0 = wire_bytes(nodes), sum(cpu(n) for n in nodes), time.monotonic()
        for start in range(0, writes, 16):
            pipe = r.pipeline(transaction=False)
            for i in range(start, min(writes, start + 16)):
                pipe.set(f"w:{i}", value(i))
            pipe.execute()
        time.sleep(0.5)
        out["quorum writes"] = (wire_bytes(nodes) - b0, sum(cpu(n) for n in nodes) - c0, time.monotonic() - t0)
        # warming
        for start in range(0, keys, 500):
            mset(r, {f"key:{i}": value(i) for i in range(start, min(keys, start + 500))})
        time.sleep(2)
        port = n3.port
        n3.kill()
        nodes.remove(n3)
        b0, c0 = wire_bytes(nodes), sum(cpu(n) for n in nodes)
        t0 = time.monotonic()
        n3 = NodeProcess("node3", n1.addr, n2.addr, *flags, port=port, stderr=None, start_timeout=300)
        nodes.append(n3)
        wait_ready(n3, 900)
        elapsed = time.monotonic() - t0
        held = stats(n3).get("keys", 0)
        print(f"{mode}: node3 holds {held} keys after warming", file=sys.stderr, flush=True)
        out["warming"] = (wire_bytes(nodes) - b0, sum(cpu(n) for n in nodes) - c0, elapsed)
        return out
    finally:
        for n in nodes:
            n.kill()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.peer_compress")
    p.add_argument("--keys", type=int, default=200_000, help="keys warmed")
    p.add_argument("--writes", type=int, default=50_000, help="quorum SETs")
    p.add_argument("--modes", default="on,off", help="--peer-compress modes, run in this order (on and off for the ratios)")
    p.add_argument("--record", action="store_true")
    args = p.parse_args(argv)
    modes = args.modes.split(",")
    note = conditions()
    results = {mode: run_mode(mode, args.keys, args.writes) for mode in modes}
    per = {"quorum writes": args.writes, "warming": args.keys + args.writes}
    rows = [
        f"3 nodes, --replicas 3, quorum writes; {args.writes:,} pipelined SETs (16 deep) through node1, then "
        f"{args.keys:,} keys MSET and node3 SIGKILLed and restarted empty: it warms "
        f"{per['warming']:,} keys from its peers. Values ~90-byte JSON-like records, distinct per key.",
        "",
        "| phase | --peer-compress | wire bytes/key | CPU us/key (3 nodes) | seconds |",
        "|---|---|---|---|---|",
    ]
    for phase, n in per.items():
        for mode in modes:
            b, c, s = results[mode][phase]
            rows.append(f"| {phase} | {mode} | {b / n:.1f} | {c / n * 1e6:.1f} | {s:.1f} |")
    rows.append("")
    for phase, n in per.items():
        if "on" in results and "off" in results:
            (b_on, c_on, s_on), (b_off, c_off, s_off) = results["on"][phase], results["off"][phase]
            rows.append(
                f"{phase}: wire bytes on/off {b_on / b_off:.2f}, CPU on/off {c_on / c_off:.2f}, seconds on/off {s_on / s_off:.2f}"
            )
    print("\n".join(rows), flush=True)
    if args.record:
        command = "flock /tmp/bench.lock python -m bench.peer_compress " + " ".join(argv if argv is not None else sys.argv[1:])
        record(HEADING, command, "\n".join([machine() + f"; no CPU pinning; {note}.", "", *rows]), RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
