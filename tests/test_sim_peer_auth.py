"""The simulator runs the peer handshake (actors.kernel.peer_auth) on every link.

A link delivers nothing before dst checked src's ``auth`` proof; a node without the
cluster secret is refused both ways; a handshake cut by a partition is retried with
backoff and completes after the heal; a crash closes a node's connections and its
restart handshakes again; a paused node keeps its connections and answers hellos only
once resumed; the ``stranger`` fault gets nothing in, and the ``strangers`` checker
catches a stranger that does get in; same seed, same handshakes (same trace).
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest
import simpy

from actors.config import NodeConfig
from actors.protocol.messages import Ack, Get, Set, Stats, Value
from examples.counter import CounterConfig, spawn_counter
from sim.cache_host import CacheSimHost
from sim.host import SimHost
from sim.network import BACKOFF_MAX_S, HANDSHAKE_GRACE_S, Link, SimNetwork, constant, uniform
from sim.runner import Runner
from sim.scenario import BUILTIN, Fault, ScenarioError, scenario_from_dict

FAST = dict(heartbeat_interval_s=0.1, down_after_s=1.0, anti_entropy_interval_s=0.3)


def cluster(n: int, seed: int = 1, secrets: dict[str, bytes] | None = None) -> CacheSimHost:
    host = CacheSimHost(seed=seed)
    host.network.secrets.update(secrets or {})
    ids = [f"n{i}" for i in range(1, n + 1)]
    for node_id in ids:
        contacts = tuple(i for i in ids if i != node_id)[:1]
        host.start_node(node_id, NodeConfig(contacts=contacts, **FAST))  # type: ignore[arg-type]
    host.run_for(2.0)
    return host


def trace_deliveries(host: SimHost) -> None:
    """Put every delivered peer message into the trace (``delivered`` at dst)."""
    host.network.on_deliver = lambda src, dst, msg: host.trace.append(
        (host.env.now, dst, "delivered", {"peer": src, "type": type(msg).__name__})
    )


def events(host: SimHost, kind: str) -> list[tuple[float, str, str, dict[str, Any]]]:
    return [e for e in host.trace if e[2] == kind]


def members(host: CacheSimHost, node: str) -> list[str]:
    return sorted(host.request([Stats()], node_id=node)[0].stats["cluster"]["members"])


class Inbox:
    """A node's inbox for the network-level tests: records what it is told."""

    def __init__(self) -> None:
        self.got: list[Any] = []
        self.alive = True

    def is_alive(self) -> bool:
        return self.alive

    def tell(self, envelope: Any) -> None:
        self.got.append(envelope.msg)


def network(latency: float = 0.01, seed: int = 1) -> tuple[simpy.Environment, SimNetwork, dict[str, Inbox]]:
    env = simpy.Environment()
    net = SimNetwork(env, random.Random(seed), Link(constant(latency)), secret=b"cluster secret")
    inboxes = {n: Inbox() for n in ("a", "b")}
    net.inboxes.update(inboxes)
    return env, net, inboxes


# --- every link authenticates first ---------------------------------------------------------


def test_every_link_authenticates_before_its_first_message_is_delivered() -> None:
    host = CacheSimHost(seed=3)
    trace_deliveries(host)
    try:
        for node_id, contacts in (("n1", ()), ("n2", ("n1",)), ("n3", ("n1",))):
            host.start_node(node_id, NodeConfig(contacts=contacts, **FAST))  # type: ignore[arg-type]
        host.run_for(2.0)
        assert host.request([Set("k", 1)], node_id="n2") == (Ack(),)
        authed: set[tuple[str, str]] = set()
        delivered: set[tuple[str, str]] = set()
        for _t, node, kind, fields in host.trace:
            if kind == "peer-auth":
                authed.add((fields["peer"], node))
            elif kind == "delivered":
                assert (fields["peer"], node) in authed, f"{fields} delivered to {node} before its link authenticated"
                delivered.add((fields["peer"], node))
        links = {(a, b) for a in ("n1", "n2", "n3") for b in ("n1", "n2", "n3") if a != b}
        assert delivered == links
        assert authed == links  # one handshake per link: open links stay open
        assert host.network.handshakes == 6
        assert host.network.refused == 0
    finally:
        host.shutdown()


