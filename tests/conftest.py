from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.local_cluster import NodeProcess, write_secret_file
from tests.rogue_peer import SECRET
from tests.slow_first import longest_first


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest tests first (tests/slow_first.py): a shorter tail under ``pytest -n 3``."""
    longest_first(items)


@pytest.fixture
def node() -> Iterator[NodeProcess]:
    """A real node subprocess on a free loopback port, reaped after the test."""
    proc = NodeProcess("node1")
    try:
        yield proc
    finally:
        proc.kill()


@pytest.fixture
def secret_file() -> Iterator[Path]:
    """An owner-only file holding :data:`tests.rogue_peer.SECRET`, for ``--cluster-secret-file``."""
    path = write_secret_file(SECRET)
    try:
        yield path
    finally:
        shutil.rmtree(path.parent, ignore_errors=True)


@pytest.fixture
def node_factory() -> Iterator[callable]:
    """Start nodes with custom arguments: ``node_factory("--max-request-bytes", "1K")``."""
    started: list[NodeProcess] = []

    def start(*args: str, node_id: str = "node1") -> NodeProcess:
        proc = NodeProcess(node_id, *args)
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            proc.kill()


@pytest.fixture(params=["asyncio", "sim"])
def host(request: pytest.FixtureRequest) -> Iterator[object]:
    """Every host the actors run on, as Pykka's own tests run on every runtime.

    Both offer ``start_node``, ``request``, ``submit``, ``ask``, ``run_for`` and ``now``:
    on asyncio time is real (keep waits short), in the simulator it is virtual.
    """
    if request.param == "asyncio":
        from runtime.cache_host import CacheLoopHost

        h: object = CacheLoopHost()
    else:
        from sim.cache_host import CacheSimHost

        h = CacheSimHost(seed=1)
    try:
        yield h
    finally:
        h.shutdown()  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def metrics_node() -> Iterator[object]:
    """One node with --metrics-port and --resp-port, shared by the metrics test modules
    (tests/test_metrics.py, tests/test_metrics_http.py): a tests.cluster.Cluster of one."""
    from tests.cluster import Cluster

    with Cluster(("--metrics-port", "0", "--resp-port", "0")) as cluster:
        cluster.start(1)
        yield cluster
