"""TLS on a real node's ports (runtime/tls.py): redis-cli ``--tls``, redis-py ``ssl=True``,
our client and CLI with a CA, client certificates under ``--tls-auth-clients``, plaintext
refused while the node lives on, handshakes that never finish bounded, and the connection
limits still holding over TLS. Certificates are made in the test (trustme), never stored.
The cluster over mutual TLS is in tests/test_tls_cluster.py."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from runtime.client import Client, ConnectionLostError
from runtime.local_cluster import ROOT, NodeProcess
from runtime.tls import TlsSettings, certificate_names, client_context
from tests.cluster import eventually
from tests.test_resp_tools import _need

pytestmark = pytest.mark.integration


class Pki:
    """A CA and files for node1's certificate, a client's, and a stranger CA's client."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ca = trustme.CA()
        self.ca_file = self._write("ca.pem", self.ca.cert_pem)
        self.node_cert, self.node_key = self.issue(self.ca, "node1")
        self.client_cert, self.client_key = self.issue(self.ca, "client")
        self.other_ca = trustme.CA()
        self.stranger_cert, self.stranger_key = self.issue(self.other_ca, "stranger")

    def _write(self, name: str, blob: trustme.Blob) -> str:
        path = self.root / name
        blob.write_to_path(str(path))
        return str(path)

    def issue(self, ca: trustme.CA, name: str) -> tuple[str, str]:
        cert = ca.issue_cert(name, "localhost", "127.0.0.1")
        tag = f"{name}-{id(ca):x}"
        return self._write(f"{tag}.pem", cert.cert_chain_pems[0]), self._write(f"{tag}.key", cert.private_key_pem)

    def node_args(self, auth_clients: str = "yes") -> list[str]:
        return [
            "--tls-cert-file", self.node_cert, "--tls-key-file", self.node_key,
            "--tls-ca-cert-file", self.ca_file, "--tls-auth-clients", auth_clients,
        ]

    def client(self, node: NodeProcess, *, cert: bool = True, **kwargs: object) -> Client:
        files = {"certfile": self.client_cert, "keyfile": self.client_key} if cert else {}
        address = f"127.0.0.1:{node.port}"
        return Client(address, tls=True, cafile=self.ca_file, **files, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def node(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """One TLS node (client certificates required, the default) with a RESP port."""
    log = tmp_path_factory.mktemp("log") / "node1.log"
    proc = NodeProcess("node1", "--resp-port", "0", *pki.node_args(), log_path=log)
    try:
        yield proc
    finally:
        proc.kill()


def _stats(pki: Pki, node: NodeProcess) -> dict[str, object]:
    with pki.client(node) as client:
        return client.stats()


def _closed_without_reply(sock: socket.socket) -> bool:
    """Whether the other end closes ``sock`` without sending a byte (reset counts)."""
    sock.settimeout(10)
    try:
        return sock.recv(1024) == b""
    except ConnectionResetError:
        return True


# --- clients that speak TLS ---------------------------------------------------------


def test_redis_cli_tls(pki: Pki, node: NodeProcess) -> None:
    cli = [_need("redis-cli"), "-p", str(node.resp_port), "--tls", "--cacert", pki.ca_file,
           "--cert", pki.client_cert, "--key", pki.client_key]
    run = lambda *args: subprocess.run([*cli, *args], capture_output=True, text=True, timeout=30)  # noqa: E731
    assert run("set", "tls:cli", "over tls").stdout == "OK\n"
    assert run("get", "tls:cli").stdout == "over tls\n"
    assert run("ping").stdout == "PONG\n"


def test_redis_py_ssl(pki: Pki, node: NodeProcess) -> None:
    redis = pytest.importorskip("redis")
    r = redis.Redis(
        port=node.resp_port, ssl=True, ssl_ca_certs=pki.ca_file,
        ssl_certfile=pki.client_cert, ssl_keyfile=pki.client_key, socket_timeout=10,
    )
    try:
        assert r.set("tls:py", b"x" * 100_000) is True  # several TLS records each way
        assert r.get("tls:py") == b"x" * 100_000
        pipe = r.pipeline(transaction=False)
        for i in range(300):
            pipe.set(f"tls:py:{i}", i)
        pipe.mget([f"tls:py:{i}" for i in range(300)])
        assert pipe.execute()[-1] == [str(i).encode() for i in range(300)]
    finally:
        r.close()


def test_our_client_with_a_ca(pki: Pki, node: NodeProcess) -> None:
    with pki.client(node) as client:
        client.set("tls:ours", {"a": [1, 2]})
        assert client.get("tls:ours") == {"a": [1, 2]}
        # A pipeline larger than the socket buffers both ways, over one TLS session.
        with client.pipeline() as p:
            for i in range(2000):
                p.set(f"tls:p{i}", "v" * 200)
            p.mget([f"tls:p{i}" for i in range(2000)])
        assert p.results is not None and p.results[-1] == {f"tls:p{i}": "v" * 200 for i in range(2000)}
        assert client.ping() > 0


def test_our_client_reconnects_over_tls(pki: Pki, node: NodeProcess) -> None:
    """The pooled TLS connection is checked before reuse (no MSG_PEEK on TLS) and reused."""
    with pki.client(node) as client:
        client.set("tls:again", 1)
        sock = client._sock
        assert client.get("tls:again") == 1 and client._sock is sock  # reused, session tickets and all


def test_cli_with_a_ca(pki: Pki, node: NodeProcess) -> None:
    base = [sys.executable, "-m", "runtime.cli", "--node", f"127.0.0.1:{node.port}", "--tls", "--cacert", pki.ca_file,
            "--cert", pki.client_cert, "--key", pki.client_key]
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args], capture_output=True, text=True, timeout=30, cwd=ROOT)

    assert run("set", "tls:cli2", "42").returncode == 0
    got = run("get", "tls:cli2")
    assert (got.returncode, got.stdout) == (0, "42\n")
    plain = subprocess.run(
        [sys.executable, "-m", "runtime.cli", "--node", f"127.0.0.1:{node.port}", "get", "tls:cli2"],
        capture_output=True, text=True, timeout=30, cwd=ROOT,
    )
    assert plain.returncode == 4 and "error:" in plain.stderr  # a plaintext client cannot talk to it
    no_tls = subprocess.run(
        [sys.executable, "-m", "runtime.cli", "--cacert", pki.ca_file, "ping"],
        capture_output=True, text=True, timeout=30, cwd=ROOT,
    )
    assert no_tls.returncode == 2 and "need --tls" in no_tls.stderr


