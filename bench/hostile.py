"""Issue 11's reproducers against real nodes: can one hostile client kill a node or make it balloon?

``python -m bench.hostile [--root DIR] [--only NAME ...] [--record]`` runs each attack of
issue 11 against fresh ``python -m runtime.node`` subprocesses started from the checkout
``--root`` (default: this one). The nodes run with ``--root`` as their working directory,
so that checkout's packages come first on ``sys.path`` whatever interpreter runs them:
pointing ``--root`` at a worktree of older code gives the "before" figures with the same
virtualenv (the header line says which ``runtime`` package the nodes import).

One row per attack:

- **alive**: whether each node still runs afterwards (its exit code and last log line if not);
- **good request**: whether a fresh client's ``set`` then ``get`` (``consistency`` ``all``
  in the cluster) is served afterwards (while the attack's sockets are still open, where it
  holds connections);
- **RSS**: the node's peak ``VmRSS`` sampled every 20 ms during the attack, and its
  ``VmHWM`` (lifetime high-water mark, start-up included);
- **CPU**: node CPU seconds (``utime + stime`` of /proc/PID/stat) spent over the attack;
- **ping**: p99 / max of pings on a separate connection during the attack, where it
  holds the node busy;
- **attacker saw**: the reply to the bad request, a disconnection, or nothing;
- **counters**: the node's ``stats`` counters about hostile input, where it has them.

Options the issue added (``--request-read-timeout``, ``--timeout``) are passed only when the
node's ``--help`` lists them, and the row says so. Every loop is bounded in count and
time; only 127.0.0.1 is used; every node is SIGKILLed when its attack ends, however it ends.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import select
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from bench.results import machine, record
from bench.servers import cpu_seconds
from runtime.local_cluster import NodeProcess

ROOT = Path(__file__).resolve().parent.parent
MiB = 1 << 20
#: Fast failure detection for the cluster, as the integration tests use.
CLUSTER_FLAGS = ("--heartbeat-interval", "0.1", "--down-after", "1")
#: How often the node checks for a dead actor (runtime/node.py polls every 0.5 s): wait
#: longer than this before saying a node survived.
DEATH_CHECK_S = 1.2
#: ``stats`` counters about hostile input (issue 11); shown when the node has them.
COUNTERS = (
    "internal_errors",
    "actor_failures",
    "rejected_connections",
    "client_output_buffer_kills",
    "idle_timeouts",
    "request_read_timeouts",
    "input_buffer_kills",
)


# --- the nodes under attack ----------------------------------------------------------


def node_options(root: Path, python: str) -> set[str]:
    """The ``--options`` the node of this checkout accepts (from its ``--help``)."""
    out = subprocess.run(
        [python, "-m", "runtime.node", "--help"], cwd=root, capture_output=True, text=True, timeout=60, check=True
    ).stdout
    return set(re.findall(r"--[a-z][a-z0-9-]*", out))


def runtime_path(root: Path, python: str) -> str:
    """Where the nodes' ``runtime`` package comes from, imported the way a node imports it."""
    return subprocess.run(
        [python, "-c", "import runtime; print(runtime.__file__)"], cwd=root, capture_output=True, text=True,
        timeout=60, check=True,
    ).stdout.strip()


