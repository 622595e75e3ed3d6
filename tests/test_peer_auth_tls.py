"""Under ``--tls-cluster yes`` the node id a peer handshake names must be one of the names
of the certificate the other end presented, checked on both sides (issue 13, item 4).

Real nodes with certificates made in the test (trustme, through tests/test_tls_cluster.py's
ClusterPki), all signed by the cluster's CA: node2's certificate names ``node7``, so the
CA vouches for the certificate but not for the id node2 claims. No cluster secret is set
(mutual TLS alone lifts the loopback rule), so only the certificate check can refuse it;
``--tls-auth-clients no`` says the CA signs node certificates only (with client
certificates a node refuses to start without a secret).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from runtime.client import Client
from runtime.local_cluster import NodeProcess
from tests.cluster import DEFAULT_FLAGS, eventually
from tests.test_tls_cluster import ClusterPki

pytestmark = pytest.mark.integration


def test_a_peer_whose_certificate_names_another_node_is_refused_both_ways(tmp_path: Path) -> None:
    pki = ClusterPki(tmp_path)
    options = pki.client_options()
    flags = [*DEFAULT_FLAGS, "--tls-cluster", "yes", "--tls-auth-clients", "no"]
    logs = {n: tmp_path / f"{n}.log" for n in ("node1", "node2", "node3")}
    node1 = NodeProcess("node1", *flags, *pki.node_args("node1"), log_path=logs["node1"])
    with node1:
        cert, key = pki.files("node7")  # the right CA, the wrong name
        node2 = NodeProcess(
            "node2", node1.addr, *flags, "--tls-cert-file", cert, "--tls-key-file", key,
            "--tls-ca-cert-file", pki.ca_file, log_path=logs["node2"],
        )
        with node2:
            node3 = NodeProcess("node3", node1.addr, node2.addr, *flags, *pki.node_args("node3"), log_path=logs["node3"])
            with node3:

                def members(node: NodeProcess) -> set[str]:
                    with Client(node.addr, **options) as client:  # type: ignore[arg-type]
                        return set(client.stats()["cluster"]["members"])

                def refused_both_ways() -> None:
                    assert members(node1) == members(node3) == {"node1", "node3"}
                    assert members(node2) == {"node2"}
                    # node2 dials node1: node1 (the acceptor) refuses it at its hello.
                    assert "claiming to be 'node2'" in logs["node1"].read_text()
                    assert "names 'node7'" in logs["node1"].read_text()
                    # node3 dials node2: node3 (the connector) refuses the node its challenge proved.
                    log3 = logs["node3"].read_text()
                    assert f"peer {node2.addr}: handshake failed: the peer's TLS certificate names 'node7'" in log3

                eventually(refused_both_ways, 15, "node2 refused by node1 and by node3")
                time.sleep(1.0)
                refused_both_ways()
                with Client(node1.addr, **options) as client:  # type: ignore[arg-type]
                    client.set("k", "v", consistency="all")  # node1 and node3 replicate
                with Client(node3.addr, **options) as client:  # type: ignore[arg-type]
                    assert client.inspect("k").value == "v"
