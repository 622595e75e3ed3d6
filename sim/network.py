"""The simulated network between nodes: latency, loss and duplication (drawn from the
models of :mod:`sim.link_models`), partitions, and the authenticated peer handshake on
every link.

Addresses are node ids (``ctx.send("node2", msg)``). Links are FIFO by default, as TCP
is within a connection: a message never overtakes an earlier one on the same link,
whatever latency it drew; a link marked ``reorder`` drops that guarantee on purpose. A
message is dropped when its link is cut at send time or its destination is down at
delivery time. All randomness comes from one ``random.Random`` handed in by the host,
so a seed replays a run exactly.

Every link (src, dst) opens as a real peer connection does (:mod:`actors.kernel.peer_auth`,
the very objects the runtime runs): the first send queues the message and sends ``hello``;
dst answers ``challenge``; src checks it and sends ``auth`` with the queue right behind it.
dst delivers nothing of the connection before its ``auth`` proof checked out. Each
handshake frame draws latency and is subject to loss, cuts and slow nodes like any
message (never duplicated: it is one TCP connection's bytes). Why it is faithful:

- a lost handshake frame fails the attempt; the queue waits and the attempt is retried
  after a backoff like ``runtime.peers`` (50 ms doubling to 1 s), so a partition that cuts
  a handshake heals as a real one does; a link that was already open keeps its connection
  through a partition (TCP does) and loses only what is sent across the cut;
- a crash of either end closes its connections (:meth:`SimNetwork.drop_node`): the next
  send runs the handshake again; what was in flight to the dead process is lost with it.
  A hello nobody listens for (its node is down) is a refused connection: what waited for
  it is dropped, so a message to a down node is lost as it always was here;
- a paused node keeps its connections (a stopped process's sockets stay open) but runs
  none of its handshake steps: hellos it must answer, challenges it must check and its
  retries wait for :meth:`SimNetwork.resume` (an acceptor gives a handshake
  ``HANDSHAKE_GRACE_S`` after its challenge, as the runtime does, so a connector paused
  in between starts over). The ``auth`` check at a paused acceptor is
  made on arrival: its verdict does not depend on time, and the frames behind it wait in
  the paused node's actors anyway;
- a refused handshake (wrong proof either way) is counted, traced (``peer-refused``) and
  closes the connection; what was queued behind it is dropped, never delivered.

Secrets: each node holds ``secrets.get(node, secret)``; nonces come from the network's
RNG, so the same seed gives the same handshakes, byte for byte.

What crosses a link is the :class:`sim.wire.Wire`'s business: objects as they are by
default, a system's frames in bytes when its host gives one (the cache's
:class:`sim.peer_wire.PeerWire`, the runtime's own codec). With bytes, every message is
encoded at ``send`` (one that cannot be, or is over the frame limit, is dropped there and
counted ``unsendable``, traced ``peer-unsendable``), every handshake frame is packed and
read as a real node does, and each delivered frame is decoded by the connection's stream at
the receiver. A frame the receiver cannot read closes that connection as a real node's
does (counted ``bad_frames``, traced ``peer-bad-frame``): nothing more of it is read, and
the sender reconnects after its backoff if it has sent anything meanwhile, as a real link
does (the sender learns of the close at once here). ``link_bytes[(src, dst)]`` counts the bytes each link carried
(its handshakes' frames and its messages, each written once whatever the network then
duplicated); ``link_compressed_bytes`` those of them in compressed frames.
"""

from __future__ import annotations

import collections
import functools
import random
from typing import Any, Callable

import simpy

from actors.kernel.peer import FromPeer
from actors.kernel.peer_auth import AUTH, NONCE_BYTES, Acceptor, Connector, PeerAuthError
from sim.link_models import LatencyModel, Link, constant, lognormal, uniform
from sim.wire import BadFrame, Objects, Unsendable, Wire

# The link models live in sim.link_models; they are importable from here as they always were.
__all__ = ["LatencyModel", "Link", "SimNetwork", "constant", "lognormal", "uniform"]



