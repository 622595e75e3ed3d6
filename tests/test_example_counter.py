"""The replicated counter (examples/counter) on both hosts, under partition, loss and
restart in the simulator, and deterministic there: the framework's second system.

The behaviour tests take the host from a fixture over both hosts (as the cache's take
``host`` from tests/conftest.py): the same test, the same actors, real time on an asyncio
loop and virtual time on SimPy.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from examples.counter import CounterConfig, Increment, Read, spawn_counter
from examples.counter.__main__ import converge, scenario, trace_digest
from runtime.host import ThreadedLoopHost
from sim.host import SimHost
from sim.network import Link

ROOT = Path(__file__).resolve().parent.parent
IDS = ("n1", "n2", "n3")


@pytest.fixture(params=["asyncio", "sim"])
def counter_host(request: pytest.FixtureRequest) -> Iterator[Any]:
    host: Any = ThreadedLoopHost(spawn_counter) if request.param == "asyncio" else SimHost(spawn_counter, seed=1)
    try:
        yield host
    finally:
        host.shutdown()


def start(host: Any, ids: tuple[str, ...] = IDS, **config: Any) -> None:
    for node_id in ids:
        host.start_node(node_id, CounterConfig(peers=ids, **config))


def increment(host: Any, node_id: str, amount: int = 1) -> int:
    return host.ask(host.nodes[node_id].replica, Increment(amount))


def read(host: Any, node_id: str) -> int:
    return host.ask(host.nodes[node_id].replica, Read())


# --- the same behaviour on both hosts ------------------------------------------------------


def test_increments_at_every_node_converge_to_their_sum(counter_host: Any) -> None:
    start(counter_host)
    for amount, node_id in enumerate(IDS * 3, start=1):
        increment(counter_host, node_id, amount)
    converge(counter_host, sum(range(1, 10)), within=10.0)
    assert [read(counter_host, n) for n in IDS] == [45, 45, 45]


def test_an_increment_answers_with_the_replica_s_own_value_at_once(counter_host: Any) -> None:
    start(counter_host, gossip_interval_s=3600.0)  # no gossip during the test
    assert increment(counter_host, "n1", 2) == 2
    assert increment(counter_host, "n1", 3) == 5
    assert read(counter_host, "n2") == 0  # n2 has not heard of them: replication is gossip
    assert increment(counter_host, "n2") == 1


def test_a_bad_increment_is_refused_and_the_replica_goes_on(counter_host: Any) -> None:
    start(counter_host, ids=("n1",))
    with pytest.raises(ValueError, match="non-negative"):
        increment(counter_host, "n1", -1)
    assert increment(counter_host, "n1", 4) == 4


def test_nodes_of_one_host_reach_each_other_by_id_and_strangers_are_dropped(counter_host: Any) -> None:
    start(counter_host, ids=("n1", "n2"), gossip_interval_s=0.01)
    counter_host.start_node("n3", CounterConfig(peers=("n1", "ghost"), gossip_interval_s=0.01))
    increment(counter_host, "n3", 7)
    converge(counter_host, 7, within=10.0)  # n1 hears of it from n3, n2 from n1
    links = counter_host.network if isinstance(counter_host, SimHost) else counter_host.links
    deadline = counter_host.now() + 10.0
    while links.dropped == 0 and counter_host.now() < deadline:  # n3 gossips half its rounds to "ghost"
        counter_host.run_for(0.02)
    assert links.dropped > 0
    assert read(counter_host, "n1") == 7


# --- faults: the simulator only ----------------------------------------------------------


@pytest.mark.parametrize("link", [Link(), Link(loss=0.3, duplicate=0.2, reorder=True)], ids=["clean", "lossy"])
def test_a_partitioned_counter_converges_after_heal(link: Link) -> None:
    host = SimHost(spawn_counter, seed=7)
    host.network.default = link
    try:
        start(host)
        host.network.partition(["n1"], ["n2", "n3"])
        increment(host, "n1", 5)
        increment(host, "n2", 10)
        increment(host, "n3", 100)
        host.run_for(5.0)  # a hundred gossip rounds, none across the cut
        assert read(host, "n1") == 5
        assert read(host, "n2") == read(host, "n3") == 110
        host.network.heal()
        converge(host, 115, within=5.0)
    finally:
        host.shutdown()


def test_a_restarted_replica_counts_on_under_a_new_life() -> None:
    host = SimHost(spawn_counter, seed=3)
    try:
        start(host)
        increment(host, "n1", 4)
        converge(host, 4, within=5.0)  # n2 and n3 hold n1's 4 now
        host.crash("n1")
        host.start_node("n1", CounterConfig(peers=IDS))  # memory lost, fresh randomness
        assert read(host, "n1") == 0
        assert increment(host, "n1", 1) == 1  # not swallowed by the old life's larger entry
        converge(host, 5, within=5.0)
    finally:
        host.shutdown()


def test_a_paused_replica_catches_up_on_resume() -> None:
    host = SimHost(spawn_counter, seed=4)
    try:
        start(host)
        host.pause("n3")
        increment(host, "n1", 2)
        increment(host, "n2", 3)
        host.run_for(2.0)
        assert read(host, "n1") == read(host, "n2") == 5
        host.resume("n3")
        converge(host, 5, within=5.0)
    finally:
        host.shutdown()


# --- determinism ---------------------------------------------------------------------------


def simulated_trace(seed: int | str) -> str:
    host = SimHost(spawn_counter, seed=seed)
    try:
        scenario(host, seed, nodes=3, increments=20)
        return trace_digest(host.trace)
    finally:
        host.shutdown()


def test_same_seed_same_trace_other_seed_other_trace() -> None:
    assert simulated_trace(11) == simulated_trace(11)
    assert simulated_trace(11) != simulated_trace(12)


def test_the_trace_does_not_depend_on_the_process_or_its_hash_seed() -> None:
    digests = set()
    for hash_seed in ("0", "1", "random"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-m", "examples.counter", "--host", "sim", "--seed", "11", "--increments", "20"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        digests.add(out)
    assert len(digests) == 1
    assert simulated_trace(11) in digests.pop()
