"""Playing a scenario on real processes: ``python -m sim.run SCENARIO --real``.

The same scenario (name or TOML file), seed, summary, ``--json`` fields, checkers and exit
codes as the simulator's :class:`sim.runner.Runner`, with real parts in place of simulated
ones: ``python -m runtime.node`` processes (:mod:`sim.real_host`), each in a network
namespace of its own on a bridge (:mod:`sim.real_net`), and the workload's clients over
TCP (:mod:`sim.real_clients`). The run follows the simulator's phases: start the initial
nodes (and wait until each sees all of them ``ready``), run the workload and the fault
schedule for ``duration`` seconds of wall-clock time, heal everything (cuts, pauses,
crashed nodes restarted), poll every owner's copy until they agree and every client has
been answered or gave up (at most ``settle`` seconds), then check.

Faults go through :mod:`sim.faults`, the simulator's own functions: this runner offers the
attributes they use (``host`` with ``nodes``, ``crash``, ``pause``, ``resume``,
``clocks``, ``network``; ``env`` with ``now`` and ``timeout``; ``rng``, ``pick``,
``start``, ``crashed``, ``left``), so a partition kind or group added there works here.
Two actions reach into simulator internals and have their own real versions here:
``leave`` (SIGTERM) and ``slow`` (needs netem: skipped, see below). ``stranger`` has none.

What a real run cannot do, and what it does instead (also in ``docs/real_mode.md``):

- link latency models beyond a LAN, duplication, reordering and ``slow`` faults need
  netem, which this kernel lacks. Latency models whose median is at most
  :data:`LAN_MEDIAN_S` stand for a LAN, which the bridge is (its own latency is used, the
  summary says so); anything more is refused (:data:`EXIT_NEEDS_NETEM`) unless
  ``ignore_links`` (``--real-ignore-links``), and the summary then lists what was ignored;
- the run is not deterministic: the seed fixes the workload's and the faults' choices, not
  the timing, so ``trace_sha256`` differs between runs;
- the peer-message and handshake counts are not available (the node does not report its
  links' counters): ``messages`` is 0, ``peer_links`` counts only the handshake events a
  trace holds (none today), and the summary says so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actors.config import NodeConfig
from actors.protocol.messages import Stats
from actors.protocol.record import Record
from sim.checkers import CheckContext, run_checkers
from sim.history import History
from sim.latency import percentiles, replication_latencies
from sim.real_clients import ClientThread, RealWorkload, SnapshotError, exchange, snapshot
from sim.real_host import RealHost, faketime_lib
from sim.real_net import WORKDIR_PREFIX, RealNetwork, RealNetworkError, new_prefix, sweep_stale
from sim.runner import Runner, RunResult, settle
from sim.scenario import FAULT_ACTIONS, Fault, Scenario
from sim.traces import trace_lines

__all__ = [
    "EXIT_NEEDS_NETEM",
    "EXIT_NO_REAL_MODE",
    "LAN_MEDIAN_S",
    "NeedsNetemError",
    "RealModeError",
    "RealModeUnavailable",
    "RealRunResult",
    "RealRunner",
    "needs_netem",
    "real_mode_unavailable",
]

#: Exit code of ``--real`` for a scenario that needs netem (without ``--real-ignore-links``).
EXIT_NEEDS_NETEM = 4
#: Exit code of ``--real`` where it cannot run: not root, or no ``ip netns``/iptables.
EXIT_NO_REAL_MODE = 5
#: A latency model whose median is at most this stands for a LAN: the bridge is one.
LAN_MEDIAN_S = 0.002
#: How long the initial nodes may take to see each other ``ready`` before the workload starts.
READY_WAIT_S = 5.0

class RealModeError(Exception):
    """A scenario real mode cannot run as asked; ``exit_code`` is what ``sim.run`` returns."""

    exit_code = 2


class NeedsNetemError(RealModeError):
    exit_code = EXIT_NEEDS_NETEM


class RealModeUnavailable(RealModeError):
    exit_code = EXIT_NO_REAL_MODE


@dataclass
class RealRunResult(RunResult):
    """A :class:`~sim.runner.RunResult` of a real run: the same fields, plus ``mode`` and
    ``notes`` (what the run did differently from the scenario, for the summary)."""

    mode: str = "real"
    notes: list[str] = field(default_factory=list)


def real_mode_unavailable() -> str | None:
    """Why real mode cannot run on this machine, or None."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "real mode needs root (network namespaces and iptables rules)"
    for tool in ("ip", "iptables-restore", "setpriv"):
        if shutil.which(tool) is None:
            return f"real mode needs {tool} (Debian: iproute2, iptables)"
    return None


