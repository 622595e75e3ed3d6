"""The real network of ``python -m sim.run SCENARIO --real``: one Linux network namespace
per node, joined by veth pairs to a bridge in a namespace of its own, with a scenario's
network faults as iptables rules inside the node namespaces.

Layout (``P`` is a per-run prefix, unique on the machine, so parallel runs never meet)::

    namespace Pb: bridge br0, 10.77.0.1/24   <- the run's clients (sim.real_clients) live here
       |-- veth Pb3 <-> veth Pn3 in namespace Pn3: node n3 at 10.77.0.13, port 7000
       `-- ...                                  (node i at 10.77.0.(10 + i))

Nothing is added to the namespace this process runs in: no address, route or rule, so
runs in parallel may use the same subnet, and deleting the run's namespaces removes all
of it (a namespace takes its veth ends and its iptables rules along; the veth's other
end goes with it). :meth:`RealNetwork.close` does that and is safe to call twice.

Faults, with the interface of :class:`sim.network.SimNetwork` that :mod:`sim.faults`
calls (``partition(*groups)``, ``cut_one_way(src, dst)``, ``heal()``):

- peer links are one-way (``runtime.peers``: src dials dst, dst never answers on that
  connection), so cutting src -> dst drops the TCP packets of connections src opens to
  dst's port, both ways (data at dst, answers at src); dst's own link to src still works.
  That is the simulator's one-way cut, message for message. A partition cuts both ways.
- loss on a link (``Link.loss``) is a random-drop rule on the same packets
  (``-m statistic --mode random --probability p``). TCP retransmits what a rule drops,
  so a lost packet is a late message, not a lost one (the simulator loses the message).
- every change rewrites the affected namespaces' ``filter`` table whole with one
  ``iptables-restore`` each (atomic: no moment with half a partition).
- client traffic (from the bridge's address) never matches a rule: as in the simulator,
  clients have their own path to a node, which faults do not touch.

Latency models, duplication and reordering need netem (``tc qdisc ... netem``), which the
kernel here lacks; :mod:`sim.real_runner` refuses scenarios that ask for them unless told
to ignore them. ``slow`` is kept as a dict for the interface and never read.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from collections.abc import Iterable, Sequence

__all__ = [
    "NODE_PORT",
    "WORKDIR_PREFIX",
    "RealNetwork",
    "RealNetworkError",
    "new_prefix",
    "run_namespaces",
    "sweep_stale",
]

#: A run's namespace names: ``ac<pid of its process, hex>x<run number, hex>`` + ``b`` or ``n<i>``.
_NAME = re.compile(r"^ac(?P<pid>[0-9a-f]+)x[0-9a-f]+(b|n\d+)$")

#: Every node listens on this port in its own namespace (a restart reuses it).
NODE_PORT = 7000
_SUBNET = "10.77.0"
_BRIDGE_IP = f"{_SUBNET}.1"


class RealNetworkError(RuntimeError):
    """A namespace, link or rule could not be made; the message has the command's error."""


