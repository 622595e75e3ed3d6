"""Cluster membership: a gossiped table of members plus this node's failure detection.

Sans-IO: :class:`Membership` is fed gossip and the current time and answers what to send
and whether the view changed; the ``Node`` actor does the sending and the timers.

Two kinds of state, kept apart on purpose:

- **what a member says about itself** (:class:`~actors.protocol.peer_messages.Member`: address,
  incarnation, ``warming``/``ready``/``leaving``/``left``), spread by gossip and merged
  by ``(incarnation, status rank)`` so every node converges on the same table;
- **what this node observes** (``alive``/``suspect``/``down``), from a phi-accrual
  detector per member fed by that member's own heartbeats (every gossip is one).
  Suspicion lasting ``down_after_s`` makes a member ``down``: coordinators then stop
  waiting for it and write hints instead.

Ownership follows the table, not the detector: a down member still owns its partitions
(strict quorums stay strict; hints and anti-entropy catch it up), and only a join or a
leave moves partitions. See :class:`ClusterView` for how warming and leaving members
take part in reads and writes.

Authority (``src`` is the sender as its link authenticated it): a link speaks for its
own node only. A gossiped row is merged only if

- it is about ``src`` itself (``src == row.node_id``): the only way a member is admitted,
  changes its address or gets a new incarnation (a restart, a refutation), and the only
  way a ``left`` member comes back;
- or it is about a known member, relayed by another, at the incarnation and address this
  node already has: a relay may only advance a status (``warming`` -> ``ready`` ->
  ``leaving`` -> ``left``, e.g. an operator's remove-node), never admit, readdress,
  re-incarnate or revive anyone;
- and its incarnation (the epoch ms a member started, +1 per refutation) is no further
  ahead than this node's wall clock + the max clock skew + :data:`REFUTATION_SLACK`.

A row about this node that is newer than its own is refuted (incarnation + 1) only
within that bound, so a forged ``2**64-1`` is never adopted. A relayed row about a member
this node does not know is not merged: its address becomes an *introduction*
(:meth:`Membership.introductions`), gossiped to (asking for an answer) until that member's
own gossip admits it, so a cluster still converges, one hop later. Rows refused are
counted (``refused``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from actors.cluster.failure_detector import PhiAccrual
from actors.protocol.consistency import required_acks
from actors.protocol.peer_messages import Member, MemberStatus
from actors.cluster.placement import Placement
from actors.store.partitions import partition_of

__all__ = ["MAX_INTRODUCTIONS", "REFUTATION_SLACK", "ClusterView", "Membership", "State"]

#: Incarnations a member may be ahead of its start time by refuting (one per refutation):
#: the bound on a gossiped incarnation is wall clock + max clock skew + this.
REFUTATION_SLACK = 1000
#: Most introductions (addresses of members heard of through others) kept at once.
MAX_INTRODUCTIONS = 64
#: Gossip rounds an introduction is tried before it is dropped.
INTRODUCTION_ROUNDS = 10
#: Heartbeat intervals a member heard of only through others stays *rumoured* after the
#: last relay that named it (see :attr:`ClusterView.rumoured`).
RUMOUR_HEARTBEATS = 10
#: Keys whose write plan a view remembers per consistency level (then it starts afresh):
#: a hashed key costs a dict lookup instead of a BLAKE2b (about 1.3 us) per write.
KEY_PLAN_CACHE = 1 << 15

#: A write's plan: ``(live, down, needed, owners)`` (see :meth:`ClusterView.write_plan`).
WritePlan = tuple[tuple[str, ...], tuple[str, ...], int, tuple[str, ...]]

_RANK = {MemberStatus.WARMING: 0, MemberStatus.READY: 1, MemberStatus.LEAVING: 2, MemberStatus.LEFT: 3}

#: The largest phi ``stats`` reports: far past any --suspect-phi, "certainly down".
PHI_REPORTED_MAX = 1000.0


class State:
    SELF = "self"
    ALIVE = "alive"
    SUSPECT = "suspect"
    DOWN = "down"
    LEFT = "left"


def _newer(a: Member, b: Member) -> bool:
    """Whether row ``a`` supersedes row ``b`` for the same node."""
    return (a.incarnation, _RANK[a.status]) > (b.incarnation, _RANK[b.status])


@dataclass(frozen=True)
class ClusterView:
    """An immutable snapshot of membership that coordinators and the replicator route by.

    - ``placement``: owners over every member that has not left (warming and leaving
      members included): the replicas a write must reach and a read may ask.
    - ``future``: owners once leaving members are gone; a write also goes to these
      "pending" owners, and needs one more ack per pending owner (Cassandra's rule), so
      a quorum still intersects after the leave completes.
    - warming members own partitions (they take writes) but serve no reads until they
      have pulled their partitions from peers.
    - ``rumoured``: members other members' gossip names but this node has not admitted
      (their own link has not spoken to it yet: a node that restarted while a co-owner
      is down or cut off). Placement here leaves them out, so this node's idea of the
      owners may be short of one: a warming node does not finish warming while any is
      rumoured (:mod:`~actors.cluster.streaming`).
    """

    self_id: str
    members: tuple[Member, ...]
    states: dict[str, str]
    placement: Placement
    future: Placement
    addresses: dict[str, str] = field(default_factory=dict)
    rumoured: tuple[str, ...] = ()
    _routes: dict[int, Any] = field(default_factory=dict, compare=False, repr=False)
    _plans: dict[tuple[int, str], WritePlan] = field(default_factory=dict, compare=False, repr=False)
    _key_plans: dict[str, dict[str, WritePlan]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def solo(self) -> bool:
        """Only this node holds data: requests need no peer."""
        return len(self.placement.members) <= 1 and len(self.future.members) <= 1

    def status(self, node_id: str) -> str:
        for member in self.members:
            if member.node_id == node_id:
                return member.status
        return MemberStatus.LEFT

    def reachable(self, node_id: str) -> bool:
        state = self.states.get(node_id)
        return state == State.SELF or state == State.ALIVE or state == State.SUSPECT

    def serves_reads(self, node_id: str) -> bool:
        return self.status(node_id) != MemberStatus.WARMING and self.reachable(node_id)

    def write_targets(self, partition: int) -> tuple[tuple[str, ...], int]:
        """Owners a write goes to, and how many of them are pending (extra acks needed)."""
        owners = self.placement.owners(partition)
        pending = tuple(m for m in self.future.owners(partition) if m not in owners)
        return owners + pending, len(pending)

    def read_owners(self, partition: int) -> tuple[str, ...]:
        return self.placement.owners(partition)

    def write_route(self, partition: int) -> tuple[tuple[str, ...], int, tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        """``(targets, pending, owners, live, down)`` of a write to ``partition``: where it
        goes (:meth:`write_targets`), the owners it names (sorted by id), and which
        targets are reachable.
        Cached per partition: a view never changes, and every write asks."""
        route = self._routes.get(partition)
        if route is None:
            targets, pending = self.write_targets(partition)
            live = tuple(m for m in targets if self.reachable(m))
            down = tuple(m for m in targets if m not in live)
            # The owners every copy records (inspect's ``replicas``), in id order: the same
            # tuple for every partition with the same owners, so a coordinator's run of
            # writes groups into one op per owner set, not one per placement order.
            owners = tuple(sorted(self.placement.owners(partition)))
            route = self._routes[partition] = (targets, pending, owners, live, down)
        return route

    def write_plan(self, partition: int, level: str) -> WritePlan:
        """``(live, down, needed, owners)`` of a write at consistency ``level`` to
        ``partition``: the reachable targets it is sent to, the unreachable ones (hinted),
        the acks that decide it (one more per pending owner, at most every target) and the
        owners it names (:meth:`write_route`). Cached per partition and level."""
        plan = self._plans.get((partition, level))
        if plan is None:
            targets, pending, owners, live, down = self.write_route(partition)
            needed = min(required_acks(level, len(targets) - pending) + pending, len(targets))
            plan = self._plans[(partition, level)] = (live, down, needed, owners)
        return plan

    def key_write_plan(self, key: str, level: str) -> WritePlan:
        """:meth:`write_plan` of ``key``'s partition, remembered per key (up to
        :data:`KEY_PLAN_CACHE` keys per level, then afresh): most writes hit a key written
        before, and a lookup is cheaper than hashing it."""
        plans = self._key_plans.get(level)
        if plans is None:
            plans = self._key_plans[level] = {}
        plan = plans.get(key)
        if plan is None:
            if len(plans) >= KEY_PLAN_CACHE:
                plans.clear()
            plan = plans[key] = self.write_plan(partition_of(key, self.placement.partitions), level)
        return plan


class Membership:
    def __init__(
        self,
        self_id: str,
        addr: str,
        incarnation: int,
        *,
        replicas: int,
        partitions: int,
        heartbeat_interval_s: float,
        suspect_phi: float,
        down_after_s: float,
        status: str = MemberStatus.READY,
        max_skew_s: float = 0.5,
    ) -> None:
        self.self_id = self_id
        self.replicas = replicas
        self.partitions = partitions
        self.heartbeat_interval_s = heartbeat_interval_s
        self.suspect_phi = suspect_phi
        self.down_after_s = down_after_s
        self.table: dict[str, Member] = {self_id: Member(self_id, addr, incarnation, status)}
        self._detectors: dict[str, PhiAccrual] = {}
        self._suspect_since: dict[str, float] = {}
        self.states: dict[str, str] = {self_id: State.SELF}
        self.max_skew_ms = int(max_skew_s * 1000)
        #: Gossiped rows refused (beyond the incarnation bound, or not the sender's to say).
        self.refused = 0
        #: Members heard of only through others: ``node_id -> [addr, rounds left]``.
        self._introductions: dict[str, list[Any]] = {}
        #: Members heard of only through others -> when a relay last named them (not
        #: ``left``); at most MAX_INTRODUCTIONS.
        self._rumours: dict[str, float] = {}
        #: Addresses introduced since the caller last took them (to gossip to at once).
        self.new_introductions: list[str] = []
        self.view = self._build_view()

    # --- this node ----------------------------------------------------------------

    @property
    def me(self) -> Member:
        return self.table[self.self_id]

    def set_status(self, status: str) -> bool:
        me = self.me
        if me.status == status:
            return False
        self.table[self.self_id] = me._replace(status=status)
        return self._changed()

    def remove(self, node_id: str) -> bool:
        """Mark another member ``left`` on an operator's word (it is dead for good).

        A member that is in fact alive refutes this with a higher incarnation.
        """
        row = self.table.get(node_id)
        if row is None or node_id == self.self_id or row.status == MemberStatus.LEFT:
            return False
        self.table[node_id] = row._replace(status=MemberStatus.LEFT)
        self.states[node_id] = State.LEFT
        return self._changed()

    # --- input ------------------------------------------------------------------------

    def incarnation_bound(self, wall_ms: int) -> int:
        """The highest incarnation a gossiped row may carry at wall time ``wall_ms``."""
        return wall_ms + self.max_skew_ms + REFUTATION_SLACK

    def on_gossip(self, src: str, members: tuple[Member, ...], now: float, wall_ms: int) -> bool:
        """Merge the rows of ``src``'s table it may speak for (see the module's rules) and
        count it as ``src``'s heartbeat; True if the view changed. ``wall_ms``: this node's
        wall clock, for the incarnation bound."""
        changed = False
        bound = self.incarnation_bound(wall_ms)
        for row in members:
            if row.status not in _RANK:
                continue
            if row.incarnation > bound:
                self.refused += 1  # from the future: a fault or a forgery, never merged
                continue
            node_id = row.node_id
            if node_id == self.self_id:
                me = self.me
                if _newer(row, me) and me.status != MemberStatus.LEFT:
                    if row.incarnation + 1 > bound:
                        self.refused += 1
                        continue
                    # Someone remembers a later life of ours (or says we left): refute it.
                    self.table[self.self_id] = me._replace(incarnation=row.incarnation + 1)
                    changed = True
                continue
            old = self.table.get(node_id)
            if old is not None and not _newer(row, old):
                continue
            if src != node_id:
                if old is None or row.addr != old.addr:
                    self._introduce(row)  # only its own link may admit or readdress it
                    if old is None and self._rumour(row, now):
                        changed = True
                    continue
                if row.incarnation != old.incarnation or old.status == MemberStatus.LEFT:
                    self.refused += 1  # a relay may not re-incarnate or revive a member
                    continue
            elif old is None or row.incarnation != old.incarnation:
                # A new member, or a restarted one: fresh detection history.
                self._detectors.pop(node_id, None)
                self._suspect_since.pop(node_id, None)
            self.table[node_id] = row
            self._introductions.pop(node_id, None)
            self._rumours.pop(node_id, None)
            changed = True
        sender = self.table.get(src)
        if sender is not None and sender.status != MemberStatus.LEFT:
            detector = self._detectors.get(src)
            if detector is None:
                detector = self._detectors[src] = PhiAccrual(self.heartbeat_interval_s)
            detector.heartbeat(now)
        states_changed = self._update_states(now)
        if changed and not states_changed:
            self._changed()
        return changed or states_changed

    def tick(self, now: float) -> bool:
        """Re-evaluate every member's liveness; True if the view changed."""
        return self._update_states(now)

    def _rumour(self, row: Member, now: float) -> bool:
        """Note a relayed row about a member not in the table; True if the rumoured set
        changed (a ``left`` row ends a rumour)."""
        node_id = row.node_id
        if row.status == MemberStatus.LEFT:
            return self._rumours.pop(node_id, None) is not None
        known = node_id in self._rumours
        if known or len(self._rumours) < MAX_INTRODUCTIONS:
            self._rumours[node_id] = now
        return not known and node_id in self._rumours

    def phis(self, now: float) -> dict[str, float]:
        """Each peer's phi (its failure detector's suspicion) at ``now``, rounded to 3
        places and capped at :data:`PHI_REPORTED_MAX` (a peer long silent has an infinite
        phi, which JSON cannot carry), in node id order (for ``stats`` and metrics; states
        use the detectors)."""
        return {node_id: round(min(d.phi(now), PHI_REPORTED_MAX), 3) for node_id, d in sorted(self._detectors.items())}

    def _update_states(self, now: float) -> bool:
        changed = False
        horizon = now - RUMOUR_HEARTBEATS * self.heartbeat_interval_s
        for node_id in [n for n, heard in self._rumours.items() if heard < horizon]:
            del self._rumours[node_id]  # no longer named by anyone: gone from their tables
            changed = True
        for node_id, member in self.table.items():
            if node_id == self.self_id:
                continue
            if member.status == MemberStatus.LEFT:
                state = State.LEFT
            else:
                detector = self._detectors.get(node_id)
                if detector is None:
                    # Heard of, never heard from: give it one detection period, then suspect.
                    detector = self._detectors[node_id] = PhiAccrual(self.heartbeat_interval_s)
                    detector.heartbeat(now)
                phi = detector.phi(now)
                if phi < self.suspect_phi:
                    self._suspect_since.pop(node_id, None)
                    state = State.ALIVE
                else:
                    since = self._suspect_since.setdefault(node_id, now)
                    state = State.DOWN if now - since >= self.down_after_s else State.SUSPECT
            if self.states.get(node_id) != state:
                self.states[node_id] = state
                changed = True
        if changed:
            self._changed()
        return changed

    def _changed(self) -> bool:
        self.view = self._build_view()
        return True

    def _introduce(self, row: Member) -> None:
        """Remember ``row``'s address to gossip to (its own answer admits it)."""
        if row.status == MemberStatus.LEFT:
            return
        intro = self._introductions.get(row.node_id)
        if intro is not None:
            intro[0] = row.addr
            return
        if len(self._introductions) >= MAX_INTRODUCTIONS:
            self.refused += 1
            return
        self._introductions[row.node_id] = [row.addr, INTRODUCTION_ROUNDS]
        self.new_introductions.append(row.addr)

    # --- output -----------------------------------------------------------------------

    def introductions(self) -> list[str]:
        """Addresses of members heard of only through others, to gossip to this round
        (asking for an answer); each is tried :data:`INTRODUCTION_ROUNDS` rounds."""
        out = []
        members = {m.addr for m in self.table.values()}
        for node_id, intro in list(self._introductions.items()):
            intro[1] -= 1
            if intro[1] < 0:
                del self._introductions[node_id]
            elif intro[0] not in members:
                out.append(intro[0])
        return sorted(set(out))

    def gossip_rows(self) -> tuple[Member, ...]:
        return tuple(self.table[node_id] for node_id in sorted(self.table))

    def peer_addresses(self) -> list[str]:
        """Where to send this round's gossip: every other member that has not left."""
        return [
            m.addr
            for node_id, m in sorted(self.table.items())
            if node_id != self.self_id and m.status != MemberStatus.LEFT
        ]

    def _build_view(self) -> ClusterView:
        rows = self.gossip_rows()
        owners = [m.node_id for m in rows if m.status != MemberStatus.LEFT]
        staying = [m.node_id for m in rows if m.status not in (MemberStatus.LEFT, MemberStatus.LEAVING)]
        placement = Placement(owners, self.replicas, self.partitions)
        future = placement if staying == owners else Placement(staying, self.replicas, self.partitions)
        return ClusterView(
            self_id=self.self_id,
            members=rows,
            states=dict(self.states),
            placement=placement,
            future=future,
            addresses={m.node_id: m.addr for m in rows},
            rumoured=tuple(sorted(self._rumours)),
        )
