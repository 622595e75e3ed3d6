"""Simulated clients: get/set/delete through the very request messages real clients send.

Each client is a SimPy process that paces itself (exponential think times for the
configured total rate), picks a live node and an operation, sends one request in a
fresh "connection" (a real client reconnects after a timeout rather than queueing behind
the lost request), and records invocation and completion in the :class:`History`.

Clients reach their node over a link of their own (``client_link``, one-way delays drawn
from ``link_rng``, each way): a request is invoked when the client sends it, reaches the
node a delay later, and completes when its replies are back at the client. A node that
went down while the request was on its way refuses the connection: nothing was applied
(a definite failure). The client's timeout counts from the send, as a real client's.
Keys written with a TTL live in their own key range, so checkers can tell them apart, and
so do hashes (``h...``: ``HSET`` of a few fields, ``HDEL``, ``HGETALL``, whole-key deletes)
and sets (``s...``: ``SADD`` of a member unique in the run, ``SREM`` of one added before,
``SMEMBERS``), a ``coll_fraction`` share of the operations. A ``txn_fraction`` share are
transactions (JSON ``multi``) on groups of hash-tagged keys (``{g1}:0``, ``{g1}:1``, ...:
one partition, so a cluster runs them at its coordinator): either sets of every key of
the group to values of one token (``x7.0``, ``x7.1``, ...) or reads of every key; each
request is its own operation in the history, tied by ``txn``. A ``scan_fraction`` share
are full scans (cursor 0 to 0, one ``Scan`` step per round trip, one operation whose
value is every key returned).
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Any, Iterator

from actors.protocol.errors import ErrorCode
from actors.protocol.messages import Ack, CollOp, Delete, ErrorReply, Get, Set, Value
from actors.protocol.txn_messages import Flush, Multi, MultiReply, Scan, ScanReply
from sim.checkers import FLUSH_KEY, SCAN_KEY
from sim.history import FAIL, FIELD_WRITES, INFO, OK, History
from sim.link_models import LatencyModel, constant

__all__ = ["Workload", "WorkloadSpec", "complete_all", "record_reply"]


@dataclass(frozen=True)
class WorkloadSpec:
    clients: int = 8
    #: Total operations, across clients (the run stops issuing after this many).
    ops: int = 2000
    #: Target total rate in operations per simulated second.
    rate: float = 200.0
    keys: int = 100
    distribution: str = "uniform"  # or "zipf"
    zipf_s: float = 1.1
    read_fraction: float = 0.5
    #: Share of writes that are deletes.
    delete_fraction: float = 0.1
    #: Share of writes that are flushes (FLUSHDB: every key deleted; 0: none, and the
    #: random draws are those of a workload without flushes).
    flush_fraction: float = 0.0
    #: Share of writes that carry a TTL (on the TTL key range).
    ttl_fraction: float = 0.0
    ttl_min: float = 1.0
    ttl_max: float = 5.0
    #: Consistency levels sent with each request; None: the node's default.
    read_consistency: str | None = None
    write_consistency: str | None = None
    #: A client gives up on a reply after this long (an indefinite outcome).
    client_timeout: float = 3.0
    #: Requests a client sends together in one batch (as a pipelining client does); the
    #: node may then group runs of plain sets and gets. Each is its own operation in the
    #: history, invoked when the batch is sent and completed when its replies arrive.
    pipeline: int = 1
    #: Share of operations on hashes and sets (their own key ranges); their reads, deletes
    #: and writes split as ``read_fraction`` and ``delete_fraction`` say.
    coll_fraction: float = 0.0
    #: Fields a hash's writes choose from (few: concurrent writes to one key touch
    #: different fields, and the same one, often).
    hash_fields: int = 4
    #: Share of operations that are transactions on hash-tagged key groups (0: none, and
    #: the random draws are those of a workload without them); ``txn_groups`` groups of
    #: ``txn_keys`` keys each.
    txn_fraction: float = 0.0
    txn_groups: int = 4
    txn_keys: int = 3
    #: Share of client turns that run a full scan (0: none, no draw), ``scan_count``
    #: the COUNT hint of each step.
    scan_fraction: float = 0.0
    scan_count: int = 10

    def validate(self) -> None:
        if self.clients < 1 or self.ops < 0 or self.rate <= 0 or self.keys < 1 or self.pipeline < 1:
            raise ValueError("workload needs clients >= 1, ops >= 0, rate > 0, keys >= 1, pipeline >= 1")
        if self.distribution not in ("uniform", "zipf"):
            raise ValueError("workload distribution must be 'uniform' or 'zipf'")
        if self.hash_fields < 1:
            raise ValueError("workload needs hash_fields >= 1")
        if self.txn_groups < 1 or self.txn_keys < 1 or self.scan_count < 1:
            raise ValueError("workload needs txn_groups >= 1, txn_keys >= 1, scan_count >= 1")
        names = ("read_fraction", "delete_fraction", "ttl_fraction", "flush_fraction", "coll_fraction", "txn_fraction", "scan_fraction")
        for name in names:
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"workload {name} must be within [0, 1]")
        if not 0 < self.ttl_min <= self.ttl_max:
            raise ValueError("workload needs 0 < ttl_min <= ttl_max")


def complete_all(op: Any, outcome: str, now: float, error: str) -> None:
    """Complete ``op`` (or each op of a transaction, a tuple) with no reply."""
    for one in op if isinstance(op, tuple) else (op,):
        History.complete(one, outcome, now, error=error)


def record_reply(op: Any, reply: Any, now: float) -> None:
    """Complete ``op`` with its reply: an ack or a value is ok, ``unavailable`` failed
    (definite), any other error or reply indefinite. (Real mode's clients too.) A
    transaction's ops (a tuple) each take their own reply of a ``MultiReply``, or all
    the transaction's error."""
    t = type(reply)
    if isinstance(op, tuple):
        if t is MultiReply and reply.replies is not None and len(reply.replies) == len(op):
            for one, sub in zip(op, reply.replies):
                record_reply(one, sub, now)
        elif t is MultiReply:
            complete_all(op, FAIL, now, "aborted")
        else:
            for one in op:
                record_reply(one, reply, now)
        return
    if t is Ack or (t is Value and op.kind in FIELD_WRITES):  # (a field write answers a count)
        History.complete(op, OK, now)
    elif t is Value:
        History.complete(op, OK, now, value=reply.value, found=reply.found)
    elif t is ErrorReply:
        outcome = FAIL if reply.code == ErrorCode.UNAVAILABLE else INFO
        History.complete(op, outcome, now, error=str(reply.code))
    else:
        History.complete(op, INFO, now, error=f"unexpected reply {reply!r}")


class Workload:
    def __init__(
        self,
        host: Any,
        spec: WorkloadSpec,
        rng: random.Random,
        history: History,
        *,
        client_link: LatencyModel | None = None,
        link_rng: random.Random | None = None,
    ) -> None:
        spec.validate()
        self.host = host
        self.client_link = client_link or constant(0.0)
        self.link_rng = link_rng or random.Random(0)
        self.spec = spec
        self.rng = rng
        self.history = history
        self.issued = 0
        self.stopped = False
        self._conns = itertools.count(1_000_000)
        self._values = itertools.count(1)
        self._txns = itertools.count(1)
        keys = [f"k{i}" for i in range(spec.keys)]
        if spec.distribution == "zipf":
            weights = [1.0 / (i + 1) ** spec.zipf_s for i in range(spec.keys)]
        else:
            weights = [1.0] * spec.keys
        total = 0.0
        self._cum = []
        for w in weights:
            total += w
            self._cum.append(total)
        self._keys = keys
        #: Members added to each set so far, for SREM to pick from.
        self._members: dict[str, list[str]] = {}

    def start(self) -> None:
        for client in range(self.spec.clients):
            self.host.env.process(self._client(client))

    def stop(self) -> None:
        self.stopped = True

    def _pick_key(self, ttl: bool) -> str:
        key = self.rng.choices(self._keys, cum_weights=self._cum)[0]
        return "t" + key[1:] if ttl else key

    def _client(self, client: int) -> Iterator[Any]:
        spec = self.spec
        env = self.host.env
        rng = self.rng
        per_client_rate = spec.rate / spec.clients
        while not self.stopped and self.issued < spec.ops:
            yield env.timeout(rng.expovariate(per_client_rate / spec.pipeline))
            nodes = sorted(self.host.nodes)
            if self.stopped or self.issued >= spec.ops or not nodes:
                continue
            node = rng.choice(nodes)
            requests: list[Any] = []
            ops: list[Any] = []
            if spec.scan_fraction and rng.random() < spec.scan_fraction:  # (no draw at 0)
                self.issued += 1
                yield from self._scan(client, node)
                continue
            for _ in range(min(spec.pipeline, spec.ops - self.issued)):
                self.issued += 1
                request, op = self.next_request(client, node)
                requests.append(request)
                ops.append(op)
            replies = yield from self._round_trip(node, requests)
            if isinstance(replies, str):
                for op in ops:
                    complete_all(op, FAIL if replies == "connection refused" else INFO, env.now, replies)
                continue
            for op, reply in zip(ops, replies):
                record_reply(op, reply, env.now)

    def _round_trip(self, node: str, requests: list[Any]) -> Iterator[Any]:
        """Send ``requests`` to ``node`` in a fresh connection and wait for the replies:
        their list, or "connection refused" / "client timeout"."""
        spec = self.spec
        env = self.host.env
        conn = next(self._conns)
        sent = env.now
        up = self.client_link.draw(self.link_rng)
        if up > 0:
            yield env.timeout(up)
        if node not in self.host.nodes:
            return "connection refused"
        future = self.host.submit(requests, node_id=node, conn=conn)
        done = env.event()
        future.add_done_callback(lambda _f, done=done: done.succeed() if not done.triggered else None)
        yield done | env.timeout(max(0.0, sent + spec.client_timeout - env.now))
        if node in self.host.nodes:
            self.host.disconnect(conn, node)
        deadline = sent + spec.client_timeout
        if future.done():
            down = self.client_link.draw(self.link_rng)
            if down > 0:
                yield env.timeout(min(down, deadline - env.now))
            if env.now >= deadline and down > 0:
                future = None  # the replies were still on their way when the client gave up
        if future is None or not future.done():
            return "client timeout"
        return list(future.result())

    def _scan(self, client: int, node: str) -> Iterator[Any]:
        """A full scan through ``node``: steps from cursor 0 until the reply's cursor is 0.
        Any failed step ends it (failed or indefinite, as that step's reply says)."""
        env = self.host.env
        op = self.history.invoke(client, node, "scan", SCAN_KEY, "quorum", env.now)
        cursor = 0
        seen: dict[str, None] = {}
        while True:
            replies = yield from self._round_trip(node, [Scan(cursor, count=self.spec.scan_count)])
            if isinstance(replies, str):
                complete_all(op, FAIL if replies == "connection refused" else INFO, env.now, replies)
                return
            reply = replies[0]
            if type(reply) is not ScanReply:
                record_reply(op, reply, env.now)
                return
            for key in reply.keys:
                seen[key] = None
            cursor = reply.cursor
            if cursor == 0:
                History.complete(op, OK, env.now, value=tuple(sorted(seen)), found=True)
                return

    def next_request(self, client: int, node: str) -> tuple[Any, Any]:
        """One random request and its history operation, invoked now."""
        spec = self.spec
        rng = self.rng
        now = self.host.env.now
        if spec.coll_fraction and rng.random() < spec.coll_fraction:  # (no draw at 0: traces stay as they were)
            return self._coll_request(client, node, now)
        if spec.txn_fraction and rng.random() < spec.txn_fraction:  # (likewise)
            return self._txn_request(client, node, now)
        roll = rng.random()
        if roll < spec.read_fraction:
            ttl_range = rng.random() < spec.ttl_fraction
            key = self._pick_key(ttl_range)
            request: Any = Get(key, consistency=spec.read_consistency)
            op = self.history.invoke(client, node, "get", key, spec.read_consistency or "default", now)
        elif spec.flush_fraction and rng.random() < spec.flush_fraction:
            request = Flush()
            op = self.history.invoke(client, node, "flush", FLUSH_KEY, spec.write_consistency or "default", now)
        elif rng.random() < spec.delete_fraction:
            key = self._pick_key(rng.random() < spec.ttl_fraction)
            request = Delete(key, consistency=spec.write_consistency)
            op = self.history.invoke(client, node, "delete", key, spec.write_consistency or "default", now)
        else:
            with_ttl = rng.random() < spec.ttl_fraction
            key = self._pick_key(with_ttl)
            ttl = round(rng.uniform(spec.ttl_min, spec.ttl_max), 3) if with_ttl else None
            value = f"v{next(self._values)}"
            request = Set(key, value, ttl, consistency=spec.write_consistency)
            op = self.history.invoke(
                client, node, "set", key, spec.write_consistency or "default", now, value=value, ttl=ttl
            )
        return request, op

    def _txn_request(self, client: int, node: str, now: float) -> tuple[Any, Any]:
        """A transaction on one hash-tagged group: set every key to a value of one token,
        or read every key; its ops (a tuple, one per request) share ``txn``."""
        spec = self.spec
        rng = self.rng
        group = rng.randrange(spec.txn_groups)
        keys = [f"{{g{group}}}:{j}" for j in range(spec.txn_keys)]
        txn = next(self._txns)
        if rng.random() < spec.read_fraction:
            # (a cluster's transaction reads at quorum whatever its requests ask)
            requests: tuple[Any, ...] = tuple(Get(k, consistency=spec.read_consistency) for k in keys)
            ops = tuple(self.history.invoke(client, node, "get", k, "quorum", now, txn=txn) for k in keys)
        else:
            token = next(self._values)
            level = spec.write_consistency
            values = [f"x{token}.{j}" for j in range(len(keys))]
            requests = tuple(Set(k, v, None, consistency=level) for k, v in zip(keys, values))
            ops = tuple(
                self.history.invoke(client, node, "set", k, level or "default", now, value=v, txn=txn)
                for k, v in zip(keys, values)
            )
        return Multi(requests), ops

    def _coll_request(self, client: int, node: str, now: float) -> tuple[Any, Any]:
        """A hash or set operation and its history operation, invoked now."""
        spec = self.spec
        rng = self.rng
        is_hash = rng.random() < 0.5
        key = ("h" if is_hash else "s") + self._pick_key(False)[1:]
        level = spec.write_consistency
        if rng.random() < spec.read_fraction:
            kind = "hgetall" if is_hash else "smembers"
            request: Any = CollOp(key, kind, (), consistency=spec.read_consistency)
            return request, self.history.invoke(client, node, kind, key, spec.read_consistency or "default", now)
        if rng.random() < spec.delete_fraction:
            request = Delete(key, consistency=level)
            return request, self.history.invoke(client, node, "delete", key, level or "default", now)
        remove = rng.random() < 0.2
        if is_hash:
            field = f"f{rng.randrange(spec.hash_fields)}"
            if remove:
                request = CollOp(key, "hdel", (field,), consistency=level)
                op = self.history.invoke(client, node, "hdel", key, level or "default", now, field=field)
            else:
                value = f"v{next(self._values)}"
                request = CollOp(key, "hset", (field, value), consistency=level)
                op = self.history.invoke(client, node, "hset", key, level or "default", now, field=field, value=value)
            return request, op
        added = self._members.setdefault(key, [])
        if remove and added:
            member = added[rng.randrange(len(added))]
            request = CollOp(key, "srem", (member,), consistency=level)
            return request, self.history.invoke(client, node, "srem", key, level or "default", now, value=member)
        member = f"m{next(self._values)}"
        added.append(member)
        request = CollOp(key, "sadd", (member,), consistency=level)
        return request, self.history.invoke(client, node, "sadd", key, level or "default", now, value=member)
