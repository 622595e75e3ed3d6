"""A cluster over mutual TLS (``--tls-cluster yes``): three real nodes, each with its own
certificate naming it, form a cluster and replicate over TLS peer links that share the
TLS client port (the client connection switches to the peer protocol over the TLS
transport); a node whose certificate comes from another CA is refused and never becomes
a member. A cluster secret goes with ``--tls-cluster yes`` whenever clients get certificates
from the same CA (``--tls-auth-clients yes``, the default; without a secret the node refuses
to start: a client certificate could claim a node id). Certificates are made in the test
(trustme), never stored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from runtime.client import Client
from runtime.local_cluster import LocalCluster, NodeProcess
from tests.cluster import DEFAULT_FLAGS, eventually

#: Clients hold certificates of the cluster's CA here, so peers must also hold the secret.
CLUSTER_SECRET = b"the tls cluster's own secret, 32+"

pytestmark = pytest.mark.integration


class ClusterPki:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.ca = trustme.CA()
        self.ca_file = str(root / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)

    def files(self, node_id: str, ca: trustme.CA | None = None) -> tuple[str, str]:
        """A certificate for ``node_id`` (its SAN DNS name and CN), signed by ``ca`` (ours by default)."""
        cert = (ca or self.ca).issue_cert(node_id, "localhost", "127.0.0.1", common_name=node_id)
        tag = f"{node_id}-{id(ca or self.ca):x}"
        cert_file, key_file = self.root / f"{tag}.pem", self.root / f"{tag}.key"
        cert.cert_chain_pems[0].write_to_path(str(cert_file))
        cert.private_key_pem.write_to_path(str(key_file))
        return str(cert_file), str(key_file)

    def node_args(self, node_id: str, ca: trustme.CA | None = None) -> list[str]:
        cert, key = self.files(node_id, ca)
        return ["--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", self.ca_file]

    def client_options(self) -> dict[str, str | bool]:
        cert, key = self.files("client")
        return {"tls": True, "cafile": self.ca_file, "certfile": cert, "keyfile": key}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> ClusterPki:
    return ClusterPki(tmp_path_factory.mktemp("cluster-pki"))


@pytest.fixture
def tls_cluster(pki: ClusterPki) -> Iterator[LocalCluster]:
    with LocalCluster(
        3,
        node_args=[*DEFAULT_FLAGS, "--tls-cluster", "yes"],
        cluster_secret=CLUSTER_SECRET,
        per_node_args=pki.node_args,
        client_options=pki.client_options(),
    ) as cluster:
        yield cluster


def test_three_nodes_form_and_replicate_over_mutual_tls(pki: ClusterPki, tls_cluster: LocalCluster) -> None:
    options = pki.client_options()
    addresses = tls_cluster.addresses  # (LocalCluster waited until every node sees three ready members)
    with Client(addresses["node1"], **options) as client:  # type: ignore[arg-type]
        members = client.stats()["cluster"]["members"]
        assert sorted(members) == ["node1", "node2", "node3"]
        for i in range(50):
            client.set(f"tls:k{i}", i, consistency="all")  # every replica acks, over TLS links
        owners = client.locate("tls:k7").owners
    assert len(owners) == 3
    for node_id in owners:  # each replica holds its own copy
        with Client(addresses[node_id], **options) as client:  # type: ignore[arg-type]
            copy = client.inspect("tls:k7")
            assert copy is not None and copy.found and copy.value == 7
            assert client.get("tls:k49", consistency="all") == 49
            assert client.stats().get("tls_handshake_failures", 0) == 0


def test_peer_links_use_tls_without_tls_cluster(pki: ClusterPki) -> None:
    """TLS on, --tls-cluster no (client certificates required, the default): peer links
    still connect with TLS, presenting the node's certificate, and the cluster works."""
    with LocalCluster(
        2, node_args=list(DEFAULT_FLAGS), per_node_args=pki.node_args, client_options=pki.client_options()
    ) as cluster:
        options = pki.client_options()
        with Client(cluster.addresses["node1"], **options) as client:  # type: ignore[arg-type]
            client.set("tls:plain-cluster", "v", consistency="all")
        with Client(cluster.addresses["node2"], **options) as client:  # type: ignore[arg-type]
            copy = client.inspect("tls:plain-cluster")
            assert copy is not None and copy.value == "v"
            assert client.stats().get("tls_handshake_failures", 0) == 0


def test_a_peer_with_a_certificate_from_another_ca_is_refused(pki: ClusterPki) -> None:
    other_ca = trustme.CA()
    options = pki.client_options()
    # (--tls-auth-clients no: the CA signs node certificates only, so no secret is needed;
    # the client's certificate is still verified when it presents one)
    flags = [*DEFAULT_FLAGS, "--tls-cluster", "yes", "--tls-auth-clients", "no"]
    with NodeProcess("node1", *flags, *pki.node_args("node1")) as node1:
        address = f"127.0.0.1:{node1.port}"
        # The stranger trusts our CA (so it would accept node1) but its own certificate is
        # signed by another CA: node1 refuses the handshake of every link it opens.
        with NodeProcess("node2", address, *flags, *pki.node_args("node2", ca=other_ca)) as stranger:
            with Client(address, **options) as client:  # type: ignore[arg-type]

                def refused() -> None:
                    assert client.stats()["tls_handshake_failures"] >= 2  # it keeps retrying, and keeps failing

                eventually(refused, 15, "node1 refusing the stranger's TLS handshakes")
                assert sorted(client.stats()["cluster"]["members"]) == ["node1"]
                client.set("mine", 1)
            assert stranger.proc.poll() is None
            # Nothing of node1 reached it either: it never learned of node1 as a member.
            # (its --tls-ca-cert-file is ours: our client certificate gets in; its own
            # certificate is the other CA's)
            other_ca_file = pki.root / "other-ca.pem"
            other_ca.cert_pem.write_to_path(str(other_ca_file))
            to_stranger = {**options, "cafile": str(other_ca_file)}
            with Client(f"127.0.0.1:{stranger.port}", **to_stranger) as client:  # type: ignore[arg-type]
                assert sorted(client.stats()["cluster"]["members"]) == ["node2"]
