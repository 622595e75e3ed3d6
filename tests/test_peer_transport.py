"""The real peer transport (issue 3): ``runtime.peers.PeerLinks`` out, peer mode of
``runtime.connection`` in, over real loopback sockets.

Most tests run an in-process :class:`CacheServer` on a loop in a background thread, in
front of a :class:`Recorder` standing in for the node actor, so they can see exactly
what the node would be told. A few talk to a real ``python -m runtime.node``.
Ports are chosen free at run time; every wait is a poll with a deadline.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import msgpack
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from actors.kernel.peer_auth import NONCE_BYTES, Acceptor, Connector
from actors.protocol.edge import BatchReply, ClientBatch, ClientConnected, ClientDisconnected
from actors.protocol.messages import ErrorReply, Pong
from actors.protocol.replica_ops import ItemResults, Remove, Write
from actors.kernel.peer import FromPeer
from actors.protocol.peer_codec import PEER_TYPES, encode_hello, encode_peer
from actors.protocol.peer_messages import (
    Forward,
    ForwardReply,
    Gossip,
    Member,
    Pull,
    Push,
    PushAck,
    ReplicaAck,
    ReplicaRequest,
    ReplicaResponse,
    SyncListing,
    SyncRequest,
)
from actors.protocol.replica_ops import Apply, Fetch
from actors.protocol.record import Record
from actors.protocol.version import Version
from runtime.connection import ClientConnection
from runtime.framing import JSON_HELLO_REFUSAL, MsgpackDecoder
from runtime.peer_connection import PeerConnection
from runtime.peer_trust import PeerTrust, reached_address
from runtime.peers import PeerLinks
from runtime.server import CacheServer
from runtime.local_cluster import ROOT, NodeProcess
from tests.wire import Conn, MsgpackConn, closed_by_peer

T = TypeVar("T")

PARTITIONS = 64
SENDER_ADDR = "127.0.0.1:1"  # what the sender advertises; nothing needs to listen there


# --- harness --------------------------------------------------------------------------------


def wait_until(check: Callable[[], T], timeout: float = 5.0, what: str = "") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")
        time.sleep(0.005)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopThread:
    """An event loop in a daemon thread; tests drive it with :meth:`run` and :meth:`call`."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        def main() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.call_soon(ready.set)
            self.loop.run_forever()

        self.thread = threading.Thread(target=main, name="peer-transport-loop", daemon=True)
        self.thread.start()
        ready.wait(5)

    def run(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        async def wrapper() -> T:
            return fn(*args)

        return self.run(wrapper())

    def close(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class Recorder:
    """Stands in for the node actor: records what it is told; answers client batches
    (errors as decoded, anything else with a pong) so client connections work too."""

    def __init__(self) -> None:
        self.told: list[Any] = []
        self._lock = threading.Lock()

    def tell(self, message: Any) -> None:
        with self._lock:
            self.told.append(message)
        if type(message) is ClientBatch:
            replies = tuple(r if type(r) is ErrorReply else Pong(getattr(r, "rid", None)) for r in message.requests)
            message.reply_to.tell(BatchReply(message.conn, replies))

    def is_alive(self) -> bool:
        return True

    def snapshot(self) -> list[Any]:
        with self._lock:
            return list(self.told)

    def from_peers(self) -> list[FromPeer]:
        return [m for m in self.snapshot() if type(m) is FromPeer]

    def batches(self) -> list[ClientBatch]:
        return [m for m in self.snapshot() if type(m) is ClientBatch]


class Receiver:
    """A CacheServer on 127.0.0.1 in front of a Recorder."""

    def __init__(self, lt: LoopThread, port: int = 0, **kwargs: Any) -> None:
        self.lt = lt
        self.node = Recorder()
        kwargs.setdefault("partitions", PARTITIONS)
        self.server = CacheServer(self.node, **kwargs)  # type: ignore[arg-type]
        _, self.port = lt.run(self.server.start("127.0.0.1", port))

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.lt.run(self.server.shutdown(grace_s=0.2))

    def peer_connections(self) -> int:
        return sum(1 for c in list(self.server.connections) if type(c) is PeerConnection)


@pytest.fixture
def lt() -> Iterator[LoopThread]:
    loop_thread = LoopThread()
    try:
        yield loop_thread
    finally:
        loop_thread.close()


@pytest.fixture
def receiver(lt: LoopThread) -> Iterator[Receiver]:
    rx = Receiver(lt)
    try:
        yield rx
    finally:
        rx.stop()


@pytest.fixture
def make_links(lt: LoopThread) -> Iterator[Callable[..., PeerLinks]]:
    made: list[PeerLinks] = []

    def make(node_id: str = "sender", address: str = SENDER_ADDR, partitions: int = PARTITIONS, **kw: Any) -> PeerLinks:
        links = PeerLinks(encode_hello(node_id, address, partitions), encode_peer, loop=lt.loop, **kw)
        made.append(links)
        return links

    try:
        yield make
    finally:
        for links in made:
            lt.call(links.close)
            lt.run(links.wait_closed(1.0))


def send_all(lt: LoopThread, links: PeerLinks, addr: str, msgs: list[Any]) -> None:
    """Send from the loop thread, all in one turn (as an actor turn would)."""

    def go() -> None:
        for msg in msgs:
            links.send(addr, msg)

    lt.call(go)


def delivered(rx: Receiver, count: int, timeout: float = 5.0) -> list[FromPeer]:
    """Wait until the receiver's node was told at least ``count`` peer messages."""

    def enough() -> list[FromPeer] | None:
        got = rx.node.from_peers()
        return got if len(got) >= count else None

    return wait_until(enough, timeout, f"{count} peer messages")


def raw_peer_socket(port: int, hello: Any = None, handshake: bool = True) -> socket.socket:
    """A socket to ``port``; with ``hello``, a peer's: the hello is sent and (``handshake``)
    the handshake run with the empty secret (the receiver has none: loopback peers)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if hello is not None and not handshake:
        sock.sendall(msgpack.packb(hello, use_bin_type=True))
    elif hello is not None:
        connector = Connector(b"", hello["node_id"], os.urandom(NONCE_BYTES), hello, f"127.0.0.1:{port}")
        sock.sendall(msgpack.packb(connector.hello(), use_bin_type=True))
        sock.sendall(msgpack.packb(connector.on_challenge(read_msgpack_reply(sock)), use_bin_type=True))
    return sock


def read_msgpack_reply(sock: socket.socket, timeout: float = 5.0) -> Any:
    unpacker = msgpack.Unpacker(raw=False)
    deadline = time.monotonic() + timeout
    while True:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        assert chunk, "closed without a reply"
        unpacker.feed(chunk)
        for obj in unpacker:
            return obj


# --- sample messages: every peer message type, every replica op -----------------------------

V1 = Version(1_700_000_000_000, 0, "node1")
V2 = Version(1_700_000_000_001, 3, "node2")
REC = Record("k1", {"a": [1, 2.5, None, True, "x"]}, 1_700_000_100.25, V1)
TOMB = Record("k2", None, None, V2, 1_700_000_200.0)
BIN = Record("k3", b"\x00\xff binary", None, V2)

SAMPLES: list[Any] = [
    Gossip((Member("node1", "127.0.0.1:8081", 1700000000000, "ready"), Member("node2", "127.0.0.1:8082", 17, "warming")), True, PARTITIONS),
    Gossip((), False, PARTITIONS),
    ReplicaRequest(
        7,
        (
            Fetch(("k1", "k2")),
            Write((("k1", "v", None), ("k4", [1, {"n": 2}], 1_700_000_100.5)), V1),
            Remove(("k2",), V2, 1_700_000_200.0),
            Remove(("k5",), V2, None),
            Apply((REC, TOMB, BIN)),
        ),
    ),
    ReplicaRequest(  # what coordinators send: single-key writes (the compact "w" form), mixed
        9,
        (
            Write((("k1", "v", None),), V1, ("node1", "node2", "node3")),
            Write((("k2", b"\x00bin", 1_700_000_100.5),), V2, ("node2", "node1", "node3")),
            Remove(("k3",), V2, 1_700_000_200.0),
            Write((("k4", {"n": [1, 2]}, 17),), V1, ("node1", "node2", "node3")),
            Write((("k5", None, None),), V2, ()),
        ),
    ),
    ReplicaRequest(  # a coordinator's run of plain sets: one item-by-item write ("ws")
        10,
        (
            Write((("k1", "v", None), ("k2", b"\x00", 1_700_000_100.5), ("k3", [1], 7)), V1, ("node2", "node1"), True),
            Write((("k4", None, None), ("k5", 1, None)), V2, (), True),
        ),
    ),
    ReplicaResponse(7, (1, (REC, None, TOMB), 0)),
    ReplicaResponse(10, (ItemResults((1, V2, 1)), ItemResults((1, 1)))),
    ReplicaResponse(8, (V2, 1)),  # a refused write: the newer version the replica holds
    SyncRequest(3, ((0, 0), (5, 2**64 - 1), (63, 12345))),
    SyncListing(3, ((5, (("k1", V1), ("k2", V2))), (6, ()))),
    Pull(4, ("k1", "k3")),
    Push(4, (REC, TOMB), True),
    Push(5, (), False),
    PushAck(4, 2),
    Forward(5, {"type": "incr", "key": "k", "by": 2}),
    ForwardReply(5, {"type": "response", "value": 3, "success": True}),
    ReplicaResponse(7, ((REC,), 1), 3, True),  # one part of a split answer: ops 3 and 4
    ReplicaAck(7, 3),
    Push(4, (REC,), False, True, 2),  # a pull's answer covering its first two keys
]


def test_the_samples_cover_every_peer_message_type() -> None:
    assert {encode_peer(m)["type"] for m in SAMPLES} == PEER_TYPES - {"hello"}


def test_the_protocol_document_lists_every_peer_message_type() -> None:
    text = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")
    section = text[text.index("## Peer protocol") :]
    for kind in sorted(PEER_TYPES):
        assert f"`{kind}`" in section, f"docs/protocol.md does not describe peer message {kind!r}"


# --- delivery ---------------------------------------------------------------------------------


def test_every_peer_message_type_arrives_as_from_peer_in_order(
    lt: LoopThread, receiver: Receiver, make_links: Callable[..., PeerLinks]
) -> None:
    links = make_links()
    msgs = SAMPLES * 3
    send_all(lt, links, receiver.addr, msgs[:7])  # queued while connecting: hello + these in one write
    delivered(receiver, 7)
    send_all(lt, links, receiver.addr, msgs[7:])  # on the established link
    got = delivered(receiver, len(msgs))
    assert [m.msg for m in got] == msgs
    assert {(m.src, m.addr) for m in got} == {("sender", SENDER_ADDR)}
    stats = lt.call(links.stats)
    assert stats["sent"] == len(msgs) and stats["connects"] == 1 and stats["dropped"] == 0
    assert stats["links"] == stats["connected"] == 1 and stats["queued"] == 0
    # A peer connection is not a client connection: connected, then at once not counted.
    told = receiver.node.snapshot()
    assert not receiver.node.batches()
    assert [type(m) for m in told[:2]] == [ClientConnected, ClientDisconnected]
    assert receiver.peer_connections() == 1


def test_links_are_one_way_and_per_address(
    lt: LoopThread, make_links: Callable[..., PeerLinks]
) -> None:
    rx1, rx2 = Receiver(lt), Receiver(lt)
    try:
        a = make_links("a", "127.0.0.1:1001")
        send_all(lt, a, rx1.addr, [PushAck(i, i) for i in range(50)])
        send_all(lt, a, rx2.addr, [Pull(i, ("k",)) for i in range(50)])
        got1, got2 = delivered(rx1, 50), delivered(rx2, 50)
        assert [m.msg for m in got1] == [PushAck(i, i) for i in range(50)]
        assert [m.msg for m in got2] == [Pull(i, ("k",)) for i in range(50)]
        assert lt.call(a.stats)["connects"] == 2
    finally:
        rx1.stop()
        rx2.stop()


def test_one_write_per_link_per_loop_turn(
    lt: LoopThread, receiver: Receiver, make_links: Callable[..., PeerLinks]
) -> None:
    links = make_links()
    send_all(lt, links, receiver.addr, [PushAck(0, 0)])
    delivered(receiver, 1)
    link = links._links[receiver.addr]
    writes: list[bytes] = []
    transport = link.transport
    assert transport is not None
    real_write = transport.write

    def counting_write(data: bytes) -> None:
        writes.append(data)
        real_write(data)

    transport.write = counting_write  # type: ignore[method-assign]
    send_all(lt, links, receiver.addr, [PushAck(i, i) for i in range(1, 101)])
    delivered(receiver, 101)
    assert len(writes) == 1
    send_all(lt, links, receiver.addr, [PushAck(200, 0)])
    send_all(lt, links, receiver.addr, [PushAck(201, 0)])
    delivered(receiver, 103)
    assert len(writes) == 3


def test_frames_larger_than_the_client_limit_are_fine_on_a_peer_connection(
    lt: LoopThread, make_links: Callable[..., PeerLinks]
) -> None:
    rx = Receiver(lt, max_request_bytes=1024)
    try:
        links = make_links()
        big = Push(1, tuple(Record(f"k{i}", "v" * 1000, None, V1) for i in range(200)), True)  # ~200 KB
        send_all(lt, links, rx.addr, [big, PushAck(1, 200)])
        got = delivered(rx, 2)
        assert [m.msg for m in got] == [big, PushAck(1, 200)]
    finally:
        rx.stop()


def test_lone_surrogates_stored_over_json_travel_between_peers(
    lt: LoopThread, receiver: Receiver, make_links: Callable[..., PeerLinks]
) -> None:
    links = make_links()
    msg = ReplicaRequest(1, (Write((("\ud800key", "val\udfff", None),), V1),))
    send_all(lt, links, receiver.addr, [msg])
    assert delivered(receiver, 1)[0].msg == msg
    assert lt.call(links.stats)["unencodable"] == 0


def test_an_unencodable_message_is_dropped_and_counted_never_raised(
    lt: LoopThread, receiver: Receiver, make_links: Callable[..., PeerLinks]
) -> None:
    links = make_links()
    bad = ReplicaRequest(1, (Write((("k", object(), None),), V1),))
    send_all(lt, links, receiver.addr, [bad, PushAck(1, 1)])
    assert [m.msg for m in delivered(receiver, 1)] == [PushAck(1, 1)]
    assert lt.call(links.stats)["unencodable"] == 1


def test_the_transport_carries_any_system_s_messages(lt: LoopThread) -> None:
    """PeerLinks knows nothing of the cache: the hello, the secret and the encoder are
    the system's (here a receiver that runs the handshake's acceptor by itself)."""
    frames: list[Any] = []

    class Sink(asyncio.Protocol):
        def __init__(self) -> None:
            self.unpacker = msgpack.Unpacker(raw=False)

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport
            reached = {reached_address(transport.get_extra_info("sockname"))}  # where the link's hello went
            self.acceptor = Acceptor(b"k", "sink", os.urandom(NONCE_BYTES), reached)

        def data_received(self, data: bytes) -> None:
            self.unpacker.feed(data)
            for obj in self.unpacker:
                if not frames:
                    self.transport.write(msgpack.packb(self.acceptor.on_hello(obj["node_id"], obj)))  # type: ignore[attr-defined]
                elif len(frames) == 1:
                    assert self.acceptor.on_auth(obj) == "c1"
                frames.append(obj)

    server = lt.run(lt.loop.create_server(Sink, "127.0.0.1", 0))
    links = PeerLinks({"node_id": "c1", "counter": 1}, lambda n: {"inc": n}, secret=b"k", loop=lt.loop)
    try:
        addr = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
        send_all(lt, links, addr, [1, 2, 3])
        wait_until(lambda: len(frames) == 5, what="the hello, auth and three frames")
        assert {k: v for k, v in frames[0].items() if k != "nonce"} == {
            "node_id": "c1", "counter": 1, "to": addr,  # (no "compress": auto offers none on loopback)
        }
        assert frames[1]["type"] == "auth" and frames[2:] == [{"inc": 1}, {"inc": 2}, {"inc": 3}]
        assert lt.call(links.peer_stats)[addr]["peer"] == "sink"
        send_all(lt, links, addr, [object()])  # the system's encoder decides what is unencodable
        assert lt.call(links.stats)["sent"] == 3 and lt.call(links.stats)["unencodable"] == 1
    finally:
        lt.call(links.close)
        lt.run(links.wait_closed(1.0))
        server.close()


def test_the_receiver_never_writes_on_a_peer_connection(receiver: Receiver) -> None:
    with raw_peer_socket(receiver.port, encode_hello("quiet", "127.0.0.1:8", PARTITIONS)) as sock:
        sock.sendall(b"".join(msgpack.packb(encode_peer(m), use_bin_type=True) for m in SAMPLES))
        delivered(receiver, len(SAMPLES))
        sock.settimeout(0.2)
        with pytest.raises(socket.timeout):
            sock.recv(1)


def test_hello_and_frames_split_at_every_byte_are_decoded(receiver: Receiver) -> None:
    connector = Connector(
        b"", "bytewise", os.urandom(NONCE_BYTES), encode_hello("bytewise", "127.0.0.1:9", PARTITIONS),
        f"127.0.0.1:{receiver.port}",
    )
    hello = msgpack.packb(connector.hello(), use_bin_type=True)
    with raw_peer_socket(receiver.port) as sock:
        for i in range(len(hello)):
            sock.sendall(hello[i : i + 1])
        stream = msgpack.packb(connector.on_challenge(read_msgpack_reply(sock)), use_bin_type=True)
        stream += b"".join(msgpack.packb(encode_peer(m), use_bin_type=True) for m in SAMPLES[:4])
        for i in range(len(stream)):
            sock.sendall(stream[i : i + 1])
        got = delivered(receiver, 4)
    assert [m.msg for m in got] == SAMPLES[:4]
    assert {(m.src, m.addr) for m in got} == {("bytewise", "127.0.0.1:9")}


class FakeTransport(asyncio.Transport):
    """Just enough of an asyncio transport to drive a connection without sockets:
    :meth:`feed` hands bytes to whichever protocol it has now (a peer's hello switches it)."""

    def __init__(self, protocol: asyncio.Protocol) -> None:
        super().__init__()
        self.written = b""
        self.closed = False
        self.protocol = protocol
        protocol.connection_made(self)

    def feed(self, data: bytes) -> None:
        self.protocol.data_received(data)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        assert isinstance(protocol, asyncio.Protocol)
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.protocol

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    abort = close

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return 0  # everything written went out at once

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8081)}.get(name, default)


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])]


