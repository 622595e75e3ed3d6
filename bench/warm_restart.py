"""Restart-to-ready of a cluster node: from its peers only vs from its data directory plus peers.

``python -m bench.warm_restart [--keys 1000000] [--changed 10000] [--record]``: three nodes
(``--replicas 3``, each with ``--dir``, ``--save ''``) get ``--keys`` keys through node1's
RESP port (MSET batches); node3 writes a snapshot (``SAVE``); ``--changed`` more keys are
written and as many overwritten; node3 is SIGKILLed and restarted

- with its data directory: it loads the snapshot, then its pull rounds compare partition
  digests with its co-owners and pull only the keys that differ (versions make it a merge);
- with an empty one: it pulls every key it owns.

Reported: seconds from spawning the new process until its ``stats`` says the cluster is
``ready`` (warming done), and the keys it streamed (``keys_streamed``), each restart once,
same run. Every process is stopped and every directory removed however the run ends.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import redis

from bench.results import RESULTS, machine, record
from bench.servers import conditions
from runtime.client import Client
from runtime.local_cluster import NodeProcess

HEADING = "Warm restart: a cluster node back from its peers only vs from disk plus peers (`bench/warm_restart.py`)"
FLAGS = ("--log-level", "warning", "--replicas", "3", "--request-timeout", "10", "--resp-port", "0", "--save", "")


def stats(node: NodeProcess) -> dict:
    with Client(node.addr, timeout=30) as c:
        return c.stats()  # type: ignore[no-any-return]


def wait_ready(node: NodeProcess, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if stats(node).get("cluster", {}).get("ready") is True:
                return time.monotonic()
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{node.node_id} not ready within {timeout}s")


def spawn(node_id: str, data: Path, contacts: list[str], port: int = 0) -> NodeProcess:
    # Contacts first: --save takes every word after it.
    return NodeProcess(node_id, *contacts, *FLAGS, "--dir", str(data), port=port, stderr=None, start_timeout=900)


def mset(r: redis.Redis, items: dict[str, str]) -> None:
    """MSET, again after a ``timeout`` (an indefinite answer on a loaded machine: the same
    values written twice are the same data)."""
    for _ in range(20):
        try:
            r.mset(items)
            return
        except redis.ResponseError as exc:
            if not str(exc).startswith("TIMEOUT"):
                raise
            time.sleep(0.5)
    raise RuntimeError("MSET kept timing out")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.warm_restart")
    p.add_argument("--keys", type=int, default=1_000_000)
    p.add_argument("--changed", type=int, default=10_000)
    p.add_argument("--record", action="store_true")
    args = p.parse_args(argv)
    note = conditions()
    work = Path(tempfile.mkdtemp(prefix="actorcache-warm-"))
    nodes: list[NodeProcess] = []
    rows = []
    try:
        n1 = spawn("node1", work / "n1", [])
        nodes.append(n1)
        n2 = spawn("node2", work / "n2", [n1.addr])
        nodes.append(n2)
        n3 = spawn("node3", work / "n3", [n1.addr, n2.addr])
        nodes.append(n3)
        for n in nodes:
            wait_ready(n, 60)
        time.sleep(2)
        r = redis.Redis(port=n1.resp_port, socket_timeout=120)
        t0 = time.monotonic()
        for start in range(0, args.keys, 500):
            mset(r, {f"key:{i}": "v" * 32 for i in range(start, min(args.keys, start + 500))})
        print(f"filled {args.keys} keys in {time.monotonic() - t0:.1f}s", file=sys.stderr, flush=True)
        r3 = redis.Redis(port=n3.resp_port, socket_timeout=600)
        time.sleep(2)
        print("node3 dbsize", r3.dbsize(), file=sys.stderr, flush=True)
        r3.save()
        for start in range(0, args.changed, 1000):
            mset(r, {f"new:{i}": "n" * 32 for i in range(start, min(args.changed, start + 1000))})
            mset(r, {f"key:{i}": "w" * 32 for i in range(start, min(args.changed, start + 1000))})
        results = {}
        for label, wipe in (("disk + peers", False), ("peers only", True)):
            port = n3.port
            n3.kill()
            nodes.remove(n3)
            if wipe:
                shutil.rmtree(work / "n3")
            t0 = time.monotonic()
            n3 = spawn("node3", work / "n3", [n1.addr, n2.addr], port=port)
            nodes.append(n3)
            started = time.monotonic()
            ready = wait_ready(n3, 900)
            s = stats(n3)
            results[label] = (started - t0, ready - t0, s.get("cluster", {}).get("keys_streamed", 0), s.get("keys", 0))
            print(label, results[label], file=sys.stderr, flush=True)
        rows = [
            f"{args.keys:,} keys, 3 nodes, --replicas 3; node3 SAVEd, then {args.changed:,} keys added and "
            f"{args.changed:,} overwritten, then node3 SIGKILLed and restarted (each way once, same run).",
            "",
            "| node3 restarted with | port open (s; after the load) | ready (s) | keys streamed | keys held |",
            "|---|---|---|---|---|",
        ]
        for label, (up, ready, streamed, held) in results.items():
            rows.append(f"| {label} | {up:.1f} | {ready:.1f} | {streamed:,} | {held:,} |")
        a, b = results["disk + peers"][1], results["peers only"][1]
        rows += ["", f"ready from disk + peers / from peers only: {a / b:.2f}"]
        print("\n".join(rows), flush=True)
        if args.record:
            command = "flock /tmp/bench.lock python -m bench.warm_restart " + " ".join(argv if argv is not None else sys.argv[1:])
            record(HEADING, command, "\n".join([machine() + f"; no CPU pinning; {note}.", "", *rows]), RESULTS)
    finally:
        for n in nodes:
            n.kill()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
