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
from actors.persist.aof import log_gen
from actors.persist.blocks import AOF_MAGIC
from actors.persist.manager import SNAPSHOT
from actors.protocol.internal import Leave
from actors.protocol.peer_messages import Gossip, Member, MemberStatus, ReplicaRequest, SyncRequest
from actors.protocol.replica_ops import Write
from actors.protocol.version import MAX_WALL_MS, Version

if TYPE_CHECKING:
    from sim.network import SimNetwork
    from sim.runner import Runner

__all__ = [
    "PARTITIONS",
    "corrupt",
    "crash",
    "disk_full",
    "heal",
    "leave",
    "node_list",
    "partition",
    "partition_kind",
    "pause",
    "random_schedule",
    "restart",
    "skew",
    "slow",
    "slow_fsync",
    "stranger",
]

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
    if "from" in args:  # explicit: every link from each ``from`` node to each ``to`` node
        sources, targets = node_list(args["from"]), node_list(args["to"])
        for src in sources:
            for dst in targets:
                net.cut_one_way(src, dst)
        return f"{sources} -> {targets} cut"
    src, dst = args.get("nodes") or live[:2]
    net.cut_one_way(src, dst)
    return f"{src} -> {dst} cut"


def _groups(run: Runner, net: SimNetwork, live: list[str], args: Args) -> str:
    """Explicit groups, as the scenario lists them (running or not: a node that starts
    later is cut the same way). A node in no group keeps every link."""
    groups = [node_list(g) for g in args["groups"]]
    net.partition(*groups)
    return " | ".join(str(g) for g in groups)


#: Partition kinds: each cuts the running nodes (shuffled by the fault RNG) its own way.
PARTITIONS: dict[str, Callable[[Runner, SimNetwork, list[str], Args], str]] = {
    "halves": _halves,
    "isolate": _isolate,
    "majority": _majority,
    "bridge": _bridge,
    "one-way": _one_way,
    "groups": _groups,
}


def partition_kind(args: Args) -> str:
    """A partition's kind: as named, else implied by its arguments (``groups``: groups;
    ``from``/``to``: one-way), else ``halves``."""
    if "kind" in args:
        return str(args["kind"])
    if "groups" in args:
        return "groups"
    return "one-way" if "from" in args or "to" in args else "halves"


def node_list(value: Any) -> list[str]:
    """A fault's list of node ids (one id alone counts as a list of one)."""
    return [value] if isinstance(value, str) else list(value)


def partition(run: Runner, args: Args) -> str:
    live = run.live()
    run.rng.shuffle(live)
    return PARTITIONS[partition_kind(args)](run, run.host.network, live, args)


# --- the other actions -----------------------------------------------------------------------


def heal(run: Runner, args: Args) -> str:
    run.host.network.heal()
    return ""


def crash(run: Runner, args: Args) -> str:
    """``disk``: what the node's disk keeps (:data:`sim.disk.CRASH_MODES`; default ``keep``,
    a killed process). A power loss (any other mode) is recorded for the checkers: the
    writes the node's ``appendfsync`` policy may lose were at risk (:meth:`Runner.disk_risk`)."""
    node = run.pick(args.get("node"))
    if node is None or node not in run.host.nodes:
        return ""
    mode = str(args.get("disk", "keep"))
    run.host.crash(node, mode)
    run.crashed.append(node)
    if mode != "keep" and node in run.host.disks:
        run.disk_risk(run.fsync_window())
        return f"{node} disk={mode}"
    return node


def corrupt(run: Runner, args: Args) -> str:
    """Flip a bit of a node's ``file``: ``snapshot`` (dump.acs) or ``log``, its newest
    append-only log, in its ``block``: ``last`` (the default: a damaged last block is taken
    for a torn write) or ``inner`` (a data block with another after it). Found at the next
    load: the snapshot is moved aside, a last block cut; every write acknowledged before
    now may be lost with it (recorded for the checkers), never served damaged. An inner
    block stops the load (``LogCorrupt``): the node refuses to start and exits
    (:mod:`sim.host`), leaving the file as it is; nothing is at risk, nothing is lost, the
    node is down."""
    node = run.pick(args.get("node"))
    disk = run.host.disks.get(node) if node else None
    if disk is None:
        return ""
    which = str(args.get("file", "snapshot"))
    block = str(args.get("block", "last"))
    end = None
    if which == "snapshot":
        name, start = SNAPSHOT, len(AOF_MAGIC)  # past the magic (both are 8 bytes)
    else:
        logs = sorted((g, n) for n in disk.names() if (g := log_gen(n)) is not None)
        if not logs:
            return ""
        name = logs[-1][1]
        blocks = _blocks(disk.read(name) or b"")
        if block == "inner":
            if len(blocks) < 3:  # the header, a data block, and one after it
                return ""
            start, end = run.rng.choice(blocks[1:-1])
        else:
            start = blocks[-1][0]
        start += 10  # its payload, past the block header
    offset = disk.corrupt(name, start, end)
    if offset is None:
        return ""
    if block != "inner" or which == "snapshot":
        run.disk_risk(float("inf"))
    return f"{node} {name} at byte {offset}"