@settings(max_examples=200, deadline=None)
@given(
    msgs=st.lists(st.sampled_from(SAMPLES) | st.builds(Pull, st.integers(0, 2**32), st.lists(st.text(min_size=1, max_size=300), max_size=4).map(tuple)), max_size=8),
    cuts=st.lists(st.integers(0, 1 << 16), max_size=12),
)
def test_a_peer_stream_cut_anywhere_decodes_the_same(msgs: list[Any], cuts: list[int]) -> None:
    """Sans-IO: hello, auth and frames in arbitrary reads, with frames over the client
    limit (the connection switches to the peer limit right after the auth)."""
    node = Recorder()
    conn = ClientConnection(1, node, 128, lambda c: None, partitions=PARTITIONS)  # type: ignore[arg-type]
    transport = FakeTransport(conn)
    connector = Connector(b"", "cut", os.urandom(NONCE_BYTES), encode_hello("cut", "127.0.0.1:9", PARTITIONS), "127.0.0.1:8081")
    for piece in chunked(msgpack.packb(connector.hello(), use_bin_type=True), cuts):
        transport.feed(piece)
    challenge = msgpack.unpackb(transport.written)
    stream = msgpack.packb(connector.on_challenge(challenge), use_bin_type=True)
    stream += b"".join(msgpack.packb(encode_peer(m), use_bin_type=True) for m in msgs)
    for piece in chunked(stream, cuts):
        transport.feed(piece)
    assert type(transport.protocol) is PeerConnection and conn.transport is None
    assert [m.msg for m in node.from_peers()] == msgs
    assert not transport.closed and transport.written == msgpack.packb(challenge)  # and nothing else
    assert not node.batches()


