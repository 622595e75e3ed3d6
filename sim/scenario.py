"""Scenarios: a cluster, a network, a workload and a fault schedule, by name or from TOML.

A scenario is data; :mod:`sim.runner` plays it. Fault times are seconds after the
workload starts. Built-in scenarios are listed by ``python -m sim.run --list``;
``docs/simulation.md`` documents the TOML form with an example.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from actors.config import NodeConfig
from actors.protocol.consistency import CONSISTENCY_LEVELS
from sim import faults
from sim.disk import CRASH_MODES
from sim.network import LatencyModel, Link, constant, lognormal, uniform
from sim.service import ServiceModel, default_service
from sim.workload import WorkloadSpec

if TYPE_CHECKING:
    from sim.runner import Runner

__all__ = ["BUILTIN", "Fault", "Scenario", "ScenarioError", "load_scenario"]


@dataclass(frozen=True)
class FaultAction:
    """One fault action: the arguments it takes and what applies it to a run
    (:mod:`sim.faults`: ``(runner, args) -> detail``)."""

    args: tuple[str, ...]
    apply: Callable[[Runner, dict[str, Any]], str | None]


#: Every fault action a scenario may schedule; :meth:`sim.runner.Runner.apply` dispatches
#: through it and :meth:`Scenario.validate` checks faults against it.
FAULT_ACTIONS: dict[str, FaultAction] = {
    # kind: halves | isolate (node) | majority | bridge | one-way (nodes, or from/to lists) | groups
    "partition": FaultAction(("kind", "node", "nodes", "groups", "from", "to"), faults.partition),
    "heal": FaultAction((), faults.heal),
    # disk: keep (a killed process) | lose-unsynced | torn (a power loss), see sim/disk.py
    "crash": FaultAction(("node", "disk"), faults.crash),
    # on nodes with a disk (Scenario.disk): bit rot in file = snapshot | log (block = last |
    # inner: a torn-looking tail, or damage that stops the load), slow fsync, ENOSPC
    "corrupt": FaultAction(("node", "file", "block"), faults.corrupt),
    "slow-fsync": FaultAction(("node", "delay", "duration"), faults.slow_fsync),
    "disk-full": FaultAction(("node", "duration"), faults.disk_full),
    "restart": FaultAction(("node",), faults.restart),
    "pause": FaultAction(("node", "duration"), faults.pause),
    "slow": FaultAction(("node", "factor", "duration"), faults.slow),
    "join": FaultAction(("node",), faults.restart),
    "leave": FaultAction(("node",), faults.leave),
    "skew": FaultAction(("node", "offset", "drift"), faults.skew),
    # a sender without the cluster secret (its id: name) tries to join, gossip, write, sync
    "stranger": FaultAction(("name", "duration", "interval", "holds_secret"), faults.stranger),
    "random": FaultAction((), faults.random_schedule),  # a generated schedule (random-nemesis)
}
PARTITION_KINDS = tuple(faults.PARTITIONS)


class ScenarioError(ValueError):
    """A scenario name or file that cannot be run; the message says why."""


@dataclass(frozen=True)
class Fault:
    at: float
    action: str
    args: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        args = " ".join(f"{k}={v}" for k, v in sorted(self.args.items()))
        return f"t={self.at:g}s {self.action} {args}".rstrip()


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    nodes: int = 5
    replicas: int = 3
    write_consistency: str = "quorum"
    read_consistency: str = "one"
    link: Link = field(default_factory=lambda: Link(uniform(0.0002, 0.0015)))
    #: Per-link overrides: ``{("n1", "n2"): Link(...)}`` (one direction each).
    links: dict[tuple[str, str], Link] = field(default_factory=dict)
    #: Per-node clock ``(offset seconds, drift ratio)``.
    clocks: dict[str, tuple[float, float]] = field(default_factory=dict)
    workload: WorkloadSpec = field(default_factory=WorkloadSpec)
    faults: tuple[Fault, ...] = ()
    duration: float = 30.0
    #: Longest the heal-and-settle phase may take before convergence counts as violated.
    settle: float = 30.0
    #: Extra ``NodeConfig`` fields for every node (e.g. anti_entropy_interval_s).
    node: dict[str, Any] = field(default_factory=dict)
    #: Nodes present at the start (the rest join through faults); default: all.
    initial_nodes: int | None = None
    #: The cluster secret every node's peer handshake uses (default: one drawn from the seed).
    secret: str | None = None
    #: Nodes that hold another secret than the cluster's (misconfigured: refused both ways).
    secrets: dict[str, str] = field(default_factory=dict)
    #: Time that work takes (:mod:`sim.service`): each node's per-message costs, and the
    #: clients' link; default: measured on a real node (``sim/data/service_times.toml``).
    #: None: the old zero-time simulator (every message handled the instant it arrives).
    service: ServiceModel | None = field(default_factory=default_service)
    #: The clients' one-way link to their node; None: the service model's (zero without one).
    client_link: LatencyModel | None = None
    #: Every node has a data directory (:class:`sim.disk.SimDisk`) that outlives its
    #: crashes; ``node`` settings say what it holds (``appendonly``, ``appendfsync``, ``save``).
    disk: bool = False

    @property
    def client_latency(self) -> LatencyModel:
        """The clients' one-way link as the workload draws it."""
        if self.client_link is not None:
            return self.client_link
        return self.service.client_link if self.service is not None else constant(0.0)

    @property
    def node_ids(self) -> list[str]:
        return [f"n{i}" for i in range(1, self.nodes + 1)]

    @property
    def skew_bound(self) -> float:
        """Largest clock difference between two nodes over the run (offsets and drift)."""
        horizon = self.duration + self.settle + 10.0
        values = [0.0] + [off + drift * horizon for off, drift in self.clocks.values()]
        values += [off for off, _ in self.clocks.values()]
        values += [f.args.get("offset", 0.0) for f in self.faults if f.action == "skew"]
        return max(values) - min(values)

    def validate(self) -> None:
        if self.nodes < 1 or self.replicas < 1:
            raise ScenarioError("nodes and replicas must be at least 1")
        for level in (self.write_consistency, self.read_consistency):
            if level not in CONSISTENCY_LEVELS:
                raise ScenarioError(f"consistency must be one of {', '.join(CONSISTENCY_LEVELS)}, not {level!r}")
        if self.duration <= 0 or self.settle <= 0:
            raise ScenarioError("duration and settle must be positive")
        try:
            self.workload.validate()
        except ValueError as exc:
            raise ScenarioError(str(exc)) from None
        ids = set(self.node_ids)
        for fault in self.faults:
            if fault.action not in FAULT_ACTIONS:
                raise ScenarioError(f"unknown fault {fault.action!r}; known: {', '.join(FAULT_ACTIONS)}")
            takes = FAULT_ACTIONS[fault.action].args
            unknown = set(fault.args) - set(takes)
            if unknown:
                raise ScenarioError(f"fault {fault.action!r} takes {takes}, not {sorted(unknown)}")
            node = fault.args.get("node")
            if node is not None and node not in ("random", "crashed") and node not in ids:
                raise ScenarioError(f"fault {fault.describe()!r} names unknown node {node!r}")
            if fault.action == "partition":
                _check_partition(fault, ids)
            if fault.action in ("corrupt", "slow-fsync", "disk-full") and not self.disk:
                raise ScenarioError(f"fault {fault.describe()!r} needs nodes with a disk (disk = true)")
            if fault.args.get("disk", "keep") not in CRASH_MODES:
                raise ScenarioError(f"fault {fault.describe()!r}: disk must be one of {', '.join(CRASH_MODES)}")
            if fault.args.get("file", "snapshot") not in ("snapshot", "log"):
                raise ScenarioError(f"fault {fault.describe()!r}: file must be snapshot or log")
            if fault.args.get("block", "last") not in ("last", "inner"):
                raise ScenarioError(f"fault {fault.describe()!r}: block must be last or inner")
            if fault.at < 0:
                raise ScenarioError("fault times must be >= 0")
        unknown_nodes = {n for pair in self.links for n in pair} | set(self.clocks) | set(self.secrets)
        if unknown_nodes - ids:
            raise ScenarioError(f"unknown nodes in links/clocks/secrets: {sorted(unknown_nodes - ids)}")
        names = {f.name for f in dataclasses.fields(NodeConfig)}
        if set(self.node) - names:
            raise ScenarioError(f"unknown node settings {sorted(set(self.node) - names)}")


