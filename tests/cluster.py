"""A cluster of real ``python -m runtime.node`` subprocesses for integration tests.

``Cluster`` starts nodes ``node1``, ``node2``, ... on free loopback ports, each joining
through the nodes started before it (the README's ``node3 -> node1 node2``), waits until
every running node sees every other one alive and ready, and offers per-node helpers:
``request``/``client``/``stats``/``inspect``/``locate``, ``kill`` (SIGKILL), ``stop``
(SIGTERM, graceful leave), ``freeze``/``thaw`` (SIGSTOP/SIGCONT: a node that is
"partitioned away" without its sockets closing) and ``restart`` (same id, new process).

Nodes are named by number (``3`` is ``"node3"``) or by id. Every process the cluster
ever started is reaped by ``close()``, also after a failure; every read has a deadline;
every wait is a poll with a deadline (:func:`eventually`). Each node's stderr and stdout
go to ``<log_dir>/<id>.log``; ``close()`` prints the tail of every log, which pytest
shows under "Captured stdout teardown" when a test fails.

``Ledger`` and ``WriteLoad`` keep score of writes whose outcome may be indefinite: which
values a key may legitimately hold afterwards.
"""

from __future__ import annotations

import json
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from runtime.local_cluster import NodeProcess
from tests.wire import Conn, ConnectionClosed

__all__ = [
    "DEFAULT_FLAGS",
    "Cluster",
    "Ledger",
    "WriteLoad",
    "eventually",
    "is_miss",
]

#: Fast failure detection so tests do not wait long for "down".
DEFAULT_FLAGS: tuple[str, ...] = ("--heartbeat-interval", "0.1", "--down-after", "1")

#: Client-side read deadline: well above the node's default --request-timeout (1 s), so a
#: slow quorum answers with a node-side ``timeout`` rather than a client-side one.
REQUEST_TIMEOUT = 5.0

#: Longer than a node's dead-actor check period (runtime/node.py looks every 0.5 s).
DEAD_ACTOR_CHECK_S = 0.6

#: Errors of talking to a node that may be transient while a cluster changes.
TRANSIENT = (OSError, ConnectionClosed)  # TimeoutError and ConnectionRefusedError are OSErrors

T = TypeVar("T")


def eventually(check: Callable[[], T], timeout: float, what: str = "", interval: float = 0.05) -> T:
    """Call ``check`` until it returns without raising AssertionError (or a transient
    connection error); return its result. After ``timeout`` seconds the last error
    propagates, with a note saying what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except (AssertionError, *TRANSIENT) as exc:
            if time.monotonic() >= deadline:
                exc.add_note(f"still failing after {timeout:g}s{': ' + what if what else ''}")
                raise
        time.sleep(interval)


def is_miss(reply: dict[str, Any]) -> bool:
    """A get's miss, exactly as a single node answers it."""
    return reply.get("type") == "response" and reply.get("success") is False and reply.get("value") is None


def _ok(reply: dict[str, Any], kind: str) -> dict[str, Any]:
    if reply.get("type") != kind or reply.get("success") is not True:
        raise AssertionError(f"expected a successful {kind!r} reply, got {reply}")
    return reply