AUTH_GARBAGE = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=8) | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["type", "proof", "nonce", "x"]), inner, max_size=3),
    max_leaves=8,
) | st.fixed_dictionaries({"type": st.just("auth"), "proof": st.binary(min_size=0, max_size=40)})


@settings(max_examples=150, deadline=None)
@given(auth=AUTH_GARBAGE, then=st.sampled_from(SAMPLES), cuts=st.lists(st.integers(0, 1 << 10), max_size=6))
def test_anything_but_the_right_auth_is_refused_and_nothing_behind_it_is_decoded(
    auth: Any, then: Any, cuts: list[int]
) -> None:
    """Sans-IO: after a valid hello, any frame but an auth carrying the right proof (a
    drawn proof is never the right one) gets the one unauthorized error and a close; the
    peer frame behind it never reaches the node, and no exception escapes."""
    node = Recorder()
    conn = ClientConnection(1, node, 1 << 16, lambda c: None, partitions=PARTITIONS)  # type: ignore[arg-type]
    transport = FakeTransport(conn)
    connector = Connector(b"", "x", os.urandom(NONCE_BYTES), encode_hello("x", "127.0.0.1:9", PARTITIONS), "127.0.0.1:8081")
    transport.feed(msgpack.packb(connector.hello(), use_bin_type=True))
    stream = msgpack.packb(auth, use_bin_type=True) + msgpack.packb(encode_peer(then), use_bin_type=True)
    for piece in chunked(stream, cuts):
        transport.feed(piece)
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(transport.written)
    challenge, refusal = list(unpacker)
    assert challenge["type"] == "challenge" and refusal["error"] == "unauthorized"
    assert transport.closed and transport.protocol is conn and not node.from_peers()