def _check_partition(fault: Fault, ids: set[str]) -> None:
    """A partition's kind, and the node lists of explicit ones: ``groups`` (at least two,
    none empty, no node in two) and one-way ``from``/``to`` (both given, disjoint)."""
    kind = faults.partition_kind(fault.args)
    if kind not in PARTITION_KINDS:
        raise ScenarioError(f"partition kind must be one of {', '.join(PARTITION_KINDS)}")
    where = f"fault {fault.describe()!r}"
    lists: list[list[str]] = []
    if kind == "groups":
        groups = fault.args.get("groups")
        if not isinstance(groups, (list, tuple)) or len(groups) < 2:
            raise ScenarioError(f"{where}: groups must list at least two groups of node ids")
        lists = [_node_list(g, where, "each group") for g in groups]
    elif "from" in fault.args or "to" in fault.args:
        if kind != "one-way" or "nodes" in fault.args:
            raise ScenarioError(f"{where}: from/to lists belong to a one-way partition (without nodes)")
        lists = [_node_list(fault.args.get(end), where, f"one-way {end!r}") for end in ("from", "to")]
    elif "groups" in fault.args:
        raise ScenarioError(f"{where}: groups belong to a partition of kind 'groups'")
    elif kind == "one-way" and "nodes" in fault.args:
        nodes = _node_list(fault.args["nodes"], where, "one-way nodes")
        if len(nodes) != 2:
            raise ScenarioError(f"{where}: one-way nodes must be [source, destination]")
        lists = [nodes[:1], nodes[1:]]
    seen: set[str] = set()
    for nodes in lists:
        unknown = sorted(set(nodes) - ids)
        if unknown:
            raise ScenarioError(f"{where} names unknown nodes {unknown}")
        overlap = sorted(seen & set(nodes) | {n for n in nodes if nodes.count(n) > 1})
        if overlap:
            raise ScenarioError(f"{where}: nodes {overlap} are listed twice: groups, and one-way from/to, must not overlap")
        seen.update(nodes)