def peer_protocol(root: Path, python: str) -> int:
    """The peer protocol version the nodes of this checkout speak (a forged hello must name it)."""
    return int(subprocess.run(
        [python, "-c", "from actors.protocol.peer_codec import PROTOCOL_VERSION; print(PROTOCOL_VERSION)"], cwd=root,
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout.strip())


class Node(NodeProcess):
    """One node subprocess of the checkout at ``root``; stdout and stderr go to ``log``;
    killed by :meth:`kill`."""

    def __init__(self, root: Path, python: str, node_id: str, args: Sequence[str], log: Path, start_timeout: float = 20.0) -> None:
        super().__init__(
            node_id, *args, command=[python, "-m", "runtime.node"], cwd=root, log_path=log, start_timeout=start_timeout
        )

    def last_log_line(self, pattern: str = "") -> str:
        assert self.log_path is not None
        lines = [ln for ln in self.log_path.read_text(errors="replace").splitlines() if pattern in ln]
        return lines[-1] if lines else ""

    def fate(self) -> str:
        """``alive``, or ``dead (exit N: last critical log line)``."""
        if self.running:
            return "alive"
        why = self.last_log_line("CRITICAL") or self.last_log_line()
        why = re.sub(r"^\S+ \S+ CRITICAL \S+: ", "", why)
        return f"dead (exit {self.proc.returncode}: {why[:80]})"


class Lab:
    """Starts nodes for one attack and kills every one of them at the end."""

    def __init__(self, root: Path, python: str, options: set[str], tmp: Path, name: str, proto: int = 3) -> None:
        self.root, self.python, self.options, self.tmp, self.name = root, python, options, tmp, name
        self.proto = proto  # the peer protocol version of this checkout
        self.nodes: list[Node] = []

    def has(self, option: str) -> bool:
        return option in self.options

    def node(self, *args: str, node_id: str = "node1") -> Node:
        node = Node(self.root, self.python, node_id, args, self.tmp / f"{self.name}-{node_id}.log")
        self.nodes.append(node)
        return node

    def cluster(self, count: int = 3) -> list[Node]:
        """``count`` nodes, each joining through the ones before it; waits until all see all."""
        nodes: list[Node] = []
        for i in range(1, count + 1):
            nodes.append(self.node(*(n.addr for n in nodes), *CLUSTER_FLAGS, node_id=f"node{i}"))
        deadline = time.monotonic() + 30
        while not all(_converged(n, count) for n in nodes):
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not converge in 30 s")
            time.sleep(0.1)
        return nodes

    def close(self) -> None:
        for node in self.nodes:
            node.kill()


def _converged(node: Node, count: int) -> bool:
    try:
        stats = json_request(node.port, {"type": "stats"}, timeout=2)["stats"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    members = stats.get("cluster", {}).get("members", {})
    return len(members) == count and all(m.get("state") in ("self", "alive") and m.get("status") == "ready" for m in members.values())


# --- measuring ---------------------------------------------------------------------


def _status(pid: int) -> tuple[int, int]:
    """``(VmRSS, VmHWM)`` of a process in bytes; OSError once it is gone."""
    rss = hwm = 0
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) * 1024
    return rss, hwm


class Probe:
    """Samples the nodes' RSS, high-water mark and CPU time every 20 ms in a thread, so the
    figures survive a node that dies mid-attack (its /proc entry goes when it is reaped)."""

    def __init__(self, nodes: Sequence[Node], interval: float = 0.02) -> None:
        self.nodes = list(nodes)
        self.interval = interval
        self.cpu0 = {n.pid: cpu_seconds(n.pid) for n in self.nodes}
        self.cpu = dict(self.cpu0)
        self.peak = {n.pid: _status(n.pid)[0] for n in self.nodes}
        self.hwm = {n.pid: 0 for n in self.nodes}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="probe", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        for n in self.nodes:
            try:
                rss, hwm = _status(n.pid)
                cpu = cpu_seconds(n.pid)
            except (OSError, IndexError, ValueError):
                continue
            self.peak[n.pid] = max(self.peak[n.pid], rss)
            self.hwm[n.pid] = max(self.hwm[n.pid], hwm)
            self.cpu[n.pid] = cpu

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def rss_now(self, node: Node) -> int:
        try:
            return _status(node.pid)[0]
        except OSError:
            return 0

    def stop(self) -> None:
        self._sample()
        self._stop.set()
        self._thread.join(timeout=5)
        self._sample()

    def rss_cell(self) -> str:
        return ", ".join(f"{self.peak[n.pid] / MiB:,.0f} / {self.hwm[n.pid] / MiB:,.0f}" for n in self.nodes)

    def cpu_spent(self, node: Node) -> float:
        return self.cpu[node.pid] - self.cpu0[node.pid]

    def cpu_cell(self) -> str:
        return ", ".join(f"{self.cpu_spent(n):.2f}" for n in self.nodes)


class Pinger:
    """Pings a node on its own connection every 10 ms until stopped (bounded by ``max_s``)."""

    def __init__(self, port: int, max_s: float = 120.0) -> None:
        self.port = port
        self.max_s = max_s
        self.latencies: list[float] = []
        self.failure = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pinger", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        end = time.monotonic() + self.max_s
        try:
            with _JsonSocket(self.port, timeout=5) as c:
                while not self._stop.wait(0.01) and time.monotonic() < end:
                    t0 = time.perf_counter()
                    reply = c.request({"type": "ping"})
                    self.latencies.append(time.perf_counter() - t0)
                    if reply.get("type") != "pong":
                        self.failure = f"ping answered {reply}"
                        return
        except TimeoutError:
            self.failure = "a ping unanswered for 5 s"
        except (OSError, ValueError) as exc:
            self.failure = f"ping failed: {type(exc).__name__}"

    def stop(self) -> str:
        self._stop.set()
        self._thread.join(timeout=10)
        if not self.latencies:
            return self.failure or "no ping answered"
        ordered = sorted(self.latencies)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        cell = f"{p99 * 1000:.1f} / {ordered[-1] * 1000:.0f}"
        return f"{cell} ({self.failure})" if self.failure else cell


# --- talking to a node -------------------------------------------------------------


class _JsonSocket:
    """A blocking JSON-lines client with a deadline on every read."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def __enter__(self) -> _JsonSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def request(self, obj: Any) -> Any:
        self.sock.sendall(json.dumps(obj, separators=(",", ":")).encode() + b"\n")
        return self.read()

    def read(self) -> Any:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("closed by the node")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return json.loads(line)


def json_request(port: int, obj: Any, timeout: float = 5.0) -> Any:
    with _JsonSocket(port, timeout) as c:
        return c.request(obj)


def good_request(node: Node, consistency: str | None = None) -> str:
    """A fresh client's set then get of a small value: ``served`` or what went wrong."""
    if not node.running:
        return "no (node dead)"
    extra = {"consistency": consistency} if consistency else {}
    try:
        with _JsonSocket(node.port, timeout=5) as c:
            ack = c.request({"type": "set", "key": "good", "value": "v", **extra})
            got = c.request({"type": "get", "key": "good", **extra})
    except (OSError, ValueError) as exc:
        return f"no ({type(exc).__name__})"
    if ack == {"type": "ack", "success": True} and got.get("value") == "v":
        return "served" + (f" (at {consistency})" if consistency else "")
    return f"no ({ack} {got})"[:120]


def counters(node: Node) -> str:
    """Nonzero hostile-input counters of the node's ``stats``, or ``-``."""
    if not node.running:
        return "-"
    try:
        stats = json_request(node.port, {"type": "stats"}, timeout=5)["stats"]
    except (OSError, ValueError, KeyError, TypeError):
        return "stats failed"
    found = [f"{k}={stats[k]}" for k in COUNTERS if stats.get(k)]
    return " ".join(found) or "-"


def describe_reply(reply: Any) -> str:
    if isinstance(reply, dict) and reply.get("type") == "error":
        return f"error {reply.get('error')}: {str(reply.get('message'))[:70]}"
    return json.dumps(reply, default=str)[:80]


def await_reply(sock: socket.socket, framing: str, timeout: float) -> str:
    """What the attacker sees within ``timeout``: the first reply, a close, or nothing."""
    sock.settimeout(timeout)
    unpacker = msgpack.Unpacker(raw=False)
    buf = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(1 << 16)
        except socket.timeout:
            break
        except ConnectionResetError:
            return "connection reset"
        if not chunk:
            return "disconnected, no reply"
        if framing == "msgpack":
            unpacker.feed(chunk)
            for obj in unpacker:
                return describe_reply(obj)
        else:
            buf += chunk
            if b"\n" in buf:
                return describe_reply(json.loads(buf.partition(b"\n")[0]))
    return f"no reply in {timeout:g} s"


def peer_closed(sock: socket.socket) -> bool:
    """Whether the node closed this socket (readable at EOF or reset); never blocks. Data
    waiting (an error reply before the close) is read and dropped, at most 64 KiB."""
    poller = select.poll()  # select() cannot take descriptors past 1023
    poller.register(sock, select.POLLIN)
    if not poller.poll(0):
        return False
    try:
        return sock.recv(1 << 16, socket.MSG_DONTWAIT) == b"" or _eof_after(sock)
    except BlockingIOError:
        return False
    except OSError:
        return True


def _eof_after(sock: socket.socket) -> bool:
    try:
        return sock.recv(1 << 16, socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def count_closed(socks: Sequence[socket.socket]) -> int:
    return sum(1 for s in socks if peer_closed(s))


@contextlib.contextmanager
def sockets() -> Iterator[list[socket.socket]]:
    """A list for the attacker's sockets, every one closed on the way out."""
    socks: list[socket.socket] = []
    try:
        yield socks
    finally:
        for s in socks:
            s.close()


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class NodeReadWatch:
    """How many bytes the node has not read yet on its end of one loopback connection,
    asked of the kernel by exact socket lookup (sock_diag netlink, ~20 us a question;
    /proc/net/tcp walks every socket and costs ms). Lets a sender wait until the node has
    read each segment, so every segment is a read of its own, as from a slow sender."""

    _SOCK_DIAG_BY_FAMILY = 20
    _NETLINK_SOCK_DIAG = 4

    def __init__(self, node_port: int, client_port: int) -> None:
        lo = socket.inet_aton("127.0.0.1") + bytes(12)
        sockid = struct.pack("!HH16s16s", node_port, client_port, lo, lo) + struct.pack("=III", 0, 0xFFFFFFFF, 0xFFFFFFFF)
        req = struct.pack("=BBBBI", socket.AF_INET, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF) + sockid
        self._msg = struct.pack("=IHHII", 16 + len(req), self._SOCK_DIAG_BY_FAMILY, 1, 1, 0) + req  # NLM_F_REQUEST
        self._sock: socket.socket | None = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, self._NETLINK_SOCK_DIAG)

    def unread(self) -> int | None:
        """Bytes queued unread at the node (None: the kernel would not say)."""
        if self._sock is None:
            return None
        self._sock.sendto(self._msg, (0, 0))
        data = self._sock.recv(65536)
        if struct.unpack_from("=H", data, 4)[0] != self._SOCK_DIAG_BY_FAMILY:
            self.close()  # an error answer: stop asking
            return None
        return struct.unpack_from("=I", data, 16 + 56)[0]  # inet_diag_msg.idiag_rqueue

    def wait_read(self, max_s: float = 2.0) -> None:
        end = time.monotonic() + max_s
        while self.unread() and time.monotonic() < end:
            pass

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def settle(probe: Probe, node: Node, *, quiet_s: float, max_s: float) -> float:
    """Wait until the node's RSS has not grown by 1 MiB for ``quiet_s`` (at most ``max_s``)."""
    start = time.monotonic()
    last, last_change = probe.rss_now(node), start
    while time.monotonic() - start < max_s and node.running:
        time.sleep(0.1)
        now = probe.rss_now(node)
        if now > last + MiB:
            last, last_change = now, time.monotonic()
        elif time.monotonic() - last_change >= quiet_s:
            break
    return time.monotonic() - start


# --- the attacks ---------------------------------------------------------------------


@dataclass
class Row:
    attack: str
    alive: str
    good: str
    rss: str
    cpu: str
    ping: str = "-"
    saw: str = "-"
    counters: str = "-"
    notes: list[str] = field(default_factory=list)

    def cells(self) -> list[str]:
        saw = self.saw + ("; " + "; ".join(self.notes) if self.notes else "")
        return [self.attack, self.alive, self.good, self.rss, self.cpu, self.ping, saw, self.counters]


HEADER = (
    "| attack | node(s) alive after | next good request | node RSS peak / VmHWM MiB | node CPU s "
    "| ping p99 / max ms during | attacker saw | node counters |\n"
    "|---|---|---|---|---|---|---|---|"
)


def deep_list(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


def deep_line(depth: int = 500) -> bytes:
    """Issue 11's request: ``{"type":"set","key":"deep","value":[[[[...["x"]...]]]]}``."""
    return b'{"type":"set","key":"deep","value":' + b"[" * depth + b'"x"' + b"]" * depth + b"}\n"


def _deep(lab: Lab, nodes: list[Node], payload: bytes, framing: str, consistency: str | None) -> Row:
    probe = Probe(nodes)
    with sockets() as socks:
        socks.append(connect(nodes[0].port))
        socks[0].sendall(payload)
        saw = await_reply(socks[0], framing, timeout=5)
    time.sleep(DEATH_CHECK_S)
    probe.stop()
    alive = ", ".join(f"{n.node_id} {n.fate()}" if len(nodes) > 1 else n.fate() for n in nodes)
    survivor = next((n for n in nodes if n.running), nodes[0])
    return Row(
        lab.name, alive, good_request(survivor, consistency), probe.rss_cell(), probe.cpu_cell(),
        saw=f"{len(payload):,} B request: {saw}", counters=counters(survivor),
    )


def attack_deep_json(lab: Lab) -> Row:
    return _deep(lab, [lab.node()], deep_line(), "json", None)


def attack_deep_json_cluster(lab: Lab) -> Row:
    nodes = lab.cluster(3)
    return _deep(lab, nodes, deep_line(), "json", "all")


def attack_deep_msgpack(lab: Lab) -> Row:
    payload = msgpack.packb({"type": "set", "key": "deep", "value": deep_list(500)}, use_bin_type=True)
    return _deep(lab, [lab.node()], payload, "msgpack", None)


def attack_nonreader(lab: Lab) -> Row:
    """Pipelined gets of a 512 KiB value, 21.6 KB of them, and never a read."""
    node = lab.node()
    json_request(node.port, {"type": "set", "key": "big", "value": "x" * (512 * 1024)})
    get = b'{"type":"get","key":"big"}\n'
    pipeline = get * (21_600 // len(get))
    probe = Probe([node])
    pinger = Pinger(node.port)
    with sockets() as socks:
        attacker = connect(node.port)
        socks.append(attacker)
        attacker.sendall(pipeline)
        waited = settle(probe, node, quiet_s=2.0, max_s=20.0)
        ping = pinger.stop()
        good = good_request(node)
        probe.stop()
        # Now read what the node sends us (bounded): does it end in a disconnection?
        received, ending = 0, "connection still open"
        attacker.settimeout(2)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            try:
                chunk = attacker.recv(1 << 20)
            except socket.timeout:
                break
            except ConnectionResetError:
                ending = "then reset by the node"
                break
            if not chunk:
                ending = "then closed by the node"
                break
            received += len(chunk)
    replies = received / (len(json.dumps("x" * (512 * 1024))) + 40)
    saw = f"{len(pipeline):,} B of gets ({len(pipeline) // len(get)}); then read {received / MiB:,.0f} MiB (~{replies:,.0f} replies), {ending}"
    return Row(lab.name, node.fate(), good, probe.rss_cell(), probe.cpu_cell(), ping, saw, counters(node),
               [f"RSS settled after {waited:.1f} s"])


def _option(lab: Lab, option: str, value: str) -> tuple[list[str], list[str]]:
    """``[option, value]`` and a note saying so when the node has the option, else a note
    saying it has none."""
    if lab.has(option):
        return [option, value], [f"node run with {option} {value}"]
    return [], [f"node has no {option}"]


def _partial_line(size: int) -> bytes:
    head = b'{"type":"set","key":"slow","value":"'
    return head + b"x" * (size - len(head))


def _send_held(socks: list[socket.socket], port: int, payloads: Sequence[bytes], budget_s: float, framing: str = "json") -> tuple[int, int, str]:
    """Open one connection per payload and send it (never its end); ``(sent, refused,
    said)``: refused counts connections the node closed or refused while we were still
    sending, ``said`` what it answered the first of those before closing."""
    sent = refused = 0
    said = ""
    end = time.monotonic() + budget_s
    for payload in payloads:
        if time.monotonic() > end:
            break
        try:
            sock = connect(port)
        except OSError:
            refused += 1
            continue
        socks.append(sock)
        sock.settimeout(5)
        try:
            sock.sendall(payload)
            sent += 1
        except (BrokenPipeError, ConnectionResetError, socket.timeout):
            refused += 1
            if not said:
                said = await_reply(sock, framing, timeout=1)
    return sent, refused, said


def _hold_partials(lab: Lab, payloads: Sequence[bytes], what: str, framing: str = "json") -> Row:
    """One connection per payload, each sent but for its end and then held; 4 s later
    (past a 2 s ``--request-read-timeout`` on the new code), how many the node closed."""
    args, notes = _option(lab, "--request-read-timeout", "2")
    node = lab.node(*args)
    probe = Probe([node])
    pinger = Pinger(node.port)
    with sockets() as socks:
        t0 = time.monotonic()
        sent, refused, said = _send_held(socks, node.port, payloads, budget_s=90, framing=framing)
        send_s = time.monotonic() - t0
        time.sleep(4.0)  # past a 2 s request-read timeout, with margin
        ping = pinger.stop()
        good = good_request(node)
        closed = count_closed(socks)
        probe.stop()
    saw = (f"{sent} of {len(payloads)} {what} sent in {send_s:.1f} s ({refused} cut off while sending"
           f"{': ' + said if said else ''}); {closed} of {len(socks)} closed by the node 4 s later")
    return Row(lab.name, node.fate(), good, probe.rss_cell(), probe.cpu_cell(), ping, saw, counters(node), notes)


def attack_slowloris(lab: Lab) -> Row:
    """300 connections, each holding a half-sent 1 MiB line (just under the 1 MiB limit)."""
    return _hold_partials(lab, [_partial_line(MiB - 64)] * 300, "lines")


def attack_slowloris_msgpack(lab: Lab) -> Row:
    """Not one of issue 11's reproducers, the same shape in the other framing: 300
    connections each holding a half-sent msgpack frame of just under 1 MiB."""
    size = MiB - 1024
    frame = b"\x83\xa4type\xa3set\xa3key\xa4slow\xa5value\xc6" + size.to_bytes(4, "big") + b"\0" * (size - 1024)
    return _hold_partials(lab, [frame] * 300, "frames", framing="msgpack")


def attack_hello_frames(lab: Lab) -> Row:
    """A msgpack ``hello`` (a forged but well-formed one) then a ~60 MiB frame never finished, x6."""
    declared = 60 * MiB
    frame_head = b"\x81\xa1x" + b"\xc6" + declared.to_bytes(4, "big")  # {"x": bin32 of 60 MiB}
    payloads = []
    for i in range(6):
        hello = msgpack.packb(
            {"type": "hello", "node_id": f"intruder{i}", "addr": "127.0.0.1:1", "partitions": 256, "proto": lab.proto}
        )
        payloads.append(hello + frame_head + b"\x00" * (declared - 1024))
    return _hold_partials(lab, payloads, "frames", framing="msgpack")


def _set_line(size: int) -> bytes:
    head, tail = b'{"type":"set","key":"sliced","value":"', b'"}\n'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def attack_sliced_line(lab: Lab) -> Row:
    """A 1 MB JSON line in 128-byte segments (each read by the node before the next is
    sent) vs in one piece: node CPU per line for each. Linear buffering costs a fixed
    amount per segment, so a 250 KB line sliced the same way is run too: the node CPU per
    segment at 1 MB over that at 250 KB is ~1 when buffering is linear, ~4 when quadratic."""
    node = lab.node()
    # A warm-up (unmeasured: a fresh node's first big line also pays for growing its heap),
    # then each measure; the 250 KB line four times, as many segments as the 1 MB one.
    runs = [("warm-up", 250_000, 1), ("sliced-250K", 250_000, 4), ("sliced", 1_000_000, 1), ("whole", 1_000_000, 5)]
    probe = Probe([node])
    per_line: dict[str, float] = {}
    saw: set[str] = set()
    with sockets() as socks:
        c = connect(node.port, timeout=30)
        socks.append(c)
        watch = NodeReadWatch(node.port, c.getsockname()[1])
        try:
            for how, size, count in runs:  # one piece costs a few ms: several, for the 10 ms CPU tick
                line = _set_line(size)
                before = cpu_seconds(node.pid)
                for _ in range(count):
                    if how in ("whole", "warm-up"):
                        c.sendall(line)
                    else:
                        give_up = time.monotonic() + 120  # a bound on the whole line, not just a segment
                        for i in range(0, len(line), 128):
                            c.sendall(line[i : i + 128])
                            watch.wait_read(max_s=min(2.0, max(0.0, give_up - time.monotonic())))
                    saw.add(await_reply(c, "json", timeout=60))
                per_line[how] = (cpu_seconds(node.pid) - before) / count
        finally:
            watch.close()
    probe.stop()
    ratio = per_line["sliced"] / per_line["whole"] if per_line["whole"] > 0 else float("inf")
    per_segment = {how: per_line[how] / (size / 128) for how, size, _ in runs if how.startswith("sliced")}
    growth = per_segment["sliced"] / per_segment["sliced-250K"] if per_segment["sliced-250K"] > 0 else float("inf")
    notes = [
        f"node CPU per 1 MB line: in 128 B segments {per_line['sliced']:.3f} s, in one piece {per_line['whole']:.3f} s "
        f"(mean of 5), ratio {ratio:,.0f}",
        f"node CPU per segment: {per_segment['sliced'] * 1e6:.0f} us in a 1 MB line, {per_segment['sliced-250K'] * 1e6:.0f} us "
        f"in a 250 KB line ({growth:.1f}x; linear ~1, quadratic ~4)",
    ]
    return Row(lab.name, node.fate(), good_request(node), probe.rss_cell(), probe.cpu_cell(),
               saw="replies: " + " / ".join(sorted(saw)), counters=counters(node), notes=notes)


def attack_idle(lab: Lab, count: int = 5000) -> Row:
    """5,000 connections that never send a byte."""
    wait = 5.0
    args, notes = _option(lab, "--timeout", "2")
    node = lab.node(*args)
    probe = Probe([node])
    with sockets() as socks:
        t0 = time.monotonic()
        opened, failed = 0, 0
        while opened + failed < count and time.monotonic() - t0 < 60:
            try:
                socks.append(connect(node.port))
                opened += 1
            except OSError:
                failed += 1
        open_s = time.monotonic() - t0
        time.sleep(wait)
        closed = count_closed(socks)
        try:
            held = json_request(node.port, {"type": "stats"})["stats"]["connections"] - 1
        except (OSError, ValueError, KeyError, TypeError):
            held = "?"
        good = good_request(node)
        probe.stop()
    saw = (f"{opened:,} opened in {open_s:.1f} s ({failed} failed); {wait:g} s later {closed:,} closed by the node, "
           f"{opened - closed:,} kept (node counts {held} client connections)")
    return Row(lab.name, node.fate(), good, probe.rss_cell(), probe.cpu_cell(), saw=saw, counters=counters(node), notes=notes)


ATTACKS: dict[str, Callable[[Lab], Row]] = {
    "deep-json": attack_deep_json,
    "deep-json-cluster": attack_deep_json_cluster,
    "deep-msgpack": attack_deep_msgpack,
    "nonreader": attack_nonreader,
    "slowloris": attack_slowloris,
    "slowloris-msgpack": attack_slowloris_msgpack,
    "hello-frames": attack_hello_frames,
    "sliced-line": attack_sliced_line,
    "idle": attack_idle,
}


def _raise_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def run_attack(name: str, root: Path, python: str, options: set[str], tmp: Path, proto: int) -> Row:
    lab = Lab(root, python, options, tmp, name, proto)
    try:
        return ATTACKS[name](lab)
    except Exception as exc:  # one broken attack must not hide the others' rows
        return Row(name, ", ".join(n.fate() for n in lab.nodes) or "-", "-", "-", "-", saw=f"bench error: {exc!r}"[:200])
    finally:
        lab.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.hostile", description=__doc__.split("\n\n")[0])
    p.add_argument("--root", type=Path, default=ROOT, help="checkout whose nodes are attacked (default: this one)")
    p.add_argument("--python", default=sys.executable, help="interpreter that runs the nodes (default: this one)")
    p.add_argument("--only", nargs="+", choices=sorted(ATTACKS), metavar="NAME", help=f"attacks to run: {', '.join(ATTACKS)}")
    p.add_argument("--record", action="store_true", help="append the rows to bench/RESULTS.md")
    args = p.parse_args(argv)
    root = args.root.resolve()
    _raise_fd_limit(8192)
    options = node_options(root, args.python)
    proto = peer_protocol(root, args.python)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=False).stdout.strip()
    print(f"# nodes from {root} (commit {head or '?'}): runtime imported from {runtime_path(root, args.python)}", flush=True)
    print(f"# {machine()}; load average {os.getloadavg()[0]:.2f} as the run began", flush=True)
    print(HEADER, flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="actorcache-hostile-") as tmp:
        for name in args.only or list(ATTACKS):
            row = run_attack(name, root, args.python, options, Path(tmp), proto)
            line = "| " + " | ".join(c.replace("|", "/") for c in row.cells()) + " |"
            rows.append(line)
            print(line, flush=True)
    if args.record:
        command = "python -m bench.hostile " + " ".join(argv if argv is not None else sys.argv[1:])
        record(
            "Hostile clients: issue 11's reproducers (`bench/hostile.py`)",
            command,
            f"{machine()}; nodes from commit {head or '?'}.\n\n{HEADER}\n" + "\n".join(rows),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
