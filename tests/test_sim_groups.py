"""Explicit partitions in scenario files: ``groups`` of node ids, and one-way cuts from a
list of nodes to another. Bad lists are refused with a clear message; good ones cut
exactly the links they name (watched message by message on the simulated network)."""

from __future__ import annotations

from typing import Any

import pytest

from sim.network import Link, constant
from sim.runner import Runner
from sim.scenario import Fault, Scenario, ScenarioError, scenario_from_dict
from sim.workload import WorkloadSpec

pytestmark = pytest.mark.timeout(60)


def _file(fault: dict[str, Any]) -> dict[str, Any]:
    return {"nodes": 5, "faults": [{"at": 1.0, "action": "partition", **fault}]}


@pytest.mark.parametrize(
    "fault, message",
    [
        ({"groups": [["n1", "n2"], ["n3", "n9"]]}, "unknown nodes ['n9']"),
        ({"groups": [["n1", "n2"], ["n2", "n3"]]}, "nodes ['n2'] are listed twice"),
        ({"groups": [["n1", "n1"], ["n3"]]}, "nodes ['n1'] are listed twice"),
        ({"groups": [["n1", "n2"], []]}, "each group must be a non-empty list of node ids"),
        ({"groups": [["n1", "n2"]]}, "groups must list at least two groups"),
        ({"groups": []}, "groups must list at least two groups"),
        ({"groups": [["n1"], [3]]}, "each group must be a non-empty list of node ids"),
        ({"kind": "halves", "groups": [["n1"], ["n2"]]}, "groups belong to a partition of kind 'groups'"),
        ({"kind": "one-way", "from": ["n1"], "to": []}, "one-way 'to' must be a non-empty list"),
        ({"kind": "one-way", "from": ["n1"]}, "one-way 'to' must be a non-empty list"),
        ({"from": ["n1", "n2"], "to": ["n2"]}, "nodes ['n2'] are listed twice"),
        ({"from": ["n1"], "to": ["n7"]}, "unknown nodes ['n7']"),
        ({"kind": "isolate", "from": ["n1"], "to": ["n2"]}, "from/to lists belong to a one-way partition"),
        ({"kind": "one-way", "nodes": ["n1", "n8"]}, "unknown nodes ['n8']"),
        ({"kind": "one-way", "nodes": ["n1"]}, "one-way nodes must be [source, destination]"),
        ({"kind": "triangle"}, "partition kind must be one of"),
    ],
)
def test_bad_partition_lists_are_refused_with_a_clear_message(fault: dict[str, Any], message: str) -> None:
    with pytest.raises(ScenarioError, match=None) as err:
        scenario_from_dict(_file(fault))
    assert message in str(err.value)


def test_good_lists_load_and_imply_their_kind() -> None:
    scenario = scenario_from_dict(
        {
            "nodes": 5,
            "faults": [
                {"at": 1.0, "action": "partition", "groups": [["n1", "n2"], ["n3", "n4", "n5"]]},
                {"at": 2.0, "action": "partition", "from": "n1", "to": ["n2", "n3"]},
                {"at": 3.0, "action": "partition", "kind": "groups", "groups": [["n1"], ["n2"]]},
            ],
        }
    )
    assert [f.args for f in scenario.faults] == [
        {"groups": [["n1", "n2"], ["n3", "n4", "n5"]]},
        {"from": "n1", "to": ["n2", "n3"]},
        {"kind": "groups", "groups": [["n1"], ["n2"]]},
    ]


# --- the cuts on the simulated network ----------------------------------------------------

CUT_AT, HEAL_AT = 1.0, 3.0
LATENCY = 0.001


def _deliveries(fault: Fault) -> tuple[list[str], set[tuple[str, str]], set[tuple[str, str]]]:
    """Run 5 nodes under load with ``fault`` from CUT_AT to HEAL_AT; the fault log, the
    links that delivered anything while the cut held (after what was in flight landed),
    and those that delivered before or after it."""
    scenario = Scenario(
        "explicit-cut",
        "an explicit partition under load",
        nodes=5,
        link=Link(constant(LATENCY)),
        workload=WorkloadSpec(clients=5, ops=600, rate=150.0, keys=20),
        faults=(fault, Fault(HEAL_AT, "heal")),
        duration=4.5,
        settle=5.0,
    )
    runner = Runner(scenario, 1)
    during: set[tuple[str, str]] = set()
    outside: set[tuple[str, str]] = set()

    def watch(src: str, dst: str, msg: Any) -> None:
        t = runner.env.now - getattr(runner, "t0", -100.0)
        (during if CUT_AT + 2 * LATENCY < t < HEAL_AT else outside).add((src, dst))

    runner.host.network.on_deliver = watch
    try:
        result = runner.run()
    finally:
        runner.close()
    assert not result.violations, result.violations
    return result.faults, during, outside


ALL = {(a, b) for a in ("n1", "n2", "n3", "n4", "n5") for b in ("n1", "n2", "n3", "n4", "n5") if a != b}


def test_groups_cut_every_link_between_groups_and_no_other() -> None:
    log, during, outside = _deliveries(Fault(CUT_AT, "partition", {"groups": [["n1", "n2"], ["n3", "n4"]]}))
    assert log[0].endswith("partition ['n1', 'n2'] | ['n3', 'n4']"), log
    crossing = {(a, b) for a in ("n1", "n2") for b in ("n3", "n4")}
    crossing |= {(b, a) for a, b in crossing}
    assert not during & crossing
    # n5 is in no group: it keeps its links to both sides, and each side talks within itself
    assert {("n1", "n5"), ("n5", "n1"), ("n3", "n5"), ("n5", "n4"), ("n1", "n2"), ("n3", "n4")} <= during
    assert crossing <= outside  # the same links carried messages before the cut and after the heal


def test_one_way_lists_cut_each_from_node_to_each_to_node_only() -> None:
    log, during, outside = _deliveries(Fault(CUT_AT, "partition", {"from": ["n1", "n2"], "to": ["n3", "n4"]}))
    assert log[0].endswith("partition ['n1', 'n2'] -> ['n3', 'n4'] cut"), log
    cut = {(a, b) for a in ("n1", "n2") for b in ("n3", "n4")}
    assert not during & cut
    assert ALL - cut - during == set(), sorted(ALL - cut - during)  # every other link, back ones included
    assert cut <= outside
