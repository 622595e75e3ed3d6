"""Playing a scenario: start the cluster, run the workload and the fault schedule, heal,
settle, snapshot every owner, check, and summarise.

Everything random derives from the seed: the host's per-node RNGs, service-time RNGs
and network RNG (``sim.host``), the workload (``{seed}/workload``), the clients' link
(``{seed}/client-link``) and the fault choices (``{seed}/faults``). Same scenario + seed = the same trace, byte for byte.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import time
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any

from actors.protocol.messages import Inspect, Locate, Stats
from actors.protocol.collection import Coll
from actors.protocol.record import Record
from actors.config import NodeConfig
from sim.checkers import CheckContext, Violation, run_checkers
from sim.history import History
from sim.latency import percentiles, replication_latencies
from sim.cache_host import CacheSimHost
from sim.scenario import FAULT_ACTIONS, Fault, Scenario
from sim.traces import trace_lines
from sim.workload import Workload

__all__ = ["RunResult", "Runner"]

#: Seconds the cluster gets to form before the workload starts.
FORM_S = 2.0
#: How often the settle phase checks whether replicas agree.
SETTLE_POLL_S = 0.25


@dataclass
class RunResult:
    scenario: str
    seed: int
    sim_time_s: float
    events: int
    trace_events: int
    messages: int
    trace_sha256: str
    ops: dict[str, int]
    violations: list[Violation]
    replication_latency_ms: dict[str, float]
    convergence_s: float | None
    wall_s: float
    faults: list[str] = field(default_factory=list)
    #: Nodes down at the end because they exited and could not start again (a corrupt log).
    down: list[str] = field(default_factory=list)
    #: The peer handshakes of the run (:mod:`sim.network`): ``handshakes`` accepted,
    #: ``refused`` (by either side), ``retries`` (attempts failed by a lost frame).
    peer_links: dict[str, int] = field(default_factory=dict)
    #: Bytes the peer links carried (:mod:`sim.peer_wire`): ``total``, and per link
    #: ``"src->dst"`` (sorted); ``wire`` False when the run handed objects over (``--no-wire``).
    peer_bytes: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["violations"] = [v.to_json() for v in self.violations]
        return out


class Runner:
    def __init__(
        self,
        scenario: Scenario,
        seed: int,
        *,
        checkers: list[str] | None = None,
        expect_consistency: tuple[str, str] | None = None,
        skew_bound: float | None = None,
        wire: bool = True,
    ) -> None:
        """``expect_consistency`` (write, read) and ``skew_bound`` override what the checkers
        assume, for tests that run a deliberately weakened cluster against the promises
        the default configuration makes. ``wire=False``: peers hand over message objects
        instead of the peer protocol's bytes (quicker; :mod:`sim.peer_wire`)."""
        scenario.validate()
        self.scenario = scenario
        self.seed = seed
        self.checkers = checkers
        self.expect_consistency = expect_consistency or (scenario.write_consistency, scenario.read_consistency)
        self.skew_bound = scenario.skew_bound if skew_bound is None else skew_bound
        self.host = CacheSimHost(seed, wire=wire)
        self.host.service = scenario.service
        self.host.with_disks = scenario.disk
        #: Intervals of virtual time whose acknowledged writes a disk fault may have lost
        #: legitimately (:meth:`disk_risk`), and the longest fsync a ``slow-fsync`` set.
        self.at_risk: list[tuple[float, float]] = []
        self.extra_fsync_s = 0.0
        self.env = self.host.env
        self.rng = random.Random(f"{seed}/faults")
        self.history = History()
        self.workload = Workload(
            self.host, scenario.workload, random.Random(f"{seed}/workload"), self.history,
            client_link=scenario.client_latency, link_rng=random.Random(f"{seed}/client-link"),
        )
        self.crashed: list[str] = []
        self.left: set[str] = set()
        #: Nodes that exited because an actor died (:mod:`sim.host`: a log corrupt before
        #: its end, a full disk), in order; each is also crashed, so a ``restart`` (or the
        #: heal at the end, as a supervisor would) starts it again. Those not running at
        #: the end are :attr:`down`.
        self.exited: list[str] = []
        self.host.on_exit = self._exited
        self.applied_faults: list[str] = []
        #: What ``stranger`` faults tried (:func:`sim.faults.stranger`), for the checkers:
        #: their ids, the keys and values they wrote, their messages delivered (None: none ran).
        self.strangers: set[str] = set()
        self.stranger_keys: set[str] = set()
        self.forged_values: set[Any] = set()
        self.stranger_deliveries: int | None = None
        self.host.network.default = scenario.link
        self.host.network.links.update(scenario.links)
        if scenario.secret is not None:
            self.host.network.secret = scenario.secret.encode()
        self.host.network.secrets.update({n: v.encode() for n, v in scenario.secrets.items()})

    # --- nodes ------------------------------------------------------------------------

    def _config(self, node_id: str, contacts: tuple[str, ...]) -> NodeConfig:
        """``contacts``: the running nodes it joins through."""
        s = self.scenario
        return NodeConfig(
            address=node_id,
            contacts=contacts,
            replicas=s.replicas,
            write_consistency=s.write_consistency,
            read_consistency=s.read_consistency,
            **s.node,
        )

    def live(self) -> list[str]:
        return sorted(self.host.nodes)

    def _exited(self, node_id: str) -> None:
        self.exited.append(node_id)
        if node_id not in self.crashed:
            self.crashed.append(node_id)

    @property
    def down(self) -> frozenset[str]:
        """Nodes that exited and are not running now (one that refuses to start stays so)."""
        return frozenset(n for n in self.exited if n not in self.host.nodes)

    def start(self, node_id: str) -> None:
        contacts = tuple(n for n in self.live() if n != node_id)
        offset, drift = self.scenario.clocks.get(node_id, (0.0, 0.0))
        self.host.start_node(node_id, self._config(node_id, contacts), offset=offset, drift=drift)
        self.host.trace.append((self.env.now, node_id, "start", {}))

    # --- faults -----------------------------------------------------------------------

    def _schedule(self, t0: float, fault: Fault) -> None:
        def fire(_event: Any) -> None:
            self.apply(fault)

        self.env.timeout(max(0.0, t0 + fault.at - self.env.now)).callbacks.append(fire)

    def pick(self, node: str | None) -> str | None:
        """The node a fault names: itself, a random running one (``random`` or none), or
        the last one crashed (``crashed``); None when there is none."""
        live = [n for n in self.live() if n not in self.left]
        if node in (None, "random"):
            return self.rng.choice(live) if live else None
        if node == "crashed":
            return self.crashed[-1] if self.crashed else None
        return node

    def apply(self, fault: Fault) -> None:
        """Apply ``fault`` now, through its row of ``FAULT_ACTIONS``, and log it."""
        detail = FAULT_ACTIONS[fault.action].apply(self, fault.args)
        if detail is None:
            return
        description = f"t={self.env.now - self.t0:.2f}s {fault.action} {detail}".rstrip()
        self.applied_faults.append(description)
        self.host.trace.append((self.env.now, "-", "fault", {"action": fault.action, "detail": detail}))

    def fsync_window(self) -> float:
        """How long before a power loss an acknowledged write may be lost under the nodes'
        settings: none with ``appendfsync always``; Redis's two seconds with ``everysec``
        (plus a slow fsync's delay); anything since the last snapshot otherwise."""
        node = self.scenario.node
        if not node.get("appendonly", False):
            return float("inf")
        policy = node.get("appendfsync", "everysec")
        if policy == "always":
            return 0.0
        return 2.0 + self.extra_fsync_s if policy == "everysec" else float("inf")

    def disk_risk(self, window: float) -> None:
        """A disk fault now may lose the writes acknowledged in the last ``window`` seconds.
        Recorded only with one replica: with more, the other owners still hold them, and
        ``lost-writes`` keeps its full strength."""
        if window > 0 and self.scenario.replicas == 1:
            self.at_risk.append((self.env.now - window, self.env.now))

    def resume(self, node: str) -> None:
        if node in self.host.nodes:
            self.host.resume(node)

    def exit(self, node: str) -> None:
        if node in self.host.nodes:
            self.host.crash(node)  # the process exits after its leave

    def schedule_random(self) -> None:
        """Schedule a random nemesis: partitions, crashes, pauses and slow nodes, one after
        another until six seconds before the workload ends."""
        rng = self.rng
        t = 3.0
        end = self.scenario.duration - 6.0
        while t < end:
            kind = rng.choice(["halves", "isolate", "majority", "bridge", "crash", "pause", "slow", "one-way"])
            length = rng.uniform(2.0, 6.0)
            if kind in ("halves", "isolate", "majority", "bridge", "one-way"):
                self._schedule(self.t0, Fault(t, "partition", {"kind": kind}))
                self._schedule(self.t0, Fault(t + length, "heal"))
            elif kind == "crash":
                self._schedule(self.t0, Fault(t, "crash", {"node": "random"}))
                self._schedule(self.t0, Fault(t + length, "restart", {"node": "crashed"}))
            elif kind == "pause":
                self._schedule(self.t0, Fault(t, "pause", {"node": "random", "duration": length}))
            else:
                self._schedule(self.t0, Fault(t, "slow", {"node": "random", "factor": 20.0, "duration": length}))
            t += length + rng.uniform(1.0, 4.0)

    # --- the run ----------------------------------------------------------------------

    def run(self) -> RunResult:
        wall0 = time.perf_counter()
        s = self.scenario
        initial = s.node_ids[: s.initial_nodes or s.nodes]
        for node_id in initial:
            self.start(node_id)
        self.host.run_for(FORM_S)
        self.t0 = self.env.now
        for fault in s.faults:
            self._schedule(self.t0, fault)
        self.workload.start()
        self.host.run_for(s.duration)
        # Heal everything, let in-flight client requests finish or time out.
        self.workload.stop()
        self.host.network.heal()
        self.host.network.slow.clear()
        for node in self.live():
            self.host.resume(node)
        for node in list(self.crashed):
            self.start(node)
        self.crashed.clear()
        self.host.trace.append((self.env.now, "-", "heal-all", {}))
        healed_at = self.env.now
        drained_at = healed_at + s.workload.client_timeout  # every client request answered or given up
        deadline = healed_at + s.settle
        final, convergence = settle(self.host.run_for, lambda: self.env.now, self.snapshot, healed_at, drained_at, deadline)
        warming = self._wait_warm(deadline)
        ctx = CheckContext(
            history=self.history,
            final=final,
            replicas=min(s.replicas, len(self.live())),
            write_default=self.expect_consistency[0],
            read_default=self.expect_consistency[1],
            skew_bound=self.skew_bound,
            converged=convergence is not None,
            convergence_s=convergence,
            warming=warming,
            strangers=frozenset(self.strangers),
            members=self.members() if self.strangers else {},
            forged_values=frozenset(self.forged_values),
            stranger_deliveries=self.stranger_deliveries or 0,
            at_risk=tuple(self.at_risk),
            down=self.down,
        )
        violations = run_checkers(ctx, self.checkers)
        trace = self.host.trace
        digest = hashlib.sha256("\n".join(trace_lines(trace)).encode()).hexdigest()
        net = self.host.network
        result = RunResult(
            scenario=s.name,
            seed=self.seed,
            sim_time_s=round(self.env.now, 3),
            events=self.env.steps,
            trace_events=len(trace),
            messages=self.host.network.sent,
            trace_sha256=digest,
            ops=self.history.counts(),
            violations=violations,
            replication_latency_ms=percentiles(replication_latencies(trace)),
            convergence_s=convergence,
            wall_s=round(time.perf_counter() - wall0, 3),
            faults=self.applied_faults,
            down=sorted(self.down),
            peer_links={
                "handshakes": net.handshakes,
                "refused": net.refused,
                "retries": net.retries,
                "frames": net.frames,
                "unsendable": net.unsendable,
                "bad_frames": net.bad_frames,
            },
            peer_bytes={
                "wire": self.host.peer_wire is not None,
                "total": sum(net.link_bytes.values()),
                "links": {f"{src}->{dst}": n for (src, dst), n in sorted(net.link_bytes.items())},
                **({} if self.host.peer_wire is None else {
                    "compressed": sum(net.link_compressed_bytes.values()),
                    "compressed_links": {
                        f"{src}->{dst}": n for (src, dst), n in sorted(net.link_compressed_bytes.items())
                    },
                    "compression_saved": self.host.peer_wire.compression_saved,
                }),
            },
        )
        return result

    def snapshot(self) -> dict[str, dict[str, Record | None]]:
        """Every owner's own record of every key the workload touched (no coordination).
        An owner that is :attr:`down` has no say (absent, not None: it holds what it held
        on its disk, unread); with no node running, no key has an owner that answers."""
        keys = sorted({op.key for op in self.history.ops} | self.stranger_keys)
        live = self.live()
        if not keys:
            return {}
        if not live:
            return {key: {} for key in keys}
        down = self.down
        locator = live[0]
        owners = {reply.key: reply.owners for reply in self.host.request([Locate(k) for k in keys], node_id=locator)}
        by_owner: dict[str, list[str]] = {}
        for key in keys:
            for owner in owners[key]:
                by_owner.setdefault(owner, []).append(key)
        final: dict[str, dict[str, Record | None]] = {key: {} for key in keys}
        for owner, owner_keys in sorted(by_owner.items()):
            if owner in down:
                continue
            if owner not in self.host.nodes:
                for key in owner_keys:
                    final[key][owner] = None
                continue
            for reply in self.host.request([Inspect(k) for k in owner_keys], node_id=owner):
                final[reply.key][owner] = reply.record
        return final

    def _wait_warm(self, deadline: float) -> tuple[str, ...]:
        """Poll until no running node is still warming, or ``deadline``: the nodes still
        warming then (a node that never warms serves no reads, whatever its copies hold)."""
        while True:
            warming = tuple(node for node in self.live() if self._status(node) == "warming")
            if not warming or self.env.now >= deadline:
                return warming
            self.host.run_for(SETTLE_POLL_S)

    def _status(self, node: str) -> Any:
        """``node``'s own membership status, as its stats say."""
        cluster = self.host.request([Stats()], node_id=node)[0].stats["cluster"]
        return cluster["members"][node]["status"]

    def members(self) -> dict[str, tuple[str, ...]]:
        """Every running node's member ids, as its own table has them."""
        return {
            node: tuple(sorted(self.host.request([Stats()], node_id=node)[0].stats["cluster"]["members"]))
            for node in self.live()
        }

    def close(self) -> None:
        self.host.shutdown()


