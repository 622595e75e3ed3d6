"""Connection limits without sockets: ``ServedConnection`` and ``ConnectionGuard`` driven
by hand (fake transports, a fake node, the sweep called with chosen clock values).

What a real node does with these limits is in ``tests/test_connection_limits.py``; these
pin the rules exactly: when reading pauses, how far past the output limit encoding may
go, which connection the input budget closes, what each timeout spares.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.kernel.peer import FromPeer
from actors.kernel.peer_auth import NONCE_BYTES, Connector
from actors.protocol.edge import BatchReply, ClientBatch, ClientConnected, ClientDisconnected
from actors.protocol.messages import Ack, Pong, Value, Values
from actors.protocol.peer_codec import encode_hello
from runtime.conn_limits import MAX_IN_FLIGHT, PEER_HELLO_GRACE_S, PROBATION_SLOTS, ClientLimits, ConnectionGuard
from runtime.connection import ClientConnection
from runtime.peer_connection import PeerConnection
from runtime.resp import NIL2, array, bulk, encode_command
from runtime.resp_connection import RespConnection
from runtime.served_connection import TURN_BYTES

BIG = "x" * (512 << 10)
GET_BIG = b'{"type":"get","key":"big"}\n'
REFUSAL = b'{"type":"error","success":false,"error":"max_clients","message":"max number of clients reached"}\n'


class Transport(asyncio.Transport):
    """A transport whose peer never reads: everything written stays in its buffer
    (unless ``drains``), as with a client that pipelines and never reads."""

    def __init__(self, drains: bool = False) -> None:
        super().__init__()
        self.drains = drains
        self.written = bytearray()
        self.buffered = 0
        self.closed = False
        self.aborted = False
        self.reading = True
        self.protocol: Any = None

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_protocol(self) -> Any:
        return self.protocol

    def write(self, data: bytes) -> None:
        self.written += data
        if not self.drains:
            self.buffered += len(data)

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = self.aborted = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8081)}.get(name, default)


class Node:
    """Stands in for the node actor: records what it is told, answers nothing itself."""

    def __init__(self) -> None:
        self.told: list[Any] = []

    def tell(self, message: Any) -> None:
        self.told.append(message)

    def is_alive(self) -> bool:
        return True

    def batches(self) -> list[ClientBatch]:
        return [m for m in self.told if type(m) is ClientBatch]


def client(guard: ConnectionGuard, node: Node | None = None, transport: Transport | None = None) -> tuple[ClientConnection, Node, Transport]:
    node = node or Node()
    transport = transport or Transport()
    conn = ClientConnection(len(node.told) + 1, node, 1 << 20, lambda c: None, guard=guard)  # type: ignore[arg-type]
    transport.set_protocol(conn)
    conn.connection_made(transport)
    return conn, node, transport


def peer_hello(conn: ClientConnection, transport: Transport, node_id: str = "n2", then: bytes = b"") -> Connector:
    """Present a peer's hello on ``conn`` and, once challenged, its auth (with ``then``
    right behind it), as a node without a cluster secret does on loopback."""
    connector = Connector(b"", node_id, bytes(NONCE_BYTES), encode_hello(node_id, "127.0.0.1:9", 256), "127.0.0.1:8081")
    start = len(transport.written)
    conn.data_received(msgpack.packb(connector.hello(), use_bin_type=True))
    challenge = msgpack.unpackb(bytes(transport.written[start:]))
    transport.protocol.data_received(msgpack.packb(connector.on_challenge(challenge), use_bin_type=True) + then)
    return connector


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def settle(turns: int = 200) -> None:
    """Let armed pumps run (each loop turn writes at most TURN_BYTES per connection)."""
    for _ in range(turns):
        await asyncio.sleep(0)


# --- output buffer limit ------------------------------------------------------------------


def test_a_batch_of_large_replies_stops_being_encoded_at_the_hard_limit() -> None:
    async def scenario() -> None:
        hard = 4 << 20
        guard = ConnectionGuard(ClientLimits(output_hard=hard))
        conn, node, transport = client(guard)
        encoded = 0
        encode = conn._encode

        def counting(reply: Any) -> bytes:
            nonlocal encoded
            encoded += 1
            return encode(reply)

        conn._encode = counting
        conn.data_received(GET_BIG * 300)
        (batch,) = node.batches()
        conn.tell(BatchReply(batch.conn, tuple(Value(BIG, True) for _ in batch.requests)))
        await settle()
        assert transport.aborted
        assert guard.counters["client_output_buffer_kills"] == 1
        # Never more than the limit handed to the transport, and one reply past it encoded.
        assert len(transport.written) <= hard
        assert encoded == hard // len(encode(Value(BIG, True))) + 1
        conn.connection_lost(None)
        assert guard.clients == 0 and isinstance(node.told[-1], ClientDisconnected)

    run(scenario())


def test_a_reading_client_gets_every_reply_of_a_batch_larger_than_the_limit() -> None:
    """The limit is on unsent bytes: a client that reads (the buffer drains) is never cut."""

    async def scenario() -> None:
        guard = ConnectionGuard(ClientLimits(output_hard=2 << 20))
        conn, node, transport = client(guard, transport=Transport(drains=True))
        conn.data_received(GET_BIG * 20)
        (batch,) = node.batches()
        conn.tell(BatchReply(batch.conn, tuple(Value(BIG, True) for _ in batch.requests)))
        first_turn = len(transport.written)
        assert first_turn <= TURN_BYTES + len(BIG) + 100  # the rest is written in later turns
        await settle()
        assert not transport.closed and guard.counters["client_output_buffer_kills"] == 0
        lines = bytes(transport.written).split(b"\n")
        assert len(lines) == 21 and all(json.loads(line)["value"] == BIG for line in lines[:-1])

    run(scenario())


def test_replies_keep_their_order_while_a_large_batch_is_written_over_several_turns() -> None:
    async def scenario() -> None:
        guard = ConnectionGuard(ClientLimits(output_hard=0))  # 0: no limit
        conn, node, transport = client(guard, transport=Transport(drains=True))
        conn.data_received(GET_BIG * 3)
        conn.data_received(b'{"type":"ping","id":7}\n')
        first, second = node.batches()
        conn.tell(BatchReply(first.conn, tuple(Value(BIG, True) for _ in first.requests)))
        conn.tell(BatchReply(second.conn, (Pong(7),)))
        await settle()
        lines = bytes(transport.written).split(b"\n")
        assert [json.loads(line).get("type") for line in lines[:-1]] == ["response"] * 3 + ["pong"]

    run(scenario())


def test_the_soft_limit_cuts_a_client_off_only_after_its_seconds_over_it() -> None:
    async def scenario() -> None:
        guard = ConnectionGuard(ClientLimits(output_hard=64 << 20, output_soft=1 << 20, output_soft_s=2.0))
        conn, node, transport = client(guard)
        t0 = guard.now
        conn.data_received(GET_BIG * 4)
        (batch,) = node.batches()
        conn.tell(BatchReply(batch.conn, tuple(Value(BIG, True) for _ in batch.requests)))
        await settle()
        assert not transport.closed and conn in guard.soft_over
        guard.sweep(now=t0 + 1.0)
        assert not transport.closed
        transport.buffered = 0  # the client read everything: under the soft limit again
        guard.sweep(now=t0 + 1.5)
        assert conn not in guard.soft_over
        conn.data_received(GET_BIG * 4)  # over again at t0 + 1.5: the clock restarts
        second = node.batches()[1]
        conn.tell(BatchReply(second.conn, tuple(Value(BIG, True) for _ in second.requests)))
        await settle()
        guard.sweep(now=t0 + 2.5)
        guard.sweep(now=t0 + 3.4)
        assert not transport.closed and guard.counters["client_output_buffer_kills"] == 0
        guard.sweep(now=t0 + 3.6)
        assert transport.aborted and guard.counters["client_output_buffer_kills"] == 1

    run(scenario())


# --- batches in flight --------------------------------------------------------------------


def test_reading_pauses_at_max_in_flight_batches_and_resumes_when_one_is_answered() -> None:
    guard = ConnectionGuard()
    conn, node, transport = client(guard, transport=Transport(drains=True))
    for i in range(MAX_IN_FLIGHT):
        assert transport.reading
        conn.data_received(b'{"type":"ping","id":%d}\n' % i)
    assert not transport.reading and conn.outstanding == MAX_IN_FLIGHT
    first = node.batches()[0]
    conn.tell(BatchReply(first.conn, (Pong(0),)))
    assert transport.reading


def test_write_backpressure_and_in_flight_batches_both_hold_reading() -> None:
    guard = ConnectionGuard()
    conn, node, transport = client(guard, transport=Transport(drains=True))
    for i in range(MAX_IN_FLIGHT):
        conn.data_received(b'{"type":"ping","id":%d}\n' % i)
    conn.pause_writing()
    for batch in node.batches():
        conn.tell(BatchReply(batch.conn, (Pong(),)))
    assert not transport.reading  # the write buffer is still over its high-water mark
    conn.resume_writing()
    assert transport.reading


def test_resp_batches_answered_here_count_in_flight_too() -> None:
    """ECHO needs no node, but its reply waits behind a GET the node has not answered."""
    guard = ConnectionGuard()
    node, transport = Node(), Transport(drains=True)
    conn = RespConnection(1, node, 1 << 20, lambda c: None, guard=guard)  # type: ignore[arg-type]
    conn.connection_made(transport)
    conn.data_received(b"GET a\r\n")
    for _ in range(MAX_IN_FLIGHT - 1):
        assert transport.reading
        conn.data_received(b"ECHO " + b"e" * 1000 + b"\r\n")
    assert not transport.reading
    (batch,) = node.batches()
    conn.tell(BatchReply(batch.conn, (Value(b"1", True),)))
    assert transport.reading and bytes(transport.written).startswith(b"$1\r\n1\r\n$1000\r\n")


# --- partial input: read timeout and budget -----------------------------------------------


def test_a_partial_request_older_than_the_read_timeout_is_closed() -> None:
    guard = ConnectionGuard(ClientLimits(request_read_timeout_s=5.0))
    t0 = guard.now
    slow, _, slow_t = client(guard)
    slow.data_received(b'{"type":"set","key":"k","value":"')
    steady, _, steady_t = client(guard)
    steady.data_received(b'{"type":"ping"}\n')  # complete: nothing partial
    guard.sweep(now=t0 + 3.0)
    late, _, late_t = client(guard)
    late.data_received(b'{"type":"ping"')  # began at t0 + 3
    slow.data_received(b"more bytes, still no line end")  # trickling does not restart the clock
    guard.sweep(now=t0 + 5.5)
    assert slow_t.aborted and not steady_t.closed and not late_t.closed
    assert guard.counters["request_read_timeouts"] == 1
    assert list(guard.partial) == [late] and guard.input_bytes == len(b'{"type":"ping"')
    late.data_received(b"}\n")  # completed in time
    guard.sweep(now=t0 + 9.0)
    assert not late_t.closed and not guard.partial and guard.input_bytes == 0


def test_a_request_completed_while_the_next_one_starts_restarts_the_clock() -> None:
    guard = ConnectionGuard(ClientLimits(request_read_timeout_s=5.0))
    t0 = guard.now
    conn, node, transport = client(guard)
    conn.data_received(b'{"type":"ping"')
    guard.sweep(now=t0 + 4.0)
    conn.data_received(b'}\n{"type":"ping"')  # one done, the next begun at t0 + 4
    guard.sweep(now=t0 + 8.0)
    assert not transport.closed and len(node.batches()) == 1
    guard.sweep(now=t0 + 9.5)
    assert transport.aborted


def test_the_read_timeout_does_not_run_while_we_hold_reading_paused() -> None:
    """An honest pipelining client whose read ended mid-request: the rest waits in the
    kernel because *we* paused reading (batches in flight), so its clock must wait too."""
    guard = ConnectionGuard(ClientLimits(request_read_timeout_s=5.0))
    t0 = guard.now
    conn, node, transport = client(guard, transport=Transport(drains=True))
    for i in range(MAX_IN_FLIGHT - 1):
        conn.data_received(b'{"type":"ping","id":%d}\n' % i)
    conn.data_received(b'{"type":"ping","id":9}\n{"type":"pi')  # the last batch ends mid-request
    assert not transport.reading and conn.held_input > 0
    guard.sweep(now=t0 + 60.0)  # the node is slow: a minute with reading paused
    assert not transport.aborted and guard.counters["request_read_timeouts"] == 0
    assert guard.input_bytes == conn.held_input  # still counted in the input budget
    first = node.batches()[0]
    conn.tell(BatchReply(first.conn, (Pong(0),)))  # one answered: reading resumes, the clock restarts
    assert transport.reading
    guard.sweep(now=t0 + 63.0)
    assert not transport.aborted
    guard.sweep(now=t0 + 66.0)  # 6 s after reading resumed and nothing more came
    assert transport.aborted and guard.counters["request_read_timeouts"] == 1


def test_a_paused_connection_is_still_subject_to_the_input_budget() -> None:
    guard = ConnectionGuard(ClientLimits(max_input_buffer=1000))
    conn, _, transport = client(guard, transport=Transport(drains=True))
    for i in range(MAX_IN_FLIGHT - 1):
        conn.data_received(b'{"type":"ping","id":%d}\n' % i)
    conn.data_received(b'{"type":"ping"}\n{"type":"set","key":"k","value":"' + b"x" * 600)
    assert not transport.reading and not transport.aborted
    other, _, other_t = client(guard)
    other.data_received(b'{"type":"set","key":"k","value":"' + b"y" * 500)  # together over 1000
    assert transport.aborted and not other_t.aborted and guard.counters["input_buffer_kills"] == 1


def test_the_input_budget_closes_the_connection_holding_the_most_first() -> None:
    guard = ConnectionGuard(ClientLimits(max_input_buffer=1000))
    small, _, small_t = client(guard)
    large, _, large_t = client(guard)
    medium, _, medium_t = client(guard)
    small.data_received(b"x" * 300)
    large.data_received(b"x" * 500)
    assert guard.input_bytes == 800 and not large_t.closed
    medium.data_received(b"x" * 400)  # 1200 > 1000: the 500-byte one goes
    assert large_t.aborted and not small_t.closed and not medium_t.closed
    assert guard.input_bytes == 700 and guard.counters["input_buffer_kills"] == 1
    assert large.held_input == 0 and large not in guard.partial


def test_peer_frames_count_in_the_input_budget_and_the_read_timeout() -> None:
    guard = ConnectionGuard(ClientLimits(request_read_timeout_s=5.0, max_input_buffer=10 << 20))
    t0 = guard.now
    conn, node, transport = client(guard)
    partial = b"\x81\xa1k\xc6" + (100_000).to_bytes(4, "big") + b"\x00" * 3000  # {"k": <bin of 100,000>}, cut
    peer_hello(conn, transport, "peer", then=partial)
    peer = transport.protocol
    assert type(peer) is PeerConnection and peer.peer == ("peer", "127.0.0.1:9")
    assert guard.clients == 0 and guard.peers == 1
    # The bytes, and the decoder's scanner's copy of the partial binary value (MsgpackDecoder.buffered).
    assert len(partial) <= guard.input_bytes <= 2 * len(partial) and peer in guard.partial and conn not in guard.holding
    guard.sweep(now=t0 + 6.0)
    assert transport.aborted and guard.counters["request_read_timeouts"] == 1
    peer.connection_lost(None)
    assert guard.peers == 0 and guard.input_bytes == 0


# --- max clients --------------------------------------------------------------------------


def test_over_max_clients_a_json_client_gets_the_refusal_line() -> None:
    guard = ConnectionGuard(ClientLimits(max_clients=1))
    node = Node()
    client(guard, node)
    conn, _, transport = client(guard, node)
    assert conn in guard.probation and not any(type(m) is ClientConnected and m.conn == conn.conn_id for m in node.told)
    conn.data_received(b'{"type":"ping"}\n')
    assert bytes(transport.written) == REFUSAL and transport.closed and not transport.reading
    assert guard.counters["rejected_connections"] == 1 and not node.batches()
    conn.connection_lost(None)
    assert guard.clients == 1 and not any(type(m) is ClientDisconnected for m in node.told)


def test_over_max_clients_a_msgpack_client_that_is_not_a_peer_is_refused() -> None:
    guard = ConnectionGuard(ClientLimits(max_clients=1))
    client(guard)
    conn, node, transport = client(guard)
    conn.data_received(msgpack.packb({"type": "ping"}))
    assert bytes(transport.written) == REFUSAL and transport.closed and not node.batches()


def test_over_max_clients_a_peer_hello_is_still_accepted() -> None:
    guard = ConnectionGuard(ClientLimits(max_clients=1))
    client(guard)
    conn, node, transport = client(guard)
    peer_hello(conn, transport)
    assert transport.protocol.peer == ("n2", "127.0.0.1:9") and not transport.closed
    assert guard.clients == 1 and guard.peers == 1 and not guard.probation
    assert guard.counters["rejected_connections"] == 0


def test_over_max_clients_a_hello_without_auth_is_refused_after_the_grace() -> None:
    guard = ConnectionGuard(ClientLimits(max_clients=1))
    t0 = guard.now
    client(guard)
    conn, node, transport = client(guard)
    connector = Connector(b"", "n2", bytes(NONCE_BYTES), encode_hello("n2", "127.0.0.1:9", 256), "127.0.0.1:8081")
    conn.data_received(msgpack.packb(connector.hello(), use_bin_type=True))
    assert msgpack.unpackb(bytes(transport.written))["type"] == "challenge" and conn in guard.probation
    guard.sweep(now=t0 + PEER_HELLO_GRACE_S + 0.01)
    assert transport.closed and guard.peers == 0 and not guard.probation


def test_a_hello_without_auth_is_refused_after_the_grace_and_decodes_nothing() -> None:
    """A challenged hello holds its client slot until auth, at most the hello grace; a
    frame that is not auth is refused (unauthorized) and never reaches the node."""
    guard = ConnectionGuard(ClientLimits(max_clients=5))
    connector = Connector(b"", "n2", bytes(NONCE_BYTES), encode_hello("n2", "127.0.0.1:9", 256), "127.0.0.1:8081")
    conn, node, transport = client(guard)
    conn.data_received(msgpack.packb(connector.hello(), use_bin_type=True))
    conn.data_received(msgpack.packb({"type": "push_ack", "sid": 1, "applied": 1}))  # not auth
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(bytes(transport.written))
    challenge, refusal = list(unpacker)
    assert challenge["type"] == "challenge" and refusal["error"] == "unauthorized" and "auth" in refusal["message"]
    assert transport.closed and guard.peers == 0 and not any(type(m) is FromPeer for m in node.told)
    t0 = guard.now
    quiet, _, quiet_t = client(guard)
    quiet.data_received(msgpack.packb(connector.hello(), use_bin_type=True))
    assert quiet in guard.handshakes and guard.clients == 2
    guard.sweep(now=t0 + PEER_HELLO_GRACE_S / 2)
    assert not quiet_t.closed
    guard.sweep(now=t0 + PEER_HELLO_GRACE_S + 0.01)
    assert quiet_t.closed and quiet not in guard.handshakes and guard.peers == 0
    assert "did not complete" in msgpack.unpackb(bytes(quiet_t.written)[len(msgpack.packb(challenge)) :])["message"]


def test_a_connection_that_says_nothing_is_refused_after_the_grace() -> None:
    guard = ConnectionGuard(ClientLimits(max_clients=1))
    t0 = guard.now
    client(guard)
    conn, _, transport = client(guard)
    guard.sweep(now=t0 + PEER_HELLO_GRACE_S / 2)
    assert not transport.closed
    guard.sweep(now=t0 + PEER_HELLO_GRACE_S + 0.01)
    assert bytes(transport.written) == REFUSAL and transport.closed


def test_probation_slots_are_bounded_the_oldest_is_refused_first() -> None:
    guard = ConnectionGuard(ClientLimits(max_clients=1))
    client(guard)
    waiting = [client(guard) for _ in range(PROBATION_SLOTS + 3)]
    assert len(guard.probation) == PROBATION_SLOTS
    assert [t.closed for _, _, t in waiting] == [True] * 3 + [False] * PROBATION_SLOTS
    assert guard.counters["rejected_connections"] == 3


def test_a_peer_leaves_its_client_slot_to_clients() -> None:
    guard = ConnectionGuard(ClientLimits(max_clients=1))
    conn, node, transport = client(guard)
    assert guard.clients == 1
    peer_hello(conn, transport)
    assert guard.clients == 0 and isinstance(node.told[-1], ClientDisconnected)
    other, _, transport = client(guard)
    assert guard.clients == 1 and other not in guard.probation


def test_peer_connections_are_bounded_too() -> None:
    guard = ConnectionGuard(ClientLimits(max_clients=2))
    transports = []
    for _ in range(2):
        conn, _, transport = client(guard)
        peer_hello(conn, transport, "n")
        transports.append(transport)
    conn, _, transport = client(guard)
    conn.data_received(msgpack.packb({**encode_hello("n", "127.0.0.1:9", 256), "nonce": bytes(NONCE_BYTES)}))
    transports.append(transport)
    assert guard.peers == 2 and [t.closed for t in transports] == [False, False, True]
    refusal = msgpack.unpackb(bytes(transports[2].written))  # at its hello: no challenge
    assert refusal["error"] == "max_clients"


def test_over_max_clients_resp_is_refused_at_once() -> None:
    guard = ConnectionGuard(ClientLimits(max_clients=1))
    client(guard)
    node, transport = Node(), Transport()
    conn = RespConnection(9, node, 1 << 20, lambda c: None, guard=guard)  # type: ignore[arg-type]
    conn.connection_made(transport)
    assert bytes(transport.written) == b"-ERR max number of clients reached\r\n" and transport.closed
    conn.data_received(b"PING\r\n")
    assert not node.told and guard.counters["rejected_connections"] == 1


# --- idle timeout -------------------------------------------------------------------------


def idle_sweeps(guard: ConnectionGuard, now: float) -> None:
    for _ in range(10):  # the idle pass runs once every 10 sweeps
        guard.sweep(now=now)


@pytest.mark.parametrize("timeout", [0.0, 5.0])
def test_idle_clients_are_closed_but_not_busy_ones_nor_peers(timeout: float) -> None:
    connections: set[Any] = set()
    guard = ConnectionGuard(ClientLimits(idle_timeout_s=timeout), connections)
    t0 = guard.now
    idle, _, idle_t = client(guard)
    waiting, node, waiting_t = client(guard, transport=Transport(drains=True))
    waiting.data_received(b'{"type":"ping"}\n')  # the node has not answered
    peer, _, peer_t = client(guard)
    peer_hello(peer, peer_t)
    connections.update([idle, waiting, peer_t.protocol])
    idle_sweeps(guard, t0 + 6.0)
    if not timeout:  # 0: never, as Redis
        assert not (idle_t.closed or waiting_t.closed or peer_t.closed)
        return
    assert idle_t.closed and not waiting_t.closed and not peer_t.closed
    assert guard.counters["idle_timeouts"] == 1
    (batch,) = node.batches()
    waiting.tell(BatchReply(batch.conn, (Pong(),)))
    idle_sweeps(guard, t0 + 6.5)  # answered: idle since its request at t0
    assert waiting_t.closed and guard.counters["idle_timeouts"] == 2


def test_counters_start_at_zero_and_are_a_copy() -> None:
    guard = ConnectionGuard()
    stats = guard.stats()
    assert stats == {
        "rejected_connections": 0,
        "auth_failures": 0,
        "client_output_buffer_kills": 0,
        "idle_timeouts": 0,
        "request_read_timeouts": 0,
        "input_buffer_kills": 0,
        "bytes_received": 0,
        "bytes_sent": 0,
    }
    stats["idle_timeouts"] = 5
    assert guard.stats()["idle_timeouts"] == 0


def resp_client(guard: ConnectionGuard, transport: Transport) -> tuple[RespConnection, Node]:
    node = Node()
    conn = RespConnection(1, node, 1 << 20, lambda c: None, guard=guard)  # type: ignore[arg-type]
    conn.connection_made(transport)
    return conn, node


def test_a_large_resp_mget_is_rendered_as_redis_would_write_it() -> None:
    async def scenario() -> None:
        conn, node = resp_client(ConnectionGuard(), Transport(drains=True))
        keys = [b"k%d" % i for i in range(40)]
        conn.data_received(encode_command([b"MGET", *keys]))
        (batch,) = node.batches()
        items = tuple((k.decode(), b"v%d" % i if i % 3 else None, bool(i % 3)) for i, k in enumerate(keys))
        conn.tell(BatchReply(batch.conn, (Values(items),)))
        await settle()
        assert bytes(conn.transport.written) == array([bulk(v) if found else NIL2 for _, v, found in items])  # type: ignore[union-attr]

    run(scenario())


def test_a_resp_mget_of_large_values_stops_at_the_hard_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """One reply of 40 x 512 KiB: rendered value by value, so encoding stops one value
    past the 4 MiB limit instead of building all 20 MiB first."""
    import runtime.resp_keyspace as commands

    rendered = 0
    value_bulk = commands.value_bulk

    def counting(value: Any) -> bytes:
        nonlocal rendered
        rendered += 1
        return value_bulk(value)

    monkeypatch.setattr(commands, "value_bulk", counting)

    async def scenario() -> None:
        hard = 4 << 20
        guard = ConnectionGuard(ClientLimits(output_hard=hard))
        transport = Transport()
        conn, node = resp_client(guard, transport)
        keys = [b"k%d" % i for i in range(40)]
        conn.data_received(encode_command([b"MGET", *keys]))
        (batch,) = node.batches()
        value = BIG.encode()
        conn.tell(BatchReply(batch.conn, (Values(tuple((k.decode(), value, True) for k in keys)),)))
        await settle()
        assert transport.aborted and guard.counters["client_output_buffer_kills"] == 1
        assert len(transport.written) <= hard
        assert rendered == hard // len(value_bulk(value)) + 1

    run(scenario())


def test_a_json_mget_whose_values_pass_the_hard_limit_is_never_encoded() -> None:
    """One ``mget`` reply of 40 x 512 KiB against a 4 MiB limit: cut off without building
    the 20 MiB (the values alone are over the limit); a smaller one is answered."""

    async def scenario() -> None:
        guard = ConnectionGuard(ClientLimits(output_hard=4 << 20))
        conn, node, transport = client(guard, transport=Transport(drains=True))
        encoded: list[Any] = []
        encode = conn._encode

        def recording(reply: Any) -> bytes:
            encoded.append(reply)
            return encode(reply)

        conn._encode = recording
        conn.data_received(b'{"type":"mget","keys":["a","b"]}\n{"type":"mget","keys":["big"]}\n')
        (batch,) = node.batches()
        small = Values((("a", "1", True), ("b", None, False)))
        huge = Values(tuple(("big", BIG, True) for _ in range(40)))
        conn.tell(BatchReply(batch.conn, (small, huge)))
        await settle()
        assert transport.aborted and guard.counters["client_output_buffer_kills"] == 1
        assert encoded == [small]

    run(scenario())


# --- what RESP tells about the limits -----------------------------------------------------


def test_info_and_config_get_tell_the_limits_and_counters_with_redis_names() -> None:
    from runtime.resp_commands import dispatch
    from runtime.resp_server import info_text
    from runtime.resp_session import RespServerInfo, Session

    session = Session(1, RespServerInfo(max_clients=50, timeout=300.0))
    stats = {"connections": 2, "rejected_connections": 4, "client_output_buffer_kills": 3, "input_buffer_kills": 2,
             "idle_timeouts": 1, "request_read_timeouts": 5}
    text = info_text(stats, ["clients", "stats", "actorcache"], session)
    fields = dict(line.split(":", 1) for line in text.split("\r\n") if ":" in line)
    assert fields["maxclients"] == "50" and fields["rejected_connections"] == "4"
    assert fields["client_output_buffer_limit_disconnections"] == "3"
    assert fields["client_query_buffer_limit_disconnections"] == "2"
    assert fields["idle_timeouts"] == "1" and fields["request_read_timeouts"] == "5"  # ours, in # Actorcache
    reply = dispatch([b"CONFIG", b"GET", b"maxclients"], session)
    assert reply == b"*2\r\n$10\r\nmaxclients\r\n$2\r\n50\r\n"
    assert dispatch([b"CONFIG", b"GET", b"timeout"], session) == b"*2\r\n$7\r\ntimeout\r\n$3\r\n300\r\n"


# --- transactions' queues in the input budget (red team s25) --------------------------------
# A MULTI queue's byte bound was per connection (one command's worth, 513 MB by default) and
# not counted in --max-input-buffer-bytes: N connections each queueing up to it held N times
# that. Now queued arguments are held in the shared budget: a command past it is refused
# (-OOM, the transaction marked), and partial input past it closes the largest holder,
# whether what it holds is partial or queued.

_BUDGET = 20_000


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["queue", "queue", "queue", "exec", "discard", "close", "partial"]),
                          st.integers(1, 9_000)), max_size=40))
def test_queued_transactions_stay_within_the_shared_input_budget(ops: list[tuple[int, str, int]]) -> None:
    async def scenario() -> None:
        guard = ConnectionGuard(ClientLimits(max_input_buffer=_BUDGET))
        conns = []
        for i in range(4):
            conn = RespConnection(i + 1, Node(), 1 << 20, lambda c: None, guard=guard)  # type: ignore[arg-type]
            transport = Transport(drains=True)
            conn.connection_made(transport)
            conn.data_received(encode_command([b"MULTI"]))
            conns.append((conn, transport))
        partials: list[tuple[Any, Transport]] = []
        for index, op, size in ops:
            conn, transport = conns[index]
            if transport.closed:
                continue
            before = len(transport.written)
            room = min(_BUDGET - (guard.input_bytes - conn.held_input), _BUDGET // 2 - guard.queued_bytes)
            if op == "queue":
                conn.data_received(encode_command([b"SET", b"k", b"v" * size]))
                reply = bytes(transport.written[before:])
                assert reply == (b"+QUEUED\r\n" if 4 + size <= room else b"-OOM command not allowed when the queued "
                                 b"transactions and partial requests of all clients > 'max-input-buffer-bytes'\r\n")
            elif op in ("exec", "discard"):
                conn.data_received(encode_command([op.encode()]) + encode_command([b"MULTI"]))
                assert conn.held_queued == 0
                for batch in conn.node.batches()[-1:]:  # (answered, so later replies are written)
                    conn.tell(BatchReply(batch.conn, tuple(Ack() for _ in batch.requests)))
            elif op == "close":
                conn.connection_lost(None)
                transport.closed = True
            else:  # another client's partial request: past the budget the largest holder goes
                other, _, other_t = client(guard)
                other.data_received(b'{"type":"set","key":"k","value":"' + b"y" * size)
                partials.append((other, other_t))
            live = [c for c, t in conns + partials if not t.closed]
            assert guard.input_bytes == sum(c.held_input + c.held_queued for c in live) <= _BUDGET
            assert guard.queued_bytes == sum(c.held_queued for c in live) <= _BUDGET // 2
            assert set(guard.holding) == {c for c in live if c.held_input or c.held_queued}
        for conn, transport in conns + partials:
            if not transport.closed:
                conn.connection_lost(None)
        assert guard.input_bytes == guard.queued_bytes == 0 and not guard.holding

    run(scenario())


def test_partial_input_past_the_budget_closes_the_largest_transaction_first() -> None:
    guard = ConnectionGuard(ClientLimits(max_input_buffer=2000))
    hog, hog_t = RespConnection(1, Node(), 1 << 20, lambda c: None, guard=guard), Transport(drains=True)  # type: ignore[arg-type]
    hog.connection_made(hog_t)
    hog.data_received(encode_command([b"MULTI"]) + encode_command([b"SET", b"k", b"x" * 896]))
    assert hog.held_queued == 900 and guard.input_bytes == guard.queued_bytes == 900
    assert hog_t.written.endswith(b"+QUEUED\r\n")
    hog.data_received(encode_command([b"SET", b"k", b"x" * 200]))  # queues together: at most half the budget
    assert hog_t.written.endswith(b"'max-input-buffer-bytes'\r\n") and hog.held_queued == 900
    others = [client(guard) for _ in range(2)]
    others[0][0].data_received(b'{"type":"set","key":"k","value":"' + b"y" * 560)
    others[1][0].data_received(b'{"type":"set","key":"k","value":"' + b"y" * 560)  # 2,1xx > 2000: the hog goes
    assert hog_t.aborted and not any(t.closed for _, _, t in others) and guard.counters["input_buffer_kills"] == 1
    assert guard.input_bytes == sum(c.held_input for c, _, _ in others) and hog.held_queued == guard.queued_bytes == 0


# --- compressed peer frames: an inflation budget per loop turn (red team s25) ----------------
# A holder of the cluster secret sent zstd frames of ~2 KB each inflating to a 60 MB Push:
# 24 KB on the wire took a real node to 834 MB (one read of 256 KB: ~8 GB), as every frame
# of a read was inflated and decoded before the node saw the first. Now all peer connections
# together inflate at most INFLATE_TURN_BYTES (plus one frame) per loop turn; the rest
# waits, compressed, with reading paused, and goes in order in the next turns.


def _peer(guard: ConnectionGuard, node: Node, name: str) -> tuple[PeerConnection, Transport]:
    from runtime.framing import MsgpackDecoder
    from runtime.peer_compress import CODECS
    from runtime.peer_connection import switch_to_peer_frames

    decoder = MsgpackDecoder(1 << 20)
    switch_to_peer_frames(decoder, 64 << 20)
    conn = PeerConnection(1, node, lambda c: None, guard, name, "127.0.0.1:9", decoder, 64,  # type: ignore[arg-type]
                          next(iter(CODECS.values())))
    transport = Transport()
    conn.connection_made(transport)
    return conn, transport


def test_compressed_peer_frames_inflate_within_a_budget_per_loop_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    from actors.protocol.peer_codec import encode_peer
    from actors.protocol.peer_messages import Push
    from actors.protocol.record import Record
    from actors.protocol.version import Version
    from runtime import conn_limits
    from runtime.peer_compress import CODECS, compress_frame

    monkeypatch.setattr(conn_limits, "INFLATE_TURN_BYTES", 1 << 20, raising=False)
    codec = next(iter(CODECS.values()))
    pushes = [Push(i, (Record("k", "a" * (600 << 10), None, Version(1, i, "n2")),)) for i in range(4)]
    frames = b"".join(compress_frame(codec, msgpack.packb(encode_peer(p), use_bin_type=True)) for p in pushes)
    assert len(frames) < 4 * 1000  # what the wire carries: a few hundred bytes a frame

    async def scenario() -> None:
        guard, node = ConnectionGuard(), Node()
        a, a_t = _peer(guard, node, "n2")
        b, b_t = _peer(guard, node, "n3")
        a.data_received(frames)
        b.data_received(frames)
        told = [m for m in node.told if type(m) is FromPeer]
        assert [m.msg for m in told] == pushes[:2]  # 0.6 MB, then 1.2 MB: the budget is spent
        assert not a_t.reading and not b_t.reading  # both wait for the next turn
        turns = 0
        while len([m for m in node.told if type(m) is FromPeer]) < 8:
            await asyncio.sleep(0)
            turns += 1
            assert turns < 20
        told = [m for m in node.told if type(m) is FromPeer]
        assert [m.msg for m in told if m.src == "n2"] == pushes and [m.msg for m in told if m.src == "n3"] == pushes
        assert turns >= 3 and a_t.reading and b_t.reading and not a_t.closed and not b_t.closed

    run(scenario())


def test_the_input_budget_closes_clients_before_a_peer_holding_more() -> None:
    """Red team s25: queued transactions hold the input budget with no timeout; a stranger's
    few queues each smaller than a member's large partial frame must not get that frame's
    link cut off (it would be resent and cut off again)."""
    guard = ConnectionGuard(ClientLimits(max_input_buffer=40_000))
    conn, _, transport = client(guard)
    peer_hello(conn, transport, "peer", then=b"\x81\xa1k\xc6" + (100_000).to_bytes(4, "big") + b"\x00" * 6_000)
    peer = transport.protocol
    held = peer.held_input
    assert type(peer) is PeerConnection and held >= 6_000
    hogs = []
    for i in range(3):
        hog, hog_t = RespConnection(10 + i, Node(), 1 << 20, lambda c: None, guard=guard), Transport(drains=True)  # type: ignore[arg-type]
        hog.connection_made(hog_t)
        hog.data_received(encode_command([b"MULTI"]) + encode_command([b"SET", b"k", b"x" * 5_000]))
        hogs.append((hog, hog_t))
    assert all(hog.held_queued < held for hog, _ in hogs)
    peer.data_received(b"\x00" * 6_600)  # the frame grows past the budget
    assert not transport.aborted and guard.counters["input_buffer_kills"] == 1
    assert sum(hog_t.aborted for _, hog_t in hogs) == 1 and guard.input_bytes <= 40_000 and peer.held_input > 5_100