def test_a_node_certificate_from_another_ca_is_not_trusted(pki: Pki, node: NodeProcess, tmp_path: Path) -> None:
    other = trustme.CA()
    other_file = tmp_path / "other-ca.pem"
    other.cert_pem.write_to_path(str(other_file))
    with pytest.raises(ConnectionLostError, match="TLS handshake .* failed") as info:
        Client(f"127.0.0.1:{node.port}", tls=True, cafile=str(other_file)).ping()
    assert info.value.definite


# --- what TLS refuses -----------------------------------------------------------------


def test_plaintext_is_refused_and_the_node_lives_on(pki: Pki, node: NodeProcess) -> None:
    before = _stats(pki, node).get("tls_handshake_failures", 0)
    for port in (node.port, node.resp_port):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b'{"type":"ping"}\n' if port == node.port else b"*1\r\n$4\r\nPING\r\n")
            assert _closed_without_reply(sock)
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as sock:  # a peer's plaintext hello too
        sock.sendall(b"\x82\xa4type\xa5hello\xa7node_id\xa5rogue")
        assert _closed_without_reply(sock)
    # (at least: a failure another test of this module caused may be counted just after `before`)
    assert _stats(pki, node)["tls_handshake_failures"] >= before + 3  # type: ignore[operator]
    assert node.log_path is not None
    eventually(lambda: _assert_in("(not TLS: a plaintext client?)", node.log_path.read_text()), 5, "the log line")


def _assert_in(needle: str, text: str) -> None:
    assert needle in text


def test_client_certificates_required_by_default(pki: Pki, node: NodeProcess) -> None:
    with pytest.raises(ConnectionLostError, match="require a client certificate"):
        with pki.client(node, cert=False) as client:
            client.ping()
    stranger = Client(
        f"127.0.0.1:{node.port}", tls=True, cafile=pki.ca_file, certfile=pki.stranger_cert, keyfile=pki.stranger_key
    )
    with pytest.raises(ConnectionLostError):
        stranger.ping()
    stranger.close()
    with pki.client(node) as client:  # and the node serves the next one
        assert client.ping() > 0


@pytest.mark.parametrize("mode", ["optional", "no"])
def test_client_without_certificate_accepted_unless_required(pki: Pki, mode: str) -> None:
    with NodeProcess("node1", *pki.node_args(auth_clients=mode)) as proc:
        with pki.client(proc, cert=False) as client:
            client.set("k", "v")
            assert client.get("k") == "v"
        with pki.client(proc) as client:  # with one, too
            assert client.get("k") == "v"
        stranger = Client(
            f"127.0.0.1:{proc.port}", tls=True, cafile=pki.ca_file, certfile=pki.stranger_cert, keyfile=pki.stranger_key
        )
        if mode == "optional":  # a certificate presented is verified
            with pytest.raises(ConnectionLostError):
                stranger.ping()
        else:  # not even asked for
            assert stranger.ping() > 0
        stranger.close()


