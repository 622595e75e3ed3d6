"""Playing a scenario: start the cluster, run the workload and the fault schedule, heal,
settle, snapshot every owner, check, and summarise.

Everything random derives from the seed: the host's per-node RNGs and network RNG
(``sim.host``), the workload (``{seed}/workload``) and the fault choices
(``{seed}/faults``). Same scenario + seed = the same trace, byte for byte.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import time
from dataclasses import dataclass, field
from typing import Any

from actors.kernel import ScheduledFuture
from actors.protocol.messages import Inspect, Locate
from actors.protocol.internal import Leave
from actors.protocol.record import Record
from actors.config import NodeConfig
from sim.checkers import CheckContext, Violation, run_checkers
from sim.history import History
from sim.latency import percentiles, replication_latencies
from sim.cache_host import CacheSimHost
from sim.scenario import Fault, Scenario
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

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["violations"] = [v.to_json() for v in self.violations]
        return out


class _LeaveReply:
    def __init__(self, future: ScheduledFuture) -> None:
        self.future = future

    def tell(self, message: Any) -> None:
        self.future.set(message)


class Runner:
    def __init__(
        self,
        scenario: Scenario,
        seed: int,
        *,
        checkers: list[str] | None = None,
        expect_consistency: tuple[str, str] | None = None,
        skew_bound: float | None = None,
    ) -> None:
        """``expect_consistency`` (write, read) and ``skew_bound`` override what the checkers
        assume, for tests that run a deliberately weakened cluster against the promises
        the default configuration makes."""
        scenario.validate()
        self.scenario = scenario
        self.seed = seed
        self.checkers = checkers
        self.expect_consistency = expect_consistency or (scenario.write_consistency, scenario.read_consistency)
        self.skew_bound = scenario.skew_bound if skew_bound is None else skew_bound
        self.host = CacheSimHost(seed)
        self.env = self.host.env
        self.rng = random.Random(f"{seed}/faults")
        self.history = History()
        self.workload = Workload(self.host, scenario.workload, random.Random(f"{seed}/workload"), self.history)
        self.crashed: list[str] = []
        self.left: set[str] = set()
        self.applied_faults: list[str] = []
        self.host.network.default = scenario.link
        self.host.network.links.update(scenario.links)

    # --- nodes ------------------------------------------------------------------------

    def _config(self, node_id: str, contacts: tuple[str, ...]) -> NodeConfig:
        s = self.scenario
        return NodeConfig(
            address=node_id,
            contacts=contacts,
            replicas=s.replicas,
            write_consistency=s.write_consistency,
            read_consistency=s.read_consistency,
            **s.node,
        )

    def _live(self) -> list[str]:
        return sorted(self.host.nodes)

    def _start(self, node_id: str) -> None:
        contacts = tuple(n for n in self._live() if n != node_id)
        offset, drift = self.scenario.clocks.get(node_id, (0.0, 0.0))
        self.host.start_node(node_id, self._config(node_id, contacts), offset=offset, drift=drift)
        self.host.trace.append((self.env.now, node_id, "start", {}))

    # --- faults -----------------------------------------------------------------------

    def _schedule(self, t0: float, fault: Fault) -> None:
        def fire(_event: Any) -> None:
            self.apply(fault)

        self.env.timeout(max(0.0, t0 + fault.at - self.env.now)).callbacks.append(fire)

    def _pick(self, node: str | None) -> str | None:
        live = [n for n in self._live() if n not in self.left]
        if node in (None, "random"):
            return self.rng.choice(live) if live else None
        if node == "crashed":
            return self.crashed[-1] if self.crashed else None
        return node

    def apply(self, fault: Fault) -> None:
        action, args = fault.action, fault.args
        host, net = self.host, self.host.network
        detail = ""
        if action == "random":
            self._random_schedule()
            return
        if action == "partition":
            live = self._live()
            self.rng.shuffle(live)
            kind = args.get("kind", "halves")
            if kind == "halves":
                half = len(live) // 2
                net.partition(live[:half], live[half:])
                detail = f"{sorted(live[:half])} | {sorted(live[half:])}"
            elif kind == "isolate":
                node = self._pick(args.get("node"))
                net.partition([node], [n for n in live if n != node])
                detail = f"{node} isolated"
            elif kind == "majority":
                minority = live[: (len(live) - 1) // 2]
                net.partition(minority, live[len(minority) :])
                detail = f"minority {sorted(minority)}"
            elif kind == "bridge":
                bridge, rest = live[0], live[1:]
                half = len(rest) // 2
                net.partition(rest[:half], rest[half:])
                detail = f"{sorted(rest[:half])} | {sorted(rest[half:])} bridged by {bridge}"
            else:  # one-way
                src, dst = args.get("nodes") or live[:2]
                net.cut_one_way(src, dst)
                detail = f"{src} -> {dst} cut"
        elif action == "heal":
            net.heal()
        elif action == "crash":
            node = self._pick(args.get("node"))
            if node is not None and node in host.nodes:
                host.crash(node)
                self.crashed.append(node)
                detail = node
        elif action == "restart" or action == "join":
            node = self._pick(args.get("node"))
            if node is not None and node not in host.nodes:
                if node in self.crashed:
                    self.crashed.remove(node)
                self.left.discard(node)
                self._start(node)
                detail = node
        elif action == "pause":
            node = self._pick(args.get("node"))
            if node is not None and node in host.nodes:
                host.pause(node)
                duration = float(args.get("duration", 3.0))
                self.env.timeout(duration).callbacks.append(lambda _e, n=node: self._resume(n))
                detail = f"{node} for {duration:g}s"
        elif action == "slow":
            node = self._pick(args.get("node"))
            if node is not None:
                net.slow[node] = float(args.get("factor", 20.0))
                duration = float(args.get("duration", 5.0))
                self.env.timeout(duration).callbacks.append(lambda _e, n=node: net.slow.pop(n, None))
                detail = f"{node} x{net.slow[node]:g} for {duration:g}s"
        elif action == "leave":
            node = self._pick(args.get("node"))
            if node is not None and node in host.nodes:
                self.left.add(node)
                future = ScheduledFuture(host.scheduler)
                future.add_done_callback(lambda _f, n=node: self._exit(n))
                host.nodes[node].node.tell(Leave(_LeaveReply(future)))
                detail = node
        elif action == "skew":
            node = self._pick(args.get("node"))
            clock = host.clocks.get(node) if node else None
            if clock is not None:
                clock.offset = float(args.get("offset", clock.offset))
                clock.drift = float(args.get("drift", clock.drift))
                detail = f"{node} offset={clock.offset:g} drift={clock.drift:g}"
        description = f"t={self.env.now - self.t0:.2f}s {action} {detail}".rstrip()
        self.applied_faults.append(description)
        host.trace.append((self.env.now, "-", "fault", {"action": action, "detail": detail}))

    def _resume(self, node: str) -> None:
        if node in self.host.nodes:
            self.host.resume(node)

    def _exit(self, node: str) -> None:
        if node in self.host.nodes:
            self.host.crash(node)  # the process exits after its leave

    def _random_schedule(self) -> None:
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
            self._start(node_id)
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
        for node in self._live():
            self.host.resume(node)
        for node in list(self.crashed):
            self._start(node)
        self.crashed.clear()
        self.host.trace.append((self.env.now, "-", "heal-all", {}))
        healed_at = self.env.now
        drained_at = healed_at + s.workload.client_timeout  # every client request answered or given up
        deadline = healed_at + s.settle
        convergence = None
        final: dict[str, dict[str, Record | None]] = {}
        while True:
            self.host.run_for(SETTLE_POLL_S)
            final = self.snapshot()
            agree = _agree(final)
            if agree and convergence is None:
                convergence = round(self.env.now - healed_at, 3)
            elif not agree:
                convergence = None  # diverged again (a late write): converging is measured anew
            if (agree and self.env.now >= drained_at) or self.env.now >= deadline:
                break
        ctx = CheckContext(
            history=self.history,
            final=final,
            replicas=min(s.replicas, len(self._live())),
            write_default=self.expect_consistency[0],
            read_default=self.expect_consistency[1],
            skew_bound=self.skew_bound,
            converged=convergence is not None,
            convergence_s=convergence,
        )
        violations = run_checkers(ctx, self.checkers)
        trace = self.host.trace
        digest = hashlib.sha256("\n".join(trace_lines(trace)).encode()).hexdigest()
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
        )
        return result

    def snapshot(self) -> dict[str, dict[str, Record | None]]:
        """Every owner's own record of every key the workload touched (no coordination)."""
        keys = sorted({op.key for op in self.history.ops})
        live = self._live()
        if not keys or not live:
            return {}
        locator = live[0]
        owners = {reply.key: reply.owners for reply in self.host.request([Locate(k) for k in keys], node_id=locator)}
        by_owner: dict[str, list[str]] = {}
        for key in keys:
            for owner in owners[key]:
                by_owner.setdefault(owner, []).append(key)
        final: dict[str, dict[str, Record | None]] = {key: {} for key in keys}
        for owner, owner_keys in sorted(by_owner.items()):
            if owner not in self.host.nodes:
                for key in owner_keys:
                    final[key][owner] = None
                continue
            for reply in self.host.request([Inspect(k) for k in owner_keys], node_id=owner):
                final[reply.key][owner] = reply.record
        return final

    def close(self) -> None:
        self.host.shutdown()


def _agree(final: dict[str, dict[str, Record | None]]) -> bool:
    return all(len({None if r is None else r.version for r in owners.values()}) <= 1 for owners in final.values())