def _median(link: Any) -> float:
    m = link.latency
    return m.a if m.kind in ("constant", "lognormal") else (m.a + m.b) / 2


def needs_netem(scenario: Scenario) -> list[str]:
    """What in ``scenario`` only netem could do (empty: nothing)."""
    out = []
    for where, link in [("link", scenario.link)] + [(f"link {a}->{b}", l) for (a, b), l in sorted(scenario.links.items())]:
        if _median(link) > LAN_MEDIAN_S:
            out.append(f"{where} latency {link.latency.describe()}")
        if link.duplicate:
            out.append(f"{where} duplicates {link.duplicate:g}")
        if link.reorder:
            out.append(f"{where} reordering")
    out += [f"fault {f.describe()}" for f in scenario.faults if f.action == "slow"]
    return out


def _flag_args(scenario: Scenario) -> list[str]:
    """The node's command-line flags for the scenario's cluster settings."""
    fields = {f.name: f for f in dataclasses.fields(NodeConfig)}
    settings: dict[str, Any] = {
        "replicas": scenario.replicas,
        "write_consistency": scenario.write_consistency,
        "read_consistency": scenario.read_consistency,
        **scenario.node,
    }
    args = []
    for name, value in settings.items():
        meta = fields[name].metadata
        if "flag" not in meta:
            raise RealModeError(f"node setting {name!r} has no command-line flag: a real node cannot take it")
        scale = meta["scale"]
        args += [meta["flag"], f"{value * scale:g}" if scale != 1 else str(value)]
    return args


