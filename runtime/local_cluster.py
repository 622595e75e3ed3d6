"""``python -m runtime.local_cluster [--nodes 3] [--base-port 8081] [-- NODE_ARGS ...]``

Runs a cluster of ``python -m runtime.node`` processes on this machine: ``node1`` on
the base port, each next node on the next port joining through every node before it
(``--base-port 0`` lets every node pick a free port). Each node's start-up line is
printed as it comes up; SIGINT or SIGTERM stops them all gracefully (each leaves the
cluster), and the exit code is the worst of theirs.
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

from runtime.argtypes import count, port

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
_LINE = re.compile(r"listening on (\S+):(\d+)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.local_cluster", description=__doc__.split("\n\n")[1])
    parser.add_argument("--nodes", type=count, default=3, help="how many nodes (default 3)")
    parser.add_argument("--base-port", type=port, default=8081, help="node1's port; nodeN gets base+N-1 (0: free ports)")
    parser.add_argument("node_args", nargs=argparse.REMAINDER, help="after --: arguments for every node")
    args = parser.parse_args(argv)
    extra = [a for a in args.node_args if a != "--"]
    procs: list[subprocess.Popen[str]] = []
    stop = threading.Event()

    def on_signal(_sig: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    addresses: list[str] = []
    try:
        for i in range(1, args.nodes + 1):
            node_port = args.base_port + i - 1 if args.base_port else 0
            proc = subprocess.Popen(
                [sys.executable, "-m", "runtime.node", f"node{i}", str(node_port), *addresses, *extra],
                cwd=ROOT, stdout=subprocess.PIPE, text=True,
            )
            procs.append(proc)
            assert proc.stdout is not None
            line = proc.stdout.readline()
            m = _LINE.search(line)
            if not m:
                print(f"node{i} did not start: {line.strip()!r}", file=sys.stderr)
                return 1
            print(line.rstrip("\n"), flush=True)
            addresses.append(f"{m.group(1)}:{m.group(2)}")
        print(f"local cluster of {args.nodes} nodes up; Ctrl-C stops it", flush=True)
        while not stop.wait(0.5):
            dead = [p for p in procs if p.poll() is not None]
            if dead:
                print(f"a node exited with {dead[0].returncode}; stopping the cluster", file=sys.stderr)
                break
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        codes = []
        for proc in procs:
            try:
                codes.append(proc.wait(timeout=20))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(proc.wait())
            if proc.stdout is not None:
                proc.stdout.close()
    return max(codes, default=0)


if __name__ == "__main__":
    sys.exit(main())