def test_the_first_message_waits_a_round_trip_and_a_half_then_the_queue_flushes_in_order() -> None:
    env, net, inboxes = network(latency=0.01)
    for i in range(5):
        net.send("a", "b", i)
    env.run(until=0.0299)
    assert inboxes["b"].got == []  # hello (10 ms), challenge (20 ms), auth + queue (30 ms)
    env.run(until=0.031)
    assert inboxes["b"].got == [0, 1, 2, 3, 4]
    net.send("a", "b", 5)
    env.run(until=0.042)
    assert inboxes["b"].got == [0, 1, 2, 3, 4, 5]  # an open link: one latency, no handshake
    assert (net.handshakes, net.frames) == (1, 3)


def test_a_reordering_link_reorders_its_messages_but_never_ahead_of_the_handshake() -> None:
    env, net, inboxes = network()
    net.links[("a", "b")] = Link(uniform(0.001, 0.05), reorder=True)
    for i in range(50):
        net.send("a", "b", i)
    env.run(until=5.0)
    got = inboxes["b"].got
    assert sorted(got) == list(range(50)) and got != sorted(got)
    assert net.handshakes == 1 and net.dropped == 0


# --- wrong secrets ------------------------------------------------------------------------------


def test_a_node_with_the_wrong_secret_is_refused_and_never_joins() -> None:
    host = cluster(3, secrets={"n3": b"not the cluster secret"})
    trace_deliveries(host)
    try:
        host.run_for(3.0)
        assert members(host, "n1") == ["n1", "n2"]
        assert members(host, "n2") == ["n1", "n2"]
        assert members(host, "n3") == ["n3"]
        assert not [e for e in events(host, "delivered") if "n3" in (e[1], e[3]["peer"])]
        refusals = events(host, "peer-refused")
        assert refusals and all(e[1] == "n3" and e[3]["peer"] in ("n1", "n2") for e in refusals)
        assert "does not hold this cluster's secret" in refusals[0][3]["reason"]
        assert host.network.refused == len(refusals)
        assert host.request([Set("k", "v")], node_id="n1") == (Ack(),)
        assert host.request([Get("k")], node_id="n3") != (Value("v", True),)
    finally:
        host.shutdown()


def test_a_forged_auth_is_refused_by_the_acceptor_and_nothing_behind_it_is_delivered() -> None:
    env, net, inboxes = network()
    net.secrets["a"] = b"a guess"
    net.rogues.add("a")  # answers the challenge it cannot check with a forged proof
    refused: list[tuple[str, dict[str, Any]]] = []
    net.on_event = lambda node, kind, fields: refused.append((node, fields)) if kind == "peer-refused" else None
    for i in range(3):
        net.send("a", "b", i)
    env.run(until=1.0)
    net.send("a", "b", 3)  # the refusal closed the link: a new handshake, refused again
    env.run(until=2.0)
    assert inboxes["b"].got == []
    assert [node for node, _ in refused] == ["b", "b"]
    assert refused[0][1]["peer"] == "a" and "wrong auth proof" in refused[0][1]["reason"]
    assert net.dropped == 4 and net.handshakes == 0


def test_the_stranger_scenario_gets_nothing_in() -> None:
    runner = Runner(BUILTIN["stranger"], 2)
    try:
        result = runner.run()
        assert result.violations == []
        assert result.peer_links["refused"] >= 20
        assert runner.strangers == {"stranger"}
        assert runner.stranger_deliveries == 0
        refusals = [e for e in runner.host.trace if e[2] == "peer-refused"]
        assert len(refusals) == result.peer_links["refused"]
        assert {e[3]["peer"] for e in refusals} == {"stranger"}
        assert {e[1] for e in refusals} == set(runner.scenario.node_ids)  # every member refused it
        assert all("stranger" not in m for m in runner.members().values())
        assert runner.stranger_keys and runner.forged_values
    finally:
        runner.close()