class RealRunner:
    """Plays a scenario on real processes (see the module docstring)."""

    def __init__(
        self,
        scenario: Scenario,
        seed: int,
        *,
        ignore_links: bool = False,
        checkers: list[str] | None = None,
        expect_consistency: tuple[str, str] | None = None,
        node_cwd: str | os.PathLike[str] | None = None,
    ) -> None:
        """``node_cwd``: the checkout whose ``runtime.node`` the nodes run (default: this one)."""
        scenario.validate()
        self.node_cwd = node_cwd
        self.scenario = scenario
        self.seed = seed
        self.ignore_links = ignore_links
        self.checkers = checkers
        self.expect_consistency = expect_consistency or (scenario.write_consistency, scenario.read_consistency)
        self.rng = random.Random(f"{seed}/faults")
        self.history = History()
        self.crashed: list[str] = []
        self.left: set[str] = set()
        self.applied_faults: list[str] = []
        self.notes: list[str] = []
        #: The run's merged trace (every node's and the driver's events), once it ended.
        self.trace: list[Any] = []
        self.strangers: set[str] = set()
        self.t0 = 0.0
        self.host: RealHost | None = None
        #: The fault schedule: the scenario's, with ``random`` drawn now (from the fault
        #: RNG, first, as the simulator draws it at the start), so it can be checked.
        self.planned: list[Fault] = []
        for fault in scenario.faults:
            if fault.action == "random":
                self.schedule_random()
            else:
                self.planned.append(fault)
        self._check()
        self.node_args = _flag_args(scenario) + ["--protected-mode", "no"]
        self.net: RealNetwork | None = None
        self.clients: ClientThread | None = None
        self.workdir: Path | None = None

    # --- what can run ----------------------------------------------------------------------

    def _check(self) -> None:
        s = self.scenario
        unsupported = sorted({f.action for f in s.faults if f.action == "stranger"})
        if unsupported:
            raise RealModeError(f"real mode cannot play the {', '.join(unsupported)} fault (no rogue peer process)")
        if s.disk:
            raise RealModeError(
                f"real mode cannot play {s.name}: its nodes have simulated disks (disk = true: power losses, "
                "torn writes, bit rot, slow fsync, a full disk); it plays them on the simulator only"
            )
        netem = needs_netem(s) + [f"fault {f.describe()}" for f in self.planned if f.action == "slow" and f not in s.faults]
        if netem and not self.ignore_links:
            raise NeedsNetemError(
                f"{s.name} needs netem, which this kernel lacks: {'; '.join(netem)}. "
                "Run it with --real-ignore-links to play it without them."
            )
        if netem:
            self.notes.append(f"IGNORED (no netem): {'; '.join(netem)}")
        self.notes.append(
            f"links: the bridge's own latency (scenario link latency {s.link.latency.describe()} not applied)"
        )
        if self._skewed() and faketime_lib() is None:
            raise RealModeUnavailable("the scenario skews clocks: real mode needs libfaketime (Debian: faketime)")
        why = real_mode_unavailable()
        if why is not None:
            raise RealModeUnavailable(why)

    def _skewed(self) -> list[str]:
        """Nodes whose clock the scenario skews (they run under libfaketime)."""
        s = self.scenario
        nodes = {n for n, (off, drift) in s.clocks.items() if off or drift}
        for f in s.faults:
            if f.action == "skew":
                node = f.args.get("node")
                nodes |= set(s.node_ids) if node in (None, "random", "crashed") else {node}
        return sorted(nodes)

    # --- the interface sim.faults uses --------------------------------------------------

    @property
    def env(self) -> Any:
        assert self.host is not None
        return self.host.env

    def live(self) -> list[str]:
        assert self.host is not None
        return sorted(self.host.nodes)

    pick = Runner.pick
    schedule_random = Runner.schedule_random

    def _schedule(self, t0: float, fault: Fault) -> None:
        """Before the run: plan ``fault``; during it: apply it at ``t0 + fault.at``."""
        if self.host is None:
            self.planned.append(fault)
            return

        def fire(_event: Any) -> None:
            self.apply(fault)

        self.env.timeout(max(0.0, t0 + fault.at - self.env.now)).callbacks.append(fire)
    resume = Runner.resume

    def start(self, node_id: str) -> None:
        assert self.host is not None
        contacts = [n for n in self.live() if n != node_id]
        self.host.start_node(node_id, contacts, self._node_args(node_id))
        self.host.trace.append((self.env.now, node_id, "start", {}))

    def _node_args(self, node: str) -> list[str]:
        assert self.workdir is not None
        secret = self.scenario.secrets.get(node, self.scenario.secret)
        data = secret.encode() if secret is not None else random.Random(f"{self.seed}/secret").randbytes(32)
        path = self.workdir / f"{node}.secret"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        return [*self.node_args, "--cluster-secret-file", str(path)]

    def apply(self, fault: Fault) -> None:
        """Apply ``fault`` now through its :mod:`sim.faults` function (or its real
        version, :data:`REAL_ACTIONS`) and log it, as :meth:`sim.runner.Runner.apply`."""
        action = REAL_ACTIONS.get(fault.action) or FAULT_ACTIONS[fault.action].apply
        detail = action(self, fault.args)  # type: ignore[arg-type]
        if detail is None:
            return
        description = f"t={self.env.now - self.t0:.2f}s {fault.action} {detail}".rstrip()
        self.applied_faults.append(description)
        assert self.host is not None
        self.host.trace.append((self.env.now, "-", "fault", {"action": fault.action, "detail": detail}))

    # --- the run ---------------------------------------------------------------------------

    def run(self) -> RealRunResult:
        """Play the scenario; everything it made is removed however it ends (also on
        Ctrl-C or SIGTERM, which end it with KeyboardInterrupt)."""
        restore = _sigterm_interrupts()
        try:
            return self._run()
        finally:
            self.close()
            restore()

    def _run(self) -> RealRunResult:
        wall0 = time.perf_counter()
        s = self.scenario
        sweep_stale()
        prefix = new_prefix()
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{WORKDIR_PREFIX}{prefix}-"))
        self.net = RealNetwork(prefix, s.node_ids)
        self.net.default_loss = s.link.loss
        self.net.loss = {pair: link.loss for pair, link in s.links.items()}
        self.host = RealHost(self.net, self.workdir, self.node_cwd)
        for node in self._skewed():
            offset, drift = s.clocks.get(node, (0.0, 0.0))
            self.host.set_clock(node, offset, drift)
        if self._skewed():
            self.notes.append(
                f"clocks: libfaketime skews the wall clock of {', '.join(self._skewed())} "
                "(monotonic clock and timers not skewed)"
            )
        try:
            self.net.setup()
        except RealNetworkError as exc:
            raise RealModeUnavailable(f"cannot build the network: {exc}") from None
        self.clients = ClientThread(self.net.bridge_ns)
        initial = s.node_ids[: s.initial_nodes or s.nodes]
        for node in initial:
            self.start(node)
        self._wait_ready(initial)
        self.t0 = self.env.now
        for fault in self.planned:
            self._schedule(self.t0, fault)
        workload = RealWorkload(
            self.clients, self.env, s.workload, random.Random(f"{self.seed}/workload"), self.history, self._addresses
        )
        workload.start()
        self.env.run_until(self.t0 + s.duration)
        workload.stop()
        self.net.heal()
        for node in self.live():
            self.host.resume(node)
        for node in list(self.crashed):
            self.start(node)
        self.crashed.clear()
        self.host.trace.append((self.env.now, "-", "heal-all", {}))
        healed_at = self.env.now
        drained_at = healed_at + s.workload.client_timeout
        deadline = healed_at + s.settle
        final, convergence = settle(self.env.run_for, lambda: self.env.now, self._try_snapshot, healed_at, drained_at, deadline)
        try:
            workload.wait(timeout=s.workload.client_timeout + 10.0)
        except TimeoutError:
            self.notes.append("a client was still waiting when the run ended (its operations count as indefinite)")
        ctx = CheckContext(
            history=self.history,
            final=final,
            replicas=min(s.replicas, len(self.live())),
            write_default=self.expect_consistency[0],
            read_default=self.expect_consistency[1],
            skew_bound=s.skew_bound,
            converged=convergence is not None,
            convergence_s=convergence,
        )
        violations = run_checkers(ctx, self.checkers)
        trace = self.trace = self.host.traces()
        digest = hashlib.sha256("\n".join(trace_lines(trace)).encode()).hexdigest()
        self.notes.append("peer messages and handshakes: not counted (a real node does not report its links' counters)")
        return RealRunResult(
            scenario=s.name,
            seed=self.seed,
            sim_time_s=round(self.env.now, 3),
            events=len(trace),
            trace_events=len(trace),
            messages=0,
            trace_sha256=digest,
            ops=self.history.counts(),
            violations=violations,
            replication_latency_ms=percentiles(replication_latencies(trace)),
            convergence_s=convergence,
            wall_s=round(time.perf_counter() - wall0, 3),
            faults=self.applied_faults,
            peer_links={
                "handshakes": sum(1 for e in trace if e[2] == "peer-auth"),
                "refused": sum(1 for e in trace if e[2] == "peer-refused"),
            },
            notes=self.notes,
        )

    def _addresses(self) -> dict[str, str]:
        """The running nodes' addresses (called on the clients' thread: no process polls)."""
        assert self.host is not None and self.net is not None
        return {node: self.net.address(node) for node in tuple(self.host.procs)}

    def _try_snapshot(self) -> dict[str, dict[str, Record | None]] | None:
        """:meth:`_snapshot`, or None when a node did not answer (that poll does not agree)."""
        try:
            return self._snapshot()
        except (SnapshotError, OSError, TimeoutError):
            return None

    def _snapshot(self) -> dict[str, dict[str, Record | None]]:
        assert self.clients is not None
        keys = sorted({op.key for op in self.history.ops})
        addresses = {n: self.net.address(n) for n in self.live()} if self.net else {}
        return self.clients.call(snapshot(addresses, keys), timeout=30)

    def _wait_ready(self, nodes: list[str]) -> None:
        """Until every one of ``nodes`` sees all of them ``ready``, or at most
        :data:`READY_WAIT_S` (the simulator gives the cluster :data:`sim.runner.FORM_S`):
        a scenario may keep a node out on purpose (a clock beyond the skew bound), so a
        cluster not formed by then is noted, not refused."""
        assert self.clients is not None and self.net is not None and self.host is not None
        deadline = time.monotonic() + READY_WAIT_S
        pending = set(nodes)
        while pending:
            for node in sorted(pending):
                try:
                    (reply,) = self.clients.call(exchange(self.net.address(node), [Stats()], 2.0), timeout=5)
                    members = reply.stats["cluster"]["members"] if reply is not None else {}
                except (OSError, TimeoutError, KeyError, AttributeError):
                    members = {}
                if set(members) >= set(nodes) and all(members[n].get("status") == "ready" for n in nodes):
                    pending.discard(node)
            if pending and time.monotonic() > deadline:
                self.notes.append(f"cluster not formed after {READY_WAIT_S:g} s: {', '.join(sorted(pending))} "
                                  "did not see every node ready; the workload started anyway")
                return
            if pending:
                time.sleep(0.1)

    def close(self) -> None:
        """Stop every process, delete the namespaces and the work directory; idempotent.
        Ctrl-C is held off meanwhile, so a second one cannot leave half of it behind."""
        held = _hold_sigint()
        try:
            if self.clients is not None:
                self.clients.close()
                self.clients = None
            if self.host is not None:
                self.host.close()
            if self.net is not None:
                errors = self.net.close()
                if errors:
                    raise RealNetworkError("; ".join(errors))
            if self.workdir is not None:
                shutil.rmtree(self.workdir, ignore_errors=True)
                self.workdir = None
        finally:
            held()


# --- the real versions of two fault actions ---------------------------------------------------


def _leave(run: RealRunner, args: dict[str, Any]) -> str:
    """A graceful leave: SIGTERM; the node runs (and counts as running) until it exits."""
    assert run.host is not None
    node = run.pick(args.get("node"))
    if node is None or node not in run.host.nodes:
        return ""
    run.left.add(node)
    run.host.leave(node)
    return node


def _slow(run: RealRunner, args: dict[str, Any]) -> str:
    """``slow`` needs netem: only reached with ``ignore_links``, and does nothing."""
    return f"{args.get('node', 'random')} IGNORED (needs netem)"


#: Fault actions whose simulator version reaches into the simulator: their real version.
REAL_ACTIONS: dict[str, Any] = {"leave": _leave, "slow": _slow}


def _sigterm_interrupts() -> Any:
    """While a real run runs on the main thread, SIGTERM ends it as Ctrl-C does (so its
    cleanup runs); returns what restores the previous handler."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def interrupt(_sig: int, _frame: Any) -> None:
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, interrupt)
    return lambda: signal.signal(signal.SIGTERM, previous)


def _hold_sigint() -> Any:
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    term = signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def restore() -> None:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, term)

    return restore
