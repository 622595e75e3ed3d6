"""Where a node's CPU goes, by part: a py-spy profile summed by the file of each sample's
innermost Python frame.

``python -m bench.profile_shares PROFILE.raw [--top 15]`` reads the collapsed stacks
``py-spy record --format raw`` writes (one ``frame;frame;... count`` line per stack) and
prints each part's share of the samples, then the functions with the most samples of
their own. A sample's innermost Python frame is charged with the C code it called (a
``recv`` in the transport's ``_read_ready``, ``json.loads`` in the framing), so the parts
are what each layer costs, system calls included.

Record a profile of a running node with, e.g. (py-spy is not a dependency of ours):
``py-spy record -p PID -d 8 -r 500 -f raw -o node.raw --nonblocking`` while a load runs.
Profiles stay out of the repository.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

__all__ = ["PARTS", "part_of", "shares"]

#: (part, path fragments that put a frame's file in it), first match wins.
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("event loop and socket calls", ("asyncio/", "selectors.py", "uvloop", "socket.py", "ssl.py")),
    ("decoding requests", ("runtime/framing.py", "runtime/resp.py", "protocol/codec.py", "protocol/kinds.py")),
    ("connections (runtime)", ("runtime/",)),
    ("actor kernel (mailboxes, turns)", ("actors/kernel/", "pykka/")),
    ("node (planning, ordering, replies)", ("actors/node/", "protocol/messages.py", "protocol/edge.py")),
    ("store", ("actors/store/", "protocol/version.py", "protocol/replica_ops.py")),
    ("cluster (coordination, replicas, peer wire)", ("actors/cluster/", "actors/protocol/")),
)


def part_of(frame: str) -> str:
    """The part a py-spy frame (``function (path:line)``) belongs to."""
    where = frame.rpartition(" (")[2]
    for part, fragments in PARTS:
        if any(fragment in where for fragment in fragments):
            return part
    return "other"


def shares(lines: list[str]) -> tuple[int, collections.Counter[str], collections.Counter[str]]:
    """Total samples, samples per part, samples per innermost function."""
    parts: collections.Counter[str] = collections.Counter()
    functions: collections.Counter[str] = collections.Counter()
    total = 0
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        leaf = stack.rsplit(";", 1)[-1]
        total += n
        parts[part_of(leaf)] += n
        name, _, where = leaf.partition(" (")
        path = where.rsplit(":", 1)[0] if where else "?"
        functions[f"{name} ({'/'.join(path.split('/')[-2:])})"] += n
    return total, parts, functions


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile_shares", description=__doc__.split("\n\n")[0])
    p.add_argument("profile", type=Path, help="py-spy record --format raw output")
    p.add_argument("--top", type=int, default=15, help="functions to list by their own samples")
    args = p.parse_args(argv)
    total, parts, functions = shares(args.profile.read_text(encoding="utf-8", errors="replace").splitlines())
    if not total:
        print("no samples", file=sys.stderr)
        return 1
    print(f"| part | share of {total:,} samples |\n|---|---|")
    for part, n in parts.most_common():
        print(f"| {part} | {n / total:.0%} |")
    print("\n| function (innermost frame) | own share |\n|---|---|")
    for name, n in functions.most_common(args.top):
        print(f"| {name} | {n / total:.1%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
