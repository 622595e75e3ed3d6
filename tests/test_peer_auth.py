"""Peer authentication on real nodes (issue 13, item 4): ``--cluster-secret-file`` and the
loopback rule, in and out, and the bounds on a handshake that never completes.

Every node here is a real ``python -m runtime.node``; the secured clusters start through
``LocalCluster(cluster_secret=...)``. A wrong-secret node is refused both ways (it
connecting to the cluster, the cluster connecting to it), and the nodes' logs say why
without ever holding the secret. The non-loopback tests use this machine's own
non-loopback address (the node binds 0.0.0.0 and the connection comes from that address):
without a secret such a peer is refused, and a node is never dialled out to one.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest

from actors.protocol.peer_codec import encode_hello, encode_peer
from actors.protocol.peer_messages import Gossip, Member
from runtime.local_cluster import LocalCluster, NodeProcess, write_secret_file
from runtime.peer_trust import LOOPBACK_ONLY_MESSAGE
from tests.cluster import eventually
from tests.rogue_peer import SECRET, Refused, RoguePeer, read_frame
from tests.wire import Conn

pytestmark = pytest.mark.integration

FAST = ["--heartbeat-interval", "0.1", "--down-after", "1"]


def members(port: int) -> dict[str, dict[str, object]]:
    with Conn(port) as conn:
        return conn.request({"type": "stats"})["stats"]["cluster"]["members"]


def non_loopback_ip() -> str | None:
    """An address of this machine that is not loopback (None: it has none)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: no packet is sent for a UDP connect
            ip = s.getsockname()[0]
        except OSError:
            return None
    return None if ip.startswith("127.") else ip




@pytest.fixture
def wrong_secret_file() -> Iterator[Path]:
    path = write_secret_file(b"a guess of the secret, but wrong")
    try:
        yield path
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)


def test_a_secured_cluster_forms_and_replicates() -> None:
    with LocalCluster(3, cluster_secret=SECRET, node_args=FAST) as cluster:
        ports = [cluster.procs[n].port for n in cluster.ids]
        with Conn(ports[0]) as conn:
            assert conn.request({"type": "set", "key": "k", "value": "v", "consistency": "all"})["success"]
        with Conn(ports[2]) as conn:
            assert conn.request({"type": "get", "key": "k", "consistency": "one"})["value"] == "v"
        for node in cluster.ids:
            log = cluster.log(node)
            assert "only loopback" not in log and "handshake failed" not in log
            assert SECRET.decode() not in log


def test_a_node_with_the_wrong_secret_is_refused_both_ways_and_the_logs_say_why(
    tmp_path: Path, secret_file: Path, wrong_secret_file: Path
) -> None:
    """node3 holds another secret. node4 (the cluster's secret) is given node1 and node3 as
    contacts: the cluster dials the stranger. node5 (another secret) joins through node1:
    the stranger dials the cluster. Neither stranger becomes a member anywhere."""
    logs = {n: tmp_path / f"{n}.log" for n in ("node3", "node4", "node5")}
    wrong = NodeProcess("node3", "--cluster-secret-file", str(wrong_secret_file), *FAST, log_path=logs["node3"])
    with wrong, LocalCluster(2, cluster_secret=SECRET, node_args=FAST) as cluster:
        node1 = cluster.procs["node1"]
        member = NodeProcess(
            "node4", node1.addr, wrong.addr, "--cluster-secret-file", str(secret_file), *FAST, log_path=logs["node4"]
        )
        joiner = NodeProcess("node5", node1.addr, "--cluster-secret-file", str(wrong_secret_file), *FAST, log_path=logs["node5"])
        with member, joiner:

            def refused_everywhere() -> None:
                assert set(members(node1.port)) == {"node1", "node2", "node4"}
                assert set(members(member.port)) == {"node1", "node2", "node4"}
                assert set(members(wrong.port)) == {"node3"} and set(members(joiner.port)) == {"node5"}
                log4 = logs["node4"].read_text()
                assert f"peer {wrong.addr}: handshake failed: 'node3' does not hold this cluster's secret" in log4
                log5 = logs["node5"].read_text()
                assert f"peer {node1.addr}: handshake failed: 'node1' does not hold this cluster's secret" in log5
                assert "'node5'" in cluster.log("node1") and "closed during the handshake" in cluster.log("node1")

            eventually(refused_everywhere, 10, "the wrong-secret nodes refused both ways")
            time.sleep(1.5)  # several retries later: still refused, and logged once per outage
            refused_everywhere()
            assert logs["node5"].read_text().count("handshake failed") == 1
            assert logs["node4"].read_text().count("handshake failed") == 1
            assert cluster.log("node1").count("closed during the handshake") == 1
        for text in [path.read_text() for path in logs.values()] + [cluster.log("node1"), cluster.log("node2")]:
            assert SECRET.decode() not in text and "a guess" not in text


