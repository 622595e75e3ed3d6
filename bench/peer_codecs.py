"""Which compressor earns its place on peer frames: zlib (stdlib), zstd, lz4, in one process.

``python -m bench.peer_codecs [--record]``: msgpack Push frames of 1,000 records (what
warming streams and anti-entropy pushes carry; replica batches are the same records) with
three kinds of values: a repeated byte (the benches' ``'v' * 32``), ~90-byte JSON-like
records distinct per key, and 32 random bytes. For each codec: compressed size / raw size
and CPU nanoseconds per raw byte to compress and to decompress (process time, 4 passes
over 5 frames). lz4 is measured when its package is installed (it is no dependency).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import zlib
from typing import Callable

import msgpack
import zstandard

from bench.results import RESULTS, machine, record

HEADING = "Peer compression: which codec, on peer frames (`bench/peer_codecs.py`)"


def codecs() -> dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]]:
    zd = zstandard.ZstdDecompressor()
    out: dict[str, tuple[Callable[[bytes], bytes], Callable[[bytes], bytes]]] = {
        "zlib -1": (lambda b: zlib.compress(b, 1), zlib.decompress),
        "zstd -1": (zstandard.ZstdCompressor(level=1, write_checksum=True).compress, zd.decompress),
        "zstd -3": (zstandard.ZstdCompressor(level=3, write_checksum=True).compress, zd.decompress),
    }
    try:
        import lz4.block

        out["lz4"] = (lambda b: lz4.block.compress(b, store_size=True), lz4.block.decompress)
    except ImportError:
        pass
    return out


def frame(n: int, val: Callable[[int], bytes]) -> bytes:
    records = [[f"key:{i}".encode(), val(i), [1733533200000 + i, 0, "node1"], None] for i in range(n)]
    return msgpack.packb({"type": "push", "records": records}, use_bin_type=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.peer_codecs")
    p.add_argument("--record", action="store_true")
    args = p.parse_args(argv)
    rng = random.Random(1)
    kinds: dict[str, Callable[[int], bytes]] = {
        "'v' * 32": lambda i: b"v" * 32,
        "JSON-like ~90 B": lambda i: f'{{"user":{i},"name":"user{i}","email":"user{i}@example.com","score":{rng.random():.6f}}}'.encode(),
        "random 32 B": lambda i: os.urandom(32),
    }
    rows = ["| values | codec | size / raw | compress ns/B | decompress ns/B |", "|---|---|---|---|---|"]
    for kind, val in kinds.items():
        frames = [frame(1000, val) for _ in range(5)]
        raw = sum(map(len, frames))
        for name, (comp, decomp) in codecs().items():
            t0 = time.process_time()
            for _ in range(4):
                out = [comp(b) for b in frames]
            t1 = time.process_time()
            for _ in range(4):
                for o in out:
                    decomp(o)
            t2 = time.process_time()
            size = sum(map(len, out))
            rows.append(
                f"| {kind} | {name} | {size / raw:.3f} | {(t1 - t0) / 4 / raw * 1e9:.2f} | {(t2 - t1) / 4 / raw * 1e9:.2f} |"
            )
    print("\n".join(rows))
    if args.record:
        command = "flock /tmp/bench.lock python -m bench.peer_codecs " + " ".join(argv if argv is not None else sys.argv[1:])
        record(HEADING, command, "\n".join([machine() + "; one process, no pinning.", "", *rows]), RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