def test_bad_tls_options_are_usage_errors(pki: Pki) -> None:
    def start(*args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "runtime.node", "n", "0", *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd=ROOT)

    only_cert = start("--tls-cert-file", pki.node_cert)
    assert only_cert.returncode == 2 and "go together" in only_cert.stderr
    no_ca = start("--tls-cert-file", pki.node_cert, "--tls-key-file", pki.node_key)
    assert no_ca.returncode == 2 and "--tls-ca-cert-file is required" in no_ca.stderr
    wrong_key = start(
        "--tls-cert-file", pki.node_cert, "--tls-key-file", pki.client_key, "--tls-ca-cert-file", pki.ca_file
    )
    assert wrong_key.returncode == 2 and "cannot load" in wrong_key.stderr
    cluster_without_cert = start("--tls-cluster", "yes")
    assert cluster_without_cert.returncode == 2 and "need --tls-cert-file" in cluster_without_cert.stderr


# --- bounds over TLS ------------------------------------------------------------------


def test_handshakes_that_never_finish_take_no_client_slot(pki: Pki) -> None:
    """Silent connections (no ClientHello) hold no --max-clients slot, and at most
    --max-clients of them wait at once: a new one closes the oldest."""
    with NodeProcess("node1", "--max-clients", "3", *pki.node_args()) as proc:
        silent = [socket.create_connection(("127.0.0.1", proc.port), timeout=10) for _ in range(6)]
        try:
            for sock in silent[:3]:  # the three oldest were closed to make room
                assert _closed_without_reply(sock)
            with pki.client(proc) as client:
                assert client.ping() > 0
                assert client.stats()["tls_handshake_failures"] >= 3
        finally:
            for sock in silent:
                sock.close()


def _tls_socket(pki: Pki, port: int) -> ssl.SSLSocket:
    ctx = ssl.create_default_context(cafile=pki.ca_file)
    ctx.load_cert_chain(pki.client_cert, pki.client_key)
    return ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="localhost")


def test_max_clients_refusal_over_tls(pki: Pki) -> None:
    """Over --max-clients, a TLS client completes its handshake and reads the refusal line."""
    with NodeProcess("node1", "--max-clients", "1", *pki.node_args()) as proc:
        with pki.client(proc) as first:
            assert first.ping() > 0
            sock = _tls_socket(pki, proc.port)
            try:
                sock.sendall(b'{"type":"ping"}\n')
                data = b""
                while not data.endswith(b"\n"):
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                assert json.loads(data)["error"] == "max_clients"
            finally:
                sock.close()
            assert first.stats()["rejected_connections"] == 1


def test_idle_timeout_over_tls(pki: Pki) -> None:
    with NodeProcess("node1", "--timeout", "0.5", *pki.node_args()) as proc:
        sock = _tls_socket(pki, proc.port)
        try:
            sock.settimeout(10)
            try:
                assert sock.recv(100) == b""  # closed by the node, idle
            except (ConnectionResetError, ssl.SSLError):
                pass
        finally:
            sock.close()
        with pki.client(proc) as client:
            assert client.stats()["idle_timeouts"] == 1


def test_output_buffer_limit_holds_over_tls(pki: Pki) -> None:
    """A TLS client that pipelines reads of a large value and never reads the replies is
    cut off at the output limit (the TLS layer's unsent bytes count)."""
    with NodeProcess("node1", "--client-output-buffer-limit", "2M 0 0", *pki.node_args()) as proc:
        with pki.client(proc) as client:
            client.set("big", "x" * 200_000)
        sock = _tls_socket(pki, proc.port)
        try:
            request = b'{"type":"get","key":"big"}\n' * 50
            sock.settimeout(2)
            try:
                for _ in range(40):  # 2,000 gets: 400 MB of replies if they were all kept
                    sock.sendall(request)
            except (OSError, ssl.SSLError):
                pass  # cut off while still sending: what the test wants
            eventually(
                lambda: _assert_positive(_stats(pki, proc)["client_output_buffer_kills"]), 20, "the output limit kill"
            )
        finally:
            sock.close()


def _assert_positive(value: object) -> None:
    assert isinstance(value, int) and value > 0