def test_the_strangers_checker_catches_a_stranger_that_holds_the_secret() -> None:
    scenario = dataclasses.replace(
        BUILTIN["stranger"], faults=(Fault(1.0, "stranger", {"duration": 3.0, "holds_secret": True}),), duration=8.0
    )
    runner = Runner(scenario, 2)
    try:
        result = runner.run()
        caught = [v for v in result.violations if v.checker == "strangers"]
        assert caught, result.violations
        assert any("delivered" in v.message for v in caught)
        assert result.peer_links["refused"] == 0
    finally:
        runner.close()


# --- faults during and after the handshake ------------------------------------------------------


def test_a_partition_during_the_handshake_is_retried_with_backoff_and_heals() -> None:
    env, net, inboxes = network(latency=0.01)
    net.send("a", "b", "first")
    env.run(until=0.015)  # the hello has arrived; the challenge is on the wire
    net.partition(["a"], ["b"])
    env.run(until=3.0)
    assert inboxes["b"].got == [] and net.handshakes == 0
    # the challenge lost in flight (0.02), then hellos cut at 0.07, 0.17, 0.37, 0.77, 1.57, 2.57
    assert net.retries == 7
    net.send("a", "b", "second")
    net.heal()
    env.run(until=3.0 + BACKOFF_MAX_S + 0.05)
    assert inboxes["b"].got == ["first", "second"]
    assert net.handshakes == 1


def test_a_partitioned_cluster_handshakes_its_new_links_after_the_heal() -> None:
    host = CacheSimHost(seed=5)
    try:
        host.network.partition(["n1"], ["n2"])
        host.start_node("n1", NodeConfig(**FAST))  # type: ignore[arg-type]
        host.start_node("n2", NodeConfig(contacts=("n1",), **FAST))  # type: ignore[arg-type]
        host.run_for(0.4)  # shorter than a join waits for its contacts
        assert host.network.handshakes == 0 and host.network.retries > 0
        assert members(host, "n1") == ["n1"]
        host.network.heal()
        host.run_for(3.0)
        assert members(host, "n1") == members(host, "n2") == ["n1", "n2"]
        assert {(e[3]["peer"], e[1]) for e in events(host, "peer-auth")} == {("n1", "n2"), ("n2", "n1")}
    finally:
        host.shutdown()


def test_a_restarted_node_handshakes_again_on_both_sides() -> None:
    host = cluster(3)
    try:
        before = len(events(host, "peer-auth"))
        assert before == 6
        host.crash("n2")
        host.run_for(0.5)
        assert not host.network.is_open("n1", "n2") and not host.network.is_open("n2", "n1")
        assert host.network.is_open("n1", "n3")  # the other links keep their connections
        restart = host.now()
        host.start_node("n2", NodeConfig(contacts=("n1",), **FAST))  # type: ignore[arg-type]
        host.run_for(3.0)
        again = {(e[3]["peer"], e[1]) for e in events(host, "peer-auth") if e[0] >= restart}
        assert again == {("n1", "n2"), ("n2", "n1"), ("n3", "n2"), ("n2", "n3")}
        assert members(host, "n2") == ["n1", "n2", "n3"]
        assert host.request([Set("k", 2)], node_id="n2") == (Ack(),)
        assert host.request([Get("k", consistency="all")], node_id="n3") == (Value(2, True),)
    finally:
        host.shutdown()


def test_a_message_in_flight_to_a_crashed_node_never_reaches_its_next_life() -> None:
    env, net, inboxes = network(latency=0.01)
    net.send("a", "b", "hello")
    env.run(until=0.05)
    net.send("a", "b", "to the old life")
    env.run(until=0.005 + 0.05)
    inboxes["b"].alive = False  # b crashes with the message on the wire, and restarts at once
    net.drop_node("b")
    net.inboxes["b"] = Inbox()
    env.run(until=0.2)
    assert net.inboxes["b"].got == []
    net.send("a", "b", "to the new life")  # a new connection, a new handshake
    env.run(until=0.3)
    assert net.inboxes["b"].got == ["to the new life"] and net.handshakes == 2