@settings(max_examples=100, deadline=None)
@given(cuts=st.lists(st.integers(0, 1 << 12), max_size=12), n=st.integers(1, 20))
def test_a_client_stream_cut_anywhere_is_still_a_client(cuts: list[int], n: int) -> None:
    node = Recorder()
    conn = ClientConnection(1, node, 1 << 10, lambda c: None, partitions=PARTITIONS)  # type: ignore[arg-type]
    transport = FakeTransport(conn)
    stream = b"".join(msgpack.packb({"type": "ping", "id": i}) for i in range(n))
    for piece in chunked(stream, cuts):
        transport.feed(piece)
    assert transport.protocol is conn
    rids = [r.rid for b in node.batches() for r in b.requests]
    assert rids == list(range(n))
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(transport.written)
    replies = list(unpacker)
    assert [r["id"] for r in replies] == list(range(n)) and not node.from_peers()


@settings(max_examples=200, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 200), min_size=1, max_size=12),
    cuts=st.lists(st.integers(0, 1 << 12), max_size=12),
)
def test_frames_within_the_limit_never_count_as_too_large_however_they_are_cut(
    sizes: list[int], cuts: list[int]
) -> None:
    """A frame of at most ``max_bytes`` is accepted whatever bytes of other frames share
    its reads (the limit counts what the unpacker holds, not what one read carries)."""
    frames = [msgpack.packb({"type": "get", "key": "k" + "x" * n}) for n in sizes]
    limit = max(len(f) for f in frames)
    decoder = MsgpackDecoder(limit)
    items = [item for piece in chunked(b"".join(frames), cuts) for item in decoder.feed(piece)]
    assert not decoder.fatal
    assert [item.key for item in items] == ["k" + "x" * n for n in sizes]


# --- reconnecting, bounds, backpressure -----------------------------------------------------


def test_reconnects_after_the_receiver_restarts_on_the_same_port(
    lt: LoopThread, make_links: Callable[..., PeerLinks]
) -> None:
    rx = Receiver(lt)
    port = rx.port
    links = make_links(backoff_max=0.2)
    send_all(lt, links, rx.addr, [PushAck(1, 1)])
    delivered(rx, 1)
    rx.stop()
    wait_until(lambda: lt.call(links.peer_stats)[f"127.0.0.1:{port}"]["state"] != "connected", what="the link to notice")
    send_all(lt, links, f"127.0.0.1:{port}", [PushAck(2, 2), PushAck(3, 3)])  # queued while down
    time.sleep(0.15)  # let a reconnect attempt or two fail
    rx2 = Receiver(lt, port=port)
    try:
        send_all(lt, links, rx2.addr, [PushAck(4, 4)])
        got = delivered(rx2, 3)
        assert [m.msg for m in got] == [PushAck(2, 2), PushAck(3, 3), PushAck(4, 4)]
        stats = lt.call(links.stats)
        assert stats["connects"] == 2 and stats["disconnects"] == 1 and stats["dropped"] == 0
    finally:
        rx2.stop()