def settle(
    run_for: Callable[[float], None],
    now: Callable[[], float],
    snapshot: Callable[[], dict[str, dict[str, Record | None]] | None],
    healed_at: float,
    drained_at: float,
    deadline: float,
) -> tuple[dict[str, dict[str, Record | None]], float | None]:
    """Poll every owner's copies every ``SETTLE_POLL_S`` after the heal until they agree
    and the clients are drained, or ``deadline``: ``(last snapshot, convergence seconds
    or None)``. ``snapshot`` returns None when it could not be taken (a real node not
    answering): that poll does not agree. Shared by the simulated and the real runner."""
    convergence = None
    final: dict[str, dict[str, Record | None]] = {}
    while True:
        run_for(SETTLE_POLL_S)
        taken = snapshot()
        agree = taken is not None and _agree(taken)
        if taken is not None:
            final = taken
        if agree and convergence is None:
            convergence = round(now() - healed_at, 3)
        elif not agree:
            convergence = None  # diverged again (a late write): converging is measured anew
        if (agree and now() >= drained_at) or now() >= deadline:
            return final, convergence


def _agree(final: dict[str, dict[str, Record | None]]) -> bool:
    return all(len({_state(r) for r in owners.values()}) <= 1 for owners in final.values())


def _state(record: Record | None) -> Any:
    """What owners must agree on: the version, and for a hash or set its fields too (the
    same newest version can come with different fields, merged field by field)."""
    if record is None:
        return None
    return (record.version, repr(record.value)) if type(record.value) is Coll else record.version
