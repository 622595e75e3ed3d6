"""Replica requests and responses in bounded frames, with a bounded amount in flight.

Plain objects the node's quorum coordinator (:mod:`actors.cluster.coordinator`) and its
replica side (:mod:`actors.cluster.replica_server`) drive (no actor, no clock of their own:
callers pass ``now``); they decide what to send and hand it to the ``send`` they were given.

Theory of operation
-------------------
A peer frame over 64 MiB is dropped by its sender, and a sender keeps at most 16 MiB
queued per peer, dropping the oldest frames past that (``runtime.peers``). Values make
frames big, so both directions are cut by :data:`~actors.cluster.peer_budget.PEER_FRAME_BUDGET`
and paced by answers:

- **Coordinator** (:class:`ReplicaRequests`). The replica ops of a turn gather per peer
  in an :class:`Outbox`, sent as one ``ReplicaRequest`` at the turn's end, or at once
  when it holds ``flush_ops`` ops or its values pass the budget (a quorum round's ops
  are then split between two requests, each answering its own range of them). At most
  :data:`~actors.cluster.peer_budget.PEER_REQUEST_WINDOW` bytes of values per peer are in
  unanswered requests; more waits in that peer's backlog, in order, and leaves as
  answers come back (a backlogged request whose every batch closed meanwhile is dropped).
  Each request sent has a :class:`Route`, kept until every op is answered, matched by
  (peer, ``req``): a response part must come from the route's target, start where the
  previous part ended and stay within the request's ops.
- **Replica** (:class:`ResponseParts`). An answer whose results carry no more than the
  budget goes at once, as before. A bigger one is queued for its coordinator and sent in
  parts, each answering a contiguous range of ops (one result bigger than the budget goes
  alone), each with ``ack`` set; a coordinator acknowledges each part on receipt
  (``ReplicaAck``) and only then is its next part (of this answer or the next queued one)
  sent: one part in flight per coordinator. An answer that waited past the request
  timeout (its coordinator gave up) is dropped; so is every queued answer for a
  coordinator whose acknowledgement does not come within the request timeout, and any
  answer past :data:`MAX_SPLIT_ANSWERS` queued for one coordinator.

Invariants: a route's ``answered`` only grows, one part at a time, in op order (links are
FIFO); window bytes are added when a request is sent and removed exactly once, when its
route goes (answered, refused or forgotten).
"""

from __future__ import annotations

import collections
from typing import Any, Callable

from actors.cluster.peer_budget import PEER_FRAME_BUDGET, PEER_REQUEST_WINDOW, op_bytes, record_bytes, result_bytes
from actors.protocol.replica_ops import Fetch
from actors.protocol.peer_messages import ReplicaRequest, ReplicaResponse

__all__ = ["MAX_SPLIT_ANSWERS", "Outbox", "ReplicaRequests", "ResponseParts", "Route", "cut"]

#: Split answers one replica keeps queued for one coordinator; more are dropped (their
#: requests time out). Each holds references to the records it answers with.
MAX_SPLIT_ANSWERS = 32

#: (quorum round id, per op the task attempt it answers, see ``actors.cluster.task_wire``).
Segment = tuple[int, list[Any]]


def cut(results: tuple[Any, ...], start: int, budget: int = PEER_FRAME_BUDGET) -> int:
    """The end of the part of ``results`` that begins at ``start``: as many results as fit
    in ``budget`` bytes, and at least one."""
    n = len(results)
    end = start
    used = 0
    while end < n:
        size = result_bytes(results[end])
        if end > start and used + size > budget:
            break
        used += size
        end += 1
    return end


class Outbox:
    """Replica ops gathered for one peer, to leave as one ``ReplicaRequest``."""

    __slots__ = ("nbytes", "ops", "segments", "target")

    def __init__(self, target: str) -> None:
        self.target = target
        self.segments: list[Segment] = []
        self.ops: list[Any] = []
        self.nbytes = 0


class Route:
    """A ``ReplicaRequest`` sent to ``target`` (at ``addr``), until every op is answered."""

    __slots__ = ("_offset", "_segment", "addr", "answered", "nbytes", "segments", "target", "total")

    def __init__(self, target: str, addr: str, segments: list[Segment], total: int, nbytes: int) -> None:
        self.target = target
        self.addr = addr
        self.segments = segments
        self.total = total
        self.nbytes = nbytes
        self.answered = 0
        self._segment = 0  # where the next part's first result goes
        self._offset = 0

    def take(self, results: tuple[Any, ...]) -> list[tuple[int, list[Any], tuple[Any, ...]]]:
        """The next part's results, as ``(batch id, its ops' attempts, their results)`` per
        segment they answer (the caller checked they fit)."""
        out = []
        segments = self.segments
        pos = 0
        n = len(results)
        while pos < n:
            batch_id, attempts = segments[self._segment]
            offset = self._offset
            take = min(len(attempts) - offset, n - pos)
            whole = offset == 0 and take == len(attempts)
            out.append((batch_id, attempts if whole else attempts[offset : offset + take], results[pos : pos + take]))
            pos += take
            if offset + take == len(attempts):
                self._segment += 1
                self._offset = 0
            else:
                self._offset = offset + take
        self.answered += n
        return out