def test_bounded_queue_drops_the_oldest_while_the_peer_is_down(
    lt: LoopThread, make_links: Callable[..., PeerLinks]
) -> None:
    port = free_port()
    addr = f"127.0.0.1:{port}"
    links = make_links(max_queue_frames=5, backoff_max=0.1)
    send_all(lt, links, addr, [PushAck(i, 0) for i in range(12)])
    wait_until(lambda: lt.call(links.stats)["failures"] >= 2, what="failed connects")
    stats = lt.call(links.stats)
    assert stats["dropped"] == 7 and stats["queued"] == 5 and stats["sent"] == 0
    rx = Receiver(lt, port=port)
    try:
        got = delivered(rx, 5)
        assert [m.msg.sid for m in got] == [7, 8, 9, 10, 11]
        time.sleep(0.05)
        assert len(rx.node.from_peers()) == 5
    finally:
        rx.stop()


def test_the_byte_bound_drops_the_oldest_but_keeps_the_newest_frame(
    lt: LoopThread, make_links: Callable[..., PeerLinks]
) -> None:
    addr = f"127.0.0.1:{free_port()}"
    links = make_links(max_queue_bytes=3000, backoff_max=0.1)
    send_all(lt, links, addr, [Pull(i, ("x" * 1000,)) for i in range(10)])
    stats = lt.call(links.stats)
    assert stats["queued"] == 2 and stats["dropped"] == 8 and stats["queued_bytes"] <= 3000
    huge = Pull(99, ("y" * 10_000,))
    send_all(lt, links, addr, [huge])
    stats = lt.call(links.stats)
    assert stats["queued"] == 1 and stats["dropped"] == 10  # never drop the frame just sent


def test_backpressure_keeps_memory_bounded_when_the_peer_does_not_read(
    lt: LoopThread, make_links: Callable[..., PeerLinks]
) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)
    addr = f"127.0.0.1:{listener.getsockname()[1]}"
    high_water = 64 << 10
    links = make_links(max_queue_frames=20, high_water=high_water)
    payload = "z" * (64 << 10)
    turns, per_turn = 60, 60
    try:
        send_all(lt, links, addr, [Pull(0, ("first",))])
        conn, _ = listener.accept()  # accepted, never read (after the handshake) until the end
        with conn:
            hello = read_msgpack_reply(conn)
            acceptor = Acceptor(b"", "slow", os.urandom(NONCE_BYTES), {hello["to"]})
            conn.sendall(msgpack.packb(acceptor.on_hello(hello["node_id"], hello)))
            wait_until(lambda: lt.call(links.peer_stats)[addr]["state"] == "connected", what="the link")
            for turn in range(turns):  # ~240 MB offered, one actor turn at a time
                send_all(lt, links, addr, [Pull(1 + turn * 100 + j, (payload,)) for j in range(per_turn)])
            peer = lt.call(links.peer_stats)[addr]
            assert peer["paused"] is True
            assert peer["queued"] <= 20
            # The transport holds at most the high-water mark plus one turn's single write.
            assert peer["buffered_bytes"] <= high_water + per_turn * (len(payload) + 64)
            assert lt.call(links.stats)["dropped"] > 0
            # Once the peer reads, the link drains, in order, up to the newest frame.
            last = 1 + (turns - 1) * 100 + per_turn - 1
            unpacker = msgpack.Unpacker(raw=False, max_buffer_size=1 << 30)
            conn.settimeout(5)
            objs: list[Any] = []
            while not objs or objs[-1].get("sid") != last:
                chunk = conn.recv(1 << 20)
                assert chunk, "the link closed before draining"
                unpacker.feed(chunk)
                objs.extend(unpacker)
        assert objs[0]["type"] == "auth" and objs[1] == encode_peer(Pull(0, ("first",)))
        sids = [o["sid"] for o in objs[1:]]
        assert sids == sorted(sids) and len(sids) < turns * per_turn  # FIFO, oldest dropped
    finally:
        listener.close()


def test_close_cancels_reconnects_and_later_sends_are_dropped(
    lt: LoopThread, make_links: Callable[..., PeerLinks]
) -> None:
    addr = f"127.0.0.1:{free_port()}"
    links = make_links(backoff_max=0.05)
    send_all(lt, links, addr, [PushAck(1, 1)])
    wait_until(lambda: lt.call(links.stats)["failures"] >= 1, what="a failed connect")
    lt.call(links.close)
    lt.run(links.wait_closed(1.0))
    failures = lt.call(links.stats)["failures"]
    send_all(lt, links, addr, [PushAck(2, 2)])
    time.sleep(0.2)
    stats = lt.call(links.stats)
    assert stats["failures"] == failures  # no reconnect attempts after close
    assert stats["dropped"] == 2 and stats["queued"] == 0
    assert lt.call(lambda: links._links[addr].timer is None and links._links[addr].connect_task is None)


# --- refusing bad hellos and bad frames ----------------------------------------------------------

BAD_HELLOS = [
    ("wrong-partitions", {**encode_hello("x", "127.0.0.1:2", PARTITIONS * 2)}, "partitions"),
    ("wrong-proto", {**encode_hello("x", "127.0.0.1:2", PARTITIONS), "proto": 99}, "protocol"),
    ("no-proto", {k: v for k, v in encode_hello("x", "127.0.0.1:2", PARTITIONS).items() if k != "proto"}, "protocol"),
    ("no-node-id", {k: v for k, v in encode_hello("x", "127.0.0.1:2", PARTITIONS).items() if k != "node_id"}, "node_id"),
    ("empty-node-id", {**encode_hello("", "127.0.0.1:2", PARTITIONS)}, "node_id"),
    ("no-addr", {k: v for k, v in encode_hello("x", "127.0.0.1:2", PARTITIONS).items() if k != "addr"}, "addr"),
    ("partitions-string", {**encode_hello("x", "127.0.0.1:2", PARTITIONS), "partitions": "64"}, "partitions"),
]