def _node_list(value: Any, where: str, what: str) -> list[str]:
    nodes = faults.node_list(value) if isinstance(value, (str, list, tuple)) else None
    if not nodes or not all(isinstance(n, str) for n in nodes):
        raise ScenarioError(f"{where}: {what} must be a non-empty list of node ids")
    return nodes


# --- built-in scenarios ---------------------------------------------------------------------

_LAN = Link(lognormal(0.0005, 0.3, tail_p=0.01, tail_factor=8.0))


def _builtin() -> dict[str, Scenario]:
    scenarios = [
        Scenario(
            "partition-heal",
            "5 nodes, random halves cut apart for 30 s under load, then healed",
            link=_LAN,
            workload=WorkloadSpec(clients=10, ops=10_000, rate=180.0, keys=200),
            faults=(Fault(10.0, "partition", {"kind": "halves"}), Fault(40.0, "heal")),
            duration=60.0,
        ),
        Scenario(
            "crash-restart",
            "5 nodes; one crashes (memory lost) and restarts, then another",
            link=_LAN,
            workload=WorkloadSpec(clients=8, ops=4000, rate=120.0, keys=150),
            faults=(
                Fault(5.0, "crash", {"node": "random"}),
                Fault(12.0, "restart", {"node": "crashed"}),
                Fault(18.0, "crash", {"node": "random"}),
                Fault(24.0, "restart", {"node": "crashed"}),
            ),
            duration=35.0,
        ),
        Scenario(
            "lossy-network",
            "5 nodes on a WAN-like network: lognormal latency with a tail, 5% loss, 1% duplicates",
            link=Link(lognormal(0.02, 0.4, tail_p=0.02, tail_factor=5.0), loss=0.05, duplicate=0.01),
            workload=WorkloadSpec(clients=8, ops=3000, rate=100.0, keys=150, client_timeout=5.0),
            duration=30.0,
            node={"request_timeout_s": 2.0},
        ),
        Scenario(
            "clock-skew-ttl",
            "5 nodes whose clocks are up to 80 ms apart and drifting; half the writes carry TTLs; "
            "clients pipeline 4 requests",
            link=_LAN,
            clocks={"n1": (0.05, 0.0), "n2": (-0.03, 1e-4), "n3": (0.0, -1e-4), "n4": (0.02, 0.0), "n5": (-0.01, 5e-5)},
            workload=WorkloadSpec(
                clients=8, ops=3000, rate=120.0, keys=100, ttl_fraction=0.5, ttl_min=0.5, ttl_max=3.0, pipeline=4
            ),
            duration=25.0,
        ),
        Scenario(
            "clock-skew-beyond-bound",
            "5 nodes; n5's clock runs 2 s ahead, beyond the 0.5 s max clock skew: the others refuse its "
            "heartbeats (and it never joins their tables), it finds its clock off theirs and coordinates "
            "nothing, so its clients' writes fail unavailable instead of being acked and lost",
            link=_LAN,
            clocks={"n1": (0.05, 0.0), "n2": (-0.03, 1e-4), "n3": (0.0, -1e-4), "n4": (0.02, 0.0), "n5": (2.0, 0.0)},
            workload=WorkloadSpec(
                clients=8, ops=3000, rate=120.0, keys=100, ttl_fraction=0.3, ttl_min=0.5, ttl_max=3.0, pipeline=4
            ),
            duration=25.0,
        ),
        Scenario(
            "rolling-restart",
            "5 nodes restarted one after another (graceful leave, then rejoin) under load",
            link=_LAN,
            workload=WorkloadSpec(clients=8, ops=5000, rate=120.0, keys=150),
            faults=tuple(
                f
                for i, node in enumerate(["n1", "n2", "n3", "n4", "n5"])
                for f in (Fault(3.0 + 7.0 * i, "leave", {"node": node}), Fault(6.0 + 7.0 * i, "join", {"node": node}))
            ),
            duration=42.0,
        ),
        Scenario(
            "join-under-load",
            "4 nodes grow to 6 under load, then one leaves",
            nodes=6,
            initial_nodes=4,
            link=_LAN,
            workload=WorkloadSpec(clients=8, ops=4000, rate=120.0, keys=200),
            faults=(Fault(5.0, "join", {"node": "n5"}), Fault(12.0, "join", {"node": "n6"}), Fault(22.0, "leave", {"node": "n2"})),
            duration=35.0,
        ),
        Scenario(
            "leave-during-crash-restart",
            "5 nodes, quorum writes and quorum reads on a 15 ms network: n1 leaves gracefully and, half a "
            "second later, n2 (an owner that acknowledged writes) crashes, losing its memory, and restarts "
            "while the leave is still handing off; the restarted node must not serve reads until it holds "
            "every acknowledged write again",
            read_consistency="quorum",
            link=Link(lognormal(0.015, 0.3)),
            workload=WorkloadSpec(clients=8, ops=3000, rate=150.0, keys=600),
            faults=(
                Fault(10.0, "leave", {"node": "n1"}),
                Fault(10.5, "crash", {"node": "n2"}),
                Fault(13.0, "restart", {"node": "n2"}),
            ),
            duration=24.0,
            node={"stream_batch": 5},
        ),
        Scenario(
            "stranger",
            "5 nodes with a cluster secret; a stranger without it tries to join, take over members' "
            "identities, write keys and list them, through a partition and a restart",
            link=_LAN,
            workload=WorkloadSpec(clients=6, ops=2000, rate=100.0, keys=100),
            faults=(
                Fault(1.0, "stranger", {"duration": 12.0, "interval": 0.5}),
                Fault(4.0, "partition", {"kind": "isolate", "node": "n2"}),
                Fault(7.0, "heal"),
                Fault(9.0, "crash", {"node": "n3"}),
                Fault(11.0, "restart", {"node": "n3"}),
            ),
            duration=20.0,
        ),
        Scenario(
            "random-nemesis",
            "5 nodes under a random schedule of partitions, crashes, pauses and slow nodes; "
            "clients pipeline 4 requests",
            link=_LAN,
            workload=WorkloadSpec(clients=8, ops=4000, rate=100.0, keys=150, ttl_fraction=0.1, pipeline=4),
            faults=(Fault(0.0, "random", {}),),
            duration=40.0,
        ),
    ]
    return {s.name: s for s in scenarios}


