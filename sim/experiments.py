"""The notebooks' experiments: the scenarios and sweeps behind each figure.

``notebooks/replication_latency.ipynb`` plays :func:`replication_experiment` over
:data:`LINKS`; ``notebooks/partition_recovery.ipynb`` plays :func:`recovery_by_duration`,
:func:`recovery_by_anti_entropy` and :func:`lost_write_experiment` (:func:`weakened_w1` is
the weakened W=1 configuration the lost-writes checker must catch);
``notebooks/sim_vs_real.ipynb`` plays :func:`loopback_scenario`, the simulated twin of
:func:`sim.real.real_workload`, with the models :func:`loopback_models` calibrates and
the rows :func:`sim_vs_real_rows` compares. Keeping them here keeps notebook cells short and lets
``python -m sim.plots`` draw the same figures.
"""

from __future__ import annotations

import random
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sim.history import History
from sim.latency import compare_percentiles, fit_body, fit_lognormal, replication_latencies, write_latencies
from sim.network import LatencyModel, Link, constant, lognormal
from sim.runs import SimRun, simulate, sweep
from sim.scenario import Fault, Scenario
from sim.service import ServiceModel, default_service
from sim.traces import TraceEvent
from sim.workload import WorkloadSpec

__all__ = [
    "HINTS",
    "LEVELS",
    "LINKS",
    "loopback_models",
    "loopback_scenario",
    "lost_write_experiment",
    "recovery_by_anti_entropy",
    "recovery_by_duration",
    "replication_experiment",
    "sim_vs_real_rows",
    "weakened_w1",
]

#: The link models the notebooks compare (one-way delay of every link).
LINKS: dict[str, Link] = {
    "LAN (0.2 ms)": Link(lognormal(0.0002, 0.25)),
    "cross-zone (1 ms, jitter)": Link(lognormal(0.001, 0.35)),
    "WAN (40 ms, tail)": Link(lognormal(0.040, 0.3, tail_p=0.02, tail_factor=4.0)),
}

LEVELS = ("one", "quorum", "all")


def replication_experiment(
    *,
    ops: int = 300,
    links: Mapping[str, Link] | None = None,
    replicas: Sequence[int] = (1, 2, 3, 4, 5),
    levels: Sequence[str] = LEVELS,
    seed: int = 1,
) -> list[SimRun]:
    """Five nodes, ``ops`` sets from four clients, no faults: every link model x replica
    count x write consistency level (``notebooks/replication_latency.ipynb``)."""
    base = Scenario(
        "replication",
        "five nodes, sets only, no faults",
        nodes=5,
        workload=WorkloadSpec(clients=4, ops=ops, rate=100.0, keys=100, read_fraction=0.0, delete_fraction=0.0),
        # Long enough for every op even on the slowest link at level all; the run's
        # clients stop issuing at `ops`.
        duration=max(5.0, ops / 100.0 * 4),
        settle=10.0,
    )
    axes = {"link": dict(links or LINKS), "replicas": list(replicas), "write_consistency": list(levels)}
    return sweep(base, axes, seeds=(seed,))


def _isolation(duration: float, *, ops_rate: float = 50.0) -> Scenario:
    """Five nodes under load; n5 is cut off one second in, for ``duration`` seconds; the
    runner heals everything (and stops the load) when the partition ends."""
    return Scenario(
        "isolation",
        "n5 cut off from the others under load, then healed",
        nodes=5,
        link=Link(lognormal(0.0005, 0.3)),
        workload=WorkloadSpec(clients=4, ops=1_000_000, rate=ops_rate, keys=100, read_fraction=0.5),
        faults=(Fault(1.0, "partition", {"kind": "isolate", "node": "n5"}),),
        duration=1.0 + duration,
        settle=120.0,
    )


HINTS = {"hints on": 100_000, "hints off": 0}


def recovery_by_duration(durations: Sequence[float] = (1, 2, 4, 8, 16), seeds: Iterable[int] = (1, 2, 3)) -> list[SimRun]:
    """Convergence after heal for each partition duration, hinted handoff on and off."""
    runs: list[SimRun] = []
    for d in durations:
        for run in sweep(_isolation(d), {"node.hint_limit": HINTS}, seeds=seeds, checkers=["convergence"]):
            run.params["partition_s"] = d
            runs.append(run)
    return runs


def recovery_by_anti_entropy(
    intervals: Sequence[float] = (0.25, 0.5, 1.0, 2.0), partition_s: float = 4.0, seeds: Iterable[int] = (1, 2, 3)
) -> list[SimRun]:
    """Convergence after a ``partition_s`` isolation for each anti-entropy interval, hints on and off."""
    axes = {"node.anti_entropy_interval_s": list(intervals), "node.hint_limit": HINTS}
    return sweep(_isolation(partition_s), axes, seeds=seeds, checkers=["convergence"])