@pytest.mark.parametrize(("hello", "fragment"), [pytest.param(h, f, id=n) for n, h, f in BAD_HELLOS])
def test_a_bad_hello_gets_one_error_and_a_close_and_the_server_lives_on(
    lt: LoopThread, receiver: Receiver, make_links: Callable[..., PeerLinks], hello: dict[str, Any], fragment: str
) -> None:
    with raw_peer_socket(receiver.port, hello, handshake=False) as sock:
        sock.sendall(msgpack.packb(encode_peer(PushAck(1, 1)), use_bin_type=True))
        reply = read_msgpack_reply(sock)
        assert reply["type"] == "error" and reply["error"] == "bad_request" and reply["success"] is False
        assert fragment in reply["message"]
        assert closed_by_peer(sock)
    assert not receiver.node.from_peers()
    # The server lives on: a good link still gets through.
    links = make_links()
    send_all(lt, links, receiver.addr, [PushAck(2, 2)])
    assert [m.msg for m in delivered(receiver, 1)] == [PushAck(2, 2)]


def test_a_link_writes_nothing_queued_before_the_challenge_and_gives_up_on_a_silent_acceptor(
    lt: LoopThread, make_links: Callable[..., PeerLinks]
) -> None:
    """A receiver that accepts and never challenges gets the hello and nothing else; the
    link gives up after connect_timeout (a failed handshake) and retries with its backoff."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)
    addr = f"127.0.0.1:{listener.getsockname()[1]}"
    links = make_links(connect_timeout=0.3, backoff_max=0.1)
    try:
        send_all(lt, links, addr, [PushAck(1, 1), PushAck(2, 2)])
        for _ in range(2):  # the first connection, then the retry
            conn, _ = listener.accept()
            with conn:
                hello = read_msgpack_reply(conn)
                assert hello["type"] == "hello" and hello["node_id"] == "sender" and len(hello["nonce"]) == NONCE_BYTES
                conn.settimeout(2)
                assert conn.recv(65536) == b""  # nothing more before the link gave up: closed
        stats = lt.call(links.stats)
        assert stats["auth_failures"] >= 2 and stats["connects"] == 0 and stats["sent"] == 0 and stats["queued"] == 2
    finally:
        listener.close()


@pytest.mark.parametrize(("ours", "theirs"), [(b"one", b"other"), (b"one", b""), (b"", b"one")])
def test_a_link_and_a_receiver_with_different_secrets_never_deliver(
    lt: LoopThread, make_links: Callable[..., PeerLinks], caplog: pytest.LogCaptureFixture, ours: bytes, theirs: bytes
) -> None:
    rx = Receiver(lt, trust=PeerTrust(node_id="rx", secret=theirs))
    try:
        links = make_links(secret=ours, loopback_only=False, backoff_max=0.1)
        with caplog.at_level("WARNING", logger="actorcache.peers"):
            send_all(lt, links, rx.addr, [PushAck(1, 1)])
            wait_until(lambda: lt.call(links.stats)["auth_failures"] >= 2, what="two failed handshakes")
        assert "handshake failed: 'rx' does not hold this cluster's secret" in caplog.text
        assert caplog.text.count("handshake failed") == 1  # once per outage
        assert not rx.node.from_peers() and lt.call(links.stats)["connects"] == 0
    finally:
        rx.stop()


def test_without_a_secret_a_link_says_nothing_to_a_non_loopback_address(
    lt: LoopThread, make_links: Callable[..., PeerLinks], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A literal non-loopback address is never dialled (tests/test_peer_auth.py); a name
    (here: the check for a literal address disabled) is dialled, but the connection is
    closed before the hello once the address it reached shows it is not loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))
        ip = probe.getsockname()[0]
    if ip.startswith("127."):
        pytest.skip("this machine has no non-loopback address")
    import runtime.peer_link

    monkeypatch.setattr(runtime.peer_link, "_is_ip", lambda host: False)
    listener = socket.create_server((ip, 0))
    listener.settimeout(5)
    addr = f"{ip}:{listener.getsockname()[1]}"
    links = make_links(backoff_max=0.1)  # no secret: loopback only
    try:
        with caplog.at_level("WARNING", logger="actorcache.peers"):
            send_all(lt, links, addr, [PushAck(1, 1)])
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(2)
                try:
                    assert conn.recv(65536) == b""  # closed, not one byte written: no hello
                except ConnectionResetError:
                    pass  # (aborted: a reset is as good)
        assert f"not connecting to peer {addr}" in caplog.text
        assert lt.call(links.stats)["sent"] == 0
    finally:
        listener.close()


def test_a_link_and_a_receiver_with_the_same_secret_deliver_and_the_link_knows_who_answered(
    lt: LoopThread, make_links: Callable[..., PeerLinks]
) -> None:
    rx = Receiver(lt, trust=PeerTrust(node_id="rx", secret=b"shared"))
    try:
        links = make_links(secret=b"shared")
        send_all(lt, links, rx.addr, [PushAck(1, 1)])
        assert [(m.src, m.msg) for m in delivered(rx, 1)] == [("sender", PushAck(1, 1))]
        assert lt.call(links.peer_stats)[rx.addr]["peer"] == "rx"
    finally:
        rx.stop()


def test_a_peer_link_with_the_wrong_partition_count_is_refused_and_says_so(
    lt: LoopThread, receiver: Receiver, make_links: Callable[..., PeerLinks], caplog: pytest.LogCaptureFixture
) -> None:
    links = make_links(partitions=PARTITIONS + 1, backoff_max=0.1)
    with caplog.at_level("WARNING", logger="actorcache.peers"):
        send_all(lt, links, receiver.addr, [PushAck(1, 1)])
        wait_until(lambda: lt.call(links.stats)["refused"] >= 1, what="the refusal")
    assert "partitions" in caplog.text
    time.sleep(0.05)
    assert not receiver.node.from_peers()


def test_hello_over_json_lines_is_refused_clearly(lt: LoopThread, receiver: Receiver) -> None:
    with Conn(receiver.port) as conn:
        conn.send_json({"type": "ping"}, encode_hello("x", "127.0.0.1:2", PARTITIONS), {"type": "ping"})
        first, refusal = conn.read_jsons(2)
        assert first == {"type": "pong", "success": True}
        assert refusal["type"] == "error" and refusal["error"] == "unauthorized"
        assert refusal["message"] == JSON_HELLO_REFUSAL and "msgpack" in refusal["message"]
        assert conn.read_until_closed() == b""  # the ping after it is never read
    assert not receiver.node.from_peers()


MALFORMED_FRAMES = [
    ("unknown-type", msgpack.packb({"type": "flushall"})),
    ("missing-field", msgpack.packb({"type": "push_ack", "sid": 1})),
    ("wrong-shape", msgpack.packb({"type": "gossip", "members": [[1, 2]]})),
    ("not-a-map", msgpack.packb([1, 2, 3])),
    ("hello-again", msgpack.packb(encode_hello("x", "127.0.0.1:2", PARTITIONS))),
    ("client-request", msgpack.packb({"type": "get", "key": "k"})),
    ("type-not-a-string", msgpack.packb({"type": [1]})),
    ("empty-replica-op", msgpack.packb({"type": "replica_request", "req": 1, "ops": [[]]})),
    ("w-without-writers", msgpack.packb({"type": "replica_request", "req": 1, "ops": [["w", "k", 1, None, 5, 0, 0]]})),
    (
        "w-negative-writer",
        msgpack.packb({"type": "replica_request", "req": 1, "writers": [["n", []]], "ops": [["w", "k", 1, None, 5, 0, -1]]}),
    ),
    (
        "w-empty-key",
        msgpack.packb({"type": "replica_request", "req": 1, "writers": [["n", []]], "ops": [["w", "", 1, None, 5, 0, 0]]}),
    ),
    (
        "w-float-wall",
        msgpack.packb({"type": "replica_request", "req": 1, "writers": [["n", []]], "ops": [["w", "k", 1, None, 5.5, 0, 0]]}),
    ),
    ("w-short", msgpack.packb({"type": "replica_request", "req": 1, "writers": [["n", []]], "ops": [["w", "k", 1]]})),
    ("ws-empty", msgpack.packb({"type": "replica_request", "req": 1, "writers": [["n", []]], "ops": [["ws", [], 5, 0, 0]]})),
    (
        "ws-bad-deadline",
        msgpack.packb({"type": "replica_request", "req": 1, "writers": [["n", []]], "ops": [["ws", [["k", 1, "soon"]], 5, 0, 0]]}),
    ),
    ("each-bad-version", msgpack.packb({"type": "replica_response", "req": 1, "results": [{"each": [1, "x"]}]})),
    ("corrupt-msgpack", b"\xc1\xc1\xc1"),
    ("ext-type", msgpack.packb(msgpack.ExtType(5, b"xx"))),
]


@pytest.mark.parametrize("frame", [pytest.param(f, id=n) for n, f in MALFORMED_FRAMES])
def test_a_malformed_peer_frame_closes_only_that_connection(
    lt: LoopThread,
    receiver: Receiver,
    make_links: Callable[..., PeerLinks],
    frame: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = make_links("good", "127.0.0.1:3")
    send_all(lt, good, receiver.addr, [PushAck(0, 0)])
    delivered(receiver, 1)
    hello = encode_hello("bad", "127.0.0.1:4", PARTITIONS)
    with caplog.at_level("WARNING"), raw_peer_socket(receiver.port, hello) as sock:
        ok = msgpack.packb(encode_peer(PushAck(1, 1)))
        sock.sendall(ok + frame + ok)
        assert closed_by_peer(sock)
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and r.name == "actorcache.connection"]
    assert len(warnings) == 1 and "bad" in warnings[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= 40]  # no "Fatal error" from asyncio
    got = [(m.src, m.msg) for m in delivered(receiver, 2)]
    assert got == [("good", PushAck(0, 0)), ("bad", PushAck(1, 1))]
    send_all(lt, good, receiver.addr, [PushAck(2, 2)])
    got = [(m.src, m.msg) for m in delivered(receiver, 3)]
    assert got[-1] == ("good", PushAck(2, 2)) and len(got) == 3
    assert lt.call(good.stats)["disconnects"] == 0


def test_a_peer_frame_over_the_peer_limit_closes_the_connection(lt: LoopThread) -> None:
    rx = Receiver(lt, max_request_bytes=1024, max_peer_frame_bytes=4096)
    try:
        with raw_peer_socket(rx.port, encode_hello("big", "127.0.0.1:5", PARTITIONS)) as sock:
            sock.sendall(msgpack.packb(encode_peer(Pull(1, ("x" * 3000,)))))  # over the client limit: fine
            sock.sendall(msgpack.packb(encode_peer(Pull(2, ("x" * 5000,)))))  # over the peer limit
            assert closed_by_peer(sock)
        assert [m.msg.sid for m in delivered(rx, 1)] == [1]
    finally:
        rx.stop()


class ErrorLog(logging.Handler):
    """Collects ERROR records (asyncio's "Fatal error: protocol.data_received() failed")."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def shared_receiver() -> Iterator[tuple[Receiver, ErrorLog]]:
    """One receiver for every example of the property test, and the errors it logs."""
    loop_thread = LoopThread()
    rx = Receiver(loop_thread)
    errors = ErrorLog()
    logging.getLogger().addHandler(errors)
    try:
        yield rx, errors
    finally:
        logging.getLogger().removeHandler(errors)
        rx.stop()
        loop_thread.close()


INT64 = st.integers(-(2**63), 2**64 - 1)


@settings(max_examples=60, deadline=None)
@example(garbage=msgpack.packb({"type": "replica_request", "req": 1, "ops": [[]]}))
@example(garbage=msgpack.packb({"type": ["gossip"]}))
@example(garbage=msgpack.packb({"type": "push", "sid": 1, "records": [[1, 2, 3, [1], 5]]}))
@given(
    garbage=st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.none() | st.booleans() | INT64 | st.floats() | st.text(max_size=20) | st.binary(max_size=20),
            lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
            max_leaves=20,
        ).map(lambda obj: msgpack.packb(obj, use_bin_type=True)),
        st.builds(
            lambda kind, fields: msgpack.packb({"type": kind, **fields}, use_bin_type=True),
            st.sampled_from(sorted(PEER_TYPES)),
            st.dictionaries(
                st.sampled_from(["sid", "req", "keys", "ops", "results", "records", "members", "digests", "listings", "applied"]),
                st.none() | INT64 | st.text(max_size=5) | st.lists(INT64 | st.text(max_size=3) | st.lists(INT64, max_size=3), max_size=4),
                max_size=4,
            ),
        ),
    )
)
def test_garbage_after_a_valid_hello_never_hurts_the_server(
    shared_receiver: tuple[Receiver, ErrorLog], garbage: bytes
) -> None:
    rx, errors = shared_receiver
    with raw_peer_socket(rx.port, encode_hello("fuzz", "127.0.0.1:6", PARTITIONS)) as sock:
        sock.sendall(garbage)
        sock.shutdown(socket.SHUT_WR)
        assert closed_by_peer(sock)  # closed on the garbage, or on our half-close
    # Still serving clients and peers; whatever it delivered is a decoded peer message.
    with MsgpackConn(rx.port) as conn:
        assert conn.msg_request({"type": "ping"}) == {"type": "pong", "success": True}
    before = len(rx.node.from_peers())
    with raw_peer_socket(rx.port, encode_hello("after", "127.0.0.1:7", PARTITIONS)) as sock:
        sock.sendall(msgpack.packb(encode_peer(PushAck(1, 1))))
        got = delivered(rx, before + 1)
    assert (got[-1].src, got[-1].msg) == ("after", PushAck(1, 1))
    assert all(type(m.msg).__module__ == "actors.protocol.peer_messages" for m in got)
    assert not errors.records, [r.getMessage() for r in errors.records]


