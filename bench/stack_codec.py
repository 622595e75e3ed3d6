"""The node's codecs alone, per request: orjson vs the standard library (JSON lines) and
hiredis vs the pure parser (RESP), in one process, best of several repeats.

``python -m bench.stack_codec [--record]`` times, with each codec in turn (twice,
alternating): :class:`runtime.framing.JsonLinesDecoder` fed pipelines of 16 set and 16
get lines (100 B values, as ``bench/stack.py``), :func:`runtime.reply_encoding.encode_json_reply`
of a 100 B hit, and :func:`runtime.resp.new_parser`'s parser fed 16 SET and 16 GET
commands (32 B values, as redis-benchmark). End to end, these differences are a few
percent of a request's CPU and drown in a shared machine's noise (``bench/stack.py``);
here they are measured on their own. Pin it (``taskset -c 0``) for steadier figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

from actors.protocol.messages import Value
from bench.results import RESULTS, machine, record
from bench.servers import conditions, resp_command
from runtime import framing, resp
from runtime.framing import JsonLinesDecoder, use_json_codec
from runtime.reply_encoding import encode_json_reply

HEADING = "The stack, codecs alone: orjson and hiredis per request in the node's own code (`bench/stack_codec.py`)"


def _per_call(fn: Callable[[], Any], number: int, repeat: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number


def json_costs(codec: str, number: int, repeat: int) -> dict[str, float]:
    """us per line (decode) and per reply (encode) with JSON codec ``codec``."""
    use_json_codec(codec)
    value = "x" * 100
    sets = b"".join(b'{"type":"set","key":"key:%d","value":"%s"}\n' % (i, value.encode()) for i in range(16))
    gets = b"".join(b'{"type":"get","key":"key:%d"}\n' % i for i in range(16))
    decoder = JsonLinesDecoder(1 << 20)
    hit = Value(value, True)
    return {
        "decode set": _per_call(lambda: decoder.feed(sets), number, repeat) / 16 * 1e6,
        "decode get": _per_call(lambda: decoder.feed(gets), number, repeat) / 16 * 1e6,
        "encode hit": _per_call(lambda: encode_json_reply(hit), number * 16, repeat) * 1e6,
    }


def resp_costs(parser: str, number: int, repeat: int) -> dict[str, float]:
    """us per command parsed with RESP parser ``parser`` (``python`` or ``hiredis``)."""
    sets = b"".join(resp_command("SET", f"key:{i:012d}", "x" * 32) for i in range(16))
    gets = b"".join(resp_command("GET", f"key:{i:012d}") for i in range(16))
    make = resp.HiredisRespParser if parser == "hiredis" else resp.RespParser
    p = make()
    return {
        "parse SET": _per_call(lambda: p.feed(sets), number, repeat) / 16 * 1e6,
        "parse GET": _per_call(lambda: p.feed(gets), number, repeat) / 16 * 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.stack_codec")
    ap.add_argument("--number", type=int, default=5000, help="pipelines per timing")
    ap.add_argument("--repeat", type=int, default=5, help="timings per figure (the best is kept)")
    ap.add_argument("--record", action="store_true")
    ap.add_argument("--results", type=Path, default=RESULTS, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    before = framing.json_codec()
    rows = ["| step | without (stdlib / pure parser) us | with (orjson / hiredis) us | without / with |", "|---|---|---|---|"]
    try:
        figures: dict[str, list[float]] = {}
        json_pair = ("stdlib", "orjson") if framing.ORJSON_AVAILABLE else ("stdlib",)
        resp_pair = ("python", "hiredis") if resp.HIREDIS_AVAILABLE else ("python",)
        for _ in range(2):  # alternate, keep each codec's best
            for codec in json_pair:
                for step, us in json_costs(codec, args.number, args.repeat).items():
                    key = f"{step}|{codec != 'stdlib'}"
                    figures[key] = [min(figures.get(key, [us]) + [us])]
            for parser in resp_pair:
                for step, us in resp_costs(parser, args.number, args.repeat).items():
                    key = f"{step}|{parser != 'python'}"
                    figures[key] = [min(figures.get(key, [us]) + [us])]
    finally:
        use_json_codec(before)
    for step in ("decode set", "decode get", "encode hit", "parse SET", "parse GET"):
        off, on = figures[f"{step}|False"][0], figures.get(f"{step}|True", [None])[0]
        rows.append(f"| {step} | {off:.3f} | {'-' if on is None else f'{on:.3f}'} | {'-' if on is None else f'{off / on:.2f}'} |")
    text = "\n".join(rows)
    print(text)
    if args.record:
        pinned = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
        record(
            HEADING,
            "python -m bench.stack_codec " + " ".join(argv if argv is not None else sys.argv[1:]),
            f"{machine()}; {conditions()}; CPUs allowed: {sorted(pinned) if pinned else '?'}. In-process, best of "
            f"{args.repeat} x {args.number} pipelines of 16, each codec twice, alternating; us per line, reply or command "
            f"(JSON: 100 B values, JsonLinesDecoder.feed and encode_json_reply; RESP: 32 B values, runtime.resp parsers).\n\n"
            + text,
            args.results,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
