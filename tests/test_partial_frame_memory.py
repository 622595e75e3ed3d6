"""A partial request costs its wire bytes, not the objects it would decode to.

The input budget (``--max-input-buffer-bytes``) and the per-connection frame limit count
wire bytes. A msgpack unpacker fed a partial frame builds its elements as they arrive: a
half-sent 1 MiB frame of empty maps (one byte each) would hold ~70 MiB of dicts, so 256
such connections would hold ~18 GiB under a 256 MiB budget. The decoder must only build
complete frames. Measured with tracemalloc (allocations, not time), so it is not flaky.
"""

from __future__ import annotations

import struct
import tracemalloc

import msgpack

from runtime.framing import MsgpackDecoder

MB = 1 << 20


def _held_after(feed: bytes, max_bytes: int) -> tuple[int, MsgpackDecoder]:
    tracemalloc.start()
    try:
        decoder = MsgpackDecoder(max_bytes)
        base = tracemalloc.get_traced_memory()[0]
        assert decoder.feed(feed) == []
        return tracemalloc.get_traced_memory()[0] - base, decoder
    finally:
        tracemalloc.stop()


def test_a_half_sent_frame_of_empty_maps_holds_its_bytes_not_its_dicts() -> None:
    count = MB - 16
    partial = b"\xdd" + struct.pack(">I", count) + b"\x80" * (count - 1000)  # 1,000 maps short
    held, decoder = _held_after(partial, MB)
    # The bytes, kept by the decoder (the scanner consumed the maps as it went): about
    # 1 MB, and ``buffered`` says at least that. Building the maps would be ~70 MB.
    assert held < 3 * len(partial), f"{held:,} bytes held for a {len(partial):,}-byte partial frame"
    assert len(partial) <= decoder.buffered <= 2 * len(partial)


def test_buffered_counts_both_copies_of_a_half_sent_binary_value() -> None:
    """A partial binary value waits whole in the scanner's buffer too: ``buffered`` (what
    the input budget counts) must say so, as tracemalloc sees it."""
    size = MB
    partial = b"\x83\xa4type\xa3set\xa3key\xa1k\xa5value\xc6" + size.to_bytes(4, "big") + b"\0" * (size - 1024)
    held, decoder = _held_after(partial, 2 * MB)
    assert decoder.buffered >= 0.9 * held and decoder.buffered <= 2 * len(partial) + 64


def test_the_same_frame_completed_is_decoded() -> None:
    value = [{}] * 50_000
    frame = msgpack.packb({"type": "set", "key": "k", "value": value})
    decoder = MsgpackDecoder(MB)
    assert decoder.feed(frame[:-1]) == [] and len(frame) - 1 <= decoder.buffered <= 2 * len(frame)
    (request,) = decoder.feed(frame[-1:])
    assert request.value == value and decoder.buffered == 0
