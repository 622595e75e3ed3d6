"""Hosting any actor system's nodes on one SimPy environment, driven from the caller's thread.

:class:`SimHost` takes the system to host as its spawn function (see
:mod:`actors.kernel.driver`) and gives each node a ``Ctx`` on virtual time: a skewed clock
(:mod:`sim.clock`), a pausable scheduler (:mod:`sim.scheduler`) and a sender on the
simulated network (:mod:`sim.network`), whose faults (partition, loss, latency) it exposes
with its own: pause, resume, crash. The actors are the very classes the runtime runs.

One seed drives every source of randomness: each node's RNG is
``Random(f"{seed}/{node_id}")`` (``/{life}`` appended after a restart), the network's
``Random(f"{seed}/network")`` (string seeds hash with SHA-512, stable across processes
and ``PYTHONHASHSEED``). Same seed and same driver calls: the same trace.

Every simulated link runs the peer handshake (:mod:`sim.network`); the nodes share one
cluster secret, drawn from ``Random(f"{seed}/secret")`` unless the caller fixes it, and
the network's ``peer-auth`` / ``peer-refused`` events land in the trace. Pause, resume and
crash reach the network too: a crash closes the node's connections, a pause holds its
handshake steps. The handshake is the host's, not a system's: every system hosted here
(the cache, ``examples/counter``) gets it.

A node whose actor died exits, as the real process does (``runtime/node.py``: it looks
for a dead actor before it serves, then every 0.5 s, and exits with code 70 so that a
supervisor restarts it): a store that cannot load its log (corrupt before its last block)
or cannot write it (a full disk) stops, and a node without its store would leave every
request hanging. The host looks at the same moments (at once after the start, then every
:data:`EXIT_POLL_S` of virtual time), traces ``node-exit`` (the dead actor, the code),
crashes the node with its disk kept (a process exit, not a power loss) and tells
:attr:`SimHost.on_exit`. It stays down until something starts it again.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import simpy
from pykka import ActorRegistry

from actors.kernel import Ctx
from actors.kernel.driver import HostDriver, Spawn
from sim.clock import SkewedClock
from sim.disk import SimDisk
from sim.network import SimNetwork
from sim.scheduler import NodeScheduler, SimScheduler
from sim.serving import CostModel, ServedInbox, served_sender

__all__ = ["SimHost", "TraceEvent"]

TraceEvent = tuple[float, str, str, dict[str, Any]]

#: How often a node's process looks for an actor that died (runtime/node.py's main loop).
EXIT_POLL_S = 0.5
#: The exit code it then exits with (runtime.node.EXIT_ACTOR_DIED, EX_SOFTWARE).
EXIT_ACTOR_DIED = 70


class CountingEnvironment(simpy.Environment):
    """A SimPy environment that counts the events it processes (the speed figure)."""

    def __init__(self) -> None:
        super().__init__()
        self.steps = 0

    def step(self) -> None:
        self.steps += 1
        super().step()


class SimHost(HostDriver):
    """Nodes of the system ``spawn`` starts, on virtual time, with simulated faults."""

    def __init__(self, spawn: Spawn, seed: int | str = 0, secret: bytes | None = None) -> None:
        super().__init__(spawn)
        self.seed = seed
        self.env = CountingEnvironment()
        self.scheduler = SimScheduler(self.env)
        self.trace: list[TraceEvent] = []
        self.clocks: dict[str, SkewedClock] = {}
        if secret is None:
            secret = random.Random(f"{seed}/secret").randbytes(32)
        self.network = SimNetwork(self.env, random.Random(f"{seed}/network"), secret=secret)
        self.network.on_event = self._network_event
        self._lives: dict[str, int] = {}
        self.schedulers: dict[str, NodeScheduler] = {}
        #: Time that work takes (:mod:`sim.service`): None, every message is handled in zero
        #: time. Set it before starting nodes; each node draws its costs from
        #: ``Random(f"{seed}/service/{node_id}")`` (``/{life}`` after a restart).
        self.service: CostModel | None = None
        self.service_rngs: dict[str, random.Random] = {}
        #: Give every node a data directory (:class:`sim.disk.SimDisk`, its RNG
        #: ``Random(f"{seed}/disk/{node_id}")``) that outlives its crashes; set it before
        #: starting nodes. Off: nodes have no disk (``ctx.disk`` None), as before.
        self.with_disks = False
        self.disks: dict[str, SimDisk] = {}
        #: Called with a node's id after it exited because an actor of it died (see the
        #: module's docstring); the node is already down.
        self.on_exit: Callable[[str], None] | None = None

    def _record(self, _local_now: float, node_id: str, event: str, fields: dict[str, Any]) -> None:
        # Traces are stamped with virtual time (one timeline), not the node's skewed clock.
        self.trace.append((self.env.now, node_id, event, fields))

    def _network_event(self, node_id: str, event: str, fields: dict[str, Any]) -> None:
        self.trace.append((self.env.now, node_id, event, fields))

    def ctx(self, node_id: str, *, offset: float = 0.0, drift: float = 0.0) -> Ctx:
        clock = SkewedClock(self.env, offset, drift)
        self.clocks[node_id] = clock
        # A restarted node draws fresh randomness: its previous life's RNG state is gone.
        life = self._lives[node_id] = self._lives.get(node_id, -1) + 1
        suffix = f"/{life}" if life else ""
        scheduler = self.schedulers[node_id] = NodeScheduler(self.scheduler)
        send = self.network.sender(node_id)
        if self.service is not None:
            rng = self.service_rngs[node_id] = random.Random(f"{self.seed}/service/{node_id}{suffix}")
            send = served_sender(send, scheduler, self.service, rng)
        disk = None
        if self.with_disks:
            disk = self.disks.get(node_id)
            if disk is None:
                disk = self.disks[node_id] = SimDisk(lambda: self.env.now, random.Random(f"{self.seed}/disk/{node_id}"))
            disk.charge = scheduler.charge  # a blocking fsync keeps this life's server busy
        return Ctx(
            node_id,
            scheduler,
            now=clock.now,
            wall=clock.wall,
            rng=random.Random(f"{self.seed}/{node_id}{suffix}"),
            send=send,
            trace=self._record,
            disk=disk,
        )

    def start_node(self, node_id: str, config: Any = None, *, offset: float = 0.0, drift: float = 0.0) -> Any:
        """Spawn a node whose clock reads ``t * (1 + drift) + offset`` at virtual time ``t``;
        peers reach it through the network from now on. A crashed node's id may start again
        (a restart: fresh memory, fresh randomness)."""
        handle = self.spawn(self.ctx(node_id, offset=offset, drift=drift), config)
        self.nodes[node_id] = handle
        inbox = self.peer_inbox(handle)
        if self.service is not None:
            inbox = ServedInbox(inbox, self.schedulers[node_id], self.service, self.service_rngs[node_id])
        self.network.inboxes[node_id] = inbox
        self._watch(node_id, handle, 0.0)
        return handle

    def _watch(self, node_id: str, handle: Any, delay: float) -> None:
        """In ``delay`` seconds, exit ``node_id`` if an actor of this life of it died, else
        look again :data:`EXIT_POLL_S` later. At 0 it runs after the actors' first turns
        (due now, scheduled before it): the store has loaded the data directory by then."""

        def look(_event: Any) -> None:
            if self.nodes.get(node_id) is not handle:
                return  # this life ended already (crashed, left, shut down)
            dead = next((ref for ref in handle.actors() if not ref.is_alive()), None)
            if dead is None:
                self._watch(node_id, handle, EXIT_POLL_S)
                return
            self.trace.append((self.env.now, node_id, "node-exit", {"actor": dead.actor_urn, "code": EXIT_ACTOR_DIED}))
            self.crash(node_id, "keep")
            if self.on_exit is not None:
                self.on_exit(node_id)

        self.env.timeout(delay).callbacks.append(look)

    def pause(self, node_id: str) -> None:
        """Stall a node: nothing of it runs until :meth:`resume` (its clock keeps going)."""
        self.schedulers[node_id].pause()
        self.network.pause(node_id)

    def resume(self, node_id: str) -> None:
        self.schedulers[node_id].resume()
        self.network.resume(node_id)

    def crash(self, node_id: str, disk: str = "keep") -> None:
        """Kill a node: its actors stop and its memory is gone; messages to it are dropped.
        Its disk (with :attr:`with_disks`) keeps what ``disk`` says (:data:`sim.disk.CRASH_MODES`)."""
        self.schedulers[node_id].flush()  # what it wrote before it died still leaves
        handle = self.nodes.pop(node_id)
        self.network.inboxes.pop(node_id, None)
        self.network.drop_node(node_id)
        self.schedulers[node_id].discard()
        for ref in handle.actors():
            if ref.is_alive():
                ref.stop(block=False)
        self.run_until_idle()
        for ref in handle.actors():
            ActorRegistry.unregister(ref)
        if node_id in self.disks:
            lost = self.disks[node_id].crash(disk)
            self.trace.append((self.env.now, node_id, "disk-crash", {"mode": disk, "lost_bytes": lost}))

    # --- driving ------------------------------------------------------------------

    def now(self) -> float:
        return self.env.now

    def run_for(self, seconds: float) -> None:
        """Advance virtual time by ``seconds``, running everything due meanwhile."""
        self.env.run(until=self.env.now + seconds)

    def run_until_idle(self) -> None:
        """Run every event due now (not timers in the future)."""
        env = self.env
        now = env.now
        while env.peek() <= now:
            env.step()

    def shutdown(self) -> None:
        """Stop every node's actors and drop them from Pykka's process-global registry."""
        for handle in self.nodes.values():
            handle.stop()
        self.run_until_idle()
        self._forget_nodes()
