"""The simulated network carries the peer protocol's bytes (sim/peer_wire.py).

Each message is encoded at the sender and decoded at the receiver with the runtime's own
functions, the handshake's frames too, so a sweep exercises the wire format: a message a
real node could not send is dropped at the sender, a frame a real node could not read
closes the connection at the receiver (and the sender reconnects), and every link counts
the bytes it carried.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgpack
import pytest

from actors.protocol.messages import Ack, Set
from actors.protocol.peer_codec import decode_peer, encode_peer
from actors.protocol.peer_messages import ForwardReply, Pull, Push, ReplicaRequest
from actors.protocol.record import Record
from actors.protocol.version import Version
from runtime.peer_frames import UnencodableError, encode_frame, peer_packer
from sim import run
from sim.network import Link, constant
from sim.peer_wire import PeerWire
from tests.test_cluster_sim import SimCluster, config


def _events(c: SimCluster, kind: str) -> list[tuple[str, dict[str, Any]]]:
    return [(node, fields) for _t, node, event, fields in c.host.trace if event == kind]


def _record(payloads: list[tuple[str, str, Any]], c: SimCluster) -> None:
    """Keep every payload the wire hands the network, with its link."""
    wire = c.host.network.wire
    encode = wire.encode

    def spy(src: str, msg: Any) -> Any:
        payload = encode(src, msg)
        payloads.append((src, type(msg).__name__, payload))
        return payload

    wire.encode = spy  # type: ignore[method-assign]


def test_messages_cross_as_the_runtime_s_bytes_and_arrive_decoded() -> None:
    c = SimCluster(3)
    try:
        net = c.host.network
        assert isinstance(net.wire, PeerWire)
        payloads: list[tuple[str, str, Any]] = []
        delivered: list[tuple[str, str, Any]] = []
        _record(payloads, c)
        net.on_deliver = lambda s, d, m: delivered.append((s, d, m))
        assert c.one(Set("k", {"nested": ["v", 1, 2.5, None, True]}, consistency="all"), "n1") == Ack()
        c.run(0.5)
        assert payloads and all(type(p) is bytes for _s, _t, p in payloads)
        requests = [m for s, _d, m in delivered if type(m) is ReplicaRequest and s == "n1"]
        assert len(requests) == 2  # one to each other owner, as decoded objects
        pack = peer_packer()
        for _s, _d, msg in delivered:  # what arrived is what was sent, byte for byte
            frame = pack(encode_peer(msg))
            assert any(p == frame for _src, _t, p in payloads)
            assert decode_peer(msgpack.unpackb(frame, raw=False)) == msg
        # each link counted the bytes of its handshake and its frames
        assert net.link_bytes[("n1", "n2")] >= sum(len(p) for s, _t, p in payloads if s == "n1") / 2
        assert net.unsendable == net.bad_frames == 0
    finally:
        c.host.shutdown()


def test_a_message_the_codec_cannot_encode_is_dropped_at_the_sender_as_a_real_link_does() -> None:
    c = SimCluster(2)
    try:
        net = c.host.network
        delivered: list[Any] = []
        net.on_deliver = lambda s, d, m: delivered.append(m)
        unencodable = ForwardReply(7, {"value": {1, 2}})  # msgpack has no sets
        with pytest.raises(UnencodableError) as real:  # what runtime.peers.PeerLinks.send meets
            encode_frame(peer_packer(), encode_peer, unencodable, 64 << 20)
        net.send("n1", "n2", unencodable)
        c.run(0.1)
        assert net.unsendable == 1 and not any(type(m) is ForwardReply for m in delivered)
        assert _events(c, "peer-unsendable") == [("n1", {"peer": "n2", "reason": real.value.message})]
        assert c.one(Set("k2", "v", consistency="all"), "n1") == Ack()  # the link still works
    finally:
        c.host.shutdown()


def test_a_frame_over_the_sender_s_limit_is_never_sent() -> None:
    c = SimCluster(2)
    try:
        net = c.host.network
        net.wire.max_frame_bytes = 4096  # type: ignore[attr-defined]
        assert c.one(Set("big", "x" * 10_000, consistency="all"), "n1") != Ack()  # n2's copy never left n1
        reasons = [f["reason"] for _n, f in _events(c, "peer-unsendable")]
        assert reasons and all("over the peer frame limit of 4096" in r for r in reasons)
        assert c.one(Set("small", "x", consistency="all"), "n1") == Ack()
    finally:
        c.host.shutdown()


def _push(key: str, value: Any) -> Push:
    return Push(1, (Record(key, value, None, Version(1, 0, "n1")),))


@pytest.mark.parametrize(
    "bad, reason",
    [
        (_push("big", "x" * 2000), "exceeds the limit of 1024 bytes"),  # over the receiver's frame limit
        (Pull(1, ("",)), "not a non-empty string"),  # encodes, but decode_peer refuses it
    ],
    ids=["oversized", "refused by decode_peer"],
)
def test_a_frame_the_receiver_cannot_read_closes_the_connection_and_the_sender_reconnects(bad: Any, reason: str) -> None:
    c = SimCluster(2)
    try:
        net = c.host.network
        net.links[("n1", "n2")] = Link(latency=constant(0.01))
        wire = net.wire
        wire.max_request_bytes = 1024  # type: ignore[attr-defined]
        wire.frame_limits["n2"] = 1024  # type: ignore[attr-defined]
        net.drop_node("n1")  # reconnect under the small limits
        delivered: list[Any] = []
        net.on_deliver = lambda s, d, m: delivered.append(m) if (s, d) == ("n1", "n2") else None
        def handshakes() -> int:
            return sum(1 for node, f in _events(c, "peer-auth") if node == "n2" and f["peer"] == "n1")

        opened = handshakes()
        net.send("n1", "n2", _push("before", "v"))
        c.run(0.1)
        net.send("n1", "n2", bad)
        net.send("n1", "n2", _push("behind", "v"))  # in flight behind the bad frame: lost with the connection
        c.run(0.1)
        assert net.bad_frames == 1
        [(node, fields)] = _events(c, "peer-bad-frame")
        assert node == "n2" and fields["peer"] == "n1" and reason in fields["reason"]
        keys = [m.records[0].key for m in delivered if type(m) is Push]
        assert keys == ["before"]
        net.send("n1", "n2", _push("after", "v"))  # a new connection, a new handshake
        c.run(1.0)
        assert [m.records[0].key for m in delivered if type(m) is Push] == ["before", "after"]
        assert handshakes() == opened + 2  # the connection the bad frame closed, and a new one
    finally:
        c.host.shutdown()


def test_a_hello_the_node_refuses_is_refused_in_the_simulator_too() -> None:
    """The acceptor checks the hello as a real node does: here, a partition count not its own."""
    c = SimCluster(2)
    try:
        c.host.start_node("n3", config(("n1",), partitions=128))
        c.run(3.0)
        refused = [(n, f) for n, f in _events(c, "peer-refused") if f["peer"] == "n3" or n == "n3"]
        assert refused and any("differs from this node's" in f["reason"] for _n, f in refused)
        assert "n3" not in c.stats("n1")["cluster"]["members"]
    finally:
        c.host.shutdown()


def _tiny_scenario(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(
        'name = "tiny"\ndescription = "three nodes, a partition"\nnodes = 3\nduration = 4.0\nsettle = 10.0\n'
        "[workload]\nclients = 2\nkeys = 10\n"
        '[[faults]]\nat = 1.0\naction = "partition"\nkind = "isolate"\nnode = "n3"\n'
        '[[faults]]\nat = 2.5\naction = "heal"\n'
    )
    return path


def test_the_summary_and_json_give_plausible_byte_counts_and_objects_give_the_same_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(_tiny_scenario(tmp_path))
    assert run.main([path, "--seed", "3", "--json"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    peer_bytes = result["peer_bytes"]
    assert peer_bytes["wire"] is True
    links = peer_bytes["links"]
    assert set(links) == {f"n{a}->n{b}" for a in (1, 2, 3) for b in (1, 2, 3) if a != b}
    assert peer_bytes["total"] == sum(links.values())
    # every message is a frame of tens to a few thousand bytes; handshakes add ~400 per link
    assert 20 * result["messages"] < peer_bytes["total"] < 2000 * result["messages"] + 1000 * len(links)
    assert f"peer bytes: {peer_bytes['total']:,} on 6 links" in out
    assert f"n1 -> n2 {links['n1->n2']:,} | n3 {links['n1->n3']:,}" in out
    assert result["peer_links"]["unsendable"] == result["peer_links"]["bad_frames"] == 0
    # the codec loses nothing the nodes look at: handing objects over gives the very same run
    assert run.main([path, "--seed", "3", "--json", "--no-wire"]) == 0
    objects = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert objects["trace_sha256"] == result["trace_sha256"]
    assert objects["peer_bytes"] == {"wire": False, "total": 0, "links": {}}
