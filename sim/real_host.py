"""The real nodes of ``python -m sim.run SCENARIO --real``: ``python -m runtime.node``
processes, each in its namespace of :class:`sim.real_net.RealNetwork`, driven with the
calls :mod:`sim.faults` makes on the simulator's host (``nodes``, ``crash``, ``pause``,
``resume``, ``clocks``, ``network``, ``trace``), and a wall-clock stand-in for the SimPy
environment the faults schedule on (:class:`RealEnv`: ``now``, ``timeout(d).callbacks``).

What each fault is for real:

- crash = SIGKILL (memory lost; a SIGSTOPped node dies as well); restart = a new process
  with the same id, namespace, address and port;
- pause = SIGSTOP, resume = SIGCONT (the process keeps its sockets, as in the simulator);
- leave = SIGTERM: the node leaves gracefully (hands off, announces ``left``) and exits;
  it counts as running (in :attr:`RealHost.nodes`) until it has exited, as in the
  simulator, where a node runs until it says it has left;
- clocks: with a scenario clock offset/drift (or a ``skew`` fault) the node runs under
  libfaketime (``LD_PRELOAD``) reading its offset and drift from a file of its own
  (``FAKETIME_TIMESTAMP_FILE``, re-read at most every second), so a ``skew`` fault
  changes a running node's wall clock. Only the wall clock (``time.time``, which stamps
  versions, TTL deadlines and the heartbeats' clock check) is skewed: the monotonic clock
  stays the machine's (``FAKETIME_DONT_FAKE_MONOTONIC``), because it is the one timeline
  every node's trace is stamped with, and because libfaketime with a rate and a real
  monotonic clock breaks ``clock_nanosleep`` (EINVAL) while the node never sleeps that
  way. So drift skews wall time only; the simulator's drift also speeds a node's timers.

Every node writes its trace (``--trace``) to a file per life (``n1.1.jsonl``, then
``n1.2.jsonl`` after a restart), read back by :meth:`RealHost.traces`. :meth:`close`
kills and reaps every process; it is safe to call twice and on any failure.
"""

from __future__ import annotations

import heapq
import itertools
import os
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from runtime.local_cluster import NodeProcess
from sim.real_net import NODE_PORT, RealNetwork
from sim.traces import TraceEvent, load_trace

__all__ = ["FAKETIME_LIB", "FaketimeClock", "RealEnv", "RealHost", "faketime_lib"]

#: Where Debian's ``faketime`` package puts the library (first that exists wins).
FAKETIME_LIB = (
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
)


def faketime_lib() -> str | None:
    return next((p for p in FAKETIME_LIB if os.path.exists(p)), None)


class _Timer:
    """What :meth:`RealEnv.timeout` returns: callbacks run when it is due."""

    __slots__ = ("callbacks",)

    def __init__(self) -> None:
        self.callbacks: list[Callable[[Any], None]] = []


class RealEnv:
    """Wall-clock time for the fault functions: ``now`` (seconds since the run began, on
    the monotonic clock the nodes' traces use) and ``timeout(delay).callbacks``, run on
    the caller's thread by :meth:`run_until`."""

    def __init__(self) -> None:
        #: ``time.monotonic()`` at the run's time 0: traces are shifted by it.
        self.base = time.monotonic()
        self.steps = 0
        self._heap: list[tuple[float, int, _Timer]] = []
        self._seq = itertools.count()

    @property
    def now(self) -> float:
        return time.monotonic() - self.base

    def timeout(self, delay: float) -> _Timer:
        timer = _Timer()
        heapq.heappush(self._heap, (self.now + max(0.0, delay), next(self._seq), timer))
        return timer

    def run_until(self, t: float) -> None:
        """Sleep until run time ``t``, running every timer as it comes due."""
        while True:
            while self._heap and self._heap[0][0] <= self.now:
                _, _, timer = heapq.heappop(self._heap)
                self.steps += 1
                for callback in timer.callbacks:
                    callback(timer)
            now = self.now
            if now >= t:
                return
            due = self._heap[0][0] if self._heap else t
            time.sleep(max(0.0, min(due, t) - now, 0.0005) if due > now else 0.0)

    def run_for(self, seconds: float) -> None:
        self.run_until(self.now + seconds)


class FaketimeClock:
    """One node's clock skew, as :func:`sim.faults.skew` sets it (``offset``, ``drift``):
    written to the node's libfaketime file, which the running process re-reads."""

    def __init__(self, path: Path, offset: float = 0.0, drift: float = 0.0) -> None:
        self.path = path
        self._offset = offset
        self._drift = drift
        self._write()

    def _write(self) -> None:
        # libfaketime: "+0.04 x1.0001" is an offset in seconds and a clock rate.
        spec = f"{self._offset:+.6f}" + (f" x{1.0 + self._drift:.9f}" if self._drift else "")
        self.path.write_text(spec + "\n", encoding="ascii")

    @property
    def offset(self) -> float:
        return self._offset

    @offset.setter
    def offset(self, value: float) -> None:
        self._offset = value
        self._write()

    @property
    def drift(self) -> float:
        return self._drift

    @drift.setter
    def drift(self, value: float) -> None:
        self._drift = value
        self._write()

    def environ(self, lib: str) -> dict[str, str]:
        return {
            "LD_PRELOAD": lib,
            "FAKETIME_TIMESTAMP_FILE": str(self.path),
            "FAKETIME_CACHE_DURATION": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }


