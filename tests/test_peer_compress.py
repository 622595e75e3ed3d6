"""Compression on peer links (runtime/peer_compress.py): negotiated at hello, per frame
above a threshold, hostile-input safe on the way in.

In-process: the threshold's edge, a corrupted or truncated compressed frame, zip bombs,
a compressed frame on a link that chose none, the negotiation's rules. Over real TCP (a
real CacheServer on 127.0.0.1): a link compresses to a receiver that chose it, a sender
that offers nothing (an older hello) and an acceptor that chooses nothing (an older
challenge) keep the link uncompressed, and a corrupted compressed frame closes the
connection with nothing of it applied. In the simulator: compressed bytes per link.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import zlib
from collections.abc import Callable
from typing import Any

import msgpack
import pytest

from actors.kernel.peer_auth import NONCE_BYTES, Acceptor, Connector
from actors.protocol.messages import Get, Set
from actors.protocol.peer_codec import encode_hello, encode_peer
from actors.protocol.peer_messages import Push, PushAck
from actors.protocol.record import Record
from actors.protocol.version import Version
from runtime.framing import MsgpackDecoder
from runtime.local_cluster import ROOT
from runtime.peer_compress import (
    CODECS,
    DEFAULT_THRESHOLD,
    CompressionError,
    accepted_codec,
    choose_codec,
    compress_frame,
    compresses,
    offer,
)
from runtime.peer_connection import read_peer_frames, switch_to_peer_frames
from runtime.peer_frames import peer_packer
from runtime.peer_trust import PeerTrust, reached_address
from runtime.peers import PeerLinks
from runtime.server import CacheServer
from tests.test_cluster_sim import SimCluster
from tests.test_peer_auth import non_loopback_ip
from tests.test_peer_transport import (  # noqa: F401 - lt and make_links are fixtures
    PARTITIONS,
    LoopThread,
    Receiver,
    Recorder,
    delivered,
    lt,
    make_links,
    read_msgpack_reply,
    send_all,
    wait_until,
)

V1 = Version(1_700_000_000_000, 0, "node1")
LIMIT = 1 << 20
PACK = peer_packer()
CODEC_NAMES = list(CODECS)


def push(value_chars: int, n: int = 1) -> Push:
    return Push(1, tuple(Record(f"k{i}", "v" * value_chars, None, V1) for i in range(n)), True)


def frame_of(msg: Any) -> bytes:
    return PACK(encode_peer(msg))


def push_of_frame_size(size: int) -> tuple[Push, bytes]:
    """A Push whose frame is exactly ``size`` bytes (the value's length steps one byte)."""
    for chars in range(size, 0, -1):
        msg = push(chars)
        frame = frame_of(msg)
        if len(frame) == size:
            return msg, frame
    raise AssertionError(f"no Push frame of {size} bytes")


def peer_decoder(limit: int = LIMIT) -> MsgpackDecoder:
    decoder = MsgpackDecoder(LIMIT)
    switch_to_peer_frames(decoder, limit)
    return decoder


def as_bin(payload: bytes) -> bytes:
    return msgpack.packb(payload, use_bin_type=True)


# --- the threshold and the frame format ------------------------------------------------------


@pytest.mark.parametrize("name", CODEC_NAMES)
def test_a_frame_just_below_the_threshold_goes_as_it_is_and_one_at_it_compressed(name: str) -> None:
    codec = CODECS[name]
    below_msg, below = push_of_frame_size(DEFAULT_THRESHOLD - 1)
    at_msg, at = push_of_frame_size(DEFAULT_THRESHOLD)
    assert compress_frame(codec, below) is below
    packed = compress_frame(codec, at)
    assert packed[:1] in (b"\xc4", b"\xc5") and len(packed) < len(at) // 4  # a msgpack bin, much smaller
    msgs, why = read_peer_frames(peer_decoder(), below + packed + below, 64, codec)
    assert why is None and msgs == [below_msg, at_msg, below_msg]


@pytest.mark.parametrize("name", CODEC_NAMES)
def test_a_frame_compression_would_not_shrink_goes_as_it_is(name: str) -> None:
    msg = Push(1, (Record("k", os.urandom(4000), None, V1),), True)
    frame = frame_of(msg)
    assert compress_frame(CODECS[name], frame) is frame


# --- hostile frames: corrupt, truncated, bombs, not negotiated ------------------------------


def _read(codec_name: str | None, payload: bytes, limit: int = LIMIT) -> tuple[list[Any], str | None]:
    """A good frame, ``payload``, a good frame: what the connection would tell its node."""
    good = frame_of(PushAck(1, 1))
    codec = CODECS[codec_name] if codec_name else None
    return read_peer_frames(peer_decoder(limit), good + payload + good, 64, codec)


@pytest.mark.parametrize("name", CODEC_NAMES)
def test_a_corrupted_compressed_frame_is_an_error_and_nothing_of_it_or_behind_it_is_read(name: str) -> None:
    codec = CODECS[name]
    compressed = bytearray(codec.compress(frame_of(push(3000, 3))))
    for where in (len(compressed) // 2, len(compressed) - 1):  # a literal's byte, the checksum's
        bad = bytearray(compressed)
        bad[where] ^= 0x5A
        msgs, why = _read(name, as_bin(bytes(bad)))
        assert msgs == [PushAck(1, 1)] and why is not None and "corrupt" in why
    msgs, why = _read(name, as_bin(bytes(compressed[:-5])))  # truncated
    assert msgs == [PushAck(1, 1)] and why is not None


@pytest.mark.parametrize("name", CODEC_NAMES)
def test_a_compressed_frame_that_is_no_peer_message_is_an_error(name: str) -> None:
    codec = CODECS[name]
    two = frame_of(PushAck(1, 1)) * 2
    for inner in (two, b"\xc1" * 2000, frame_of(PushAck(1, 1))[:-1], msgpack.packb({"type": "nonsense"})):
        msgs, why = _read(name, as_bin(codec.compress(inner)))
        assert msgs == [PushAck(1, 1)] and why is not None


def test_zip_bombs_are_stopped_at_the_frame_limit() -> None:
    zeros = b"\0" * (8 << 20)
    bombs = {"zlib": [zlib.compress(zeros, 9)]}
    if "zstd" in CODECS:
        import zstandard

        bombs["zstd"] = [
            zstandard.ZstdCompressor(level=19).compress(zeros),  # declares 8 MiB
            zstandard.ZstdCompressor(write_content_size=False).compress(zeros),  # declares nothing
        ]
    for name, payloads in bombs.items():
        for bomb in payloads:
            assert len(bomb) < 20_000
            msgs, why = _read(name, as_bin(bomb), limit=LIMIT)
            assert msgs == [PushAck(1, 1)] and why is not None, name
    # the same, under the limit, is read (a big frame is fine; only past the limit is a bomb)
    big = push(1000, 900)
    msgs, why = _read("zlib", as_bin(zlib.compress(frame_of(big))), limit=LIMIT)
    assert why is None and msgs == [PushAck(1, 1), big, PushAck(1, 1)]


def test_a_compressed_frame_on_a_link_that_chose_none_is_an_error() -> None:
    msgs, why = _read(None, as_bin(zlib.compress(frame_of(push(2000)))))
    assert msgs == [PushAck(1, 1)] and why is not None and "negotiated no compression" in why


# --- negotiation ------------------------------------------------------------------------


def test_the_acceptor_chooses_the_best_codec_both_read_and_an_older_hello_gets_none() -> None:
    best = CODECS[CODEC_NAMES[0]]
    assert choose_codec({"type": "hello", **offer()}) is best
    assert choose_codec({"compress": ["lz77", "zlib"]}) is CODECS["zlib"]
    for older in ({"type": "hello"}, {"compress": "zlib"}, {"compress": [1, None]}, {"compress": []}, None):
        assert choose_codec(older) is None
    assert offer(False) == {}


def test_the_connector_takes_the_choice_it_offered_and_an_older_challenge_means_none() -> None:
    assert accepted_codec({"type": "challenge"}, offered=True) is None
    assert accepted_codec({"compress": "zlib"}, offered=True) is CODECS["zlib"]
    for bad, offered in (({"compress": "lz77"}, True), ({"compress": 7}, True), ({"compress": "zlib"}, False)):
        with pytest.raises(CompressionError):
            accepted_codec(bad, offered)


@pytest.mark.parametrize(
    "host, auto",
    [
        ("127.0.0.1", False), ("127.3.4.5", False), ("::1", False), ("[::1]", False), ("::ffff:127.0.0.1", False),
        ("localhost", False), ("10.1.2.3", True), ("192.0.2.2", True), ("fd00::2", True), ("::ffff:10.1.2.3", True),
    ],
)
def test_auto_offers_compression_on_every_link_but_one_to_a_loopback_address(host: str, auto: bool) -> None:
    # On loopback the CPU it costs buys nothing (bench/RESULTS.md, "Peer compression").
    assert compresses("auto", host) is auto
    assert compresses("on", host) is True and compresses("off", host) is False
    with pytest.raises(ValueError):
        compresses("yes", host)


# --- over real TCP -------------------------------------------------------------------------


def test_with_auto_a_link_compresses_to_a_peer_it_reached_off_loopback_and_not_on_it(
    lt: LoopThread, make_links: Callable[..., PeerLinks]
) -> None:
    """The default (``auto``): one receiver bound on every address, reached through
    127.0.0.1 and through this machine's non-loopback address: only the latter link offers
    compression (its acceptor chooses the best codec) and sends the big frame compressed."""
    ip = non_loopback_ip()
    if ip is None:
        pytest.skip("this machine has no non-loopback address to reach")
    secret = b"a secret both ends hold"  # (without one, no non-loopback peer is spoken to)
    rx = Recorder()
    server = CacheServer(rx, partitions=PARTITIONS, trust=PeerTrust(node_id="rx", secret=secret))  # type: ignore[arg-type]
    _, port = lt.run(server.start("0.0.0.0", 0))
    try:
        links = make_links(secret=secret)
        assert links.compress == "auto"
        near, far = f"127.0.0.1:{port}", f"{ip}:{port}"
        big = push(100, 500)
        send_all(lt, links, near, [big])
        send_all(lt, links, far, [big])
        wait_until(lambda: len(rx.from_peers()) == 2, what="both pushes")
        assert [m.msg for m in rx.from_peers()] == [big, big]
        per_link = lt.call(links.peer_stats)
        assert per_link[near]["codec"] is None and per_link[near]["compressed"] == 0
        assert per_link[far]["codec"] == CODEC_NAMES[0] and per_link[far]["compressed"] == 1
        assert per_link[far]["wire_bytes"] < per_link[near]["wire_bytes"] // 4
    finally:
        lt.run(server.shutdown(grace_s=0.2))



def test_a_link_compresses_big_frames_to_a_receiver_that_chose_it(
    lt: LoopThread, make_links: Callable[..., PeerLinks]
) -> None:
    rx = Receiver(lt)
    try:
        on, off = make_links("on", compress="on"), make_links("off", compress="off")  # off: an older hello, offering nothing
        big = push(100, 500)  # ~60 KB of repetitive records
        for links in (on, off):
            send_all(lt, links, rx.addr, [big, PushAck(1, 1)])
        got = delivered(rx, 4)
        by_src = {src: [m.msg for m in got if m.src == src] for src in ("on", "off")}
        assert by_src == {"on": [big, PushAck(1, 1)], "off": [big, PushAck(1, 1)]}
        on_stats, off_stats = lt.call(on.stats), lt.call(off.stats)
        assert on_stats["compressed"] == 1 and on_stats["compressed_saved"] > len(frame_of(big)) * 3 // 4
        assert off_stats["compressed"] == 0 and off_stats["wire_bytes"] > len(frame_of(big))
        assert on_stats["wire_bytes"] < off_stats["wire_bytes"] // 4
    finally:
        rx.stop()


def test_an_acceptor_that_chooses_nothing_gets_every_frame_uncompressed(
    lt: LoopThread, make_links: Callable[..., PeerLinks]
) -> None:
    """An older acceptor: it answers the challenge without a choice (and cannot read a bin)."""
    frames: list[Any] = []

    class OlderAcceptor(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            self.unpacker = msgpack.Unpacker(raw=False)
            reached = {reached_address(transport.get_extra_info("sockname"))}
            self.acceptor = Acceptor(b"", "older", os.urandom(NONCE_BYTES), reached)

        def data_received(self, data: bytes) -> None:
            self.unpacker.feed(data)
            for obj in self.unpacker:
                if not frames:
                    self.transport.write(msgpack.packb(self.acceptor.on_hello(obj["node_id"], obj)))  # type: ignore[attr-defined]
                frames.append(obj)

    server = lt.run(lt.loop.create_server(OlderAcceptor, "127.0.0.1", 0))
    links = make_links(compress="on")
    try:
        addr = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
        big = push(100, 500)
        send_all(lt, links, addr, [big])
        wait_until(lambda: len(frames) == 3, what="the hello, auth and the Push")
        assert frames[0]["compress"] == CODEC_NAMES  # offered
        assert frames[2] == msgpack.unpackb(frame_of(big), raw=False)  # but sent as it is
        assert lt.call(links.stats)["compressed"] == 0
    finally:
        server.close()


def test_a_corrupted_compressed_frame_closes_the_connection_and_nothing_of_it_is_applied(lt: LoopThread) -> None:
    rx = Receiver(lt)
    try:
        hello = {**encode_hello("raw", "127.0.0.1:1", PARTITIONS), **offer()}
        sock = socket.create_connection(("127.0.0.1", rx.port), timeout=5)
        try:
            connector = Connector(b"", "raw", os.urandom(NONCE_BYTES), hello, f"127.0.0.1:{rx.port}")
            sock.sendall(msgpack.packb(connector.hello(), use_bin_type=True))
            challenge = read_msgpack_reply(sock)
            codec = accepted_codec(challenge, offered=True)
            assert codec is CODECS[CODEC_NAMES[0]]  # the receiver chose the best
            sock.sendall(msgpack.packb(connector.on_challenge(challenge), use_bin_type=True))
            good = compress_frame(codec, frame_of(push(100, 50)))
            bad = bytearray(codec.compress(frame_of(push(100, 60))))
            bad[len(bad) // 2] ^= 0x5A
            sock.sendall(good + as_bin(bytes(bad)) + frame_of(PushAck(1, 1)))
            sock.settimeout(5)
            assert sock.recv(1024) == b""  # closed, nothing written back
        finally:
            sock.close()
        assert [m.msg for m in delivered(rx, 1)] == [push(100, 50)]
        wait_until(lambda: rx.peer_connections() == 0, what="the peer connection closed")
        assert [m.msg for m in rx.node.from_peers()] == [push(100, 50)]  # not the bad one, nor what followed
    finally:
        rx.stop()


# --- the simulator ---------------------------------------------------------------------------


def test_the_simulator_compresses_big_frames_and_counts_their_bytes_per_link() -> None:
    c = SimCluster(3)
    try:
        net = c.host.network
        value = "abc" * 3000  # a replica request of ~9 KB: compressed
        assert c.one(Set("big", value, consistency="all"), "n1") is not None
        assert c.one(Set("small", "v", consistency="all"), "n1") is not None
        c.run(0.5)
        for dst in ("n2", "n3"):
            assert c.one(Get("big"), dst).value == value  # type: ignore[attr-defined]
        compressed = net.link_compressed_bytes
        assert compressed.get(("n1", "n2"), 0) > 0 and compressed.get(("n1", "n3"), 0) > 0
        assert compressed[("n1", "n2")] < 1000 < net.link_bytes[("n1", "n2")]
        assert c.host.peer_wire is not None and c.host.peer_wire.compression_saved > 2 * 8000
        assert net.bad_frames == 0
    finally:
        c.host.shutdown()


def test_without_zstandard_a_node_offers_and_reads_zlib_only() -> None:
    """The stdlib fallback: a process that cannot import zstandard still compresses (zlib),
    and refuses an acceptor's choice of zstd it never offered."""
    code = (
        "import sys; sys.modules['zstandard'] = None\n"
        "from runtime.peer_compress import CODECS, CompressionError, accepted_codec, choose_codec, offer\n"
        "assert list(CODECS) == ['zlib'] and offer() == {'compress': ['zlib']}\n"
        "assert choose_codec({'compress': ['zstd', 'zlib']}).name == 'zlib'\n"
        "try:\n    accepted_codec({'compress': 'zstd'}, True)\nexcept CompressionError:\n    print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