def _run(*argv: str, stdin: str | None = None) -> None:
    done = subprocess.run(list(argv), input=stdin, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RealNetworkError(f"{' '.join(argv)}: {done.stderr.strip() or done.stdout.strip()}")


class RealNetwork:
    """Namespaces, links and drop rules of one real run (see the module docstring)."""

    def __init__(self, prefix: str, node_ids: Sequence[str]) -> None:
        if len(node_ids) > 200:
            raise RealNetworkError("at most 200 nodes")
        self.prefix = prefix
        self.node_ids = list(node_ids)
        self.bridge_ns = f"{prefix}b"
        #: Links cut (src, dst): src's messages to dst are dropped.
        self.cut: set[tuple[str, str]] = set()
        #: Drop probability per link (src, dst), and for every other link.
        self.loss: dict[tuple[str, str], float] = {}
        self.default_loss = 0.0
        #: :mod:`sim.faults` ``slow`` writes here; a real run cannot slow a link (no netem).
        self.slow: dict[str, float] = {}
        self.created: list[str] = []
        self._rules: dict[str, list[str]] = {}

    # --- layout ---------------------------------------------------------------------

    def ns(self, node: str) -> str:
        return f"{self.prefix}n{self.node_ids.index(node) + 1}"

    def ip(self, node: str) -> str:
        return f"{_SUBNET}.{10 + self.node_ids.index(node) + 1}"

    def address(self, node: str) -> str:
        return f"{self.ip(node)}:{NODE_PORT}"

    def exec_prefix(self, node: str) -> list[str]:
        """The command prefix that runs a program in ``node``'s namespace."""
        return ["ip", "netns", "exec", self.ns(node)]

    def setup(self) -> None:
        """Make the bridge namespace and one namespace per node, linked; loss rules in place."""
        p, br = self.prefix, self.bridge_ns
        self._add_ns(br)
        _run("ip", "-n", br, "link", "add", "br0", "type", "bridge")
        _run("ip", "-n", br, "addr", "add", f"{_BRIDGE_IP}/24", "dev", "br0")
        _run("ip", "-n", br, "link", "set", "br0", "up")
        _run("ip", "-n", br, "link", "set", "lo", "up")
        for i, node in enumerate(self.node_ids, start=1):
            ns, inner, outer = self.ns(node), f"{p}i{i}", f"{p}o{i}"
            self._add_ns(ns)
            # Both ends are made inside the bridge namespace, then one moves: nothing is
            # ever created in this process's own namespace.
            _run("ip", "-n", br, "link", "add", outer, "type", "veth", "peer", "name", inner)
            _run("ip", "-n", br, "link", "set", inner, "netns", ns)
            _run("ip", "-n", br, "link", "set", outer, "master", "br0")
            _run("ip", "-n", br, "link", "set", outer, "up")
            _run("ip", "-n", ns, "addr", "add", f"{self.ip(node)}/24", "dev", inner)
            _run("ip", "-n", ns, "link", "set", inner, "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        self._apply(self.node_ids)

    def _add_ns(self, name: str) -> None:
        _run("ip", "netns", "add", name)
        self.created.append(name)

    def close(self) -> list[str]:
        """Delete every namespace this run made (their links and rules go with them);
        the errors, if any (the caller reports them: nothing is left silently)."""
        errors = []
        for name in reversed(self.created):
            done = subprocess.run(["ip", "netns", "del", name], capture_output=True, text=True, timeout=30)
            if done.returncode != 0 and "No such file" not in done.stderr:
                errors.append(f"ip netns del {name}: {done.stderr.strip()}")
        self.created.clear()
        return errors

    # --- faults (sim.network.SimNetwork's interface) ----------------------------------

    def partition(self, *groups: Iterable[str]) -> None:
        """Cut every link between different groups (both directions)."""
        sets = [list(g) for g in groups]
        for i, a in enumerate(sets):
            for b in sets[i + 1 :]:
                for x in a:
                    for y in b:
                        self.cut.add((x, y))
                        self.cut.add((y, x))
        self._apply({n for g in sets for n in g})

    def cut_one_way(self, src: str, dst: str) -> None:
        self.cut.add((src, dst))
        self._apply((src, dst))

    def heal(self) -> None:
        """Every cut is healed; loss rules stay (they are the links' own)."""
        touched = {n for pair in self.cut for n in pair}
        self.cut.clear()
        self._apply(touched)

    # --- rules ------------------------------------------------------------------------

    def rules(self, node: str) -> list[str]:
        """``node``'s INPUT rules: drops of the cut and lossy links that touch it."""
        port = str(NODE_PORT)
        out = []
        for other in self.node_ids:
            if other == node:
                continue
            # other -> node: node drops the data of other's link to it.
            inbound = ["-s", self.ip(other), "-p", "tcp", "--dport", port]
            # node -> other: node drops the answers on its own link to other.
            outbound = ["-s", self.ip(other), "-p", "tcp", "--sport", port]
            for (src, dst), match in (((other, node), inbound), ((node, other), outbound)):
                if (src, dst) in self.cut:
                    out.append(" ".join(["-A", "INPUT", *match, "-j", "DROP"]))
                else:
                    p = self.loss.get((src, dst), self.default_loss)
                    if p > 0:
                        stat = ["-m", "statistic", "--mode", "random", "--probability", f"{p:.6f}"]
                        out.append(" ".join(["-A", "INPUT", *match, *stat, "-j", "DROP"]))
        return out

    def _apply(self, nodes: Iterable[str]) -> None:
        for node in sorted(set(nodes)):
            if node not in self.node_ids:
                continue
            rules = self.rules(node)
            if self._rules.get(node, []) == rules:
                continue
            table = "\n".join(
                ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", *rules, "COMMIT", ""]
            )
            _run(*self.exec_prefix(node), "iptables-restore", stdin=table)
            self._rules[node] = rules


_RUNS = itertools.count(1)


def new_prefix() -> str:
    """A run's name prefix, unique on this machine while its process lives: ``ac``, this
    process's pid and the run's number in it (hex, ``x`` between): at most 11 characters,
    so ``<prefix>o<i>`` fits an interface name (15) up to 99 nodes."""
    return f"ac{os.getpid():x}x{next(_RUNS):x}"


def run_namespaces() -> list[str]:
    """The namespaces of real runs on this machine (any process's), by name."""
    done = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30)
    names = [line.split()[0] for line in done.stdout.splitlines() if line.strip()]
    return [n for n in names if _NAME.match(n)]


#: A run's work directory (node logs, traces, secrets): ``actorcache-real-<prefix>-*``.
WORKDIR_PREFIX = "actorcache-real-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale() -> list[str]:
    """Delete the namespaces (and kill the processes in them) and the work directories of
    runs whose process is gone: one killed with SIGKILL cannot clean up after itself.
    Runs of live processes (parallel test workers) are left alone. Returns what it deleted."""
    deleted = []
    for path in Path(tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}ac*"):
        m = re.match(rf"^{WORKDIR_PREFIX}ac(?P<pid>[0-9a-f]+)x", path.name)
        if m is not None and not _alive(int(m.group("pid"), 16)):
            shutil.rmtree(path, ignore_errors=True)
            deleted.append(str(path))
    for name in run_namespaces():
        m = _NAME.match(name)
        assert m is not None
        if _alive(int(m.group("pid"), 16)):
            continue  # its run is alive
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, timeout=30).stdout.split()
        for p in pids:
            try:
                os.kill(int(p), 9)
            except (ProcessLookupError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
        deleted.append(name)
    return deleted
