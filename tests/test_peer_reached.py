"""The hello's ``to`` on real sockets: which addresses a node accepts a handshake at.

A node takes a peer's hello only when its ``to`` (the address the connector's socket
reached) is the connection's own socket name, the node's advertised address, or one of
the advertised host's IPs with the advertised port (runtime/peer_trust.py). Here: the
canonical form both sides write, the start-up resolution, and a port forward in front
of a node (what NAT looks like to its peers): refused as a relay unless the node
advertises the forwarded address, and then the cluster forms through it.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.kernel.peer_auth import PeerAuthError
from runtime.local_cluster import NodeProcess
from runtime.peer_trust import PeerTrust, advertised_addresses, reached_address
from tests.cluster import eventually
from tests.rogue_peer import SECRET, Refused, RoguePeer
from tests.wire import Conn


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (("127.0.0.1", 8081), "127.0.0.1:8081"),
        (("::1", 8081, 0, 0), "[::1]:8081"),
        (("::ffff:10.0.0.2", 8081, 0, 0), "10.0.0.2:8081"),  # IPv4-mapped: as IPv4
        (("fe80::1%eth0", 8081, 0, 2), "[fe80::1]:8081"),  # each machine names its zones its own way
        (("FE80:0:0::1", 8081, 0, 0), "[fe80::1]:8081"),
        (None, None),
        ("", None),
    ],
)
def test_a_socket_address_is_written_one_way(name: object, text: str | None) -> None:
    assert reached_address(name) == text


def test_the_advertised_host_is_resolved_with_the_advertised_port() -> None:
    found = asyncio.run(_resolve("localhost:9000"))
    assert {"localhost:9000", "127.0.0.1:9000"} <= found
    assert all(a.endswith(":9000") for a in found)
    assert asyncio.run(_resolve("no-such-host.invalid:9000")) == frozenset({"no-such-host.invalid:9000"})


async def _resolve(address: str) -> frozenset[str]:
    return await advertised_addresses(asyncio.get_running_loop(), address, timeout=5.0)


def test_an_acceptor_takes_its_socket_name_and_its_advertised_addresses() -> None:
    trust = PeerTrust(node_id="B", secret=SECRET, addresses=frozenset({"10.9.9.9:8081"}))
    hello = {"type": "hello", "nonce": bytes(32)}
    for to in ("127.0.0.1:4000", "10.9.9.9:8081"):
        trust.acceptor(("127.0.0.1", 4000)).on_hello("A", {**hello, "to": to})
    with pytest.raises(PeerAuthError, match="not an address of this node"):
        trust.acceptor(("127.0.0.1", 4000)).on_hello("A", {**hello, "to": "127.0.0.1:4001"})


class Forward:
    """A TCP port forward on 127.0.0.1 (NAT, as a node's peers see it): every connection
    to :attr:`port` is piped to ``target`` once :meth:`start` named it."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.target = 0
        self.stopped = False
        self.sockets: list[socket.socket] = []

    def start(self, target: int) -> None:
        self.target = target
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped:
            try:
                inbound, _ = self.listener.accept()
                outbound = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                return
            outbound.settimeout(None)
            self.sockets += [inbound, outbound]
            for a, b in ((inbound, outbound), (outbound, inbound)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.stopped = True
        self.listener.close()
        for s in self.sockets:
            s.close()


@pytest.fixture
def forward() -> Iterator[Forward]:
    fwd = Forward()
    try:
        yield fwd
    finally:
        fwd.close()


@pytest.mark.integration
def test_a_port_forward_is_a_relay_unless_the_node_advertises_it(
    secret_file: Path, tmp_path: Path, forward: Forward
) -> None:
    secured = ["--cluster-secret-file", str(secret_file)]
    with NodeProcess("node1", *secured, log_path=tmp_path / "node1.log") as node1:
        forward.start(node1.port)
        with pytest.raises(Refused, match="not an address of this node"):  # not advertised: a relay
            RoguePeer.open(forward.port, "node2", secret=SECRET)
        with RoguePeer.open(node1.port, "node2", secret=SECRET) as direct:  # its own address will do
            assert direct.node == "node1"
    forward.close()
    behind = Forward()
    try:
        node1 = NodeProcess(
            "node1", *secured, "--advertise", f"127.0.0.1:{behind.port}", log_path=tmp_path / "node1b.log"
        )
        with node1:
            behind.start(node1.port)
            with RoguePeer.open(behind.port, "node2", secret=SECRET) as through:  # advertised: accepted
                assert through.node == "node1"
            with NodeProcess(
                "node2", f"127.0.0.1:{behind.port}", *secured, log_path=tmp_path / "node2.log"
            ) as node2:
                def formed() -> None:
                    for port in (node1.port, node2.port):
                        with Conn(port) as conn:
                            rows = conn.request({"type": "stats"})["stats"]["cluster"]["members"]
                        assert {n: r["status"] for n, r in rows.items()} == {"node1": "ready", "node2": "ready"}

                eventually(formed, timeout=15, what="node2 joining node1 through its advertised forward")
    finally:
        behind.close()
