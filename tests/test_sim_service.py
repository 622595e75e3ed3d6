"""Time that work takes in the simulator (:mod:`sim.service`): each node is one server
that handles messages one at a time at a per-message cost, queueing when busy, and
clients reach their node over a link of their own."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from actors.config import NodeConfig
from actors.protocol.messages import Get, Set
from sim.cache_host import CacheSimHost
from sim.latency import replication_latencies, write_latencies
from sim.link_models import Link, constant
from sim.runs import simulate
from sim.scenario import Scenario, ScenarioError, scenario_from_dict
from sim.service import DATA_FILE, KINDS, ServiceModel, default_service
from sim.workload import WorkloadSpec

MS = 0.001


def fixed(**ms: float) -> ServiceModel:
    """A model of constant costs (``client_set=2`` -> ``client.set`` costs 2 ms)."""
    return ServiceModel({k.replace("_", "."): constant(v * MS) for k, v in ms.items()})


def test_two_messages_at_one_node_finish_one_cost_apart() -> None:
    host = CacheSimHost(seed=1)
    host.service = fixed(client_get=10.0, client_set=10.0)
    host.start_node("n1", NodeConfig())
    host.run_for(1.0)
    t0 = host.now()
    done: list[float] = []
    for key in ("a", "b"):  # both arrive at t0: the second waits for the first
        host.submit([Get(key)], node_id="n1").add_done_callback(lambda _f: done.append(host.now()))
    host.run_for(1.0)
    assert done == pytest.approx([t0 + 10 * MS, t0 + 20 * MS], abs=1e-9)
    # Idle again: the next one costs its own cost only.
    t1 = host.now()
    host.submit([Set("c", "v")], node_id="n1").add_done_callback(lambda _f: done.append(host.now()))
    host.run_for(1.0)
    assert done[2] == pytest.approx(t1 + 10 * MS, abs=1e-9)
    host.shutdown()


def test_zero_cost_model_is_the_zero_time_simulator() -> None:
    host = CacheSimHost(seed=1)
    host.start_node("n1", NodeConfig())
    host.run_for(1.0)
    t0 = host.now()
    future = host.submit([Get("a")], node_id="n1")
    host.run_until_idle()
    assert future.done() and host.now() == t0
    host.shutdown()


def _three_nodes(service: ServiceModel | None, write: str = "quorum", ops: int = 60, **fields: object) -> Scenario:
    return Scenario(
        "service", "three nodes, sets only", nodes=3, replicas=3, write_consistency=write,
        link=Link(constant(0.5 * MS)), service=service,
        workload=WorkloadSpec(clients=1, ops=ops, rate=50.0, read_fraction=0.0, delete_fraction=0.0),
        duration=ops / 50.0 + 1.0, settle=5.0, **fields,
    )


def test_the_own_copy_lands_after_the_remote_copies_are_sent() -> None:
    """A coordinator's own copy is applied once the turn that encoded and sent the two
    remote copies is done: two send costs after the write was accepted; a remote copy
    lands its send cost(s), the link and the replica's cost later."""
    run = simulate(_three_nodes(fixed(client_set=0.2, peer_send=0.1, peer_request=0.15, peer_answer=0.05)), 1)
    trace = run.trace
    writer = {(f["key"], tuple(f["version"])): n for _, n, k, f in trace if k == "write"}
    local = [
        (t - t0) / MS
        for (t0, _, _, _), (t, n, k, f) in _pairs(trace)
        if writer.get((f["key"], tuple(f["version"]))) == n
    ]
    # Two sends of 0.1 ms each; now and then a heartbeat sent in between adds its own.
    assert len(local) >= 50 and min(local) == pytest.approx(0.2)
    assert sum(1 for v in local if v == pytest.approx(0.2)) >= 0.9 * len(local)
    remote = sorted(replication_latencies(trace, local=False))
    assert remote[0] == pytest.approx(0.1 + 0.5 + 0.15) and remote[-1] < 5.0


def _pairs(trace: list) -> list:
    """(write event, first apply event of that version at each node)."""
    writes = {}
    out, seen = [], set()
    for ev in trace:
        t, node, kind, f = ev
        key = (f.get("key"), tuple(f.get("version") or ()))
        if kind == "write":
            writes.setdefault(key, ev)
        elif kind == "apply" and key in writes and (key, node) not in seen:
            seen.add((key, node))
            out.append((writes[key], ev))
    return out


def test_w_one_write_is_not_free_for_its_client() -> None:
    """The measured model: a W=one write costs its client the link both ways and the
    coordinator's work; no write is acknowledged in zero time."""
    run = simulate(_three_nodes(default_service(), write="one"), 1)
    latencies = write_latencies(run.history)
    assert len(latencies) >= 50
    assert min(latencies) > 0.0
    link = default_service().client_link.a + default_service().costs["client.set"].a
    assert sorted(latencies)[len(latencies) // 2] > link / MS * 0.5


def test_the_client_link_delays_both_ways() -> None:
    run = simulate(_three_nodes(fixed(client_set=0.2, peer_send=0.0, peer_request=0.0, peer_answer=0.0, client_link=3.0), write="one"), 2)
    latencies = write_latencies(run.history)
    assert latencies and all(v == pytest.approx(6.2) for v in latencies)


def test_same_seed_same_trace_with_service_time() -> None:
    def digest(seed: int) -> str:
        return simulate(_three_nodes(default_service(), ops=40), seed).result.trace_sha256

    assert digest(3) == digest(3)
    assert digest(3) != digest(4)


def test_the_measured_model_is_data(tmp_path: Path) -> None:
    model = default_service()
    assert set(model.costs) == set(KINDS), f"{DATA_FILE} lacks some kinds"
    assert "bench.service_time" in model.source
    copy = tmp_path / "costs.toml"
    model.save(copy)
    assert ServiceModel.load(copy) == model


def test_scenario_files_choose_the_service_model(tmp_path: Path) -> None:
    base = {"nodes": 3, "workload": {"ops": 10}}
    assert scenario_from_dict(base).service == default_service()
    assert scenario_from_dict({**base, "service": "none"}).service is None
    none = scenario_from_dict({**base, "service": "none", "client_link": {"latency": {"kind": "constant", "ms": 2}}})
    assert none.client_latency == constant(2 * MS)
    path = tmp_path / "fast.toml"
    fixed(client_set=0.01).save(path)
    assert scenario_from_dict({**base, "service": str(path)}).service == fixed(client_set=0.01)
    with pytest.raises(ScenarioError):
        scenario_from_dict({**base, "service": str(tmp_path / "missing.toml")})
    with pytest.raises(ValueError):
        ServiceModel({"peer.nonsense": constant(0.0)})
    assert dataclasses.replace(_three_nodes(None), client_link=None).client_latency == constant(0.0)