def test_a_paused_node_keeps_its_links_and_answers_hellos_only_once_resumed() -> None:
    env, net, inboxes = network(latency=0.01)
    net.send("a", "b", 1)
    env.run(until=0.1)
    net.pause("b")
    net.send("a", "b", 2)  # an open connection: delivered (a paused node's actors hold it)
    net.inboxes["c"] = Inbox()
    net.send("c", "b", "from c")  # a new connection: its hello waits for b
    env.run(until=1.0)
    assert inboxes["b"].got == [1, 2]
    assert net.handshakes == 1 and net.frames == 4  # a -> b's three, c's hello
    assert net.is_open("a", "b")
    net.resume("b")
    env.run(until=1.1)
    assert inboxes["b"].got == [1, 2, "from c"]
    assert net.handshakes == 2


def test_a_connector_paused_past_the_acceptor_s_grace_starts_over() -> None:
    env, net, inboxes = network(latency=0.01)
    net.send("a", "b", "lost with the closed connection")
    env.run(until=0.015)  # b has answered the hello; its challenge is on the wire
    net.pause("a")
    env.run(until=0.015 + HANDSHAKE_GRACE_S + 1.0)
    net.resume("a")  # a checks the challenge now and sends auth: b closed it long ago
    env.run(until=4.0)
    assert inboxes["b"].got == [] and net.handshakes == 0 and net.retries == 1 and net.dropped == 1
    net.send("a", "b", "after")
    env.run(until=4.1)
    assert inboxes["b"].got == ["after"] and net.handshakes == 1


def test_the_counter_example_runs_the_handshake_too() -> None:
    host = SimHost(spawn_counter, seed=1)
    try:
        for node_id in ("n1", "n2"):
            host.start_node(node_id, CounterConfig(peers=("n1", "n2"), gossip_interval_s=0.05))
        host.run_for(1.0)
        assert {(e[3]["peer"], e[1]) for e in events(host, "peer-auth")} == {("n1", "n2"), ("n2", "n1")}
    finally:
        host.shutdown()


# --- determinism ------------------------------------------------------------------------------


def test_same_seed_same_handshakes_same_trace() -> None:
    """(Another seed, another secret and nonces: the next test; another trace:
    tests/test_cluster_sim.py.)"""
    scenario = dataclasses.replace(BUILTIN["stranger"], duration=6.0)
    digests = []
    for seed in (4, 4):
        runner = Runner(scenario, seed)
        try:
            result = runner.run()
            digests.append((result.trace_sha256, result.peer_links))
        finally:
            runner.close()
    assert digests[0] == digests[1] and digests[0][1]["handshakes"] > 0


def test_the_cluster_secret_and_nonces_come_from_the_seed() -> None:
    a, b, c = (CacheSimHost(seed=s).network for s in (1, 1, 2))
    assert a.secret == b.secret != c.secret and len(a.secret) == 32
    assert CacheSimHost(seed=1, secret=b"fixed").network.secret == b"fixed"


def test_a_scenario_fixes_the_cluster_secret_and_gives_a_node_its_own() -> None:
    data = {"name": "s", "nodes": 3, "secret": "fixed", "secrets": {"n3": "other"}}
    runner = Runner(scenario_from_dict(data), 1)
    try:
        net = runner.host.network
        assert net.secret == b"fixed"
        assert [net.secret_of(n) for n in ("n1", "n2", "n3")] == [b"fixed", b"fixed", b"other"]
    finally:
        runner.close()
    with pytest.raises(ScenarioError, match="n9"):
        scenario_from_dict({"nodes": 3, "secrets": {"n9": "x"}})