def test_without_a_secret_loopback_peers_still_form_a_cluster_and_it_is_said_at_start_up() -> None:
    with LocalCluster(2, node_args=FAST) as cluster:
        ports = [cluster.procs[n].port for n in cluster.ids]
        with Conn(ports[0]) as conn:
            assert conn.request({"type": "set", "key": "k", "value": "v", "consistency": "all"})["success"]
        with Conn(ports[1]) as conn:
            assert conn.request({"type": "get", "key": "k", "consistency": "one"})["value"] == "v"
        assert LOOPBACK_ONLY_MESSAGE in cluster.log("node1")


def test_without_a_secret_a_non_loopback_peer_is_refused() -> None:
    ip = non_loopback_ip()
    if ip is None:
        pytest.skip("this machine has no non-loopback address to connect from")
    node = NodeProcess("node1", "--host", "0.0.0.0", "--advertise", "127.0.0.1")
    try:
        with pytest.raises(Refused) as refused:
            RoguePeer.open(node.port, "node2", f"{ip}:1", host=ip, source=ip)
        assert refused.value.reply["error"] == "unauthorized" and refused.value.why == LOOPBACK_ONLY_MESSAGE
        with RoguePeer.open(node.port, "node2", "127.0.0.1:1"):  # the same from loopback: accepted
            pass
    finally:
        node.kill()


def test_without_a_secret_a_node_never_dials_a_non_loopback_address(tmp_path: Path) -> None:
    ip = non_loopback_ip()
    if ip is None:
        pytest.skip("this machine has no non-loopback address to listen on")
    listener = socket.create_server((ip, 0))
    listener.settimeout(0.2)
    target = f"{ip}:{listener.getsockname()[1]}"
    node = NodeProcess("node1", target, *FAST, log_path=tmp_path / "node1.log")
    try:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            with pytest.raises(socket.timeout):
                listener.accept()
        log = (tmp_path / "node1.log").read_text()
        assert f"not connecting to peer {target}" in log and LOOPBACK_ONLY_MESSAGE in log
    finally:
        node.kill()
        listener.close()


@pytest.fixture
def secured_node(tmp_path: Path, secret_file: Path) -> Iterator[NodeProcess]:
    node = NodeProcess("node1", "--cluster-secret-file", str(secret_file), log_path=tmp_path / "node1.log")
    try:
        yield node
    finally:
        node.kill()


def test_the_rogue_helper_with_the_secret_gets_in(secured_node: NodeProcess) -> None:
    with RoguePeer.open(secured_node.port, "node9", "127.0.0.1:1", secret=SECRET) as peer:
        assert peer.node == "node1"
        peer.send(Gossip((Member("node9", "127.0.0.1:1", 1, "ready"),), False, 256))
        eventually(lambda: assert_member(secured_node.port, "node9"), 5, "the rogue's gossip merged")


def assert_member(port: int, node: str) -> None:
    assert node in members(port)


def test_a_hello_never_followed_by_auth_is_refused_after_the_grace(secured_node: NodeProcess) -> None:
    peer = RoguePeer(secured_node.port, "node2", secret=SECRET)
    try:
        peer.send_raw(msgpack.packb(peer.connector.hello(), use_bin_type=True))
        started = time.monotonic()
        unpacker = msgpack.Unpacker(raw=False)
        challenge = read_frame(peer.sock, unpacker)
        assert challenge["type"] == "challenge" and challenge["node_id"] == "node1"
        refusal = read_frame(peer.sock, unpacker, timeout=10)
        elapsed = time.monotonic() - started
        assert refusal["error"] == "unauthorized" and "did not complete within 2s" in refusal["message"]
        assert 1.5 <= elapsed <= 6.0
    finally:
        peer.close()