def test_request_read_timeout_holds_over_tls(pki: Pki) -> None:
    with NodeProcess("node1", "--request-read-timeout", "0.5", *pki.node_args()) as proc:
        sock = _tls_socket(pki, proc.port)
        try:
            sock.sendall(b'{"type":"get","ke')  # a partial request that never completes
            started = time.monotonic()
            sock.settimeout(10)
            try:
                assert sock.recv(100) == b""
            except (ConnectionResetError, ssl.SSLError):
                pass
            assert time.monotonic() - started < 8
        finally:
            sock.close()
        with pki.client(proc) as client:
            assert client.stats()["request_read_timeouts"] == 1


def test_input_budget_holds_over_tls(pki: Pki) -> None:
    """Partial requests held by TLS connections count in --max-input-buffer-bytes: past
    it the connection holding the most is closed."""
    with NodeProcess("node1", "--max-input-buffer-bytes", "64K", *pki.node_args()) as proc:
        small, large = _tls_socket(pki, proc.port), _tls_socket(pki, proc.port)
        try:
            small.sendall(b'{"type":"set","key":"a","value":"' + b"x" * 20_000)
            large.sendall(b'{"type":"set","key":"b","value":"' + b"y" * 60_000)
            assert _closed_without_reply(large)
            with pki.client(proc) as client:
                assert client.stats()["input_buffer_kills"] == 1
            small.sendall(b'"}\n')  # the other one lives on and completes its request
            small.settimeout(10)
            assert b'"success":true' in small.recv(4096)
        finally:
            small.close()
            large.close()


def test_a_handshake_that_never_completes_is_closed() -> None:
    """TlsAcceptor's handshake timeout (10 s in a node; shorter here): a connection that
    never sends its ClientHello is closed and counted, and never reaches the factory."""
    made: list[object] = []

    async def main() -> tuple[bytes, int]:
        from runtime.tls import TlsAcceptor

        loop = asyncio.get_running_loop()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        acceptor = TlsAcceptor(
            lambda: made.append(1) or asyncio.Protocol(), context, max_pending=10, handshake_timeout=0.2
        )
        server = await loop.create_server(acceptor, "127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
        try:
            data = await asyncio.wait_for(reader.read(100), 10)
        except ConnectionResetError:
            data = b""
        writer.close()
        server.close()
        return data, acceptor.failures

    data, failures = asyncio.run(main())
    assert data == b"" and failures == 1 and not made


def test_json_reply_over_tls_is_byte_identical(pki: Pki, node: NodeProcess) -> None:
    """The wire format is unchanged under TLS: a raw TLS socket gets the JSON line a plain one would."""
    sock = _tls_socket(pki, node.port)
    try:
        sock.sendall(b'{"type":"set","key":"tls:raw","value":"v"}\n{"type":"get","key":"tls:raw"}\n')
        data = b""
        while data.count(b"\n") < 2:
            chunk = sock.recv(4096)
            assert chunk
            data += chunk
        lines = [json.loads(line) for line in data.splitlines()]
        assert lines[1]["value"] == "v" and lines[1]["success"] is True
    finally:
        sock.close()


# --- certificate_names (what the peer handshake checks a node id against) -------------


def test_certificate_names_of_a_verified_certificate(pki: Pki) -> None:
    """The other end's SAN DNS names, then its common name, each once; nothing for a
    plaintext transport, or a TLS one whose other end presented no certificate."""
    cert = pki.ca.issue_cert("node7", "localhost", "127.0.0.1", common_name="node7-cn")
    cert_file, key_file = pki.root / "node7.pem", pki.root / "node7.key"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))

    async def names_seen(client_cert: bool, tls: bool) -> tuple[str, ...]:
        loop = asyncio.get_running_loop()
        seen: asyncio.Future[tuple[str, ...]] = loop.create_future()

        class Server(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                seen.set_result(certificate_names(transport))

        context = TlsSettings(pki.node_cert, pki.node_key, pki.ca_file, "optional").server_context()
        server = await loop.create_server(Server, "127.0.0.1", 0, ssl=context if tls else None)
        port = server.sockets[0].getsockname()[1]
        files = (str(cert_file), str(key_file)) if client_cert else (None, None)
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_context(pki.ca_file, *files) if tls else None
        )
        try:
            return await asyncio.wait_for(seen, 10)
        finally:
            writer.close()
            server.close()
            await server.wait_closed()

    assert asyncio.run(names_seen(client_cert=True, tls=True)) == ("node7", "localhost", "node7-cn")
    assert asyncio.run(names_seen(client_cert=False, tls=True)) == ()
    assert asyncio.run(names_seen(client_cert=False, tls=False)) == ()
    assert certificate_names(None) == ()