#: Retry delays after a failed handshake, as ``runtime.peers.PeerLinks``.
BACKOFF_INITIAL_S = 0.05
BACKOFF_MAX_S = 1.0
#: Messages a link queues while it connects; beyond it the oldest are dropped (as PeerLinks).
MAX_QUEUE = 10_000
#: An acceptor closes a handshake whose auth has not come this long after it answered the
#: hello (``runtime.conn_limits.PEER_HELLO_GRACE_S``): a connector paused meanwhile retries.
HANDSHAKE_GRACE_S = 2.0
_CONNECTING, _BACKOFF, _OPEN = "connecting", "backoff", "open"


class _Conn:
    """One connection attempt src -> dst: both halves of its handshake and the verdict."""

    __slots__ = ("acceptor", "accepted", "auth_at", "challenged_at", "connector", "inbox", "stream")

    def __init__(self, connector: Connector) -> None:
        self.connector = connector
        self.acceptor: Acceptor | None = None
        #: The accepting node's inbox (its process: a restart is a new one).
        self.inbox: Any = None
        #: Set when dst checked the connector's auth proof; nothing is delivered before.
        self.accepted = False
        self.auth_at = 0.0
        self.challenged_at = 0.0
        #: The accepting end's reader of this connection's frames (``sim.wire.Stream``).
        self.stream: Any = None


class _Outbound:
    """The connector's side of one link: its queue, its backoff and its current attempt."""

    __slots__ = ("backoff", "conn", "queue", "state")

    def __init__(self) -> None:
        self.queue: collections.deque[Any] = collections.deque()
        self.backoff = BACKOFF_INITIAL_S
        self.conn: _Conn | None = None
        self.state = _CONNECTING