def test_a_forged_auth_is_refused_and_what_follows_it_is_never_read(secured_node: NodeProcess) -> None:
    peer = RoguePeer(secured_node.port, "node2", "127.0.0.1:1")
    try:
        peer.send_raw(msgpack.packb(peer.connector.hello(), use_bin_type=True))
        unpacker = msgpack.Unpacker(raw=False)
        assert read_frame(peer.sock, unpacker)["type"] == "challenge"
        gossip = encode_peer(Gossip((Member("node2", "127.0.0.1:1", 1, "ready"),), False, 256))
        peer.send_raw(msgpack.packb({"type": "auth", "proof": os.urandom(32)}) + msgpack.packb(gossip))
        refusal = read_frame(peer.sock, unpacker)
        assert refusal["error"] == "unauthorized" and "wrong auth proof" in refusal["message"]
        assert read_frame(peer.sock, unpacker) is None  # then closed
    finally:
        peer.close()
    time.sleep(0.3)
    assert set(members(secured_node.port)) == {"node1"}


@pytest.mark.parametrize(
    "hello",
    [
        pytest.param({**encode_hello("node2", "127.0.0.1:1", 256)}, id="no-nonce"),
        pytest.param({**encode_hello("node2", "127.0.0.1:1", 256), "nonce": b"short"}, id="short-nonce"),
        pytest.param({**encode_hello("node2", "127.0.0.1:1", 256), "nonce": "x" * 32}, id="nonce-not-bytes"),
    ],
)
def test_a_hello_without_a_good_nonce_is_refused(secured_node: NodeProcess, hello: dict[str, object]) -> None:
    with socket.create_connection(("127.0.0.1", secured_node.port), timeout=5) as sock:
        sock.sendall(msgpack.packb(hello, use_bin_type=True))
        unpacker = msgpack.Unpacker(raw=False)
        refusal = read_frame(sock, unpacker)
        assert refusal["error"] == "unauthorized" and "nonce" in refusal["message"]
        assert read_frame(sock, unpacker) is None


def test_pending_handshakes_hold_client_slots_and_leave_peers_room(tmp_path: Path, secret_file: Path) -> None:
    """--max-clients 4: four strangers holding challenged hellos fill the client slots; a
    real peer arriving over the limit is on probation and still completes its handshake."""
    node = NodeProcess(
        "node1", "--cluster-secret-file", str(secret_file), "--max-clients", "4", log_path=tmp_path / "node1.log"
    )
    strangers = []
    try:
        for i in range(4):
            peer = RoguePeer(node.port, f"s{i}")
            peer.send_raw(msgpack.packb(peer.connector.hello(), use_bin_type=True))
            assert read_frame(peer.sock, msgpack.Unpacker(raw=False))["type"] == "challenge"
            strangers.append(peer)
        with RoguePeer.open(node.port, "node2", secret=SECRET) as real:
            assert real.node == "node1"
        for peer in strangers:  # each refused once its grace ran out
            reply = peer.closed_by_node(timeout=6)
            assert reply is None or reply["error"] == "unauthorized"
    finally:
        for peer in strangers:
            peer.close()
        node.kill()


@pytest.mark.parametrize("content", [b"", b"  \n\t", None], ids=["empty", "blank", "missing"])
def test_an_empty_or_unreadable_secret_file_is_a_usage_error(tmp_path: Path, content: bytes | None) -> None:
    import subprocess
    import sys

    path = tmp_path / "secret"
    if content is not None:
        path.write_bytes(content)
    proc = subprocess.run(
        [sys.executable, "-m", "runtime.node", "node1", "0", "--cluster-secret-file", str(path)],
        capture_output=True, text=True, timeout=30, cwd=Path(__file__).resolve().parent.parent,
    )
    assert proc.returncode == 2
    assert "--cluster-secret-file" in proc.stderr and ("empty" in proc.stderr or "cannot read" in proc.stderr)