def weakened_w1(write_consistency: str = "one") -> Scenario:
    """``tests/test_sim_checkers.py``'s lost-writes case: three nodes, n1 cut off for 5 s
    (writes through it keep being acknowledged at W=1), then n1 crashes, losing them."""
    return Scenario(
        f"w1-crash[{write_consistency}]",
        "n1 isolated, then crashed and restarted",
        nodes=3,
        write_consistency=write_consistency,
        read_consistency="one",
        link=Link(lognormal(0.0005, 0.3)),
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


def lost_write_experiment(levels: Sequence[str] = ("one", "quorum"), seeds: Iterable[int] = (1, 2, 3, 4, 5)) -> list[SimRun]:
    """The weakened W=1 configuration next to the default (quorum), every checker on."""
    runs = []
    for level in levels:
        for seed in seeds:
            runs.append(simulate(weakened_w1(level), seed, params={"write_consistency": level, "seed": seed}))
    return runs


def loopback_scenario(
    link: Link, *, ops: int, rate: float, keys: int = 100, service: ServiceModel | None | str = "measured"
) -> Scenario:
    """The simulated twin of :func:`real_workload` on a 3-node ``LocalCluster``: three
    nodes, three replicas, quorum writes, one client sending sets at ``rate``; ``service``
    is the nodes' service-time model (``"measured"``: :func:`sim.service.default_service`;
    None: zero time), which holds the clients' link too."""
    return Scenario(
        "loopback",
        "three nodes on a link calibrated to loopback, one client sending sets",
        nodes=3,
        replicas=3,
        link=link,
        workload=WorkloadSpec(clients=1, ops=ops, rate=rate, keys=keys, read_fraction=0.0, delete_fraction=0.0),
        duration=ops / rate * 1.5 + 2.0,
        settle=10.0,
        service=default_service() if service == "measured" else service,  # type: ignore[arg-type]
    )


def _own_and_remote(trace: Sequence[TraceEvent]) -> tuple[list[float], list[float]]:
    """Replication latencies (ms) of the coordinators' own copies, and of the others."""
    remote = replication_latencies(trace, local=False)
    own = Counter(replication_latencies(trace))
    own.subtract(Counter(remote))
    return sorted(own.elements()), remote


def loopback_models(
    calibration: Sequence[TraceEvent],
    rtts_ms: Sequence[float],
    writes_ms: Sequence[float],
    *,
    ops: int,
    rate: float,
    service: ServiceModel | None = None,
    seed: int = 0,
) -> dict[str, tuple[Link, ServiceModel | None]]:
    """The simulator's models of a real loopback cluster, fitted to half its writes
    (``calibration``: a trace; ``writes_ms``: what the client waited for those writes)
    and to ping round trips (``rtts_ms``), as ``{label: (link, service model)}``:

    - ``"zero time"``: the simulator before service time: no node ever busy, clients on
      a free link, and the peer link fitted to the remote copies
      (:func:`~sim.latency.fit_lognormal`): it has to stand for all the processing;
    - ``"service time"``: the nodes' CPU costs measured on real nodes (``service``,
      default :func:`~sim.service.default_service`), but a peer send as this run's
      coordinators took it (half of an own copy's body: the machine is shared, and its
      speed varies from run to run); the peer link is what the remote copies took beyond
      the service time the simulator adds on their way (the coordinator's sends, the
      replica's request), and the clients' link half of what each write took beyond the
      simulator's median on a free client link (one simulated run of ``ops`` sets at
      ``rate`` finds that out). Both links carry the stalls of this machine's processes
      as a tail; the peer link may reorder: each stall was seen by the messages it held,
      and first-in-first-out on top would count it again for every message behind it;
    - ``"service time, client link from pings"``: the same, but the clients' link is
      half a ping round trip: measured apart from the writes.
    """
    service = service or default_service()
    own, remote = _own_and_remote(calibration)
    # The own copy lands once the two remote ones are encoded and sent: on this machine
    # now, one send takes half of what the own copies took (their body: the tail is stalls).
    service = service.replace(peer_send=fit_body([v / 2 for v in own]))
    rng = random.Random(f"{seed}/calibration")  # the service draws on the way, as the simulator makes them
    # The first remote copy leaves one send cost after the write, the second two.
    on_the_way = [
        (service.draw("peer.send", rng) * (1 + i % 2) + service.draw("peer.request", rng)) * 1000.0 for i in range(2000)
    ]
    link = Link(_beyond(remote, statistics.median(on_the_way)), reorder=True)
    # Its median needs no more than a few hundred writes.
    free = simulate(loopback_scenario(link, ops=min(ops, 500), rate=rate, service=service.replace(client_link=constant(0.0))))
    return {
        "zero time": (Link(fit_lognormal(remote)), None),
        "service time": (link, service.replace(client_link=_beyond(writes_ms, statistics.median(free.write_latencies()), legs=2))),
        "service time, client link from pings": (
            link, service.replace(client_link=_beyond(rtts_ms, 0.0, legs=2))
        ),
    }


def _beyond(samples_ms: Sequence[float], base_ms: float, legs: int = 1) -> LatencyModel:
    """A delay that, taken ``legs`` times on top of ``base_ms``, makes the samples: each
    sample's excess over the base, shared among the legs, fitted with
    :func:`~sim.latency.fit_lognormal` (a lognormal body, and a tail of stalls if the
    samples have one)."""
    return fit_lognormal([max(v - base_ms, 0.002) / legs for v in samples_ms])


def sim_vs_real_rows(
    comparison: Sequence[TraceEvent], history: History | Sequence[Any], sims: Mapping[str, SimRun], *, goal: float = 0.25
) -> list[dict[str, Any]]:
    """p50 and p99, real against each simulated run: remote copies, all copies (the
    coordinator's own too), and client-visible write latency (the real ``history``'s
    writes: pass the same half as ``comparison``)."""
    real = {
        "remote copies": replication_latencies(comparison, local=False),
        "all copies": replication_latencies(comparison),
        "client writes": write_latencies(history.ops if isinstance(history, History) else history),
    }
    rows = []
    for what, real_ms in real.items():
        simulated = {
            label: (
                run.replication_latencies(local=False) if what == "remote copies"
                else run.replication_latencies() if what == "all copies"
                else run.write_latencies()
            )
            for label, run in sims.items()
        }
        rows += [{"what": what, **row} for row in compare_percentiles(real_ms, simulated, goal=goal)]
    return rows
