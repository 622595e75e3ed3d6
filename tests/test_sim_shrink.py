"""Shrinking (``python -m sim.run ... --shrink``, :mod:`sim.shrink`) and the TOML writer
it hands its result over with (:mod:`sim.scenario_file`).

The writer is checked as the reader's inverse on generated scenarios; the greedy loop on
a synthetic predicate (exact fixpoint properties, the budget, the cache); a ``random``
fault spelt out against the faults its run applied; and the whole command on a
deliberately weakened cluster (W=1, an isolated node that crashes: lost writes) with
noise faults around, which must shrink to a smaller file that still loses writes."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from actors.protocol.consistency import CONSISTENCY_LEVELS
from sim.network import Link, LatencyModel, constant, lognormal, uniform
from sim.scenario import BUILTIN, Fault, Scenario, load_scenario, scenario_from_dict
from sim.scenario_file import WRITTEN_FIELDS, dumps, toml_dumps
from sim.shrink import expand_random, shrink, violates
from sim.workload import WorkloadSpec

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(90)


# --- the writer is the reader's inverse ------------------------------------------------------

finite = st.floats(allow_nan=False, allow_infinity=False)
# what the reader makes of any millisecond value a file may hold
seconds = st.floats(0.0, 1e4, allow_nan=False).map(lambda ms: ms * 0.001)
text = st.text(max_size=20)


@st.composite
def latencies(draw: Any) -> LatencyModel:
    kind = draw(st.sampled_from(["constant", "uniform", "lognormal"]))
    if kind == "constant":
        return constant(draw(seconds))
    if kind == "uniform":
        return uniform(draw(seconds), draw(seconds))
    return lognormal(draw(seconds), draw(st.floats(0, 3)), draw(st.floats(0, 1)), draw(st.floats(1, 100)))


links = st.builds(Link, latencies(), st.floats(0, 1), st.floats(0, 1), st.booleans())


@st.composite
def fault_lists(draw: Any, ids: list[str]) -> list[Fault]:
    node = st.sampled_from(ids)
    at = st.floats(0, 1e4)
    out = []
    for _ in range(draw(st.integers(0, 6))):
        action = draw(st.sampled_from(["partition", "groups", "one-way", "heal", "crash", "pause", "slow", "skew", "stranger", "random"]))
        if action == "groups" and len(ids) >= 2:
            order = draw(st.permutations(ids))
            cut = draw(st.integers(1, len(ids) - 1))
            out.append(Fault(draw(at), "partition", {"groups": [list(order[:cut]), list(order[cut:])]}))
        elif action == "one-way" and len(ids) >= 2:
            src, dst = draw(st.lists(node, min_size=2, max_size=2, unique=True))
            out.append(Fault(draw(at), "partition", {"kind": "one-way", "from": [src], "to": [dst]}))
        elif action == "partition":
            out.append(Fault(draw(at), "partition", {"kind": "isolate", "node": draw(node)}))
        elif action == "crash":
            out.append(Fault(draw(at), "crash", {"node": draw(st.one_of(node, st.just("random")))}))
        elif action == "pause":
            out.append(Fault(draw(at), "pause", {"node": draw(node), "duration": draw(st.floats(0, 100))}))
        elif action == "slow":
            out.append(Fault(draw(at), "slow", {"node": draw(node), "factor": draw(st.floats(1, 100)), "duration": draw(st.integers(0, 9))}))
        elif action == "skew":
            out.append(Fault(draw(at), "skew", {"node": draw(node), "offset": draw(finite), "drift": draw(st.floats(-1, 1))}))
        elif action == "stranger":
            out.append(Fault(draw(at), "stranger", {"name": draw(text), "holds_secret": draw(st.booleans())}))
        elif action in ("heal", "random"):
            out.append(Fault(draw(at), action, {}))
    return sorted(out, key=lambda f: f.at)


@st.composite
def scenarios(draw: Any) -> Scenario:
    n = draw(st.integers(1, 6))
    ids = [f"n{i}" for i in range(1, n + 1)]
    node = st.sampled_from(ids)
    ttl_min = draw(st.floats(0.001, 100))
    workload = WorkloadSpec(
        clients=draw(st.integers(1, 50)),
        ops=draw(st.integers(0, 10**6)),
        rate=draw(st.floats(0.01, 1e5)),
        keys=draw(st.integers(1, 10**4)),
        distribution=draw(st.sampled_from(["uniform", "zipf"])),
        zipf_s=draw(st.floats(0.5, 3)),
        read_fraction=draw(st.floats(0, 1)),
        delete_fraction=draw(st.floats(0, 1)),
        ttl_fraction=draw(st.floats(0, 1)),
        ttl_min=ttl_min,
        ttl_max=ttl_min + draw(st.floats(0, 100)),
        read_consistency=draw(st.one_of(st.none(), st.sampled_from(CONSISTENCY_LEVELS))),
        write_consistency=draw(st.one_of(st.none(), st.sampled_from(CONSISTENCY_LEVELS))),
        client_timeout=draw(st.floats(0.01, 100)),
        pipeline=draw(st.integers(1, 32)),
    )
    return Scenario(
        name=draw(text),
        description=draw(text),
        nodes=n,
        replicas=draw(st.integers(1, 5)),
        write_consistency=draw(st.sampled_from(CONSISTENCY_LEVELS)),
        read_consistency=draw(st.sampled_from(CONSISTENCY_LEVELS)),
        link=draw(links),
        links=draw(st.dictionaries(st.tuples(node, node), links, max_size=3)),
        clocks=draw(st.dictionaries(node, st.tuples(st.floats(-10, 10), st.floats(-1e-3, 1e-3)), max_size=3)),
        workload=workload,
        faults=tuple(draw(fault_lists(ids))),
        duration=draw(st.floats(0.001, 1e5)),
        settle=draw(st.floats(0.001, 1e5)),
        node=draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "anti_entropy_interval_s": st.floats(0.001, 1e9),
                    "hint_limit": st.integers(0, 10**6),
                    "eviction_policy": st.sampled_from(["noeviction", "allkeys-lru"]),
                },
            )
        ),
        initial_nodes=draw(st.one_of(st.none(), st.integers(1, n))),
        secret=draw(st.one_of(st.none(), text)),
        secrets=draw(st.dictionaries(node, text, max_size=2)),
    )


@settings(max_examples=80, deadline=None, derandomize=True)
@given(scenarios())
def test_a_written_scenario_reads_back_equal(scenario: Scenario) -> None:
    scenario.validate()
    written = dumps(scenario)
    again = scenario_from_dict(tomllib.loads(written))
    assert again == scenario, written
    assert dumps(again) == written


toml_scalars = st.one_of(st.booleans(), st.integers(-(2**63), 2**63 - 1), finite, st.text(max_size=10))
toml_values = st.recursive(
    toml_scalars, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)), max_leaves=8
)


@settings(max_examples=80, deadline=None, derandomize=True)
@given(
    st.dictionaries(
        st.text(max_size=8),
        st.one_of(
            toml_values,
            st.dictionaries(st.text(max_size=5), toml_values, max_size=3),
            st.lists(st.dictionaries(st.text(max_size=5), toml_values, min_size=1, max_size=3), min_size=1, max_size=3),
        ),
        max_size=5,
    )
)
def test_the_toml_writer_round_trips_any_document(data: dict[str, Any]) -> None:
    assert tomllib.loads(toml_dumps(data)) == data


@pytest.mark.parametrize("name", list(BUILTIN))
def test_every_builtin_scenario_writes_and_reads_back_the_same(name: str) -> None:
    # as text: a built-in may spell a list argument as a tuple, which TOML reads as a list
    written = dumps(BUILTIN[name])
    assert dumps(scenario_from_dict(tomllib.loads(written))) == written


def test_the_writer_knows_every_scenario_field() -> None:
    assert {f.name for f in dataclasses.fields(Scenario)} == WRITTEN_FIELDS


# --- the greedy loop, on a predicate whose answer is known ---------------------------------------


def _noisy() -> Scenario:
    return Scenario(
        "noisy",
        "two faults matter among six",
        nodes=3,
        workload=WorkloadSpec(clients=6, ops=700, rate=150.0, keys=30),
        faults=(
            Fault(0.5, "slow", {"node": "n3", "factor": 5.0, "duration": 1.0}),
            Fault(2.0, "partition", {"kind": "isolate", "node": "n1"}),
            Fault(4.0, "pause", {"node": "n2", "duration": 4.0}),
            Fault(7.0, "crash", {"node": "n1"}),
            Fault(8.0, "heal"),
            Fault(10.0, "skew", {"node": "n3", "offset": 0.01}),
        ),
        duration=14.0,
    )


def _needs_isolate_crash_and_100_ops(s: Scenario) -> bool:
    kinds = {(f.action, f.args.get("node")) for f in s.faults}
    return {("partition", "n1"), ("crash", "n1")} <= kinds and s.workload.ops >= 100 and s.duration >= 5.0


def test_shrinking_reaches_the_fixpoint_the_predicate_allows() -> None:
    judged: list[str] = []

    def interesting(s: Scenario) -> bool:
        judged.append(dumps(s))
        return _needs_isolate_crash_and_100_ops(s)

    found = shrink(_noisy(), interesting, budget_s=30, max_runs=500)
    s = found.scenario
    assert found.complete and not found.errors
    assert [(f.action, f.args.get("node")) for f in s.faults] == [("partition", "n1"), ("crash", "n1")]
    # the workload ends just after the last fault (7.5 s), then the schedule moves 2 s earlier
    assert [f.at for f in s.faults] == [0.0, 5.0] and s.duration == 5.5
    # at the fixpoint no step of the ops pass holds any more: not even 7/8 of them
    assert 100 <= s.workload.ops and s.workload.ops * 7 // 8 < 100
    assert s.workload.clients == 1 and s.workload.keys == 1
    assert s.nodes == 1  # only n1 is named once the noise is gone
    assert any(step.startswith("removed fault t=4s pause") for step in found.steps)
    # every candidate judged once, and each judgement counted as a run
    assert len(judged) == len(set(judged)) == found.runs


def test_nodes_go_down_to_the_highest_one_anything_names() -> None:
    base = Scenario(
        "named",
        "n4 has a clock, n3 a link, n2 a group",
        nodes=6,
        initial_nodes=5,
        clocks={"n4": (0.01, 0.0)},
        links={("n1", "n3"): Link(constant(0.002))},
        faults=(Fault(1.0, "partition", {"groups": [["n1"], ["n2"]]}),),
    )
    s = shrink(base, lambda s: len(s.faults) == 1, budget_s=30).scenario
    assert (s.nodes, s.initial_nodes) == (4, None)
    s = shrink(base, lambda s: bool(s.faults) and s.initial_nodes == 5, budget_s=30).scenario
    assert (s.nodes, s.initial_nodes) == (6, 5)  # fewer would start them all, or n6 never


def test_shrinking_stops_at_its_run_budget_with_a_scenario_that_still_holds() -> None:
    found = shrink(_noisy(), _needs_isolate_crash_and_100_ops, budget_s=30, max_runs=4)
    assert found.runs == 4 and not found.complete
    assert _needs_isolate_crash_and_100_ops(found.scenario)
    assert found.steps and found.scenario.workload.ops < 700  # what was kept so far is kept


def test_a_random_fault_is_spelt_out_as_the_faults_its_run_applied() -> None:
    from sim.runner import Runner

    scenario = Scenario(
        "small-nemesis",
        "a random schedule on 3 nodes",
        nodes=3,
        workload=WorkloadSpec(clients=2, ops=100, rate=20.0, keys=10),
        faults=(Fault(0.0, "random"),),
        duration=20.0,
    )
    expanded = expand_random(scenario, 3)
    assert expanded is not None and expanded.faults
    assert all(f.action != "random" for f in expanded.faults)
    expanded.validate()
    runner = Runner(scenario, 3)
    try:
        applied = runner.run().faults
    finally:
        runner.close()
    logged = [a.split()[:2] for a in applied]  # "t=3.00s partition ..."
    assert [f.action for f in expanded.faults] == [action for _, action in logged]
    assert [f.at for f in expanded.faults] == pytest.approx([float(t[2:-1]) for t, _ in logged], abs=0.006)
    assert expand_random(_noisy(), 3) is None


# --- the command, on a weakened cluster ------------------------------------------------------------

WEAK = """\
name = "weak-w1-crash"
description = "W=1: writes acked by an isolated node die with it; noise faults around"
nodes = 3
write_consistency = "one"
read_consistency = "one"
duration = 10.0