# --- peer messages on a client connection -----------------------------------------------------


CLIENT_PEER_TYPES = sorted(PEER_TYPES - {"hello"})


@pytest.mark.parametrize("kind", CLIENT_PEER_TYPES)
def test_peer_types_on_a_client_connection_are_unauthorized_in_process(receiver: Receiver, kind: str) -> None:
    with Conn(receiver.port) as conn:
        conn.send_json({"type": "ping"}, {"type": kind, "id": 5}, {"type": "ping"})
        replies = conn.read_jsons(3)
    with MsgpackConn(receiver.port) as mconn:
        mconn.send_msgs({"type": kind, "id": 5}, {"type": "ping"}, {"type": "hello", "id": 6}, {"type": "ping"})
        mreplies = mconn.read_msgs(4)
    assert [r["type"] for r in replies] == ["pong", "error", "pong"]
    assert [r["type"] for r in mreplies] == ["error", "pong", "error", "pong"]
    for reply in (replies[1], mreplies[0], mreplies[2]):
        assert reply["error"] == "unauthorized" and "peer" in reply["message"]
    assert replies[1]["id"] == mreplies[0]["id"] == 5 and mreplies[2]["id"] == 6
    assert not receiver.node.from_peers()


@pytest.mark.integration
def test_peer_types_on_a_client_connection_are_unauthorized(node: NodeProcess) -> None:
    """A real node: every peer type but hello over JSON lines and over msgpack gets
    ``unauthorized`` in its place in the pipeline, and the connection goes on."""
    kinds = CLIENT_PEER_TYPES
    with Conn(node.port) as conn:
        conn.send_json(*[{"type": kind, "id": i} for i, kind in enumerate(kinds)], {"type": "ping"})
        replies = conn.read_jsons(len(kinds) + 1)
    with MsgpackConn(node.port) as mconn:
        mconn.send_msgs({"type": "ping"}, *[{"type": kind, "id": i} for i, kind in enumerate(kinds)], {"type": "ping"})
        mreplies = mconn.read_msgs(len(kinds) + 2)
    assert mreplies[0]["type"] == mreplies[-1]["type"] == "pong"
    for framing, got in (("json", replies[:-1]), ("msgpack", mreplies[1:-1])):
        for i, reply in enumerate(got):
            assert (reply["type"], reply["error"], reply["id"]) == ("error", "unauthorized", i), (framing, reply)
            assert "peer" in reply["message"]
    assert replies[-1]["type"] == "pong"


