"""What each fault action of a scenario does to a running simulation.

One function per action, ``(runner, args) -> detail``, applied by
:meth:`sim.runner.Runner.apply` through ``sim.scenario.FAULT_ACTIONS`` (the table that
also says which arguments each action takes); partitions likewise through
:data:`PARTITIONS`, one function per kind. A new fault is one function here and one row
there. ``detail`` is what the run's fault log and the ``fault`` trace event say
(``""`` when the action found nothing to do, e.g. crashing a node that is down); ``None``
means the action only scheduled other faults and is not logged itself.

Invariant: every random choice comes from ``runner.rng`` (``{seed}/faults``), in the same
order for the same schedule, so the same seed gives the same trace.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from actors.kernel import ScheduledFuture
from actors.protocol.internal import Leave

if TYPE_CHECKING:
    from sim.network import SimNetwork
    from sim.runner import Runner

__all__ = ["PARTITIONS", "crash", "heal", "leave", "partition", "pause", "random_schedule", "restart", "skew", "slow"]

Args = dict[str, Any]


# --- partitions ----------------------------------------------------------------------------


def _halves(run: Runner, net: SimNetwork, live: list[str], args: Args) -> str:
    half = len(live) // 2
    net.partition(live[:half], live[half:])
    return f"{sorted(live[:half])} | {sorted(live[half:])}"


def _isolate(run: Runner, net: SimNetwork, live: list[str], args: Args) -> str:
    node = run.pick(args.get("node"))
    net.partition([node], [n for n in live if n != node])
    return f"{node} isolated"


def _majority(run: Runner, net: SimNetwork, live: list[str], args: Args) -> str:
    minority = live[: (len(live) - 1) // 2]
    net.partition(minority, live[len(minority) :])
    return f"minority {sorted(minority)}"


def _bridge(run: Runner, net: SimNetwork, live: list[str], args: Args) -> str:
    bridge, rest = live[0], live[1:]
    half = len(rest) // 2
    net.partition(rest[:half], rest[half:])
    return f"{sorted(rest[:half])} | {sorted(rest[half:])} bridged by {bridge}"


def _one_way(run: Runner, net: SimNetwork, live: list[str], args: Args) -> str:
    src, dst = args.get("nodes") or live[:2]
    net.cut_one_way(src, dst)
    return f"{src} -> {dst} cut"


#: Partition kinds: each cuts the running nodes (shuffled by the fault RNG) its own way.
PARTITIONS: dict[str, Callable[[Runner, SimNetwork, list[str], Args], str]] = {
    "halves": _halves,
    "isolate": _isolate,
    "majority": _majority,
    "bridge": _bridge,
    "one-way": _one_way,
}


def partition(run: Runner, args: Args) -> str:
    live = run.live()
    run.rng.shuffle(live)
    return PARTITIONS[args.get("kind", "halves")](run, run.host.network, live, args)


# --- the other actions -----------------------------------------------------------------------


def heal(run: Runner, args: Args) -> str:
    run.host.network.heal()
    return ""


def crash(run: Runner, args: Args) -> str:
    node = run.pick(args.get("node"))
    if node is None or node not in run.host.nodes:
        return ""
    run.host.crash(node)
    run.crashed.append(node)
    return node


def restart(run: Runner, args: Args) -> str:
    """Also ``join``: start a node that is not running (crashed, left, or never started)."""
    node = run.pick(args.get("node"))
    if node is None or node in run.host.nodes:
        return ""
    if node in run.crashed:
        run.crashed.remove(node)
    run.left.discard(node)
    run.start(node)
    return node


def pause(run: Runner, args: Args) -> str:
    node = run.pick(args.get("node"))
    if node is None or node not in run.host.nodes:
        return ""
    run.host.pause(node)
    duration = float(args.get("duration", 3.0))
    run.env.timeout(duration).callbacks.append(lambda _e, n=node: run.resume(n))
    return f"{node} for {duration:g}s"


def slow(run: Runner, args: Args) -> str:
    node = run.pick(args.get("node"))
    if node is None:
        return ""
    net = run.host.network
    net.slow[node] = float(args.get("factor", 20.0))
    duration = float(args.get("duration", 5.0))
    run.env.timeout(duration).callbacks.append(lambda _e, n=node: net.slow.pop(n, None))
    return f"{node} x{net.slow[node]:g} for {duration:g}s"


class _LeaveReply:
    """The ``reply_to`` of a :class:`Leave`: resolves a future when the node has left."""

    def __init__(self, future: ScheduledFuture) -> None:
        self.future = future

    def tell(self, message: Any) -> None:
        self.future.set(message)


def leave(run: Runner, args: Args) -> str:
    """A graceful leave; the node's process exits once the node says it has left."""
    node = run.pick(args.get("node"))
    if node is None or node not in run.host.nodes:
        return ""
    run.left.add(node)
    future = ScheduledFuture(run.host.scheduler)
    future.add_done_callback(lambda _f, n=node: run.exit(n))
    run.host.nodes[node].node.tell(Leave(_LeaveReply(future)))
    return node


def skew(run: Runner, args: Args) -> str:
    node = run.pick(args.get("node"))
    clock = run.host.clocks.get(node) if node else None
    if clock is None:
        return ""
    clock.offset = float(args.get("offset", clock.offset))
    clock.drift = float(args.get("drift", clock.drift))
    return f"{node} offset={clock.offset:g} drift={clock.drift:g}"


def random_schedule(run: Runner, args: Args) -> None:
    """``random``: schedule a generated nemesis (random-nemesis); not logged itself."""
    run.schedule_random()
    return None