BUILTIN = _builtin()


# --- TOML ---------------------------------------------------------------------------------


def _latency(obj: Any, where: str) -> LatencyModel:
    if not isinstance(obj, dict):
        raise ScenarioError(f"{where}.latency must be a table")
    kind = obj.get("kind", "constant")
    ms = 0.001
    try:
        if kind == "constant":
            return constant(float(obj["ms"]) * ms)
        if kind == "uniform":
            return uniform(float(obj["min_ms"]) * ms, float(obj["max_ms"]) * ms)
        if kind == "lognormal":
            return lognormal(
                float(obj["median_ms"]) * ms,
                float(obj.get("sigma", 0.5)),
                float(obj.get("tail_p", 0.0)),
                float(obj.get("tail_factor", 10.0)),
            )
    except KeyError as exc:
        raise ScenarioError(f"{where}.latency of kind {kind!r} needs {exc.args[0]!r}") from None
    raise ScenarioError(f"{where}.latency kind must be constant, uniform or lognormal, not {kind!r}")


def _link(obj: Any, where: str) -> Link:
    if not isinstance(obj, dict):
        raise ScenarioError(f"{where} must be a table")
    latency = _latency(obj["latency"], where) if "latency" in obj else Link().latency
    return Link(latency, float(obj.get("loss", 0.0)), float(obj.get("duplicate", 0.0)), bool(obj.get("reorder", False)))