@pytest.mark.integration
def test_a_real_node_refuses_bad_hellos_and_accepts_a_peer(node: NodeProcess) -> None:
    with raw_peer_socket(node.port, encode_hello("x", "127.0.0.1:2", 7), handshake=False) as sock:
        reply = read_msgpack_reply(sock)
        assert reply["error"] == "bad_request" and "partitions" in reply["message"]
        assert closed_by_peer(sock)
    with Conn(node.port) as conn:
        conn.send_json(encode_hello("x", "127.0.0.1:2", 256))
        reply = json.loads(conn.read_line())
        assert reply["error"] == "unauthorized" and "msgpack" in reply["message"]
        assert conn.read_until_closed() == b""
    # A well-formed peer connection stays open (the node never writes on it).
    with raw_peer_socket(node.port, encode_hello("x", "127.0.0.1:2", 256)) as sock:
        sock.sendall(msgpack.packb(encode_peer(PushAck(1, 0))))
        sock.settimeout(0.3)
        with pytest.raises(socket.timeout):
            sock.recv(1)
    with Conn(node.port) as conn:
        assert conn.request({"type": "ping"}) == {"type": "pong", "success": True}


V_WIRE = [1_700_000_000_000, 0, "node1"]
BAD_KEY_FRAMES = [
    ("pull", {"type": "pull", "sid": 1, "keys": ["ok", ""]}),
    ("push", {"type": "push", "sid": 1, "records": [[5, "v", None, V_WIRE, None]]}),
    ("listing", {"type": "sync_listing", "sid": 1, "listings": [[0, [["", V_WIRE]]]]}),
    ("fetch", {"type": "replica_request", "req": 1, "ops": [["fetch", ["k", 7]]]}),
    ("write-one", {"type": "replica_request", "req": 1, "ops": [["write", [["", 1, None]], V_WIRE]]}),
    ("write-two", {"type": "replica_request", "req": 1, "ops": [["write", [["k", 1, None], [None, 1, None]], V_WIRE]]}),
    ("w", {"type": "replica_request", "req": 1, "writers": [["n", []]], "ops": [["w", b"k", 1, None, 5, 0, 0]]}),
    ("ws", {"type": "replica_request", "req": 1, "writers": [["n", []]], "ops": [["ws", [["k", 1, None], ["", 2, None]], 5, 0, 0]]}),
    ("remove", {"type": "replica_request", "req": 1, "ops": [["remove", [""], V_WIRE, None]]}),
    ("apply", {"type": "replica_request", "req": 1, "ops": [["apply", [["", "v", None, V_WIRE, None]]]]}),
    ("response", {"type": "replica_response", "req": 1, "results": [[["", "v", None, V_WIRE, None]]]}),
]


@pytest.mark.parametrize("obj", [pytest.param(o, id=n) for n, o in BAD_KEY_FRAMES])
def test_a_peer_key_that_is_not_a_non_empty_string_is_refused(obj: dict[str, Any]) -> None:
    from actors.protocol.errors import BadRequestError
    from actors.protocol.peer_codec import decode_peer

    with pytest.raises(BadRequestError, match="key"):
        decode_peer(obj)