class Cluster:
    """Node subprocesses ``node1..nodeN`` on 127.0.0.1; use as a context manager or call
    :meth:`close`. ``flags`` go to every node (on top of :data:`DEFAULT_FLAGS` unless
    ``base_flags`` replaces them)."""

    def __init__(
        self,
        flags: Sequence[str] = (),
        *,
        base_flags: Sequence[str] = DEFAULT_FLAGS,
        log_dir: str | Path | None = None,
        start_timeout: float = 15.0,
    ) -> None:
        self.flags = [*base_flags, *flags]
        self.log_dir = Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="actorcache-cluster-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.start_timeout = start_timeout
        self.procs: dict[str, NodeProcess] = {}  # id -> its current (or last) process
        self.status: dict[str, str] = {}  # id -> running | frozen | killed | stopped
        self.peer_ids: dict[str, list[str]] = {}  # id -> the nodes it was told to join through
        self.extra: dict[str, list[str]] = {}  # id -> its own extra flags
        self.all_procs: list[NodeProcess] = []  # every process ever started, reaped by close()
        self._conns: dict[str, Conn] = {}
        self._loads: list[WriteLoad] = []  # stopped by close(), also when a test failed mid-load
        self._closed = False

    # --- naming -------------------------------------------------------------------

    @staticmethod
    def id(node: int | str) -> str:
        return f"node{node}" if isinstance(node, int) else node

    @property
    def ids(self) -> list[str]:
        """Every node ever started, in start order."""
        return list(self.procs)

    def running(self) -> list[str]:
        """Nodes that are up and not frozen."""
        return [i for i, s in self.status.items() if s == "running"]

    def proc(self, node: int | str) -> NodeProcess:
        return self.procs[self.id(node)]

    def port(self, node: int | str) -> int:
        return self.proc(node).port

    def addr(self, node: int | str) -> str:
        return self.proc(node).addr

    # --- starting -----------------------------------------------------------------

    def start(self, count: int, *, wait: bool = True, timeout: float = 15.0) -> list[str]:
        """Start ``count`` more nodes, each joining through every running node started
        before it; then (``wait``) wait until all running nodes see each other."""
        started = [self.add(wait=False) for _ in range(count)]
        if wait:
            self.wait_converged(timeout=timeout)
        return started

    def add(
        self,
        node_id: str | None = None,
        *,
        peers: Iterable[int | str] | None = None,
        extra: Sequence[str] = (),
        wait: bool = True,
        timeout: float = 15.0,
    ) -> str:
        """Start one new node (default id ``node<N+1>``) joining through ``peers``
        (default: every running node); ``wait`` for the cluster to converge."""
        node_id = node_id or f"node{len(self.procs) + 1}"
        assert node_id not in self.procs, f"{node_id} already exists"
        peer_ids = [self.id(p) for p in peers] if peers is not None else self.running()
        self.peer_ids[node_id] = peer_ids
        self.extra[node_id] = list(extra)
        self._spawn(node_id, [self.addr(p) for p in peer_ids])
        if wait:
            self.wait_converged(timeout=timeout)
        return node_id

    def _spawn(self, node_id: str, peer_addrs: list[str], port: int = 0) -> NodeProcess:
        proc = NodeProcess(
            node_id,
            *peer_addrs,
            *self.flags,
            *self.extra.get(node_id, ()),
            port=port,
            log_path=self.log_dir / f"{node_id}.log",
            start_timeout=self.start_timeout,
        )
        self.all_procs.append(proc)
        self.procs[node_id] = proc
        self.status[node_id] = "running"
        return proc

    def restart(self, node: int | str, *, same_port: bool = True, wait: bool = True, timeout: float = 15.0) -> str:
        """A new process with the same id (killing the old one if it still runs),
        joining through the same peers (their current addresses; any running node if
        none of them runs). ``same_port`` asks for its old port, falling back to a free
        one if the port cannot be bound."""
        node_id = self.id(node)
        old = self.procs[node_id]
        self._drop_conn(node_id)
        old.kill()
        peers = [p for p in self.peer_ids[node_id] if p != node_id and self.status.get(p) == "running"]
        if not peers:
            peers = [p for p in self.running() if p != node_id]
        addrs = [self.addr(p) for p in peers]
        if same_port:
            try:
                self._spawn(node_id, addrs, port=old.port)
            except RuntimeError:
                self._spawn(node_id, addrs)
        else:
            self._spawn(node_id, addrs)
        if wait:
            self.wait_converged(timeout=timeout)
        return node_id

    # --- failures -----------------------------------------------------------------

    def kill(self, node: int | str) -> None:
        """SIGKILL: a crash, no goodbye."""
        node_id = self.id(node)
        self._drop_conn(node_id)
        self.procs[node_id].kill()
        self.status[node_id] = "killed"

    def stop(self, node: int | str, timeout: float = 15.0) -> int:
        """SIGTERM (graceful leave) and wait for the exit; returns the exit code (the
        process is SIGKILLed if it does not exit within ``timeout``; the code is then -9)."""
        node_id = self.id(node)
        self._drop_conn(node_id)
        rc = self.procs[node_id].terminate(timeout=timeout)
        self.status[node_id] = "stopped"
        return rc

    def stop_async(self, node: int | str) -> NodeProcess:
        """SIGTERM without waiting (for load running during the leave); ``proc.wait`` to join."""
        node_id = self.id(node)
        self._drop_conn(node_id)
        proc = self.procs[node_id]
        proc.signal(signal.SIGTERM)
        self.status[node_id] = "stopped"
        return proc

    def freeze(self, node: int | str) -> None:
        """SIGSTOP: the node stops answering anything while its sockets stay open."""
        node_id = self.id(node)
        self._drop_conn(node_id)
        self.procs[node_id].signal(signal.SIGSTOP)
        self.status[node_id] = "frozen"

    def thaw(self, node: int | str) -> None:
        """SIGCONT a frozen node."""
        node_id = self.id(node)
        self.procs[node_id].signal(signal.SIGCONT)
        self.status[node_id] = "running"

    # --- talking to nodes ---------------------------------------------------------

    def client(self, node: int | str, timeout: float = REQUEST_TIMEOUT) -> Conn:
        """A new JSON-lines connection to ``node`` (the caller closes it; a context manager)."""
        return Conn(self.port(node), timeout=timeout)

    def _conn(self, node_id: str) -> Conn:
        conn = self._conns.get(node_id)
        if conn is None:
            conn = self._conns[node_id] = Conn(self.procs[node_id].port, timeout=REQUEST_TIMEOUT)
        return conn

    def _drop_conn(self, node_id: str) -> None:
        conn = self._conns.pop(node_id, None)
        if conn is not None:
            conn.close()

    def requests(self, node: int | str, objs: Sequence[dict[str, Any]], timeout: float = REQUEST_TIMEOUT) -> list[dict[str, Any]]:
        """Pipeline ``objs`` on this node's cached connection; the replies in order. A
        connection error or a read past the deadline drops the connection and raises."""
        node_id = self.id(node)
        if not objs:
            return []
        conn = self._conn(node_id)
        try:
            conn.send_json(*objs)
            return conn.read_jsons(len(objs), timeout=timeout + 0.002 * len(objs))
        except BaseException:
            self._drop_conn(node_id)
            raise

    def request(self, node: int | str, obj: dict[str, Any], timeout: float = REQUEST_TIMEOUT) -> dict[str, Any]:
        return self.requests(node, [obj], timeout)[0]

    def set(self, node: int | str, key: str, value: Any, *, ttl: float | None = None, consistency: str | None = None) -> dict[str, Any]:
        req: dict[str, Any] = {"type": "set", "key": key, "value": value}
        if ttl is not None:
            req["ttl"] = ttl
        if consistency is not None:
            req["consistency"] = consistency
        return self.request(node, req)

    def get(self, node: int | str, key: str, *, consistency: str | None = None) -> dict[str, Any]:
        req: dict[str, Any] = {"type": "get", "key": key}
        if consistency is not None:
            req["consistency"] = consistency
        return self.request(node, req)

    def delete(self, node: int | str, key: str, *, consistency: str | None = None) -> dict[str, Any]:
        req: dict[str, Any] = {"type": "delete", "key": key}
        if consistency is not None:
            req["consistency"] = consistency
        return self.request(node, req)

    def stats(self, node: int | str) -> dict[str, Any]:
        return _ok(self.request(node, {"type": "stats"}), "stats")["stats"]

    def members(self, node: int | str) -> dict[str, dict[str, Any]]:
        """``stats.cluster.members`` as ``node`` sees them."""
        stats = self.stats(node)
        cluster = stats.get("cluster")
        if not isinstance(cluster, dict):
            raise AssertionError(f"{self.id(node)} stats have no 'cluster' section: {stats}")
        return cluster["members"]

    def inspect(self, node: int | str, key: str) -> dict[str, Any]:
        return _ok(self.request(node, {"type": "inspect", "key": key}), "inspect")

    def inspect_many(self, node: int | str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        replies = self.requests(node, [{"type": "inspect", "key": k} for k in keys])
        out = {}
        for key, reply in zip(keys, replies):
            _ok(reply, "inspect")
            assert reply.get("key") == key, (key, reply)
            out[key] = reply
        return out

    def locate(self, key: str, via: int | str | None = None) -> list[str]:
        """The key's owners, best first, as ``via`` (default: the first running node) sees them."""
        return self.locate_many([key], via)[key]

    def locate_many(self, keys: Sequence[str], via: int | str | None = None) -> dict[str, list[str]]:
        via = via if via is not None else self.running()[0]
        replies = self.requests(via, [{"type": "locate", "key": k} for k in keys])
        out = {}
        for key, reply in zip(keys, replies):
            _ok(reply, "locate")
            assert reply.get("key") == key, (key, reply)
            out[key] = list(reply["owners"])
        return out

    # --- waiting ------------------------------------------------------------------

    def check_converged(self, expected: Iterable[int | str] | None = None) -> None:
        """Every running node is ready and sees every ``expected`` node (default: the
        running ones) alive (itself: "self") and ready. Raises AssertionError if not."""
        expected_ids = [self.id(e) for e in expected] if expected is not None else self.running()
        for observer in self.running():
            stats = self.stats(observer)
            cluster = stats.get("cluster")
            assert isinstance(cluster, dict), f"{observer} stats have no 'cluster' section: {stats}"
            assert cluster.get("ready") is True, f"{observer} is not ready: {cluster}"
            members = cluster.get("members", {})
            for subject in expected_ids:
                m = members.get(subject)
                want_state = "self" if subject == observer else "alive"
                assert m is not None, f"{observer} does not know {subject}: {sorted(members)}"
                assert m.get("state") == want_state and m.get("status") == "ready", (
                    f"{observer} sees {subject} as {m}, want state={want_state} status=ready"
                )

    def wait_converged(self, timeout: float = 15.0, expected: Iterable[int | str] | None = None) -> float:
        """Poll :meth:`check_converged`; returns the seconds it took."""
        expected = list(expected) if expected is not None else None
        started = time.monotonic()
        eventually(lambda: self.check_converged(expected), timeout, "cluster membership to converge", interval=0.1)
        return time.monotonic() - started

    def wait_member_state(
        self, subject: int | str, states: Iterable[str], *, observers: Iterable[int | str] | None = None, timeout: float = 10.0
    ) -> float:
        """Poll until every observer (default: every running node but ``subject``) sees
        ``subject`` in one of ``states``; returns the seconds it took."""
        subject_id = self.id(subject)
        wanted = set(states)
        obs = [self.id(o) for o in observers] if observers is not None else [i for i in self.running() if i != subject_id]

        def check() -> None:
            for o in obs:
                m = self.members(o).get(subject_id)
                assert m is not None and m.get("state") in wanted, f"{o} sees {subject_id} as {m}, want state in {wanted}"

        started = time.monotonic()
        eventually(check, timeout, f"{subject_id} to be {sorted(wanted)}", interval=0.1)
        return time.monotonic() - started

    # --- after an attack -----------------------------------------------------------

    def check_survived(self, key: str = "survivor", timeout: float = REQUEST_TIMEOUT) -> dict[str, dict[str, Any]]:
        """What every hostile-input test asserts afterwards (issue 11): each running node
        is still running once its dead-actor check has had time to run (the node looks
        every 0.5 s and exits 70 when an actor died), answers ``stats`` (so its Node and
        Store actors are alive), and a write then a read of ``key`` at consistency
        ``all`` (through the first node, read back through each) succeed. Returns each
        node's stats."""
        time.sleep(DEAD_ACTOR_CHECK_S)
        for node_id in self.running():
            proc = self.procs[node_id]
            assert proc.running, (
                f"{node_id} exited with {proc.proc.returncode}:\n{proc.log_tail(15)}"
            )
        stats = {node_id: self.stats(node_id) for node_id in self.running()}
        value = f"{key}-{time.monotonic_ns()}"
        first = self.running()[0]
        ack = self.request(first, {"type": "set", "key": key, "value": value, "consistency": "all"}, timeout)
        assert ack == {"type": "ack", "success": True}, f"write at all through {first}: {ack}"
        for node_id in self.running():
            got = self.request(node_id, {"type": "get", "key": key, "consistency": "all"}, timeout)
            assert got == {"type": "response", "value": value, "success": True}, f"read at all through {node_id}: {got}"
        return stats

    # --- cleanup ------------------------------------------------------------------

    def close(self, log_lines: int = 25) -> None:
        """Reap every process ever started (SIGKILL if still running) and print each
        node's log tail (visible when the test failed)."""
        if self._closed:
            return
        self._closed = True
        for load in self._loads:
            load._stop.set()
        for load in self._loads:
            for th in load._threads:
                th.join(timeout=REQUEST_TIMEOUT + 1)
        for node_id in list(self._conns):
            self._drop_conn(node_id)
        errors = []
        for proc in self.all_procs:
            try:
                proc.signal(signal.SIGCONT)  # harmless if not stopped; lets nothing linger frozen
                proc.kill()
            except Exception as exc:  # keep reaping the others
                errors.append(exc)
        for node_id, proc in self.procs.items():
            tail = proc.log_tail(log_lines)
            if tail:
                print(f"----- {node_id} ({self.status.get(node_id)}, rc={proc.proc.returncode}) {proc.log_path} -----")
                print(tail, end="" if tail.endswith("\n") else "\n")
        if errors:
            raise errors[0]

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- keeping score of writes ----------------------------------------------------------


class Ledger:
    """What each key may hold, given the writes made to it and their outcomes.

    Writes to one key must come from one thread, in order, with increasing values (so a
    later write wins). ``ack``: the value is now the floor; ``maybe`` (a ``timeout`` or
    a lost connection): it may or may not have been applied; ``unavailable`` is
    definite and needs no record. ``delete`` counts as the value ``None`` (absent).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.acked: dict[str, Any] = {}  # key -> last acknowledged value
        self.pending: dict[str, list[Any]] = {}  # key -> values attempted after it, outcome unknown

    def ack(self, key: str, value: Any) -> None:
        with self._lock:
            self.acked[key] = value
            self.pending[key] = []

    def maybe(self, key: str, value: Any) -> None:
        with self._lock:
            self.pending.setdefault(key, []).append(value)

    def acked_keys(self) -> list[str]:
        with self._lock:
            return sorted(k for k, v in self.acked.items() if v is not None)

    def allowed(self, key: str) -> list[Any]:
        """Values the key may hold now (``None``: absent), if it was ever acknowledged."""
        with self._lock:
            return [self.acked[key], *self.pending.get(key, [])]

    def check_value(self, key: str, found: bool, value: Any, where: str = "") -> None:
        allowed = self.allowed(key)
        got = value if found else None
        assert got in allowed, f"{key}{' on ' + where if where else ''}: holds {got!r}, acknowledged {allowed[0]!r}, may also hold {allowed[1:]!r}"


class WriteLoad:
    """Client threads writing increasing integers to their own keys, one connection per
    thread, until :meth:`stop`. Thread ``t`` talks to ``via[t]`` and writes keys
    ``{prefix}-{t}-{j}``; with ``read_every`` the first ``readers`` threads (default all)
    read back every so many writes (at ``read_consistency``) and check the answer
    against the ledger: a quorum read after a quorum write must never be older than the
    last acknowledged value. (A read that waits for a replica blocks its thread's writes
    too, so keep some threads write-only when measuring write availability.) ``rate`` paces
    each thread to that many writes per second (None: as fast as replies come), so the
    load tests correctness rather than starving the nodes' failure detectors of CPU.

    Outcomes are counted in ``outcomes`` (ack, unavailable, timeout, conn_lost, ...),
    anything that is neither an ack nor an allowed error is kept in ``bad``.
    """

    def __init__(
        self,
        cluster: Cluster,
        via: Sequence[int | str],
        *,
        keys_per_thread: int = 25,
        consistency: str | None = "quorum",
        read_every: int = 0,
        read_consistency: str = "quorum",
        prefix: str = "load",
        ledger: Ledger | None = None,
        rate: float | None = 100.0,
        readers: int | None = None,
    ) -> None:
        self.cluster = cluster
        self.rate = rate
        self.via = [cluster.id(v) for v in via]
        self.consistency = consistency
        self.read_every = read_every
        self.readers = len(self.via) if readers is None else readers
        self.read_consistency = read_consistency
        self.keys = [[f"{prefix}-{t}-{j}" for j in range(keys_per_thread)] for t in range(len(self.via))]
        self.ledger = ledger or Ledger()
        self.outcomes: Counter[str] = Counter()  # writes
        self.read_outcomes: Counter[str] = Counter()  # reads: ok, stale, unavailable, timeout, ...
        self.timeline: list[tuple[float, str, float]] = []  # (answered at, outcome, latency); reads "read:..."
        self.bad: list[Any] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        cluster._loads.append(self)

    @property
    def all_keys(self) -> list[str]:
        return [k for keys in self.keys for k in keys]

    def start(self) -> WriteLoad:
        for t, node_id in enumerate(self.via):
            th = threading.Thread(target=self._run, args=(t, node_id), name=f"load-{t}", daemon=True)
            self._threads.append(th)
            th.start()
        return self

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        for th in self._threads:
            th.join(timeout)
            assert not th.is_alive(), f"{th.name} did not stop"

    def count(self, outcome: str, since: float | None = None, until: float | None = None) -> int:
        """Requests with ``outcome`` (``"ack"``, ``"read:ok"``, ...) sent in [since, until)."""
        with self._lock:
            return sum(
                1 for t, o, lat in self.timeline
                if o == outcome and (since is None or t - lat >= since) and (until is None or t - lat < until)
            )

    def _note(self, outcome: str, sent: float) -> None:
        now = time.monotonic()
        with self._lock:
            (self.read_outcomes if outcome.startswith("read:") else self.outcomes)[outcome.removeprefix("read:")] += 1
            self.timeline.append((now, outcome, now - sent))

    def max_latency(self, prefix: str = "") -> float:
        """The slowest request (writes; ``prefix="read:"`` for reads) in seconds."""
        with self._lock:
            return max((lat for _, o, lat in self.timeline if o.startswith(prefix) and (prefix or ":" not in o)), default=0.0)

    def _run(self, t: int, node_id: str) -> None:
        keys = self.keys[t]
        ledger = self.ledger
        conn: Conn | None = None
        seq = 0
        began = time.monotonic()
        try:
            while not self._stop.is_set():
                if self.rate:
                    pause = began + seq / self.rate - time.monotonic()
                    if pause > 0 and self._stop.wait(pause):
                        break
                if conn is None:
                    try:
                        conn = Conn(self.cluster.port(node_id), timeout=REQUEST_TIMEOUT)
                    except OSError:
                        self._note("connect_failed", time.monotonic())
                        self._stop.wait(0.05)
                        continue
                seq += 1
                key = keys[seq % len(keys)]
                sent = time.monotonic()
                req: dict[str, Any] = {"type": "set", "key": key, "value": seq}
                if self.consistency is not None:
                    req["consistency"] = self.consistency
                try:
                    reply = conn.request(req)
                except (*TRANSIENT, ValueError):
                    ledger.maybe(key, seq)
                    self._note("conn_lost", sent)
                    conn.close()
                    conn = None
                    continue
                if reply == {"type": "ack", "success": True}:
                    ledger.ack(key, seq)
                    self._note("ack", sent)
                elif reply.get("type") == "error" and reply.get("error") == "unavailable":
                    self._note("unavailable", sent)  # definite: nothing applied
                elif reply.get("type") == "error" and reply.get("error") == "timeout":
                    ledger.maybe(key, seq)
                    self._note("timeout", sent)
                else:
                    ledger.maybe(key, seq)
                    self._note("bad", sent)
                    with self._lock:
                        self.bad.append(("set", req, reply))
                if self.read_every and t < self.readers and seq % self.read_every == 0:
                    rkey = keys[(seq // self.read_every) % len(keys)]
                    if rkey not in ledger.acked:
                        continue
                    sent = time.monotonic()
                    try:
                        reply = conn.request({"type": "get", "key": rkey, "consistency": self.read_consistency})
                    except (*TRANSIENT, ValueError):
                        self._note("read:conn_lost", sent)
                        conn.close()
                        conn = None
                        continue
                    if reply.get("type") == "response":
                        allowed = ledger.allowed(rkey)
                        got = reply.get("value") if reply.get("success") else None
                        if got in allowed:
                            self._note("read:ok", sent)
                        else:
                            self._note("read:stale", sent)
                            with self._lock:
                                self.bad.append(("stale read", rkey, reply, allowed))
                    elif reply.get("type") == "error" and reply.get("error") in ("unavailable", "timeout"):
                        self._note(f"read:{reply['error']}", sent)
                    else:
                        self._note("read:bad", sent)
                        with self._lock:
                            self.bad.append(("get", rkey, reply))
        except BaseException as exc:  # never die silently
            with self._lock:
                self.bad.append(("exception", repr(exc)))
        finally:
            if conn is not None:
                conn.close()


def dump(obj: Any) -> str:
    """Compact JSON for assertion messages."""
    return json.dumps(obj, separators=(",", ":"), default=str)[:2000]