class ReplicaRequests:
    """The coordinator's replica requests: outboxes, routes, window and backlog per peer.

    ``send(addr, msg)`` sends a peer message; ``next_id()`` numbers requests;
    ``is_open(batch id)`` tells whether a quorum round still waits for answers.
    """

    def __init__(
        self,
        send: Callable[[str, Any], None],
        next_id: Callable[[], int],
        is_open: Callable[[int], bool],
        flush_ops: int,
        budget: int = PEER_FRAME_BUDGET,
        window: int = PEER_REQUEST_WINDOW,
    ) -> None:
        self._send = send
        self._next_id = next_id
        self._is_open = is_open
        self.flush_ops = flush_ops
        self.budget = budget
        self.window = window
        #: Ops of the current turn per peer address, sent by :meth:`flush`.
        self.outboxes: dict[str, Outbox] = {}
        #: req -> its route, until every op is answered (or it is refused or forgotten).
        self.routes: dict[int, Route] = {}
        #: Bytes of values in unanswered requests per peer address (absent: none).
        self.in_flight: dict[str, int] = {}
        #: Requests waiting for the window per peer address (absent: none wait).
        self.backlog: dict[str, collections.deque[Outbox]] = {}

    # --- sending ------------------------------------------------------------------

    def add(self, addr: str, target: str, batch_id: int, attempts: list[Any], wire: list[Any]) -> None:
        """Queue one quorum round's ops for ``target`` (``attempts[i]`` answers ``wire[i]``)."""
        nbytes = 0
        for op in wire:
            if type(op) is Fetch and len(op.keys) == 1:  # a read of one key: most ops of a read batch
                nbytes += len(op.keys[0])
            else:
                nbytes += op_bytes(op)
        box = self.outboxes.get(addr)
        if box is None:
            box = self.outboxes[addr] = Outbox(target)
        if box.nbytes + nbytes > self.budget and (box.ops or len(wire) > 1):
            box = self._add_cut(addr, box, batch_id, attempts, wire)
        else:
            box.segments.append((batch_id, attempts))
            box.ops.extend(wire)
            box.nbytes += nbytes
        if len(box.ops) >= self.flush_ops or box.nbytes >= self.budget:
            # A big turn: do not hold the first ops back until the turn ends.
            del self.outboxes[addr]
            self._submit(addr, box)

    def _add_cut(self, addr: str, box: Outbox, batch_id: int, attempts: list[Any], wire: list[Any]) -> Outbox:
        """Add ``wire`` op by op, sending the outbox whenever the next op would take it past
        the budget; returns the outbox holding the last ops."""
        first = 0  # the first op of ``wire`` not in a sent outbox yet
        for i, op in enumerate(wire):
            size = op_bytes(op)
            if (box.ops or i > first) and box.nbytes + size > self.budget:
                if i > first:
                    box.segments.append((batch_id, attempts[first:i]))
                    box.ops.extend(wire[first:i])
                self._submit(addr, box)
                box = self.outboxes[addr] = Outbox(box.target)
                first = i
            box.nbytes += size
        box.segments.append((batch_id, attempts[first:]))
        box.ops.extend(wire[first:])
        return box

    def flush(self) -> None:
        """Send every outbox (the turn ends)."""
        if self.outboxes:
            boxes, self.outboxes = self.outboxes, {}
            for addr, box in boxes.items():
                self._submit(addr, box)

    def _submit(self, addr: str, box: Outbox) -> None:
        backlog = self.backlog.get(addr)
        if backlog is None:
            in_flight = self.in_flight.get(addr, 0)
            if not in_flight or in_flight + box.nbytes <= self.window:
                self._transmit(addr, box)
                return
            backlog = self.backlog[addr] = collections.deque()
        backlog.append(box)  # behind the others: a peer's requests leave in order

    def _transmit(self, addr: str, box: Outbox) -> None:
        req = self._next_id()
        self.routes[req] = Route(box.target, addr, box.segments, len(box.ops), box.nbytes)
        self.in_flight[addr] = self.in_flight.get(addr, 0) + box.nbytes
        self._send(addr, ReplicaRequest(req, tuple(box.ops)))

    # --- answers ------------------------------------------------------------------

    def route(self, req: int) -> Route | None:
        return self.routes.get(req)

    def fits(self, route: Route, msg: ReplicaResponse) -> bool:
        """Whether ``msg`` is the next part of ``route``: it starts where the last ended and
        answers no op the request did not carry."""
        return msg.start == route.answered and msg.start + len(msg.results) <= route.total

    def done(self, req: int, route: Route) -> None:
        """``route`` is over (every op answered, or a part refused): forget it, free its
        window bytes and send what waited for them."""
        if self.routes.pop(req, None) is None:
            return
        addr = route.addr
        left = self.in_flight.get(addr, 0) - route.nbytes
        if left > 0:
            self.in_flight[addr] = left
        else:
            self.in_flight.pop(addr, None)
        backlog = self.backlog.get(addr)
        if backlog is not None:
            self._drain(addr, backlog)

    def _drain(self, addr: str, backlog: collections.deque[Outbox]) -> None:
        is_open = self._is_open
        while backlog:
            box = backlog[0]
            in_flight = self.in_flight.get(addr, 0)
            if in_flight and in_flight + box.nbytes > self.window:
                return
            backlog.popleft()
            if any(is_open(batch_id) for batch_id, _ in box.segments):
                self._transmit(addr, box)
        del self.backlog[addr]

    def forget_lost(self) -> None:
        """Drop routes whose every batch has closed (answered or timed out): their answer,
        if it ever comes, changes nothing, and a lost message must not keep its route (or
        its window bytes) forever."""
        is_open = self._is_open
        lost = [
            (req, route)
            for req, route in self.routes.items()
            if not any(is_open(batch_id) for batch_id, _ in route.segments)
        ]
        for req, route in lost:
            self.done(req, route)

    def waiting(self) -> int:
        """Requests in backlogs."""
        return sum(len(b) for b in self.backlog.values())


