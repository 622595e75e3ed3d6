"""One outbound peer link: its queue, its connection, the handshake that opens it, its retries.

:class:`runtime.peers.PeerLinks` (whose docstring is the theory of operation) owns one
:class:`Link` per peer address and calls it on the event-loop thread only. A link is a
small state machine: ``idle`` (nothing to send) -> ``connecting`` -> ``handshake`` (hello
written, waiting for the receiver's challenge) -> ``connected`` (auth and the queue
written) -> on failure ``backoff`` -> ``connecting`` again; ``closed`` is final.

Invariants: nothing queued is written before the handshake completed (``flush`` writes only
when ``connected``); only the current connection's protocol may change the link's state
(every event checks ``self.protocol is protocol``); the hello names the address the socket
reached (``to``, so a stranger dialled cannot relay it); a refusal or failed handshake is logged
at WARNING once per outage (a new reason), else at DEBUG; without a secret
(``owner.loopback_only``) no non-loopback address is dialled or spoken to.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import logging
import socket
import time
from typing import TYPE_CHECKING, Any, cast

import msgpack

from actors.kernel.peer_auth import CHALLENGE, Connector, PeerAuthError
from runtime.addresses import is_loopback, parse_address
from runtime.peer_compress import Codec, CompressionError, accepted_codec, compress_frame, compresses
from runtime.peer_frames import handshake_unpacker
from runtime.peer_trust import LOOPBACK_ONLY_MESSAGE, new_nonce, reached_address

if TYPE_CHECKING:
    from runtime.peers import PeerLinks

__all__ = ["CONNECTED", "COUNTERS", "PEER_USER_TIMEOUT_S", "Link"]

logger = logging.getLogger("actorcache.peers")

#: A connected link whose sent data stays unacknowledged this long is aborted by the kernel
#: (``TCP_USER_TIMEOUT``), and the link reconnects with its backoff. Without it, a link that
#: was up through a partition keeps its connection in TCP's retransmission back-off, whose
#: timer doubled all along: after a 28 s isolation a real node's link still waited 26 s
#: after the heal (found by ``python -m sim.run ... --real``, docs/real_mode.md). 5 s is
#: well past the failure detector's ``down`` (about 2.6 s with the default
#: ``--down-after 2``), so no link to a peer the cluster still counts alive is torn down by
#: it, and after a heal the link is a new connection within the backoff cap (1 s). Frames
#: in flight on an aborted connection are lost, as on any dead connection (the protocol
#: repairs them). The timeout also counts data held back by a zero window (tcp(7)): a link
#: to a peer paused (SIGSTOP) long enough for its receive buffer to fill is reset too.
PEER_USER_TIMEOUT_S = 5.0

IDLE, CONNECTING, HANDSHAKE, CONNECTED, BACKOFF, CLOSED = (
    "idle", "connecting", "handshake", "connected", "backoff", "closed"
)

#: Per-link counters (summed by :meth:`runtime.peers.PeerLinks.stats`, which says what each counts).
COUNTERS = (
    "sent", "dropped", "connects", "failures", "disconnects", "unencodable", "refused", "auth_failures",
    "wire_bytes", "compressed", "compressed_saved",
)


class LinkProtocol(asyncio.Protocol):
    """One TCP connection of a link; reports to the link only while it is the current one."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.made = False
        self.lost: asyncio.Future[None] = link.owner.loop.create_future()
        self._unpacker: msgpack.Unpacker | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made = True
        self.link._on_connected(self, cast(asyncio.Transport, transport))  # (uvloop's transports are no asyncio.Transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        self.link._on_lost(self, exc)

    def pause_writing(self) -> None:
        self.link._on_pause(self, True)

    def resume_writing(self) -> None:
        self.link._on_pause(self, False)

    def data_received(self, data: bytes) -> None:
        # A receiver only ever writes its challenge, or one error reply (to a hello or an
        # auth it refuses) and closes.
        if self._unpacker is None:
            self._unpacker = handshake_unpacker()
        try:
            self._unpacker.feed(data)
            for obj in self._unpacker:
                self.link._on_frame(self, obj)
        except Exception:  # noqa: BLE001 - whatever it sent, we are not listening
            logger.debug("unreadable bytes from peer %s", self.link.address)

    def eof_received(self) -> bool:
        return False  # the peer closed its side: close ours, reconnect if needed


