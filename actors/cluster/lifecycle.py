"""A node's life in the cluster: join, gossip, heartbeat, leave, remove-node, view changes.

A plain object the ``Node`` actor drives (through :class:`~actors.cluster.node_io.NodeIO`);
the membership table and its rules live in :mod:`actors.cluster.membership`, this module
decides when to gossip and what a view change sets off.

Theory of operation: every heartbeat the node gossips its table to every member (and,
until it has joined, to its contacts, asking for an answer). A node with contacts has
*joined* once gossip has been heard for :data:`JOIN_SETTLE_HEARTBEATS` heartbeats, or
after :data:`JOIN_GIVE_UP_HEARTBEATS` with no answer (it then starts a cluster of its
own). Until it has joined the replicator hears of no view (nothing is streamed against
a table still filling) and data requests are refused ``unavailable``. A leave marks the
node ``leaving``, lets the replicator hand its partitions off, and ends ``left`` when
the replicator says so or ``leave_timeout_s`` passes, whichever is first (once).

Every gossip is stamped with this node's wall clock and echoes the last stamp heard from
its receiver (:mod:`actors.cluster.clock_offsets`): a heartbeat stamped beyond
``max_clock_skew_s`` is refused (not merged, not a heartbeat, still answered), and while a
majority of the peers' clocks is off this node's beyond it, :attr:`Lifecycle.clock_off`
is set and the node coordinates no reads or writes. Only members and contacts vote on the
clock (:meth:`Lifecycle.clock_voters`): made-up node ids (links a holder of the cluster
secret may open by the dozen) are no voices, and their samples are not kept. What a
gossip may change in the table is :mod:`actors.cluster.membership`'s rule (a link speaks
for its own node only).
"""

from __future__ import annotations

import logging
from typing import Any

from pykka import ActorRef

from actors.cluster.clock_bound import RefusalLog
from actors.cluster.clock_offsets import ClockOffsets
from actors.cluster.membership import ClusterView, Membership, State
from actors.cluster.node_io import NodeIO
from actors.kernel.failures import log_failure
from actors.kernel.peer import FromPeer
from actors.protocol.errors import ErrorCode
from actors.protocol.messages import Ack, ErrorReply, RemoveNode, Reply
from actors.protocol.internal import Leave, LeaveDone, ViewChanged
from actors.protocol.peer_messages import Gossip, MemberStatus

__all__ = ["JOIN_GIVE_UP_HEARTBEATS", "JOIN_SETTLE_HEARTBEATS", "Lifecycle"]

logger = logging.getLogger("actorcache.node")

#: How long a joining node waits for gossip answers before it settles on what it knows.
JOIN_SETTLE_HEARTBEATS = 3
#: A node whose contacts never answer starts a cluster of its own after this many heartbeats.
JOIN_GIVE_UP_HEARTBEATS = 25
#: Most peers whose last heartbeat stamp is kept to echo back (peers are authenticated).
MAX_STAMPS = 1024