class SimNetwork:
    def __init__(
        self,
        env: simpy.Environment,
        rng: random.Random,
        default: Link | None = None,
        secret: bytes = b"",
        wire: Wire | None = None,
    ) -> None:
        self.env = env
        self.rng = rng
        self.default = default or Link()
        self.links: dict[tuple[str, str], Link] = {}
        #: Node id -> the node actor that receives its peer messages (absent: down).
        self.inboxes: dict[str, Any] = {}
        self.cut: set[tuple[str, str]] = set()
        #: Extra delay factor per slow node, applied to every link touching it.
        self.slow: dict[str, float] = {}
        self._last_delivery: dict[tuple[str, str], float] = {}
        self.sent = 0
        self.dropped = 0
        #: Called for every delivered message (src, dst, msg): traces and statistics hook here.
        self.on_deliver: Callable[[str, str, Any], None] | None = None
        #: The cluster secret every node holds, unless ``secrets`` gives it its own.
        self.secret = secret
        self.secrets: dict[str, bytes] = {}
        #: Nodes that answer a challenge they cannot verify with a forged proof (strangers);
        #: an honest node with the wrong secret refuses the challenge instead.
        self.rogues: set[str] = set()
        #: Handshake events (node, kind, fields): ``peer-auth``, ``peer-refused``.
        self.on_event: Callable[[str, str, dict[str, Any]], None] | None = None
        self.handshakes = 0  # connections whose auth was accepted
        self.refused = 0  # handshakes refused, by either side
        self.retries = 0  # handshake attempts failed by a lost frame (retried while queued)
        self.frames = 0  # handshake frames sent
        #: What a link carries (the hello's system fields, messages, handshake frames).
        self.wire: Wire = wire if wire is not None else Objects()
        self.unsendable = 0  # messages the wire could not encode (dropped at send)
        self.bad_frames = 0  # frames a receiver could not read (each closed its connection)
        #: Bytes each link (src, dst) carried, when the wire carries bytes.
        self.link_bytes: dict[tuple[str, str], int] = {}
        #: Of those, the bytes of compressed frames (the wire's :meth:`Wire.compressed`).
        self.link_compressed_bytes: dict[tuple[str, str], int] = {}
        self._open: dict[tuple[str, str], _Conn] = {}
        self._outbound: dict[tuple[str, str], _Outbound] = {}
        #: Paused node -> its handshake steps waiting for resume, in order.
        self._held: dict[str, list[Callable[[], None]]] = {}

    # --- faults ---------------------------------------------------------------------

    def partition(self, *groups: list[str] | tuple[str, ...]) -> None:
        """Cut every link between different groups (both directions)."""
        for i, a in enumerate(groups):
            for b in groups[i + 1 :]:
                for x in a:
                    for y in b:
                        self.cut.add((x, y))
                        self.cut.add((y, x))

    def cut_one_way(self, src: str, dst: str) -> None:
        self.cut.add((src, dst))

    def heal(self) -> None:
        self.cut.clear()

    def pause(self, node: str) -> None:
        """``node``'s process stalls: its connections stay, its handshake steps wait."""
        self._held.setdefault(node, [])

    def resume(self, node: str) -> None:
        for step in self._held.pop(node, ()):
            step()

    def drop_node(self, node: str) -> None:
        """``node`` crashed: every connection from or to it closes and the next send runs
        the handshake again. What it had queued dies with it; what peers had queued for it
        is dropped (a message to a down node is lost)."""
        self._held.pop(node, None)
        for key in [k for k in self._outbound if node in k]:
            self.dropped += len(self._outbound.pop(key).queue)
            self._open.pop(key, None)

    def secret_of(self, node: str) -> bytes:
        return self.secrets.get(node, self.secret)

    def is_open(self, src: str, dst: str) -> bool:
        """Whether the link src -> dst has sent its ``auth`` (messages go straight out)."""
        return (src, dst) in self._open

    # --- transport --------------------------------------------------------------------

    def sender(self, node_id: str) -> Callable[[str, Any], None]:
        """The ``send`` a node's ``Ctx`` gets: ``send(dest_id, msg)``."""
        return functools.partial(self.send, node_id)

    def send(self, src: str, dst: str, msg: Any) -> None:
        self.sent += 1
        try:
            payload = self.wire.encode(src, msg)
        except Unsendable as exc:  # a real link drops it as unencodable: nothing goes out
            self.unsendable += 1
            self._event(src, "peer-unsendable", {"peer": dst, "reason": exc.message})
            return
        conn = self._open.get((src, dst))
        if conn is None:
            self._enqueue(src, dst, payload)
        else:
            self._transmit(src, dst, conn, payload)

    def _count(self, link_key: tuple[str, str], payload: Any) -> None:
        if type(payload) is bytes:
            link_bytes = self.link_bytes
            link_bytes[link_key] = link_bytes.get(link_key, 0) + len(payload)
            if self.wire.compressed(payload):
                compressed = self.link_compressed_bytes
                compressed[link_key] = compressed.get(link_key, 0) + len(payload)

    def _transmit(self, src: str, dst: str, conn: _Conn, payload: Any) -> None:
        link_key = (src, dst)
        self._count(link_key, payload)
        if link_key in self.cut:
            self.dropped += 1
            return
        link = self.links.get(link_key, self.default)
        rng = self.rng
        if link.loss and rng.random() < link.loss:
            self.dropped += 1
            return
        copies = 2 if link.duplicate and rng.random() < link.duplicate else 1
        now = self.env.now
        factor = self.slow.get(src, 1.0) * self.slow.get(dst, 1.0)
        for _ in range(copies):
            at = now + link.latency.draw(rng) * factor
            if not link.reorder:
                at = max(at, self._last_delivery.get(link_key, 0.0))
                self._last_delivery[link_key] = at
            elif at < conn.auth_at:
                at = conn.auth_at  # reordered among themselves, never ahead of the handshake
            self.env.timeout(at - now).callbacks.append(lambda _e: self._deliver(src, dst, conn, payload))

    def _deliver(self, src: str, dst: str, conn: _Conn, payload: Any) -> None:
        inbox = conn.inbox
        if not conn.accepted or not inbox.is_alive():
            self.dropped += 1  # refused, or its process is gone (a restart is a new connection)
            return
        if (src, dst) in self.cut:
            self.dropped += 1  # cut while in flight: a partition loses what is on the wire
            return
        try:
            msg = conn.stream.frame(payload)
        except BadFrame as exc:
            self._bad_frame(src, dst, conn, exc.message)
            return
        if self.on_deliver is not None:
            self.on_deliver(src, dst, msg)
        inbox.tell(FromPeer(src, src, msg))

    def _bad_frame(self, src: str, dst: str, conn: _Conn, reason: str) -> None:
        """dst could not read a frame of ``conn``: it closes the connection (a real node's
        ``PeerConnection`` does: what follows on it is never read) and src reconnects."""
        self.bad_frames += 1
        self.dropped += 1
        conn.accepted = False  # what is still in flight on it is dropped on arrival
        self._event(dst, "peer-bad-frame", {"peer": src, "reason": reason})
        out = self._outbound.get((src, dst))
        if out is not None and out.conn is conn:
            self._close(src, dst, out, conn, idle=False)  # (what it sends meanwhile waits)

    # --- the handshake ------------------------------------------------------------------

    def _enqueue(self, src: str, dst: str, payload: Any) -> None:
        key = (src, dst)
        out = self._outbound.get(key)
        if out is None:
            out = self._outbound[key] = _Outbound()
            self._connect(src, dst, out)
        out.queue.append(payload)
        if len(out.queue) > MAX_QUEUE:
            out.queue.popleft()
            self.dropped += 1

    def _at(self, node: str, step: Callable[[], None]) -> None:
        """Run one of ``node``'s handshake steps now, or on resume while it is paused."""
        held = self._held.get(node)
        if held is None:
            step()
        else:
            held.append(step)

    def _frame(
        self, src: str, dst: str, payload: Any, arrive: Callable[[], None], lost: Callable[[], None], fifo: bool
    ) -> float | None:
        """Send one handshake frame; ``arrive`` runs on its arrival, ``lost`` when the
        network loses it. Returns its arrival time, None when it was lost at once."""
        self.frames += 1
        key = (src, dst)
        self._count(key, payload)
        link = self.links.get(key, self.default)
        if key in self.cut or (link.loss and self.rng.random() < link.loss):
            lost()
            return None
        now = self.env.now
        at = now + link.latency.draw(self.rng) * self.slow.get(src, 1.0) * self.slow.get(dst, 1.0)
        if fifo and not link.reorder:
            at = max(at, self._last_delivery.get(key, 0.0))
            self._last_delivery[key] = at

        def land(_event: Any) -> None:
            if key in self.cut:
                lost()
            else:
                arrive()

        self.env.timeout(at - now).callbacks.append(land)
        return at

    def _current(self, src: str, dst: str, out: _Outbound, conn: _Conn) -> bool:
        return self._outbound.get((src, dst)) is out and out.conn is conn

    def _connect(self, src: str, dst: str, out: _Outbound) -> None:
        out.state = _CONNECTING
        wire = self.wire
        conn = out.conn = _Conn(Connector(self.secret_of(src), src, self.rng.randbytes(NONCE_BYTES), wire.hello(src), dst))
        hello = wire.handshake(src, conn.connector.hello())
        self._frame(
            src,
            dst,
            hello,
            lambda: self._at(dst, lambda: self._on_hello(src, dst, out, conn, hello)),
            lambda: self._lost(src, dst, out, conn),
            fifo=True,
        )

    def _on_hello(self, src: str, dst: str, out: _Outbound, conn: _Conn, payload: Any) -> None:
        if not self._current(src, dst, out, conn):
            return  # the connector crashed meanwhile
        inbox = self.inboxes.get(dst)
        if inbox is None or not inbox.is_alive():
            self._unreachable(src, dst, out)
            return
        conn.inbox = inbox
        conn.challenged_at = self.env.now
        stream = conn.stream = self.wire.accept(dst)
        acceptor = conn.acceptor = Acceptor(self.secret_of(dst), dst, self.rng.randbytes(NONCE_BYTES), (dst,))
        try:
            claimed, hello = stream.hello(payload)
            challenge = self.wire.challenge(acceptor.on_hello(claimed, hello))
        except (BadFrame, PeerAuthError) as exc:  # refused with an error frame, and closed
            self._refused(dst, src, exc.message)
            self.dropped += len(out.queue)
            del self._outbound[(src, dst)]
            return
        self._frame(
            dst,
            src,
            challenge,
            lambda: self._at(src, lambda: self._on_challenge(src, dst, out, conn, challenge)),
            lambda: self._lost(src, dst, out, conn),
            fifo=False,
        )

    def _on_challenge(self, src: str, dst: str, out: _Outbound, conn: _Conn, payload: Any) -> None:
        if not self._current(src, dst, out, conn):
            return
        try:
            auth = conn.connector.on_challenge(self.wire.read_challenge(payload), expect=dst)
        except (BadFrame, PeerAuthError) as exc:
            if src not in self.rogues:
                self._refused(src, dst, exc.message)
                self.dropped += len(out.queue)  # nothing goes to a peer that proved nothing
                del self._outbound[(src, dst)]
                return
            auth = {"type": AUTH, "proof": self.rng.randbytes(32)}  # a stranger forges one anyway
        frame = self.wire.handshake(src, auth)
        at = self._frame(
            src, dst, frame, lambda: self._on_auth(src, dst, out, conn, frame), lambda: self._lost(src, dst, out, conn), fifo=True
        )
        if at is None:
            return
        conn.auth_at = at
        out.state = _OPEN
        out.backoff = BACKOFF_INITIAL_S
        self._open[(src, dst)] = conn
        queue, out.queue = out.queue, collections.deque()
        for msg in queue:
            self._transmit(src, dst, conn, msg)

    def _on_auth(self, src: str, dst: str, out: _Outbound, conn: _Conn, payload: Any) -> None:
        if not conn.inbox.is_alive():
            if self._current(src, dst, out, conn):
                self._unreachable(src, dst, out)
            return
        if self.env.now - conn.challenged_at > HANDSHAKE_GRACE_S:
            self._lost(src, dst, out, conn)  # the acceptor had closed it: what follows is lost
            return
        assert conn.acceptor is not None
        try:
            conn.acceptor.on_auth(conn.stream.auth(payload))
        except (BadFrame, PeerAuthError) as exc:
            self._refused(dst, src, exc.message)
            if self._current(src, dst, out, conn):  # the error frame closes the connection
                del self._outbound[(src, dst)]
                self._open.pop((src, dst), None)
            return
        conn.accepted = True
        self.handshakes += 1
        self._event(dst, "peer-auth", {"peer": src})

    def _event(self, node: str, kind: str, fields: dict[str, Any]) -> None:
        if self.on_event is not None:
            self.on_event(node, kind, fields)

    def _refused(self, node: str, peer: str, reason: str) -> None:
        self.refused += 1
        self._event(node, "peer-refused", {"peer": peer, "reason": reason})

    def _unreachable(self, src: str, dst: str, out: _Outbound) -> None:
        """Nobody listens at dst (down, never started): the connection is refused and what
        waited for it is dropped, as the simulator always dropped a message to a down node.
        (``runtime.peers`` would keep it for its retry; the protocol counts on neither.)"""
        self.dropped += len(out.queue)
        del self._outbound[(src, dst)]
        self._open.pop((src, dst), None)

    def _lost(self, src: str, dst: str, out: _Outbound, conn: _Conn) -> None:
        """A frame of ``conn``'s handshake was lost: the attempt fails. With messages
        queued the link retries after its backoff; without, it goes idle."""
        if not self._current(src, dst, out, conn):
            return
        self.retries += 1
        self._close(src, dst, out, conn)

    def _close(self, src: str, dst: str, out: _Outbound, conn: _Conn, idle: bool = True) -> None:
        """``conn`` is gone: the link retries after its backoff if messages are queued by
        then (``runtime.peer_link.Link``), else goes idle; ``idle``: at once when none are."""
        out.conn = None
        if self._open.get((src, dst)) is conn:
            del self._open[(src, dst)]
        if idle and not out.queue:
            del self._outbound[(src, dst)]
            return
        out.state = _BACKOFF
        delay = out.backoff
        out.backoff = min(delay * 2, BACKOFF_MAX_S)

        def retry(_event: Any) -> None:
            if self._outbound.get((src, dst)) is out and out.state is _BACKOFF:
                if out.queue:
                    self._connect(src, dst, out)
                else:
                    del self._outbound[(src, dst)]  # nothing to send: idle until the next message

        self.env.timeout(delay).callbacks.append(lambda e: self._at(src, lambda: retry(e)))