class RealHost:
    """The node processes of a real run (see the module docstring)."""

    def __init__(self, network: RealNetwork, workdir: Path, node_cwd: str | os.PathLike[str] | None = None) -> None:
        """``node_cwd``: the checkout the nodes run from (default this one), e.g. an older
        commit's, to play a scenario on another version's nodes."""
        self.network = network
        self.node_cwd = node_cwd
        self.env = RealEnv()
        self.workdir = workdir
        #: Driver events (start, fault, heal-all), on the run's time; merged with the nodes'.
        self.trace: list[TraceEvent] = []
        #: Node id -> its clock, for nodes that run under libfaketime.
        self.clocks: dict[str, FaketimeClock] = {}
        self.procs: dict[str, NodeProcess] = {}
        self.paused: set[str] = set()
        self._lives: dict[str, int] = {}
        self._trace_files: list[Path] = []
        self._dead: list[NodeProcess] = []

    @property
    def nodes(self) -> dict[str, NodeProcess]:
        """The running node processes (paused ones too; a leaving one until it exits)."""
        for node, proc in list(self.procs.items()):
            if not proc.running:
                self._retire(node)
        return dict(sorted(self.procs.items()))

    def _retire(self, node: str) -> None:
        proc = self.procs.pop(node)
        self.paused.discard(node)
        proc.kill()  # reaps, closes its pipes and log
        self._dead.append(proc)

    def set_clock(self, node: str, offset: float, drift: float) -> None:
        """Run ``node`` under libfaketime with this skew (from its next start on)."""
        self.clocks[node] = FaketimeClock(self.workdir / f"{node}.faketime", offset, drift)

    def start_node(
        self, node: str, contacts: Sequence[str], args: Sequence[str], *, start_timeout: float = 20.0
    ) -> NodeProcess:
        """Start ``node`` in its namespace, joining through ``contacts``, with ``args``.
        ``setpriv --pdeathsig KILL``: should this process die without cleaning up (SIGKILL),
        the kernel kills its nodes too (this is why nodes start from the run's main thread:
        the signal follows the thread that started the process)."""
        life = self._lives[node] = self._lives.get(node, 0) + 1
        trace = self.workdir / f"{node}.{life}.jsonl"
        self._trace_files.append(trace)
        prefix = [*self.network.exec_prefix(node), "setpriv", "--pdeathsig", "KILL"]
        clock = self.clocks.get(node)
        if clock is not None:
            lib = faketime_lib()
            assert lib is not None, "checked before the run"
            prefix += ["env", *(f"{k}={v}" for k, v in clock.environ(lib).items())]
        proc = NodeProcess(
            node,
            *[self.network.address(c) for c in contacts],
            *args,
            "--host", self.network.ip(node),
            "--trace", str(trace),
            port=NODE_PORT,
            prefix=prefix,
            **({"cwd": self.node_cwd} if self.node_cwd is not None else {}),
            log_path=self.workdir / f"{node}.log",
            stderr=None,
            start_timeout=start_timeout,
        )
        self.procs[node] = proc
        return proc

    def crash(self, node: str, disk: str = "keep") -> None:
        """SIGKILL: the process and its memory are gone. ``disk``: only ``keep`` (real
        nodes here have no data directory; :meth:`sim.real_runner.RealRunner._check`
        refuses scenarios with simulated disks before they start)."""
        if disk != "keep":
            raise ValueError(f"a real process cannot lose its disk's unsynced writes (crash disk={disk})")
        if node in self.procs:
            self.procs[node].kill()
            self._retire(node)

    def leave(self, node: str) -> None:
        """SIGTERM: a graceful leave; the process exits when it has left."""
        proc = self.procs.get(node)
        if proc is not None:
            if node in self.paused:
                self.resume(node)
            proc.signal(signal.SIGTERM)

    def pause(self, node: str) -> None:
        proc = self.procs.get(node)
        if proc is not None and node not in self.paused:
            proc.signal(signal.SIGSTOP)
            self.paused.add(node)

    def resume(self, node: str) -> None:
        proc = self.procs.get(node)
        if proc is not None and node in self.paused:
            proc.signal(signal.SIGCONT)
        self.paused.discard(node)

    def traces(self) -> list[TraceEvent]:
        """Every node's trace (all lives) and the driver's events, on the run's time."""
        files = [f for f in self._trace_files if f.exists()]
        base = self.env.base
        events = [(t - base, node, kind, fields) for t, node, kind, fields in load_trace(*files)]
        return sorted(events + self.trace, key=lambda e: e[0])

    def log_tail(self, node: str, lines: int = 20) -> str:
        path = self.workdir / f"{node}.log"
        if not path.exists():
            return ""
        return "".join(path.read_text(errors="replace").splitlines(keepends=True)[-lines:])

    def close(self) -> None:
        """Kill (SIGKILL, also a stopped process) and reap every process; idempotent."""
        for node in list(self.procs):
            self.procs[node].kill()
            self._retire(node)
        for proc in self._dead:
            proc.kill()