class Link:
    """The queue, connection and retry state for one peer address."""

    __slots__ = (
        "_dropping",
        "_handshake",
        "_last_refusal",
        "_outage_logged",
        "address",
        "backoff",
        "codec",
        "connect_task",
        "connected_at",
        "counts",
        "dirty",
        "offered",
        "owner",
        "paused",
        "peer_id",
        "protocol",
        "queue",
        "queued_bytes",
        "state",
        "timer",
        "transport",
    )

    def __init__(self, owner: PeerLinks, address: str) -> None:
        self.owner = owner
        self.address = address
        self.queue: collections.deque[bytes] = collections.deque()
        self.queued_bytes = 0
        self.state = IDLE
        self.transport: asyncio.Transport | None = None
        self.protocol: LinkProtocol | None = None
        self.connect_task: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.backoff = owner.backoff_initial
        self.connected_at = 0.0
        self.paused = False
        self.dirty = False
        self.counts = dict.fromkeys(COUNTERS, 0)
        self._dropping = False
        self._last_refusal = ""
        self._outage_logged = False  # an outage was logged at INFO: log the recovery too
        #: The handshake of the connection in progress (state HANDSHAKE), and its timer.
        self._handshake: tuple[Connector, asyncio.TimerHandle] | None = None
        #: The node id the last completed handshake proved at this address.
        self.peer_id: str | None = None
        #: The compression the current connection's acceptor chose (None: frames go as they are).
        self.codec: Codec | None = None
        #: Whether the current connection's hello offered compression (``owner.compress``
        #: and the address it reached: runtime.peer_compress.compresses).
        self.offered = False

    # --- queueing -----------------------------------------------------------------

    def enqueue(self, frame: bytes) -> None:
        queue = self.queue
        queue.append(frame)
        self.queued_bytes += len(frame)
        owner = self.owner
        if len(queue) > owner.max_queue_frames or self.queued_bytes > owner.max_queue_bytes:
            self._drop_oldest()
        state = self.state
        if state is CONNECTED:
            if not self.paused and not self.dirty:
                self.dirty = True
                owner._mark_dirty(self)
        elif state is IDLE:
            self.connect()

    def _drop_oldest(self) -> None:
        owner = self.owner
        queue = self.queue
        dropped = 0
        while len(queue) > 1 and (len(queue) > owner.max_queue_frames or self.queued_bytes > owner.max_queue_bytes):
            self.queued_bytes -= len(queue.popleft())
            dropped += 1
        if dropped:
            self.counts["dropped"] += dropped
            if not self._dropping:
                self._dropping = True
                logger.warning(
                    "peer %s: queue full (%s), dropping the oldest frames", self.address, self.state
                )

    def flush(self, prefix: bytes = b"") -> None:
        """Write ``prefix`` and everything queued in one ``write`` (the queue waits while
        the transport is paused, and until the handshake completed)."""
        transport = self.transport
        if transport is None or self.state is not CONNECTED:
            return
        queue = self.queue
        if self.paused or not queue:
            if prefix:
                transport.write(prefix)
            return
        n = len(queue)
        codec = self.codec
        frames = queue if codec is None else self._compressed(codec, queue)
        data = prefix + b"".join(frames) if prefix else b"".join(frames)
        queue.clear()
        self.queued_bytes = 0
        transport.write(data)
        counts = self.counts
        counts["sent"] += n
        counts["wire_bytes"] += len(data)
        self._dropping = False

    def _compressed(self, codec: Codec, queue: collections.deque[bytes]) -> list[bytes]:
        """The queued frames as they go out on a link that chose ``codec``: those of at
        least the threshold compressed where that saves bytes (on the event loop, as they
        are written: the queue holds them as encoded)."""
        threshold = self.owner.compress_threshold
        counts = self.counts
        out: list[bytes] = []
        for frame in queue:
            if len(frame) >= threshold:
                packed = compress_frame(codec, frame, threshold)
                if packed is not frame:
                    counts["compressed"] += 1
                    counts["compressed_saved"] += len(frame) - len(packed)
                    frame = packed
            out.append(frame)
        return out

    # --- connecting ---------------------------------------------------------------

    def connect(self) -> None:
        self.state = CONNECTING
        protocol = self.protocol = LinkProtocol(self)
        self.connect_task = self.owner.loop.create_task(self._open(protocol))

    async def _open(self, protocol: LinkProtocol) -> None:
        owner = self.owner
        try:
            host, port = parse_address(self.address)
            if owner.loopback_only and _is_ip(host) and not is_loopback(host):
                raise _NotLoopback(LOOPBACK_ONLY_MESSAGE)
            await asyncio.wait_for(
                owner.loop.create_connection(lambda: protocol, host, port, ssl=owner.tls), owner.connect_timeout
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - refused, unreachable, timeout, bad address
            if self.state is CONNECTING and self.protocol is protocol and not protocol.made:
                self._connect_failed(exc)
        finally:
            if self.protocol is protocol or self.protocol is None:
                self.connect_task = None

    def _connect_failed(self, exc: Exception) -> None:
        self.protocol = None
        self.counts["failures"] += 1
        if isinstance(exc, _NotLoopback):
            self._log_refusal("not connecting to peer %s: %s", str(exc))
        else:
            level = logging.DEBUG if self._outage_logged else logging.INFO
            self._outage_logged = True
            logger.log(level, "peer %s: cannot connect: %s", self.address, _describe(exc))
        self._retry_later()

    def _retry_later(self) -> None:
        owner = self.owner
        delay = self.backoff
        self.backoff = min(self.backoff * 2, owner.backoff_max)
        self.state = BACKOFF
        self.timer = owner.loop.call_later(delay, self._retry)

    def _retry(self) -> None:
        self.timer = None
        if self.state is not BACKOFF:
            return
        if self.queue:
            self.connect()
        else:
            self.state = IDLE

    # --- events from the current connection ------------------------------------------

    def _on_connected(self, protocol: LinkProtocol, transport: asyncio.Transport) -> None:
        if self.protocol is not protocol or self.state is CLOSED:
            transport.abort()
            return
        owner = self.owner
        self.transport = transport
        self.paused = False
        peername = transport.get_extra_info("peername")
        if owner.loopback_only and not (isinstance(peername, tuple) and is_loopback(str(peername[0]))):
            self._log_refusal("not connecting to peer %s: %s", LOOPBACK_ONLY_MESSAGE)
            transport.abort()  # (connection_lost follows: retried with the backoff)
            return
        self.state = HANDSHAKE
        to = reached_address(peername) or "?"  # (the address reached, bound into the proofs)
        self.offered = compresses(owner.compress, str(peername[0]) if isinstance(peername, tuple) else "")
        hello = owner.hello_offering if self.offered else owner.hello_fields
        connector = Connector(owner.secret, owner.node_id, new_nonce(), hello, to)
        timer = owner.loop.call_later(owner.connect_timeout, self._handshake_timed_out, protocol)
        self._handshake = (connector, timer)
        transport.write(owner._pack(connector.hello()))

    def _handshake_timed_out(self, protocol: LinkProtocol) -> None:
        if self.protocol is protocol and self.state is HANDSHAKE and self.transport is not None:
            self._auth_failed(f"no challenge within {self.owner.connect_timeout:g}s")

    def _auth_failed(self, why: str) -> None:
        self.counts["auth_failures"] += 1
        self._log_refusal("peer %s: handshake failed: %s", why)
        if self.transport is not None:
            self.transport.abort()  # (connection_lost follows: retried with the backoff)

    def _log_refusal(self, fmt: str, text: str) -> None:
        """A refusal is logged once per outage: a new reason at WARNING, a repeat at DEBUG."""
        level = logging.WARNING if text != self._last_refusal else logging.DEBUG
        self._last_refusal = text
        self._outage_logged = True
        logger.log(level, fmt, self.address, text)

    def _on_frame(self, protocol: LinkProtocol, obj: Any) -> None:
        """A frame from the receiver: its challenge (while handshaking), else a refusal."""
        if self.protocol is not protocol:
            return
        handshake = self._handshake
        if self.state is not HANDSHAKE or handshake is None or type(obj) is not dict or obj.get("type") != CHALLENGE:
            self._on_refused(obj)
            return
        connector, timer = handshake
        timer.cancel()
        self._handshake = None
        try:
            auth = connector.on_challenge(obj)
        except PeerAuthError as exc:
            self._auth_failed(exc.message)
            return
        verify = self.owner.verify
        why = verify(self.transport, connector.peer_id or "") if verify is not None else None
        if why is not None:
            self._auth_failed(why)
            return
        try:
            self.codec = accepted_codec(obj, self.offered)
        except CompressionError as exc:
            self._auth_failed(exc.message)
            return
        if self.peer_id is not None and connector.peer_id != self.peer_id:
            logger.info("peer %s: now answered by node %r (was %r)", self.address, connector.peer_id, self.peer_id)
        self.peer_id = connector.peer_id
        self._authenticated(self.owner._pack(auth))

    def _authenticated(self, auth: bytes) -> None:
        """The receiver proved it holds the secret: write ``auth`` and what queued up."""
        owner = self.owner
        transport = self.transport
        assert transport is not None
        self.state = CONNECTED
        self._last_refusal = ""
        self.connected_at = time.monotonic()
        self.counts["connects"] += 1
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if hasattr(socket, "TCP_USER_TIMEOUT"):  # Linux
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(PEER_USER_TIMEOUT_S * 1000))
            except OSError:
                pass
        transport.set_write_buffer_limits(high=owner.high_water)
        level = logging.INFO if self._outage_logged else logging.DEBUG
        self._outage_logged = False
        logger.log(level, "peer %s: connected (node %s)", self.address, self.peer_id)
        self.flush(prefix=auth)

    def _on_lost(self, protocol: LinkProtocol, exc: Exception | None) -> None:
        if self.protocol is not protocol:
            return
        if self._handshake is not None:
            self._handshake[1].cancel()
            self._handshake = None
        self.protocol = None
        self.transport = None
        self.paused = False
        self.codec = None
        if self.state is CLOSED:
            return
        was_connected = self.state is CONNECTED
        self.state = IDLE
        if was_connected:
            self.counts["disconnects"] += 1
            healthy = time.monotonic() - self.connected_at >= self.owner.backoff_max
            if healthy:  # it had been working: retry quickly, announce the outage
                self.backoff = self.owner.backoff_initial
                self._outage_logged = True
            logger.log(
                logging.INFO if healthy else logging.DEBUG,
                "peer %s: connection lost: %s", self.address, _describe(exc),
            )
        else:
            self.counts["failures"] += 1
        self._retry_later()

    def _on_pause(self, protocol: LinkProtocol, paused: bool) -> None:
        if self.protocol is not protocol:
            return
        self.paused = paused
        if not paused:
            self.flush()

    def _on_refused(self, obj: Any) -> None:
        self.counts["refused"] += 1
        message = obj.get("message") if type(obj) is dict else None
        text = str(message) if message else repr(obj)[:200]
        self._log_refusal("peer %s refused our connection: %s", text)

    # --- shutdown ---------------------------------------------------------------

    def close(self) -> None:
        if self.state is CONNECTED:
            self.flush()  # best effort: what this turn queued (e.g. a last gossip) goes out
        self.state = CLOSED
        if self._handshake is not None:
            self._handshake[1].cancel()
            self._handshake = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.connect_task is not None:
            self.connect_task.cancel()
        if self.transport is not None:
            self.transport.close()
        self.counts["dropped"] += len(self.queue)
        self.queue.clear()
        self.queued_bytes = 0


class _NotLoopback(Exception):
    """A link without a cluster secret was asked to reach a non-loopback address."""


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _describe(exc: BaseException | None) -> str:
    if exc is None:
        return "closed"
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
