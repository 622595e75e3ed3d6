"""A partial RESP command's ``buffered`` covers what it really holds.

Found by red-teaming: partial commands of many tiny arguments (``$2\\r\\nxy\\r\\n``, 8 wire
bytes, a 35-byte bytes object plus a list slot once parsed) held ~8x what the input
budget counted: 60 such half-sent commands of 1 MB held 442-513 MB against 60 MB
counted. ``buffered`` must be at least what the parser holds (tracemalloc, both parsers).
"""

from __future__ import annotations

import tracemalloc

import pytest

from runtime.resp import HIREDIS_AVAILABLE, HiredisRespParser, RespParser


def _partial_tiny_args(count: int) -> bytes:
    # Two bytes each: CPython shares one object per single byte, so "x" would cost nothing.
    return b"*%d\r\n" % (count + 10) + b"$2\r\nxy\r\n" * count  # 10 arguments short


@pytest.mark.parametrize("kind", ["pure", "hiredis"])
def test_buffered_covers_the_arguments_held(kind: str) -> None:
    if kind == "hiredis" and not HIREDIS_AVAILABLE:
        pytest.skip("hiredis is not installed")
    data = _partial_tiny_args(100_000)
    tracemalloc.start()
    try:
        parser = RespParser(4 << 20) if kind == "pure" else HiredisRespParser(4 << 20)
        base = tracemalloc.get_traced_memory()[0]
        for start in range(0, len(data), 65536):  # as reads arrive
            assert parser.feed(data[start : start + 65536]) == []
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert parser.error is None
    assert parser.buffered >= 0.8 * held, f"{kind}: buffered {parser.buffered:,} for {held:,} bytes held"
    assert parser.buffered <= 8 * len(data)  # and not absurdly more


@pytest.mark.parametrize("kind", ["pure", "hiredis"])
def test_a_large_partial_value_counts_about_its_bytes(kind: str) -> None:
    if kind == "hiredis" and not HIREDIS_AVAILABLE:
        pytest.skip("hiredis is not installed")
    parser = RespParser(4 << 20) if kind == "pure" else HiredisRespParser(4 << 20)
    data = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$500000\r\n" + b"v" * 400_000
    assert parser.feed(data) == []
    assert len(data) <= parser.buffered <= 3 * len(data)
