"""Every checker is shown able to fail: each test runs a deliberately weakened cluster
(the weakness named in the test) and asserts the checker reports the violation it
exists to catch. The default configuration passing the same checkers is what the seed
sweeps in ``tests/test_sim_sweep.py`` show. The checkers' own references of the rules
(which version wins, answers per consistency level) are checked against the node's code
on random inputs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from actors.cluster.coordination import newest
from actors.protocol.consistency import CONSISTENCY_LEVELS, required_acks
from actors.protocol.record import Record
from actors.protocol.version import Version
from sim.checkers import acks_needed, winner
from sim.network import Link, constant
from sim.runner import Runner
from sim.scenario import Fault, Scenario
from sim.workload import WorkloadSpec

pytestmark = pytest.mark.timeout(120)

LAN = Link(constant(0.0005))


# --- the checkers' references agree with the code they check ------------------------------

# Few distinct values per field, so equal wall times, equal counters and equal versions
# (with different values) come up often: the tie-breaks are where references drift apart.
versions = st.builds(Version, st.integers(0, 3), st.integers(0, 3), st.sampled_from(["", "n1", "n2", "n10"]))
records = st.builds(
    Record,
    key=st.just("k"),
    value=st.one_of(st.none(), st.integers(0, 5)),
    deadline=st.none(),
    version=versions,
    purge_at=st.one_of(st.none(), st.just(100.0)),
)


@settings(derandomize=True, max_examples=500, deadline=None)
@given(st.lists(st.one_of(st.none(), records), max_size=6))
def test_the_checkers_winner_is_the_version_coordination_keeps(owners: list[Record | None]) -> None:
    """The checker's last-write-wins reference and ``coordination.newest`` (what a read
    returns and read repair spreads) pick the same record, tombstones and ties included."""
    assert winner(owners) is newest(owners)


@pytest.mark.parametrize("level", CONSISTENCY_LEVELS)
def test_the_checkers_ack_counts_are_the_nodes(level: str) -> None:
    assert [acks_needed(level, n) for n in range(12)] == [required_acks(level, n) for n in range(12)]


def violations(
    scenario: Scenario, seed: int = 1, prepare: Callable[[Runner], None] | None = None, **runner_args: object
) -> dict[str, list[str]]:
    """Each checker's violations of one run; ``prepare`` sees the runner before it runs
    (to add a process of its own, or to keep it for a look at the history after)."""
    runner = Runner(scenario, seed, **runner_args)  # type: ignore[arg-type]
    try:
        if prepare is not None:
            prepare(runner)
        result = runner.run()
    finally:
        runner.close()
    out: dict[str, list[str]] = {}
    for v in result.violations:
        out.setdefault(v.checker, []).append(v.message)
    return out


def test_lost_writes_with_w1_on_an_isolated_node_that_then_crashes() -> None:
    scenario = Scenario(
        "weak-w1-crash",
        "W=1: writes acked by an isolated node die with it",
        nodes=3,
        write_consistency="one",
        read_consistency="one",
        link=LAN,
        # The load ends (about 5 s in) before the crash, so nothing overwrites what n1 lost.
        workload=WorkloadSpec(clients=6, ops=700, rate=150.0, keys=30, read_fraction=0.2, delete_fraction=0.0),
        faults=(
            Fault(2.0, "partition", {"kind": "isolate", "node": "n1"}),
            Fault(7.0, "crash", {"node": "n1"}),
            Fault(8.0, "heal"),
            Fault(8.5, "restart", {"node": "n1"}),
        ),
        duration=12.0,
        settle=15.0,
    )
    found = violations(scenario, checkers=["lost-writes"])
    assert found.get("lost-writes"), found


def test_quorum_reads_fail_when_w1_r1_is_run_where_quorum_was_expected() -> None:
    scenario = Scenario(
        "weak-w1-r1-partition",
        "W=1,R=1 under partition, checked against the R+W>N promise",
        nodes=5,
        write_consistency="one",
        read_consistency="one",
        link=LAN,
        workload=WorkloadSpec(clients=8, ops=2000, rate=200.0, keys=20, read_fraction=0.5, delete_fraction=0.0),
        faults=(Fault(2.0, "partition", {"kind": "halves"}), Fault(8.0, "heal")),
        duration=10.0,
    )
    found = violations(scenario, checkers=["quorum-reads"], expect_consistency=("quorum", "quorum"))
    assert found.get("quorum-reads"), found


def test_convergence_fails_without_anti_entropy_or_hints() -> None:
    scenario = Scenario(
        "weak-no-repair",
        "anti-entropy and hints off: a replica cut off stays behind",
        nodes=3,
        link=LAN,
        workload=WorkloadSpec(clients=4, ops=800, rate=200.0, keys=50, read_fraction=0.0, delete_fraction=0.0),
        faults=(Fault(0.5, "partition", {"kind": "isolate", "node": "n3"}), Fault(3.0, "heal")),
        duration=4.0,
        settle=4.0,
        node={"anti_entropy_interval_s": 1e9, "hint_limit": 0},
    )
    found = violations(scenario, checkers=["convergence"])
    assert found.get("convergence"), found


def test_resurrection_without_tombstones() -> None:
    scenario = Scenario(
        "weak-no-tombstones",
        "tombstones and hints off: anti-entropy copies a deleted value back",
        nodes=3,
        link=LAN,
        # The load ends (about 3 s in) before the heal, so nothing overwrites what comes back.
        workload=WorkloadSpec(clients=4, ops=400, rate=150.0, keys=20, read_fraction=0.0, delete_fraction=0.5),
        faults=(Fault(1.0, "partition", {"kind": "isolate", "node": "n3"}), Fault(6.0, "heal")),
        duration=8.0,
        node={"tombstone_ttl_s": 0.0, "hint_limit": 0, "anti_entropy_interval_s": 0.2},
    )
    found = violations(scenario, checkers=["resurrection"])
    assert found.get("resurrection"), found


def test_ttl_fails_when_skew_exceeds_the_bound() -> None:
    scenario = Scenario(
        "weak-skew",
        "one node's clock 5 s behind, checked with a zero skew bound",
        nodes=3,
        replicas=1,
        link=LAN,
        clocks={"n2": (-5.0, 0.0)},
        # The nodes are told their clocks may be 10 s apart (else, since issue 13, the one
        # 5 s behind fences itself and serves nothing, and no late TTL is ever served).
        node={"max_clock_skew_s": 10.0},
        workload=WorkloadSpec(
            clients=4, ops=1500, rate=150.0, keys=10, read_fraction=0.7, ttl_fraction=1.0, ttl_min=0.2, ttl_max=0.5
        ),
        duration=10.0,
    )
    found = violations(scenario, checkers=["ttl"], skew_bound=0.0)
    assert found.get("ttl"), found
    # The same run checked against its real skew bound is fine.
    assert not violations(scenario, checkers=["ttl"]).get("ttl")