def _service(value: Any) -> ServiceModel | None:
    """``service = "measured"`` (the default: ``sim/data/service_times.toml``), ``"none"``
    (zero-time handling), or the path of a TOML file in that file's form."""
    if value == "measured":
        return default_service()
    if value == "none":
        return None
    try:
        return ServiceModel.load(str(value))
    except (OSError, KeyError, ValueError) as exc:
        raise ScenarioError(f"service must be 'measured', 'none' or a service-time file: {exc}") from None


def scenario_from_dict(data: dict[str, Any], default_name: str = "file") -> Scenario:
    known = {
        "name", "description", "nodes", "initial_nodes", "replicas", "write_consistency", "read_consistency",
        "duration", "settle", "link", "links", "clocks", "workload", "faults", "node", "secret", "secrets",
        "service", "client_link", "disk",
    }
    unknown = set(data) - known
    if unknown:
        raise ScenarioError(f"unknown scenario keys {sorted(unknown)}; known: {', '.join(sorted(known))}")
    try:
        workload_fields = {f.name for f in dataclasses.fields(WorkloadSpec)}
        workload = data.get("workload", {})
        if set(workload) - workload_fields:
            raise ScenarioError(f"unknown workload keys {sorted(set(workload) - workload_fields)}")
        links = {}
        for entry in data.get("links", []):
            links[(entry["from"], entry["to"])] = _link(entry, "links")
        clocks = {node: (float(c.get("offset", 0.0)), float(c.get("drift", 0.0))) for node, c in data.get("clocks", {}).items()}
        faults = []
        for f in data.get("faults", []):
            f = dict(f)
            at = float(f.pop("at"))
            action = f.pop("action")
            faults.append(Fault(at, action, f))
        scenario = Scenario(
            name=str(data.get("name", default_name)),
            description=str(data.get("description", "")),
            nodes=int(data.get("nodes", 5)),
            initial_nodes=data.get("initial_nodes"),
            replicas=int(data.get("replicas", 3)),
            write_consistency=str(data.get("write_consistency", "quorum")),
            read_consistency=str(data.get("read_consistency", "one")),
            duration=float(data.get("duration", 30.0)),
            settle=float(data.get("settle", 30.0)),
            link=_link(data["link"], "link") if "link" in data else Scenario.__dataclass_fields__["link"].default_factory(),  # type: ignore[misc]
            links=links,
            clocks=clocks,
            workload=WorkloadSpec(**workload),
            faults=tuple(sorted(faults, key=lambda f: f.at)),
            node=dict(data.get("node", {})),
            secret=None if data.get("secret") is None else str(data["secret"]),
            secrets={str(n): str(v) for n, v in data.get("secrets", {}).items()},
            service=_service(data.get("service", "measured")),
            client_link=_latency(data["client_link"].get("latency"), "client_link") if "client_link" in data else None,
            disk=bool(data.get("disk", False)),
        )
    except ScenarioError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ScenarioError(f"bad scenario: {exc!r}") from None
    scenario.validate()
    return scenario


def load_scenario(name_or_path: str) -> Scenario:
    """A built-in scenario by name, or a TOML scenario file."""
    if name_or_path in BUILTIN:
        return BUILTIN[name_or_path]
    path = Path(name_or_path)
    if path.suffix != ".toml" or not path.exists():
        raise ScenarioError(
            f"unknown scenario {name_or_path!r}: not a built-in ({', '.join(BUILTIN)}) nor a .toml file"
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ScenarioError(f"cannot read {path}: {exc}") from None
    return scenario_from_dict(data, default_name=path.stem)
