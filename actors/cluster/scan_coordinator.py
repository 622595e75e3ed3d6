"""SCAN, KEYS and DBSIZE across a cluster, through any node.

A plain object the ``Node`` drives. The cursor is the single node's
(:mod:`actors.store.scan`): the next partition plus one, the same on every node. A step
from cursor ``c`` visits partition ``c - 1`` (a ``KEYS``, or a scan with a ``count``
beyond :data:`ONE_STEP`, visits every partition from there in one step, in parallel):
for each partition it asks every owner that serves reads for its live keys there (this
node's store for itself; peers by ``Forward``, answered from their stores by
:meth:`ClusterScan.serve`), waits for a read quorum of them, and answers the union, in
owner order, each key once. A key present for the whole scan was written at the write
consistency; with ``quorum`` writes a quorum of owners holds it, so a read quorum
meets one that does: Redis's guarantee (every key present for the whole scan is
returned) holds whenever R + W > N, as for reads. Fewer answering owners than a read
quorum: ``unavailable`` (or ``timeout``), and the client retries the same cursor.

``DBSIZE`` (``Scan.count_only``) is the sum, over partitions, of the largest count of a
quorum of its owners (owners that agree hold the same keys; a key only a lagging owner
lacks is still counted).
"""

from __future__ import annotations

from typing import Any, Callable

from actors.cluster.lifecycle import Lifecycle
from actors.cluster.node_io import NodeIO
from actors.protocol.errors import ErrorCode
from actors.protocol.messages import ErrorReply, Reply
from actors.protocol.txn_messages import Scan, ScanReply
from actors.store.txn_ops import ScanKeys

__all__ = ["ONE_STEP", "ClusterScan"]

#: A scan whose count is above this visits every partition from its cursor in one step.
ONE_STEP = 100_000

Done = Callable[[Reply], None]
Forward = Callable[[Any, str, Done], None]


class _Step:
    """One scan step's partitions, each waiting for its owners' answers."""

    __slots__ = ("done", "left", "parts", "request")

    def __init__(self, request: Scan, done: Done, parts: dict[int, _Part]) -> None:
        self.request = request
        self.done = done
        self.parts = parts
        self.left = len(parts)


class _Part:
    __slots__ = ("answers", "need", "pending", "result")

    def __init__(self, owners: int, need: int) -> None:
        self.answers: list[Reply | None] = [None] * owners
        self.pending = owners
        self.need = need
        self.result: Reply | None = None


class ClusterScan:
    def __init__(self, io: NodeIO, life: Lifecycle, forward: Forward, config: Any) -> None:
        self.io = io
        self.life = life
        self.forward = forward
        self.config = config

    def scan(self, request: Scan, done: Done) -> None:
        """One step of ``request`` across the cluster; ``done`` gets its reply."""
        partitions = self.config.partitions
        first = max(request.cursor - 1, 0)
        if first >= partitions:
            done(ScanReply(0, (), request.rid, 0 if request.count_only else None))
            return
        last = partitions if request.count > ONE_STEP else first + 1
        view = self.life.view
        parts: dict[int, _Part] = {}
        asks: list[tuple[int, int, str]] = []
        for p in range(first, last):
            owners = view.placement.owners(p)
            serving = [m for m in owners if view.serves_reads(m)]
            part = parts[p] = _Part(len(serving), len(owners) // 2 + 1)
            if len(serving) < part.need:
                part.result = ErrorReply(
                    ErrorCode.UNAVAILABLE, f"unavailable: fewer than a quorum of partition {p}'s owners serve reads", request.rid
                )
            else:
                asks.extend((p, i, m) for i, m in enumerate(serving))
        step = _Step(request, done, parts)
        step.left = sum(1 for part in parts.values() if part.result is None)
        if not step.left:
            self._finish(step, last)
            return
        me = self.io.node_id
        for p, i, member in asks:
            one = Scan(p + 1, request.match, 1, None, request.count_only, request.kind)
            answer = self._answer(step, p, i, last)
            if member == me:
                self.serve(one, answer)
            else:
                self.forward(one, member, answer)

    def serve(self, request: Scan, answer: Done) -> None:
        """A peer's (or this node's) ask for one partition's keys: from this node's store."""
        op = ScanKeys(request.cursor, 1 << 62, request.match, 1, request.count_only, request.kind)

        def then(message: Any) -> None:
            result = message.results[0][1]
            if type(result) is not tuple:
                answer(result if type(result) is ErrorReply else ErrorReply(ErrorCode.INTERNAL, "scan failed", request.rid))
            elif request.count_only:
                answer(ScanReply(result[0], (), request.rid, result[1]))
            else:
                answer(ScanReply(result[0], result[1], request.rid))

        self.io.ask_store(((0, op),), then)

    def _answer(self, step: _Step, p: int, i: int, last: int) -> Done:
        def done(reply: Reply) -> None:
            part = step.parts[p]
            if part.result is not None or part.answers[i] is not None:
                return
            part.answers[i] = reply
            part.pending -= 1
            ok = [a for a in part.answers if type(a) is ScanReply]
            if len(ok) >= part.need or part.pending == 0:
                part.result = self._union(step.request, p, part, ok)
                step.left -= 1
                if step.left == 0:
                    self._finish(step, last)

        return done

    def _union(self, request: Scan, p: int, part: _Part, ok: list[Any]) -> Reply:
        if len(ok) < part.need:
            failed = next((a for a in part.answers if type(a) is ErrorReply), None)
            message = failed.message if failed is not None else "not enough owners answered"
            return ErrorReply(ErrorCode.UNAVAILABLE, f"unavailable: partition {p}: {message}", request.rid)
        if request.count_only:
            return ScanReply(0, (), None, max(a.total or 0 for a in ok))
        seen: dict[str, None] = {}
        for a in ok:
            for key in a.keys:
                seen[key] = None
        return ScanReply(0, tuple(seen), None)

    def _finish(self, step: _Step, last: int) -> None:
        request = step.request
        keys: list[str] = []
        total = 0
        for p in sorted(step.parts):
            result = step.parts[p].result
            if type(result) is not ScanReply:
                step.done(result if result is not None else ErrorReply(ErrorCode.INTERNAL, "scan lost a partition", request.rid))
                return
            keys.extend(result.keys)
            total += result.total or 0
        cursor = 0 if last >= self.config.partitions else last + 1
        step.done(ScanReply(cursor, tuple(keys), request.rid, total if request.count_only else None))