class Lifecycle:
    """This node's membership, view and join/leave state. ``config`` is the node's
    ``NodeConfig``; ``wall_ms`` its start time (its first incarnation)."""

    def __init__(self, io: NodeIO, config: Any, wall_ms: int) -> None:
        self.io = io
        self.config = config
        self.address = config.address or io.node_id
        self.membership = Membership(
            io.node_id,
            self.address,
            wall_ms,
            replicas=config.replicas,
            partitions=config.partitions,
            heartbeat_interval_s=config.heartbeat_interval_s,
            suspect_phi=config.suspect_phi,
            down_after_s=config.down_after_s,
            status=MemberStatus.WARMING if config.contacts else MemberStatus.READY,
            max_skew_s=config.max_clock_skew_s,
        )
        #: Peers' clocks as their heartbeats report them (actors.cluster.clock_offsets).
        self.offsets = ClockOffsets(config.max_clock_skew_s)
        #: How far this node's clock is off its members' median, while beyond the max
        #: clock skew (None: within it): the node then coordinates no reads or writes.
        self.clock_off: int | None = None
        self.heartbeats_refused = 0
        self.refusals = RefusalLog(logger, io.node_id)
        self._contacts = frozenset(config.contacts)
        #: Each configured contact's address -> the node id last heard from it (one voice
        #: per contact, even while its rows are refused: see clock_voters).
        self._contact_ids: dict[str, str] = {}
        #: Each peer's last stamp and when we heard it (our wall ms), echoed back to it.
        self._stamps: dict[str, tuple[int, int]] = {}
        self.view: ClusterView = self.membership.view
        self.joined = not config.contacts
        self.replicator: ActorRef[Any] | None = None
        self._first_heard: float | None = None
        self._heartbeats = 0
        self._leave: Leave | None = None

    @property
    def ready(self) -> bool:
        return self.membership.me.status == MemberStatus.READY

    def attach(self, replicator: ActorRef[Any]) -> None:
        self.replicator = replicator
        if self.joined:
            replicator.tell(ViewChanged(self.view))

    # --- gossip and heartbeats ----------------------------------------------------------

    def gossip(self) -> None:
        rows = self.membership.gossip_rows()
        partitions = self.config.partitions
        addresses = self.membership.peer_addresses()
        wall_ms = int(self.io.wall() * 1000)
        send = self.io.send
        stamps = self._stamps
        me = self.io.node_id
        for node_id, member in sorted(self.membership.table.items()):
            if node_id == me or member.status == MemberStatus.LEFT:
                continue
            stamp = stamps.get(node_id)  # echo its last stamp: it measures the round trip
            if stamp is None:
                send(member.addr, Gossip(rows, False, partitions, wall_ms))
            else:
                send(member.addr, Gossip(rows, False, partitions, wall_ms, stamp[0], max(0, wall_ms - stamp[1])))
        asking = [] if self.joined else list(self.config.contacts)
        # Members heard of only through others: their own answer admits them.
        asking += self.membership.introductions()
        self.membership.new_introductions.clear()
        for addr in sorted(set(asking)):
            if addr not in addresses and addr != self.address:
                send(addr, Gossip(rows, True, partitions, wall_ms))

    def on_heartbeat(self, now: float) -> None:
        """Check the failure detector and settle a join (the node gossips after its other
        heartbeat work: :meth:`gossip`)."""
        self._heartbeats += 1
        if self.membership.tick(now):
            self.view_changed()
        self._check_clock(now)
        if not self.joined:
            settled = (
                self._first_heard is not None
                and now - self._first_heard >= JOIN_SETTLE_HEARTBEATS * self.config.heartbeat_interval_s
            )
            if settled or self._heartbeats >= JOIN_GIVE_UP_HEARTBEATS:
                self.joined = True
                if self._first_heard is None:
                    logger.warning("no contact answered; %s starts a cluster of its own", self.io.node_id)
                self.io.trace("joined", members=len(self.view.members))
                if self.replicator is not None:
                    self.replicator.tell(ViewChanged(self.view))

    def on_gossip(self, env: FromPeer, msg: Gossip) -> None:
        partitions = self.config.partitions
        if msg.partitions != partitions:
            logger.error("%s gossips %d partitions, we have %d: ignored", env.src, msg.partitions, partitions)
            return
        now = self.io.now()
        wall_ms = int(self.io.wall() * 1000)
        membership = self.membership
        if env.addr in self._contacts:
            self._contact_ids[env.addr] = env.src
        refused = not self.offsets.heard(env.src, msg.wall_ms, wall_ms, now, msg.echo_ms, msg.held_ms)
        if msg.wall_ms and (env.src in self._stamps or len(self._stamps) < MAX_STAMPS):
            self._stamps[env.src] = (msg.wall_ms, wall_ms)
        if refused:
            # Stamped beyond the clock bound: not merged, not a heartbeat (but answered,
            # so a skewed sender learns from our stamps that its clock is off).
            self.heartbeats_refused += 1
            beyond_ms = msg.wall_ms - wall_ms - self.offsets.max_skew_ms
            self.io.trace("heartbeat_refused", peer=env.src, beyond_ms=beyond_ms)
            self.refusals.note(env.src, "heartbeat", 1, beyond_ms)
        if self._first_heard is None:  # heard (a contact answered), refused or not
            self._first_heard = now
        if refused:
            self._check_clock(now, env.src)
        else:
            if membership.on_gossip(env.src, msg.members, now, wall_ms):
                self.view_changed()
            if membership.new_introductions:  # ask them at once: their answer admits them
                rows = membership.gossip_rows()
                for addr in membership.new_introductions:
                    if addr != self.address:
                        self.io.send(addr, Gossip(rows, True, partitions, wall_ms))
                membership.new_introductions.clear()
            self._check_clock(now, env.src)
        if msg.reply:
            echo = (msg.wall_ms, 0) if msg.wall_ms else (0, 0)
            self.io.send(env.addr, Gossip(membership.gossip_rows(), False, partitions, wall_ms, *echo))

    def clock_voters(self) -> set[str]:
        """The peers whose clocks judge this node's: its members (not left), and the node
        heard from each configured contact's address that no member holds (a node behind
        the others refuses their heartbeats, so it never admits them as members, yet their
        stamps must fence it). A link naming any other node id is no voice: one holder of
        the cluster secret cannot fence a node by opening links as several made-up ids."""
        me = self.io.node_id
        table = self.membership.table
        voters = {node_id for node_id, m in table.items() if node_id != me and m.status != MemberStatus.LEFT}
        if self._contact_ids:
            held = {m.addr for m in table.values() if m.status != MemberStatus.LEFT}
            voters.update(
                node_id for addr, node_id in self._contact_ids.items() if addr not in held and node_id not in table
            )
        return voters

    def _check_clock(self, now: float, heard: str | None = None) -> None:
        """Is this node's clock off its voters' median beyond the bound? (Traced and
        logged when the verdict changes.) ``heard``: the peer just heard from, whose
        samples and stamp are dropped if it is no voter (they would only take memory)."""
        me = self.io.node_id
        voters = self.clock_voters()
        if heard is not None and heard not in voters:
            self.offsets.forget(heard)
            self._stamps.pop(heard, None)
        if self.offsets.offset_ms(now, voters=voters) is None:
            return  # no voter heard lately: no new evidence, the verdict stands (a fenced node
            # whose heartbeats everyone refuses hears nothing back, and stays fenced)
        off = self.offsets.off_by(now, voters=voters)
        if (off is None) != (self.clock_off is None):
            if off is None:
                logger.warning("%s: clock back within the max clock skew of its peers: coordinating again", me)
            else:
                logger.error(
                    "%s: clock %+d ms off its peers' (max clock skew %d ms): refusing to coordinate reads and writes",
                    me, off, self.offsets.max_skew_ms,
                )
            self.io.trace("clock_offset", off_ms=off, max_skew_ms=self.offsets.max_skew_ms)
        self.clock_off = off

    def view_changed(self) -> None:
        old = self.view
        view = self.view = self.membership.view
        changes = {
            m.node_id: f"{m.status}/{view.states.get(m.node_id)}"
            for m in view.members
            if old.status(m.node_id) != m.status or old.states.get(m.node_id) != view.states.get(m.node_id)
        }
        if changes:
            self.io.trace("view", changes=changes)
        if self.joined and self.replicator is not None:
            self.replicator.tell(ViewChanged(view))

    def warm_done(self, keys: int = 0) -> None:
        """The replicator pulled every partition this node owns (``keys`` keys): it may serve reads."""
        self.io.trace("warm", incarnation=self.membership.me.incarnation, keys=keys)
        if self.membership.me.status == MemberStatus.WARMING and self.membership.set_status(MemberStatus.READY):
            self.view_changed()

    # --- remove-node and leave ----------------------------------------------------------

    def remove_node(self, request: RemoveNode) -> Reply:
        node_id = request.node_id
        if node_id == self.io.node_id:
            return ErrorReply(ErrorCode.BAD_REQUEST, "a node cannot remove itself; stop it (SIGTERM) to leave", request.rid)
        if node_id not in self.membership.table:
            return ErrorReply(ErrorCode.BAD_REQUEST, f"no member {node_id!r}", request.rid)
        state = self.view.states.get(node_id)
        if state != State.DOWN:
            return ErrorReply(
                ErrorCode.BAD_REQUEST, f"{node_id} is {state}, not down: only a down node can be removed", request.rid
            )
        self.io.trace("remove_node", node=node_id)
        if self.membership.remove(node_id):
            self.view_changed()
            self.gossip()
        return Ack(request.rid)

    def start_leave(self, message: Leave) -> None:
        if self._leave is not None:
            return
        self._leave = message
        self.io.trace("leave", incarnation=self.membership.me.incarnation)
        if self.view.solo or self.replicator is None:
            self.finish_leave(0, True)
            return
        self.membership.set_status(MemberStatus.LEAVING)
        self.view_changed()
        self.gossip()
        self.io.set_timer(self.config.leave_timeout_s, lambda: self.finish_leave(0, False))

    def finish_leave(self, keys: int, complete: bool) -> None:
        leave = self._leave
        if leave is None or self.membership.me.status == MemberStatus.LEFT:
            return
        self.membership.set_status(MemberStatus.LEFT)
        self.view_changed()
        self.gossip()
        self.io.trace("left", keys=keys, complete=complete)
        try:
            leave.reply_to.tell(LeaveDone(keys, complete))
        except Exception as exc:
            log_failure(logger, f"{self.io.node_id} telling the leave reply target", exc)
