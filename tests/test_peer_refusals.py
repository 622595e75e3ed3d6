"""What a stranger may claim in a peer handshake, and what a node keeps and logs of it
(red-team findings on issue 13, fixed): a hello's node id and address are bounded at
decode; refused peers are logged cut short, at most a burst of WARNING lines a minute
whoever they claim to be, with a bounded memory; a cluster secret shorter than 16 bytes
is refused at start-up; a node whose clients need a password accepts no peer without a
cluster secret, loopback included (a local user would otherwise get past the password by
peering with the empty key). Real nodes where a node is involved.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import pytest
from hypothesis import given, strategies as st

from actors.protocol.errors import BadRequestError
from actors.protocol.peer_codec import MAX_ADDR_CHARS, MAX_NODE_ID_CHARS, decode_hello, encode_hello
from runtime.local_cluster import NodeProcess, write_secret_file
from runtime.peer_trust import (
    NO_PEERS_MESSAGE,
    REFUSAL_LOG_BURST,
    REFUSAL_MEMORY,
    RefusalLog,
)
from tests.rogue_peer import SECRET, Refused, RoguePeer, read_frame
from tests.wire import Conn

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "client-password"


def _hello(node_id: object = "node2", addr: object = "127.0.0.1:8082") -> dict[str, object]:
    return {**encode_hello("x", "h:1", 256), "node_id": node_id, "addr": addr}


# --- the hello's bounds ------------------------------------------------------------------


@given(st.text(max_size=300))
def test_a_hello_node_id_is_one_to_255_printable_characters(node_id: str) -> None:
    ok = 0 < len(node_id) <= MAX_NODE_ID_CHARS and node_id.isprintable()
    try:
        assert decode_hello(_hello(node_id))[0] == node_id and ok
    except BadRequestError as exc:
        assert not ok
        assert node_id not in exc.message or len(node_id) < 3  # the message does not repeat it


@pytest.mark.parametrize(
    "addr, ok",
    [
        ("127.0.0.1:8081", True),
        ("[::1]:8081", True),
        ("node-7.example.internal:65535", True),
        ("h" * (MAX_ADDR_CHARS - 6) + ":65535", True),
        ("h" * (MAX_ADDR_CHARS - 5) + ":65535", False),
        ("127.0.0.1", False),
        (":8081", False),
        ("host:65536", False),
        ("host:80 81", False),
        ("ho st:80", False),
        ("host:\u0661\u0662", False),  # (Arabic-Indic digits are digits to str.isdigit)
        ("host\n:80", False),
    ],
)
def test_a_hello_addr_is_a_short_host_and_port(addr: str, ok: bool) -> None:
    if ok:
        assert decode_hello(_hello(addr=addr))[1] == addr
    else:
        with pytest.raises(BadRequestError, match="host:port"):
            decode_hello(_hello(addr=addr))


# --- the refusal log ---------------------------------------------------------------------


def test_refusals_log_a_burst_a_minute_whoever_they_claim_to_be() -> None:
    log = RefusalLog()
    levels = [log.level(f"stranger{i}" + "x" * 250, "wrong proof", now=100.0) for i in range(5 * REFUSAL_MEMORY)]
    assert levels.count(logging.WARNING) == REFUSAL_LOG_BURST
    assert len(log._last) <= REFUSAL_LOG_BURST and all(len(p) <= 64 for p, _ in log._last)
    assert log.level("stranger0" + "x" * 250, "wrong proof", now=130.0) == logging.DEBUG  # once a minute each
    assert log.level("stranger0" + "x" * 250, "wrong proof", now=161.0) == logging.WARNING  # a new minute
    for i in range(2 * REFUSAL_MEMORY):  # one a minute apart: each logged, the memory stays bounded
        assert log.level(f"s{i}", "r", now=200.0 + 61 * i) == logging.WARNING
    assert len(log._last) == REFUSAL_MEMORY


# --- real nodes ----------------------------------------------------------------------------




def _start(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "runtime.node", "node1", "0", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd=ROOT)


@pytest.mark.integration
def test_a_short_cluster_secret_or_node_id_is_refused_at_start_up(tmp_path: Path) -> None:
    short = write_secret_file(b"fifteen bytes!!")
    try:
        refused = _start("--cluster-secret-file", str(short))
    finally:
        shutil.rmtree(short.parent, ignore_errors=True)
    assert refused.returncode == 2, refused.stderr
    assert "shorter than 16 bytes" in refused.stderr and "head -c 32 /dev/urandom | base64" in refused.stderr
    assert "fifteen" not in refused.stderr  # never the secret
    long_id = [sys.executable, "-m", "runtime.node", "n" * 256, "0"]
    refused = subprocess.run(long_id, capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert refused.returncode == 2 and "1 to 255 printable characters" in refused.stderr


@pytest.mark.integration
def test_strangers_with_distinct_ids_do_not_flood_the_log(secret_file: Path, tmp_path: Path) -> None:
    """60 strangers with distinct 255-character ids forge their proof, 60 hang up after
    the challenge, 60 send a malformed hello: the WARNING lines stay within one burst and
    none carries a whole id."""
    log = tmp_path / "node.log"
    with NodeProcess("node1", "--cluster-secret-file", str(secret_file), log_path=log) as node:
        for i in range(60):
            with RoguePeer(node.port, f"{i:03d}" + "f" * 252, secret=b"a wrong guess at the secret") as stranger:
                assert stranger.forged_auth()["error"] == "unauthorized"
            with RoguePeer(node.port, f"{i:03d}" + "h" * 252) as stranger:
                stranger.send_raw(msgpack.packb(stranger.connector.hello(), use_bin_type=True))
                assert read_frame(stranger.sock, msgpack.Unpacker(raw=False))["type"] == "challenge"
            with socket.create_connection(("127.0.0.1", node.port), timeout=5) as sock:
                sock.sendall(msgpack.packb({**_hello(f"{i:03d}" + "m" * 300), "nonce": bytes(32)}, use_bin_type=True))
                assert read_frame(sock, msgpack.Unpacker(raw=False))["error"] == "bad_request"
        time.sleep(0.5)
        with Conn(node.port) as client:
            assert client.request({"type": "ping"})["type"] == "pong"
    lines = log.read_text().splitlines()
    warnings = [line for line in lines if "WARNING" in line and "peer connection" in line]
    assert 3 <= len(warnings) <= REFUSAL_LOG_BURST, "\n".join(warnings[:5])
    assert max(len(line) for line in lines) < 1000
    assert not any("f" * 100 in line or "h" * 100 in line or "m" * 100 in line for line in lines)


@pytest.mark.integration
def test_a_node_that_needs_client_passwords_accepts_no_peer_without_a_secret(tmp_path: Path) -> None:
    """The reproducer: a local user peers over loopback with the empty secret and forwards
    ``incr`` behind its auth. The node says at start-up that it accepts no peer, refuses
    the hello, applies nothing, and still serves its clients."""
    log = tmp_path / "node.log"
    with NodeProcess("node1", "--requirepass", PASSWORD, log_path=log) as node:
        with pytest.raises(Refused) as refused:
            RoguePeer.open(node.port, "node9", "127.0.0.1:1", secret=b"")
        assert refused.value.reply["error"] == "unauthorized" and refused.value.why == NO_PEERS_MESSAGE
        with RoguePeer(node.port, "node9", secret=b"") as rogue:  # everything pipelined behind the hello
            forward = {"type": "forward", "fid": 1, "request": {"type": "incr", "key": "pwned", "by": 41}}
            rogue.send_raw(
                msgpack.packb(rogue.connector.hello(), use_bin_type=True)
                + msgpack.packb({"type": "auth", "proof": bytes(32)}, use_bin_type=True)
                + msgpack.packb(forward, use_bin_type=True)
            )
            assert rogue.closed_by_node()["error"] == "unauthorized"
        time.sleep(0.3)
        with Conn(node.port) as client:
            assert client.request({"type": "get", "key": "pwned"})["error"] == "noauth"
            assert client.request({"type": "auth", "password": PASSWORD})["type"] == "ack"
            assert client.request({"type": "get", "key": "pwned"})["value"] is None
            assert client.request({"type": "set", "key": "mine", "value": 1})["type"] == "ack"
            assert client.request({"type": "get", "key": "mine"})["value"] == 1
    assert NO_PEERS_MESSAGE in log.read_text()


@pytest.mark.integration
def test_with_a_secret_a_node_that_needs_client_passwords_takes_peers_holding_it(secret_file: Path) -> None:
    with NodeProcess("node1", "--requirepass", PASSWORD, "--cluster-secret-file", str(secret_file)) as node:
        with pytest.raises(Refused):
            RoguePeer.open(node.port, "node9", "127.0.0.1:1", secret=b"")
        with RoguePeer.open(node.port, "node9", "127.0.0.1:1", secret=SECRET) as peer:
            assert peer.node == "node1"
