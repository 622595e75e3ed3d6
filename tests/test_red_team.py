"""Red-team findings on issue 13's defences, each against a real node, each still open.

Every test here is a hole found by attacking real nodes (``python -m runtime.node``) as a
stranger or as a client with credentials that allow less: it asserts what should hold, and
is marked ``xfail(strict=True)`` with the finding, so the suite stays green until the fix
lands and then fails until the mark is removed (a fix that makes one pass shows up at once).

- (fixed) A stranger's claimed node id had no length limit: every refused handshake kept it
  (in the refusal log's memory, up to 1,024 of them, whatever their size) and wrote it whole
  into a WARNING line, and distinct ids defeated the once-a-minute rate limit; now a hello's
  node id is 1 to 255 printable characters and its addr a short host:port, and refusal
  logging is bounded in memory and in WARNING lines per minute (tests/test_peer_refusals.py).
- (fixed) Under ``--tls-cluster yes`` without ``--cluster-secret-file``, any certificate the
  CA signed made a peer, a *client's* certificate too (``--tls-auth-clients yes`` hands one
  to every client): a client that may only read wrote any key. Now that configuration is
  refused at start-up (exit 2); with a secret a peer needs it as well as its certificate.
- (fixed) Protected mode's 2 s grace for a silent stranger was lost by sending one byte of
  a msgpack frame: the stranger then kept its client slot until the request read timeout
  (10 s by default, for ever with ``--request-read-timeout 0``); now a first frame not
  complete within the grace is denied as silence is.

Certificates are made in the test (trustme), never stored; every node and socket is closed.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import pytest

from actors.kernel.peer_auth import NONCE_BYTES, Connector
from actors.protocol.peer_codec import encode_hello
from runtime.local_cluster import NodeProcess
from tests.rogue_peer import RoguePeer, read_frame
from tests.test_peer_auth import non_loopback_ip
from tests.wire import Conn

pytestmark = pytest.mark.integration



def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")




def test_strangers_long_node_ids_do_not_pile_up_in_memory_or_the_log(secret_file: Path, tmp_path: Path) -> None:
    """32 strangers, each claiming a distinct ~1 MB node id with a forged auth proof: the
    node may refuse them, but must not keep or log what they claimed (measured: +64 MiB
    resident and +64 MiB of log; at 1,024 strangers about 2 GiB, more with a larger
    --max-request-bytes)."""
    log = tmp_path / "node.log"
    with NodeProcess("node1", "--cluster-secret-file", str(secret_file), log_path=log) as node:
        with RoguePeer(node.port, "warm-up", secret=b"another secret") as warm:
            warm.forged_auth()
        time.sleep(0.3)
        rss_before, log_before = _rss_mib(node.pid), log.stat().st_size
        for i in range(32):
            with RoguePeer(node.port, f"{i:04d}" + "x" * 1_000_000, secret=b"another secret") as stranger:
                reply = stranger.forged_auth()  # (a hello naming such an id is malformed: bad_request)
                assert type(reply) is dict and reply.get("error") in ("unauthorized", "bad_request"), str(reply)[:200]
        time.sleep(0.5)
        assert node.running
        rss_growth = _rss_mib(node.pid) - rss_before
        log_growth = (log.stat().st_size - log_before) / 2**20
    assert log_growth < 4 and rss_growth < 24, (
        f"after 32 refused strangers the log grew {log_growth:.1f} MiB and the node kept {rss_growth:.1f} MiB more"
    )


class _Pki:
    """A CA, node1's certificate and a client's (alice), all signed by it."""

    def __init__(self, root: Path) -> None:
        import trustme

        self.root = root
        ca = trustme.CA()
        self.ca_file = str(root / "ca.pem")
        ca.cert_pem.write_to_path(self.ca_file)
        self.node = self._issue(ca, "node1")
        self.alice = self._issue(ca, "alice")

    def _issue(self, ca: object, name: str) -> tuple[str, str]:
        cert = ca.issue_cert(name, "localhost", "127.0.0.1", common_name=name)  # type: ignore[attr-defined]
        pem, key = str(self.root / f"{name}.pem"), str(self.root / f"{name}.key")
        cert.cert_chain_pems[0].write_to_path(pem)
        cert.private_key_pem.write_to_path(key)
        return pem, key

    def alice_socket(self, port: int) -> ssl.SSLSocket:
        ctx = ssl.create_default_context(cafile=self.ca_file)
        ctx.load_cert_chain(*self.alice)
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        return ctx.wrap_socket(raw, server_hostname="localhost")


def _lines(sock: ssl.SSLSocket, n: int, timeout: float = 5.0) -> list[bytes]:
    deadline, buf = time.monotonic() + timeout, b""
    while buf.count(b"\n") < n and time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf.splitlines()


def test_a_client_certificate_does_not_make_a_peer(tmp_path: Path, secret_file: Path) -> None:
    """alice may only read ``app:*`` (ACL), and holds the client certificate every client
    needs (``--tls-auth-clients yes``). Without a cluster secret the node refuses to start
    (her certificate could claim a node id); with one, as a peer named ``alice`` holding
    no secret, she is refused and writes nothing."""
    pytest.importorskip("trustme")
    pki = _Pki(tmp_path)
    aclfile = tmp_path / "users.acl"
    aclfile.write_text("user admin on >adminpw +@all ~*\nuser alice on >alicepw +@read ~app:*\n")
    node_cert, node_key = pki.node
    options = [
        "--tls-cert-file", node_cert, "--tls-key-file", node_key, "--tls-ca-cert-file", pki.ca_file,
        "--tls-cluster", "yes", "--aclfile", str(aclfile),
    ]
    for auth_clients in ("yes", "optional"):
        argv = [sys.executable, "-m", "runtime.node", "node1", "0", *options, "--tls-auth-clients", auth_clients]
        refused = subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd=Path(__file__).parent.parent)
        assert refused.returncode == 2 and "set --cluster-secret-file" in refused.stderr, refused.stderr
    with NodeProcess(
        "node1", *options, "--cluster-secret-file", str(secret_file), log_path=tmp_path / "node.log",
    ) as node:
        with pki.alice_socket(node.port) as sock:  # as a client she may not write
            sock.sendall(b'{"type":"auth","user":"alice","password":"alicepw"}\n{"type":"incr","key":"pwned"}\n')
            assert b'"noperm"' in _lines(sock, 2)[1]
        with pki.alice_socket(node.port) as sock:  # as a peer, with her certificate but not the secret
            connector = Connector(
                b"", "alice", os.urandom(NONCE_BYTES), encode_hello("alice", "127.0.0.1:1", 256), f"127.0.0.1:{node.port}"
            )
            sock.sendall(msgpack.packb(connector.hello(), use_bin_type=True))
            unpacker = msgpack.Unpacker(raw=False)
            challenge = read_frame(sock, unpacker)  # type: ignore[arg-type]
            assert type(challenge) is dict and challenge.get("type") == "challenge", challenge
            forward = {"type": "forward", "fid": 1, "request": {"type": "incr", "key": "pwned", "by": 41}}
            sock.sendall(  # (her proof is made with the empty key: the challenge's check would fail)
                msgpack.packb({"type": "auth", "proof": bytes(32)}, use_bin_type=True)
                + msgpack.packb(forward, use_bin_type=True)
            )
            refusal = read_frame(sock, unpacker)  # type: ignore[arg-type]
            assert type(refusal) is dict and refusal.get("error") == "unauthorized", refusal
        with pki.alice_socket(node.port) as sock:
            sock.sendall(b'{"type":"auth","user":"admin","password":"adminpw"}\n{"type":"get","key":"pwned"}\n')
            got = _lines(sock, 2)[1]
    assert b'"value":null' in got.replace(b" ", b""), f"alice wrote through a peer link: {got!r}"


def test_protected_mode_denies_a_stranger_that_sends_one_msgpack_byte(tmp_path: Path) -> None:
    ip = non_loopback_ip()
    if ip is None:
        pytest.skip("this machine has no non-loopback address to connect from")
    with NodeProcess(
        "node1", "--host", "0.0.0.0", "--request-read-timeout", "0", log_path=tmp_path / "node.log"
    ) as node, socket.create_connection((ip, node.port), timeout=6, source_address=(ip, 0)) as sock:
        sock.sendall(b"\x82")  # the start of a msgpack map: a client? a peer's hello?
        try:
            first = sock.recv(4096)
        except socket.timeout:
            first = b"(still open after 6 s)"
    assert b"denied" in first, first


def _until_closed(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything ``sock`` receives until the other end closes (or resets) it."""
    deadline, buf = time.monotonic() + timeout, b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return buf
        except socket.timeout:
            break
        if not chunk:
            return buf
        buf += chunk
    raise AssertionError(f"still open after {timeout:g}s: {buf[:80]!r}")