class _Queued:
    """Split answers waiting for one coordinator, and the part it has not acknowledged."""

    __slots__ = ("addr", "answers", "in_flight", "sent_at")

    def __init__(self, addr: str) -> None:
        self.addr = addr  # where the parts go
        #: [req, results, next start, queued at] per answer, oldest first.
        self.answers: collections.deque[list[Any]] = collections.deque()
        self.in_flight: tuple[int, int] | None = None  # (req, start) of the part sent
        self.sent_at = 0.0


class ResponseParts:
    """The replica's answers to coordinators, big ones in parts, one in flight per peer.

    ``send(addr, msg)`` sends a peer message; ``timeout``: the request timeout, past which
    a coordinator no longer waits for an answer.
    """

    def __init__(self, send: Callable[[str, Any], None], timeout: float, budget: int = PEER_FRAME_BUDGET) -> None:
        self._send = send
        self.timeout = timeout
        self.budget = budget
        self.queued: dict[str, _Queued] = {}
        self.split = 0  # answers sent in parts
        self.abandoned = 0  # split answers dropped: expired, unacknowledged or over the cap

    def answer(self, addr: str, req: int, results: tuple[Any, ...], now: float, peer: str | None = None) -> None:
        """Send the answer to request ``req`` of the coordinator at ``addr`` (``peer``: the
        node id its link authenticated, by which its acknowledgements are matched; default
        ``addr``)."""
        budget = self.budget
        total = 0
        for result in results:
            if type(result) is tuple:  # a fetch's records (writes answer with counts)
                for record in result:
                    if record is not None:
                        value = record[1]  # (key, value, ...): indexing is the cheapest read
                        vt = type(value)
                        if vt is str or vt is bytes:
                            total += len(record[0]) + len(value)
                        else:
                            total += record_bytes(record)
                if total > budget:
                    break
        if total <= budget:
            self._send(addr, ReplicaResponse(req, results))
            return
        key = addr if peer is None else peer
        queue = self.queued.get(key)
        if queue is None:
            queue = self.queued[key] = _Queued(addr)
        if len(queue.answers) >= MAX_SPLIT_ANSWERS:
            self.abandoned += 1
            return
        self.split += 1
        queue.answers.append([req, results, 0, now])
        if queue.in_flight is None:
            self._next(key, queue, now)

    def on_ack(self, addr: str, req: int, start: int, now: float, peer: str | None = None) -> bool:
        """The coordinator at ``addr`` (``peer``, as in :meth:`answer`) got part ``(req,
        start)``: send the next one. False when no such part is in flight to it (a stale or
        forged acknowledgement, or one from another link)."""
        key = addr if peer is None else peer
        queue = self.queued.get(key)
        if queue is None or queue.in_flight != (req, start):
            return False
        self._next(key, queue, now)
        return True

    def _next(self, key: str, queue: _Queued, now: float) -> None:
        answers = queue.answers
        while answers:
            entry = answers[0]
            req, results, start, queued_at = entry
            if start == 0 and now - queued_at > self.timeout:
                answers.popleft()  # its coordinator stopped waiting before we began
                self.abandoned += 1
                continue
            end = cut(results, start, self.budget)
            if end >= len(results):
                answers.popleft()
            else:
                entry[2] = end
            queue.in_flight = (req, start)
            queue.sent_at = now
            self._send(queue.addr, ReplicaResponse(req, results[start:end], start, True))
            return
        del self.queued[key]

    def expire(self, now: float) -> None:
        """Drop everything queued for a coordinator that has not acknowledged its part
        within the timeout (it is gone, or the part was lost on the way)."""
        stale = [addr for addr, queue in self.queued.items() if now - queue.sent_at > self.timeout]
        for addr in stale:
            queue = self.queued.pop(addr)
            answers = queue.answers
            # The answer in flight, unless it is still queued (its last part not sent yet).
            in_flight_queued = bool(answers) and queue.in_flight is not None and answers[0][0] == queue.in_flight[0]
            self.abandoned += len(answers) + (0 if in_flight_queued else 1)
