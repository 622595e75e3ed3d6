"""Reading runs (``sim.traces``, ``sim.latency``, ``sim.convergence``, ``sim.runs``,
``sim.real``, ``sim.experiments``) and ``sim.plots``: real computations on small hand-made
traces and histories, one small simulated run checked against the runner's own figures,
the figures' labelling, and a real loopback cluster that is reaped whatever happens."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from runtime.local_cluster import LocalCluster
from sim.checkers import Violation
from sim.convergence import convergence_time, lost_writes
from sim.experiments import replication_experiment
from sim.history import FAIL, INFO, OK, History
from sim.latency import (
    cdf,
    compare_percentiles,
    fit_lognormal,
    percentiles,
    relative_difference,
    replication_latencies,
    write_latencies,
)
from sim.network import Link, constant, lognormal
from sim.real import ping_rtts, real_workload
from sim.runner import SETTLE_POLL_S, RunResult
from sim.runs import SimRun, format_table, grouped, latency_rows, select, simulate, sweep, variants
from sim.scenario import Fault, Scenario
from sim.traces import alternate_writes, load_trace, trace_lines, window
from sim.workload import WorkloadSpec

V1 = [1000, 0, "n1"]
V2 = [2000, 0, "n2"]

#: n1 coordinates k@V1 for n1, n2, n3; n2 coordinates k@V2. Times in seconds.
TRACE = [
    (1.0000, "n1", "write", {"key": "k", "version": V1, "replicas": ["n1", "n2", "n3"]}),
    (1.0000, "n1", "apply", {"key": "k", "version": V1}),  # the coordinator's own copy: 0 ms
    (1.0004, "n2", "apply", {"key": "k", "version": V1}),  # 0.4 ms
    (1.0010, "n3", "apply", {"key": "k", "version": V1}),  # 1.0 ms
    (1.0020, "n3", "apply", {"key": "k", "version": V1, "via": "repair"}),  # again: not counted twice
    (1.5000, "n2", "view", {"changes": {"n3": "ready/alive"}}),
    (2.0000, "n2", "write", {"key": "k", "version": V2, "replicas": ["n1", "n2"]}),
    (2.0030, "n1", "apply", {"key": "k", "version": V2}),  # 3 ms
    (2.5000, "n1", "apply", {"key": "other", "version": V2}),  # no write seen: not a sample
]


def approx(values: list[float]) -> list[float]:
    return [pytest.approx(v, abs=1e-6) for v in values]


# --- traces and latencies -----------------------------------------------------------------


def test_replication_latencies_per_replica_first_apply_with_and_without_the_coordinator() -> None:
    assert replication_latencies(TRACE) == approx([0.0, 0.4, 1.0, 3.0])
    assert replication_latencies(TRACE, local=False) == approx([0.4, 1.0, 3.0])


def test_load_trace_reads_what_trace_lines_writes(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    path.write_text("\n".join(trace_lines(TRACE)) + "\n", encoding="utf-8")
    loaded = load_trace(path)
    assert [(t, node, kind) for t, node, kind, _ in loaded] == [(t, node, kind) for t, node, kind, _ in TRACE]
    assert loaded[0][3] == {"key": "k", "version": V1, "replicas": ["n1", "n2", "n3"]}
    assert replication_latencies(loaded) == approx(replication_latencies(TRACE))


def test_load_trace_merges_per_node_files_by_time_and_drops_a_torn_last_line(tmp_path: Path) -> None:
    coordinator = tmp_path / "node1.jsonl"
    replica = tmp_path / "node2.jsonl"
    coordinator.write_text(
        "\n".join(trace_lines([TRACE[0], TRACE[1]])) + "\n\n" + '{"t": 9.0, "node": "node1", "ki', encoding="utf-8"
    )
    replica.write_text("\n".join(trace_lines([TRACE[2]])) + "\n", encoding="utf-8")
    merged = load_trace(replica, coordinator)  # order of files does not matter, time does
    assert [(e[0], e[1], e[2]) for e in merged] == [(1.0, "n1", "write"), (1.0, "n1", "apply"), (1.0004, "n2", "apply")]
    assert replication_latencies(merged) == approx([0.0, 0.4])
    # Lines work as well as files; a broken line that is not the last is an error.
    assert len(load_trace(trace_lines(TRACE))) == len(TRACE)
    with pytest.raises(json.JSONDecodeError):
        load_trace(["{broken", *trace_lines(TRACE[:1])])


def test_write_latencies_count_acknowledged_writes_only() -> None:
    h = History()
    done = [
        (h.invoke(0, "n1", "set", "a", "default", 1.0, value="v1"), OK, 1.002),
        (h.invoke(1, "n2", "delete", "a", "default", 1.0), OK, 1.010),
        (h.invoke(2, "n1", "get", "a", "default", 1.0), OK, 1.001),
        (h.invoke(3, "n3", "set", "b", "default", 2.0, value="v2"), FAIL, 2.0005),
        (h.invoke(4, "n3", "set", "c", "default", 3.0, value="v3"), INFO, 6.0),
    ]
    h.invoke(5, "n1", "set", "d", "default", 4.0, value="v4")  # still pending
    for op, outcome, at in done:
        History.complete(op, outcome, at)
    assert write_latencies(h) == approx([2.0, 10.0])
    assert write_latencies(h, outcome=FAIL) == approx([0.5])
    assert write_latencies(h.ops, outcome=INFO) == approx([3000.0])


def test_percentiles_and_cdf() -> None:
    values = [float(v) for v in range(100, 0, -1)]
    assert percentiles(values) == {"p50": 50.0, "p90": 90.0, "p99": 99.0, "max": 100.0, "count": 100}
    xs, ys = cdf([3.0, 1.0, 2.0, 2.0])
    assert xs == [1.0, 2.0, 2.0, 3.0]
    assert ys == [0.25, 0.5, 0.75, 1.0]
    assert cdf([]) == ([], [])


def test_window_and_alternate_writes() -> None:
    assert [e[0] for e in window(TRACE, 1.0004, 2.0)] == [1.0004, 1.0010, 1.0020, 1.5]
    first, second = alternate_writes(TRACE)
    # Each write goes with its applies to one half; events that are no writes go to both.
    assert replication_latencies(first) == approx([0.0, 0.4, 1.0])
    assert replication_latencies(second) == approx([3.0])
    assert [e for e in first if e[2] == "view"] == [e for e in second if e[2] == "view"] == [TRACE[5]]
    assert len(first) + len(second) == len(TRACE) + 2  # the view and the write-less apply, twice


def test_convergence_time_from_the_heal_to_the_last_apply() -> None:
    trace = [
        (5.0, "n1", "apply", {"key": "a", "version": V1}),
        (10.0, "-", "heal-all", {}),
        (10.5, "n3", "apply", {"key": "a", "version": V1, "via": "repair"}),
        (12.25, "n2", "apply", {"key": "b", "version": V2, "via": "repair"}),
        (13.0, "n2", "view", {}),
    ]
    assert convergence_time(trace) == pytest.approx(2.25)
    assert convergence_time(trace, healed_at=12.0) == pytest.approx(0.25)
    assert convergence_time(trace[:2]) == 0.0  # nothing to repair
    assert convergence_time(trace[2:]) is None  # never healed


def test_lost_writes_counts_the_checkers_verdicts() -> None:
    result = RunResult(
        "x", 1, 0.0, 0, 0, 0, "", {}, [Violation("lost-writes", "k1", "m"), Violation("ttl", "t1", "m"),
                                       Violation("lost-writes", "k2", "m")], {}, None, 0.0,
    )
    assert lost_writes(result) == 2


# --- calibration --------------------------------------------------------------------------


def draw(model: object, n: int, seed: int = 7) -> list[float]:
    rng = random.Random(seed)
    return [model.draw(rng) * 1000.0 for _ in range(n)]  # type: ignore[attr-defined]


def test_fit_lognormal_recovers_a_known_lognormal() -> None:
    samples = draw(lognormal(0.0005, 0.4), 20_000)
    fitted = fit_lognormal(samples)
    assert fitted.kind == "lognormal"
    assert fitted.a == pytest.approx(0.0005, rel=0.03)
    assert fitted.b == pytest.approx(0.4, rel=0.08)
    assert fitted.tail_p == 0.0


def test_fit_lognormal_finds_a_tail_and_reproduces_p50_and_p99() -> None:
    truth = lognormal(0.0005, 0.3, tail_p=0.03, tail_factor=8.0)
    samples = draw(truth, 20_000)
    fitted = fit_lognormal(samples)
    assert fitted.tail_p == pytest.approx(0.03, abs=0.01)
    assert fitted.tail_factor == pytest.approx(8.0, rel=0.25)
    want, got = percentiles(samples), percentiles(draw(fitted, 20_000, seed=8))
    for p in ("p50", "p99"):
        assert abs(relative_difference(got[p], want[p])) < 0.1, (p, want, got)
    with pytest.raises(ValueError):
        fit_lognormal([1.0] * 19)


def test_compare_percentiles_says_whether_the_goal_is_met() -> None:
    real = [float(v) for v in range(1, 101)]
    rows = compare_percentiles(real, {"close": [v * 1.1 for v in real], "far": [v * 2 for v in real]})
    assert [r["within 25%"] for r in rows] == ["yes", "no"]
    assert rows[0]["real p50 ms"] == 50.0 and rows[0]["sim p50 ms"] == 55.0 and rows[0]["p50 diff"] == "+10%"
    assert relative_difference(1.0, 0.0) == math.inf


# --- scenarios, sweeps and tables --------------------------------------------------------


BASE = Scenario(
    "small",
    "three nodes, n3 cut off under load, anti-entropy only",
    nodes=3,
    link=Link(constant(0.0005)),
    workload=WorkloadSpec(clients=2, ops=300, rate=100.0, keys=20, read_fraction=0.2),
    faults=(Fault(0.5, "partition", {"kind": "isolate", "node": "n3"}),),
    duration=2.5,
    settle=20.0,
    node={"hint_limit": 0, "anti_entropy_interval_s": 0.25},
)


def test_variants_replace_fields_nested_settings_and_keep_the_base() -> None:
    out = variants(
        BASE,
        {"replicas": [1, 3], "link": {"fast": Link(constant(0.0001))}, "node.hint_limit": [5], "workload.ops": [10]},
    )
    assert [labels for labels, _ in out] == [
        {"replicas": 1, "link": "fast", "node.hint_limit": 5, "workload.ops": 10},
        {"replicas": 3, "link": "fast", "node.hint_limit": 5, "workload.ops": 10},
    ]
    _, scenario = out[1]
    assert scenario.replicas == 3 and scenario.link.latency.a == 0.0001
    assert scenario.node == {"hint_limit": 5, "anti_entropy_interval_s": 0.25}
    assert scenario.workload.ops == 10 and scenario.workload.clients == 2
    assert scenario.name == "small[replicas=3,link=fast,node.hint_limit=5,workload.ops=10]"
    assert BASE.replicas == 3 and BASE.node["hint_limit"] == 0 and BASE.workload.ops == 300


def test_format_table_is_markdown() -> None:
    text = format_table([{"a": 1, "b": 0.123456}, {"a": 22, "b": None}])
    assert text.splitlines() == ["| a  | b     |", "|----|-------|", "| 1  | 0.123 |", "| 22 |       |"]
    assert format_table([]) == ""


@pytest.fixture(scope="module")
def small_run() -> SimRun:
    return simulate(BASE, seed=3, params={"what": "small"})


def test_a_small_simulated_run_agrees_with_the_runners_own_figures(small_run: SimRun) -> None:
    run = small_run
    assert run.params == {"what": "small"} and run.seed == 3
    # Replication latency: the same samples the runner summarised (coordinator copies once
    # the remote ones are encoded and sent, the others one 0.5 ms link plus the send and the
    # replica's work away (sim.service), or later by repair for the cut-off n3).
    assert percentiles(run.replication_latencies()) == run.result.replication_latency_ms
    remote = run.replication_latencies(local=False)
    assert 0.5 < min(remote) < 1.5 and len(remote) < len(run.replication_latencies())
    assert 0.0 < min(run.replication_latencies()) < min(remote)
    # Every acknowledged write has a client latency.
    acked = sum(1 for op in run.history.ops if op.is_write and op.outcome == OK)
    assert len(run.write_latencies()) == acked > 0
    # Convergence from the trace is within one settle poll below the runner's polled figure.
    assert run.result.convergence_s is not None
    trace_based = run.convergence_time()
    assert trace_based is not None and trace_based > 1.0  # anti-entropy had work to do
    assert trace_based <= run.result.convergence_s <= trace_based + SETTLE_POLL_S + 1e-6


def test_sweep_runs_every_variant_for_every_seed_and_select_finds_them() -> None:
    base = Scenario("tiny", "", nodes=3, link=Link(constant(0.0005)),
                    workload=WorkloadSpec(clients=1, ops=20, rate=50.0, keys=5), duration=1.0, settle=5.0)
    runs = sweep(base, {"write_consistency": ["one", "all"]}, seeds=(1, 2))
    assert [(r.params["write_consistency"], r.params["seed"]) for r in runs] == [
        ("one", 1), ("one", 2), ("all", 1), ("all", 2)
    ]
    assert [r.seed for r in select(runs, write_consistency="all")] == [1, 2]
    rows = latency_rows(select(runs, seed=1), ["write_consistency"])
    assert [r["write_consistency"] for r in rows] == ["one", "all"]
    # W=all waits for the slowest owner: never faster than W=one on the same workload.
    assert rows[1]["write p50"] >= rows[0]["write p50"]
    by_level = grouped(runs, "seed", "write_consistency", lambda r: r.result.sim_time_s)
    assert set(by_level) == {"one", "all"} and set(by_level["one"]) == {1, 2}


# --- figures ------------------------------------------------------------------------------


def _labelled(fig: object) -> None:
    for ax in fig.axes:  # type: ignore[attr-defined]
        assert ax.get_title(), "every panel has a title"
        assert "(ms" in ax.get_xlabel() or "(s)" in ax.get_xlabel() or "replicas" in ax.get_xlabel()
        assert ax.get_ylabel()
        assert ax.get_legend() is not None and ax.get_legend().get_texts()


def test_figures_have_titles_units_and_legends(tmp_path: Path) -> None:
    plots = pytest.importorskip("sim.plots")
    runs = replication_experiment(ops=20, links={"LAN": Link(constant(0.0002))}, replicas=(1, 3), levels=("quorum", "all"))
    assert len(runs) == 4
    figures = [
        plots.fig_replication_cdfs(runs),
        plots.fig_write_cdfs(runs, replicas=3),
        plots.fig_write_p99(runs),
        plots.fig_sim_vs_real([0.1, 0.2, 0.3, 0.4], {"sim": [0.0, 0.15, 0.25]}),
    ]
    for fig in figures:
        _labelled(fig)
        assert fig.axes[0].get_lines()
        fig.savefig(tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 1000


# --- a real cluster -----------------------------------------------------------------------


@pytest.mark.integration
def test_local_cluster_serves_traces_and_is_reaped_even_when_the_block_fails(tmp_path: Path) -> None:
    cluster = LocalCluster(3, trace_dir=tmp_path)
    with pytest.raises(RuntimeError, match="on purpose"):
        with cluster:
            assert sorted(cluster.addresses) == ["node1", "node2", "node3"]
            history = real_workload(list(cluster.addresses.values()), ops=30, rate=500.0)
            assert history.counts() == {"ok": 30, "failed": 0, "timeout": 0}
            assert all(rtt > 0 for rtt in ping_rtts(cluster.addresses.values(), count=3))
            raise RuntimeError("on purpose")
    assert not any(proc.running for proc in cluster.procs.values()), "a node outlived the block"
    trace = load_trace(*cluster.trace_files)
    latencies = replication_latencies(trace)
    # Three owners per write (3 nodes, 3 replicas); each write applied everywhere.
    assert len(latencies) == 3 * 30, len(latencies)
    assert all(0 <= ms < 1000 for ms in latencies)
    assert "listening on" in cluster.log("node1")