def _blocks(data: bytes) -> list[tuple[int, int]]:
    """``(offset, end)`` of each whole block of a log, in order (a block's header: 10
    bytes, the payload's length at +2; :mod:`actors.persist.blocks`)."""
    out = []
    offset = len(AOF_MAGIC)
    while offset + 10 <= len(data):
        end = offset + 10 + int.from_bytes(data[offset + 2 : offset + 6], "little")
        if end > len(data):
            break
        out.append((offset, end))
        offset = end
    return out or [(len(AOF_MAGIC), len(AOF_MAGIC))]


def slow_fsync(run: Runner, args: Args) -> str:
    """Every fsync of ``node``'s disk takes ``delay`` seconds for ``duration`` seconds: a
    blocking one keeps the node's server busy, a background one finishes that late."""
    node = run.pick(args.get("node"))
    disk = run.host.disks.get(node) if node else None
    if disk is None:
        return ""
    disk.fsync_delay = float(args.get("delay", 0.05))
    duration = float(args.get("duration", 5.0))
    run.extra_fsync_s = max(run.extra_fsync_s, disk.fsync_delay)

    def end(_e: Any, d: Any = disk) -> None:
        d.fsync_delay = 0.0

    run.env.timeout(duration).callbacks.append(end)
    return f"{node} fsync {disk.fsync_delay:g}s for {duration:g}s"


def disk_full(run: Runner, args: Args) -> str:
    """``node``'s disk refuses appends (``ENOSPC``) for ``duration`` seconds (a restart
    clears it too: space was freed). A failed snapshot is reported and retried; a log
    that cannot be written stops the node's store, answering nothing it could not log."""
    node = run.pick(args.get("node"))
    disk = run.host.disks.get(node) if node else None
    if disk is None:
        return ""
    disk.full = True
    duration = float(args.get("duration", 5.0))

    def end(_e: Any, d: Any = disk) -> None:
        d.full = False

    run.env.timeout(duration).callbacks.append(end)
    return f"{node} for {duration:g}s"


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


# --- a stranger -------------------------------------------------------------------------------

#: A forged version far in the future (year ~2100): were a forged write applied, it would win.
_FORGED_WALL_MS = 4_102_444_800_000


def _stranger_round(run: Runner, name: str, round_no: int) -> None:
    """One round of a stranger's attempts against every running member: join (its own
    row) and take over a member's identity (gossip), write keys the workload uses (replica
    writes stamped far in the future) and ask for every key (a sync request with no digests)."""
    net = run.host.network
    live = run.live()
    if not live:
        return
    victim = live[round_no % len(live)]
    rows = (
        Member(name, name, 1, MemberStatus.READY),
        # "victim lives at my address now", at the highest incarnation a peer frame may carry
        # (one more and the receiver's decoder refuses the frame: the forgery must be one a
        # real node would read)
        Member(victim, name, MAX_WALL_MS - 1, MemberStatus.READY),
    )
    for i, member in enumerate(live):
        key = f"k{(round_no + i) % max(1, min(run.scenario.workload.keys, 8))}"
        value = f"{name}-forged-{round_no}-{i}"
        run.stranger_keys.add(key)
        run.forged_values.add(value)
        version = Version(_FORGED_WALL_MS + round_no, 0, name)
        net.send(name, member, Gossip(rows, reply=True))
        net.send(name, member, ReplicaRequest(round_no * 1000 + i, (Write(((key, value, None),), version, (member,)),)))
        net.send(name, member, SyncRequest(round_no, ()))


def stranger(run: Runner, args: Args) -> str:
    """A node that does not hold the cluster secret tries, every ``interval`` seconds for
    ``duration``, to join, gossip a forged member row, write and list keys, at every member.
    It is no process of the cluster, only a sender on the network (its id ``name``) with a
    secret of its own that answers every challenge with a forged proof: each handshake it
    starts is refused (``peer-refused``), so nothing it sends is delivered. The
    ``strangers`` checker shows it never became a member and nothing it sent was applied
    (``holds_secret``: it holds the cluster secret after all, which the checker must catch)."""
    name = str(args.get("name", "stranger"))
    if name in run.host.nodes or name in run.scenario.node_ids:
        return ""
    net = run.host.network
    secret = run.rng.randbytes(32)
    # ``holds_secret``: a weakened run for the checker's own test (a peer with the secret gets in)
    net.secrets[name] = net.secret if args.get("holds_secret") else secret
    net.rogues.add(name)
    run.strangers.add(name)
    if run.stranger_deliveries is None:
        run.stranger_deliveries = 0
        hook = net.on_deliver

        def count(src: str, dst: str, msg: Any) -> None:
            if src in run.strangers or dst in run.strangers:
                run.stranger_deliveries = (run.stranger_deliveries or 0) + 1
            if hook is not None:
                hook(src, dst, msg)

        net.on_deliver = count
    duration = float(args.get("duration", 5.0))
    interval = float(args.get("interval", 0.5))
    rounds = max(1, int(duration / interval))
    for n in range(rounds):
        run.env.timeout(n * interval).callbacks.append(lambda _e, n=n: _stranger_round(run, name, n))
    return f"{name} for {duration:g}s"