[link]
latency = { kind = "constant", ms = 0.5 }

[workload]
clients = 6
ops = 600
rate = 150.0
keys = 30
read_fraction = 0.2
delete_fraction = 0.0

[[faults]]
at = 2.0
action = "partition"
kind = "isolate"
node = "n1"

[[faults]]
at = 4.0
action = "pause"
node = "n2"
duration = 1.0

[[faults]]
at = 6.0
action = "crash"
node = "n1"

[[faults]]
at = 7.0
action = "heal"
"""


def test_shrink_writes_a_smaller_file_that_still_loses_writes(tmp_path: Path) -> None:
    source = tmp_path / "weak.toml"
    source.write_text(WEAK)
    out = tmp_path / "small.toml"
    proc = subprocess.run(
        [sys.executable, "-m", "sim.run", str(source), "--seed", "1", "--shrink", "--shrink-budget", "40", "--shrink-out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=80,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "shrink: keeping [lost-writes] on seed 1" in proc.stdout
    assert "  - removed fault t=4s pause" in proc.stdout  # the noise is gone, and said so
    assert "  confirmed: the file on seed 1 reports [lost-writes]" in proc.stdout
    assert proc.stdout.rstrip().endswith(f"replay: python -m sim.run {out} --seed 1")
    original, small = load_scenario(str(source)), load_scenario(str(out))
    assert len(small.faults) < len(original.faults)
    assert {(f.action, f.args.get("node")) for f in small.faults} <= {("partition", "n1"), ("crash", "n1")}
    assert small.workload.ops < original.workload.ops and small.duration < original.duration
    assert violates(small, 1, "lost-writes")
    assert dumps(small) == out.read_text()  # what was written reads back to itself


def test_shrink_without_a_violation_says_there_is_nothing_to_shrink(tmp_path: Path) -> None:
    source = tmp_path / "quiet.toml"
    source.write_text('nodes = 3\nduration = 2.0\nsettle = 5.0\n[workload]\nops = 50\n')
    proc = subprocess.run(
        [sys.executable, "-m", "sim.run", str(source), "--shrink", "--shrink-out", str(tmp_path / "x.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "nothing to shrink" in proc.stdout
    assert not (tmp_path / "x.toml").exists()