def _one_frame(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """The raw bytes of the next msgpack frame (and whatever came in the same reads)."""
    deadline, buf = time.monotonic() + timeout, b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
        unpacker = msgpack.Unpacker(raw=False)
        unpacker.feed(buf)
        try:
            next(unpacker)
            return buf
        except StopIteration:
            continue
    raise AssertionError(f"no whole frame within {timeout:g}s: {buf[:80]!r}")


def test_a_relayed_handshake_does_not_make_the_relay_a_member(secret_file: Path, tmp_path: Path) -> None:
    """node1's seed is an address a stranger listens on (a typo, a stale seed, a reused
    address). The stranger passes node1's handshake on to node2 byte for byte, then
    writes one gossip row of its own into the connection node2 authenticated as node1.
    (Fixed: node1's hello names the address it reached, the stranger's, which node2
    refuses; rewritten to name node2's, node2's proof covers that address, and node1 sends
    no auth.)"""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(15)
        relay = listener.getsockname()[1]
        with NodeProcess(
            "node2", "--cluster-secret-file", str(secret_file), log_path=tmp_path / "node2.log"
        ) as node2, NodeProcess(
            "node1", f"127.0.0.1:{relay}", "--cluster-secret-file", str(secret_file), log_path=tmp_path / "node1.log"
        ) as node1:
            dialer, _ = listener.accept()  # node1's link to its seed
            now_ms = int(time.time() * 1000)
            forged = [["node1", f"127.0.0.1:{node1.port}", now_ms, "left"]]
            gossip = msgpack.packb(
                {"type": "gossip", "members": forged, "reply": False, "partitions": 256, "wall_ms": now_ms},
                use_bin_type=True,
            )
            with dialer:
                hello_bytes = _one_frame(dialer)  # node1's hello
                hello = msgpack.unpackb(hello_bytes, raw=False)
                assert hello["to"] == f"127.0.0.1:{relay}"
                with socket.create_connection(("127.0.0.1", node2.port), timeout=5) as onward:
                    rewritten = {**hello, "to": f"127.0.0.1:{node2.port}"}
                    onward.sendall(msgpack.packb(rewritten, use_bin_type=True))
                    challenge = _one_frame(onward)  # node2 answers, its proof over its own address
                    assert msgpack.unpackb(challenge, raw=False)["type"] == "challenge"
                    dialer.sendall(challenge)
                    assert _until_closed(dialer) == b"", "node1 answered a challenge for another address"
                    onward.sendall(gossip)  # in place of node1's auth: refused
                    assert msgpack.unpackb(_one_frame(onward), raw=False)["error"] == "unauthorized"
                with socket.create_connection(("127.0.0.1", node2.port), timeout=5) as onward:
                    onward.sendall(hello_bytes)  # passed on as it is: node2 is not where it was sent
                    refusal = msgpack.unpackb(_one_frame(onward), raw=False)
                    assert refusal["error"] == "unauthorized", refusal
                    assert "not an address of this node" in refusal["message"], refusal
            time.sleep(0.5)
            with Conn(node2.port) as client:
                stats = client.request({"type": "stats"})["stats"]
    row = stats["cluster"]["members"].get("node1")
    assert row is None or row["status"] != "left", f"the relay spoke for node1 at node2: {row}"
    assert "wrong challenge proof" in (tmp_path / "node1.log").read_text()  # (not a timeout)
