"""Outbound peer links: ``ctx.send(address, msg)`` over real TCP.

Theory of operation
-------------------
:class:`PeerLinks` owns one outbound connection per peer address (``host:port``, the
address the peer advertises). ``send`` is what the runtime's ``Ctx`` calls; it runs on
the event-loop thread inside an actor turn and never blocks or raises:

- the message is encoded at once (the ``encode`` function the system gave, then msgpack)
  and its frame appended to the link's queue;
- a link with no connection starts one (lazily, on its first send); while it connects,
  or waits to retry, frames wait in the queue;
- every new connection opens with the peer handshake (:mod:`actors.kernel.peer_auth`):
  the ``hello`` the system gave plus a fresh nonce; then the link waits (at most
  ``connect_timeout``) for the receiver's ``challenge``, checks its proof under the
  cluster secret, records which node answered (``peer_stats``' ``peer``), and writes
  ``auth`` together with whatever queued up. A challenge that fails, or none in time,
  closes the connection, logged once per outage, and the link retries with its backoff;
- without a secret (``loopback_only``) the link connects to loopback addresses only: a
  literal non-loopback address is never dialled, a name that resolves elsewhere is
  closed before the hello;
- a connected link is flushed once per loop turn: the first frame queued in a turn arms
  one ``call_soon`` for every link, which writes each link's frames with a single
  ``transport.write``;
- backpressure: while the transport's buffer is above its high-water mark
  (``pause_writing``) frames stay in the queue and go out on ``resume_writing``;
- the queue is bounded (frames and bytes): beyond the bound the oldest frames are dropped
  and counted. Peer messages may be lost by contract; the actors time out and repair;
- a connection that fails or closes is retried with exponential backoff (50 ms doubling
  to 1 s). The backoff resets once a connection has stayed up for the cap. A link with
  nothing queued when its retry comes due goes idle and reconnects on its next send.

Links are one-way: the receiver never answers on them (its replies come back on its own
link to us), except the handshake's challenge and one error reply to a refused hello or
auth, which we log.

Frames already handed to a transport when its connection dies are lost with it (TCP
gives no way to know what the peer read); they count as ``sent``.

The transport knows nothing of the system whose messages it carries: the system gives
it the cluster secret, the hello and the function that turns a message into a msgpack-able object (the
cache's are :func:`actors.protocol.peer_codec.encode_hello` and ``encode_peer``, wired
in :mod:`runtime.node`), so any actor system can use it.
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress
import logging
import socket
import ssl
import time
from typing import Any, Callable

import msgpack

from actors.kernel.peer_auth import CHALLENGE, Connector, PeerAuthError
from runtime.addresses import is_loopback, parse_address
from runtime.peer_trust import LOOPBACK_ONLY_MESSAGE, new_nonce

__all__ = ["DEFAULT_PEER_FRAME_BYTES", "PeerLinks"]

logger = logging.getLogger("actorcache.peers")

#: Largest frame a peer may send, and so the largest a receiver accepts by default. Peer
#: frames carry whole client batches (a replica request for a batch of sets, a stream of
#: records), so they may be much larger than one client request.
DEFAULT_PEER_FRAME_BYTES = 64 << 20

# Lone surrogates are valid in strings a JSON client stored; peers carry them faithfully.
_PEER_UNICODE_ERRORS = "surrogatepass"

_IDLE, _CONNECTING, _HANDSHAKE, _CONNECTED, _BACKOFF, _CLOSED = (
    "idle", "connecting", "handshake", "connected", "backoff", "closed"
)

_COUNTERS = ("sent", "dropped", "connects", "failures", "disconnects", "unencodable", "refused", "auth_failures")


class _LinkProtocol(asyncio.Protocol):
    """One TCP connection of a link; reports to the link only while it is the current one."""

    def __init__(self, link: _Link) -> None:
        self.link = link
        self.made = False
        self.lost: asyncio.Future[None] = link.owner.loop.create_future()
        self._unpacker: msgpack.Unpacker | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.made = True
        self.link._on_connected(self, transport)

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
            self._unpacker = msgpack.Unpacker(raw=False, max_buffer_size=1 << 16)
        try:
            self._unpacker.feed(data)
            for obj in self._unpacker:
                self.link._on_frame(self, obj)
        except Exception:  # noqa: BLE001 - whatever it sent, we are not listening
            logger.debug("unreadable bytes from peer %s", self.link.address)

    def eof_received(self) -> bool:
        return False  # the peer closed its side: close ours, reconnect if needed


class _Link:
    """The queue, connection and retry state for one peer address."""

    __slots__ = (
        "_dropping",
        "_handshake",
        "_last_refusal",
        "_outage_logged",
        "address",
        "backoff",
        "connect_task",
        "connected_at",
        "counts",
        "dirty",
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
        self.state = _IDLE
        self.transport: asyncio.Transport | None = None
        self.protocol: _LinkProtocol | None = None
        self.connect_task: asyncio.Task[None] | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.backoff = owner.backoff_initial
        self.connected_at = 0.0
        self.paused = False
        self.dirty = False
        self.counts = dict.fromkeys(_COUNTERS, 0)
        self._dropping = False
        self._last_refusal = ""
        self._outage_logged = False  # an outage was logged at INFO: log the recovery too
        #: The handshake of the connection in progress (state _HANDSHAKE), and its timer.
        self._handshake: tuple[Connector, asyncio.TimerHandle] | None = None
        #: The node id the last completed handshake proved at this address.
        self.peer_id: str | None = None

    # --- queueing -----------------------------------------------------------------

    def enqueue(self, frame: bytes) -> None:
        queue = self.queue
        queue.append(frame)
        self.queued_bytes += len(frame)
        owner = self.owner
        if len(queue) > owner.max_queue_frames or self.queued_bytes > owner.max_queue_bytes:
            self._drop_oldest()
        state = self.state
        if state is _CONNECTED:
            if not self.paused and not self.dirty:
                self.dirty = True
                owner._mark_dirty(self)
        elif state is _IDLE:
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
        if transport is None or self.state is not _CONNECTED:
            return
        queue = self.queue
        if self.paused or not queue:
            if prefix:
                transport.write(prefix)
            return
        n = len(queue)
        if prefix:
            queue.appendleft(prefix)
        data = b"".join(queue)
        queue.clear()
        self.queued_bytes = 0
        transport.write(data)
        self.counts["sent"] += n
        self._dropping = False

    # --- connecting ---------------------------------------------------------------

    def connect(self) -> None:
        self.state = _CONNECTING
        protocol = self.protocol = _LinkProtocol(self)
        self.connect_task = self.owner.loop.create_task(self._open(protocol))

    async def _open(self, protocol: _LinkProtocol) -> None:
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
            if self.state is _CONNECTING and self.protocol is protocol and not protocol.made:
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
        self.state = _BACKOFF
        self.timer = owner.loop.call_later(delay, self._retry)

    def _retry(self) -> None:
        self.timer = None
        if self.state is not _BACKOFF:
            return
        if self.queue:
            self.connect()
        else:
            self.state = _IDLE

    # --- events from the current connection ------------------------------------------

    def _on_connected(self, protocol: _LinkProtocol, transport: asyncio.Transport) -> None:
        if self.protocol is not protocol or self.state is _CLOSED:
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
        self.state = _HANDSHAKE
        connector = Connector(owner.secret, owner.node_id, new_nonce(), owner.hello_fields)
        timer = owner.loop.call_later(owner.connect_timeout, self._handshake_timed_out, protocol)
        self._handshake = (connector, timer)
        transport.write(owner._pack(connector.hello()))

    def _handshake_timed_out(self, protocol: _LinkProtocol) -> None:
        if self.protocol is protocol and self.state is _HANDSHAKE and self.transport is not None:
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

    def _on_frame(self, protocol: _LinkProtocol, obj: Any) -> None:
        """A frame from the receiver: its challenge (while handshaking), else a refusal."""
        if self.protocol is not protocol:
            return
        handshake = self._handshake
        if self.state is not _HANDSHAKE or handshake is None or type(obj) is not dict or obj.get("type") != CHALLENGE:
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
        if self.peer_id is not None and connector.peer_id != self.peer_id:
            logger.info("peer %s: now answered by node %r (was %r)", self.address, connector.peer_id, self.peer_id)
        self.peer_id = connector.peer_id
        self._authenticated(self.owner._pack(auth))

    def _authenticated(self, auth: bytes) -> None:
        """The receiver proved it holds the secret: write ``auth`` and what queued up."""
        owner = self.owner
        transport = self.transport
        assert transport is not None
        self.state = _CONNECTED
        self._last_refusal = ""
        self.connected_at = time.monotonic()
        self.counts["connects"] += 1
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        transport.set_write_buffer_limits(high=owner.high_water)
        level = logging.INFO if self._outage_logged else logging.DEBUG
        self._outage_logged = False
        logger.log(level, "peer %s: connected (node %s)", self.address, self.peer_id)
        self.flush(prefix=auth)

    def _on_lost(self, protocol: _LinkProtocol, exc: Exception | None) -> None:
        if self.protocol is not protocol:
            return
        if self._handshake is not None:
            self._handshake[1].cancel()
            self._handshake = None
        self.protocol = None
        self.transport = None
        self.paused = False
        if self.state is _CLOSED:
            return
        was_connected = self.state is _CONNECTED
        self.state = _IDLE
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

    def _on_pause(self, protocol: _LinkProtocol, paused: bool) -> None:
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
        if self.state is _CONNECTED:
            self.flush()  # best effort: what this turn queued (e.g. a last gossip) goes out
        self.state = _CLOSED
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


class PeerLinks:
    """One outbound link per peer address, for one node.

    ``hello`` is the system's part of the first frame on every connection (a msgpack-able
    map naming this node to the receiver in its ``node_id``; the handshake adds its nonce);
    ``secret`` is the cluster secret the handshake proves (b"": none, and then
    ``loopback_only`` defaults to True: no link reaches another machine); ``verify(transport,
    node_id)``, when given, may still refuse the node a challenge proved (a reason string,
    logged as a failed handshake); ``encode`` turns each message given to :meth:`send` into a
    msgpack-able object (it may raise: the message is then dropped and counted
    ``unencodable``). ``send`` is the runtime ``Ctx``'s peer transport; call it (and
    everything else here) on the event-loop thread only. ``tls``: connect with TLS.
    """

    def __init__(
        self,
        hello: dict[str, Any],
        encode: Callable[[Any], Any],
        *,
        secret: bytes = b"",
        loopback_only: bool | None = None,
        verify: Callable[[asyncio.Transport | None, str], str | None] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        max_queue_frames: int = 10_000,
        max_queue_bytes: int = 16 << 20,
        high_water: int = 1 << 20,
        backoff_initial: float = 0.05,
        backoff_max: float = 1.0,
        connect_timeout: float = 2.0,
        max_frame_bytes: int = DEFAULT_PEER_FRAME_BYTES,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        if max_queue_frames < 1 or max_queue_bytes < 1:
            raise ValueError("the queue bounds must be positive")
        self.loop = loop or asyncio.get_running_loop()
        self.max_queue_frames = max_queue_frames
        self.max_queue_bytes = max_queue_bytes
        self.high_water = high_water
        self.backoff_initial = backoff_initial
        self.backoff_max = max(backoff_max, backoff_initial)
        self.connect_timeout = connect_timeout
        self.max_frame_bytes = max_frame_bytes
        #: Connect with TLS (the peers' port speaks it; runtime/tls.py): the handshake is
        #: part of the connect, within ``connect_timeout``.
        self.tls = tls
        self._pack = msgpack.Packer(use_bin_type=True, unicode_errors=_PEER_UNICODE_ERRORS).pack
        self._encode = encode
        node_id = hello.get("node_id") if type(hello) is dict else None
        if type(node_id) is not str or not node_id:
            raise ValueError("the hello must be a map naming this node in 'node_id'")
        self.node_id = node_id
        self.hello_fields = hello
        self.secret = secret
        self.loopback_only = not secret if loopback_only is None else loopback_only
        #: Checks the node a challenge proved against the connection (e.g. its TLS
        #: certificate's names): a reason to refuse it, or None.
        self.verify = verify
        self._links: dict[str, _Link] = {}
        self._dirty: list[_Link] = []
        self._flush_armed = False
        self._closed = False
        self._closed_counts = dict.fromkeys(_COUNTERS, 0)  # sends after close

    # --- the Ctx send function --------------------------------------------------------

    def send(self, address: str, msg: Any) -> None:
        """Queue ``msg`` for the peer at ``address``: async, FIFO per address, may be lost."""
        if self._closed:
            self._closed_counts["dropped"] += 1
            return
        link = self._links.get(address)
        if link is None:
            link = self._links[address] = _Link(self, address)
        try:
            frame = self._pack(self._encode(msg))
        except Exception as exc:  # noqa: BLE001 - never raise into an actor turn
            link.counts["unencodable"] += 1
            logger.error("cannot encode %s for peer %s: %s", type(msg).__name__, address, exc)
            return
        if len(frame) > self.max_frame_bytes:
            # The receiver would close the link on it (and lose what follows): drop it here.
            link.counts["unencodable"] += 1
            logger.error(
                "%s for peer %s is %d bytes, over the peer frame limit of %d; dropped",
                type(msg).__name__, address, len(frame), self.max_frame_bytes,
            )
            return
        link.enqueue(frame)

    def _mark_dirty(self, link: _Link) -> None:
        self._dirty.append(link)
        if not self._flush_armed:
            self._flush_armed = True
            self.loop.call_soon(self._flush_dirty)

    def _flush_dirty(self) -> None:
        self._flush_armed = False
        dirty, self._dirty = self._dirty, []
        for link in dirty:
            link.dirty = False
            link.flush()

    # --- observation ------------------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """Totals over every link: frames ``sent``/``dropped``/``unencodable``, successful
        ``connects``, failed attempts (``failures``), established connections that ended
        (``disconnects``), error replies from refusing peers (``refused``), plus the
        current ``links``, ``connected`` links and ``queued`` frames/bytes."""
        out = dict(self._closed_counts)
        for link in self._links.values():
            for name, value in link.counts.items():
                out[name] += value
        out["links"] = len(self._links)
        out["connected"] = sum(1 for link in self._links.values() if link.state is _CONNECTED)
        out["queued"] = sum(len(link.queue) for link in self._links.values())
        out["queued_bytes"] = sum(link.queued_bytes for link in self._links.values())
        return out

    def peer_stats(self) -> dict[str, dict[str, Any]]:
        """Per address: the link's state, the node id its last handshake proved (``peer``),
        whether its transport is paused, its queue, the bytes waiting in the transport's
        own buffer, and its counters."""
        return {
            address: {
                "state": link.state,
                "peer": link.peer_id,
                "paused": link.paused,
                "queued": len(link.queue),
                "queued_bytes": link.queued_bytes,
                "buffered_bytes": link.transport.get_write_buffer_size() if link.transport is not None else 0,
                **link.counts,
            }
            for address, link in sorted(self._links.items())
        }

    # --- shutdown ---------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Flush what is queued on connected links, then close every link and cancel
        every pending connect and retry. Later sends are dropped. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for link in self._links.values():
            link.close()
        self._dirty.clear()

    async def wait_closed(self, timeout: float = 1.0) -> None:
        """After :meth:`close`: wait (bounded) for connections to finish closing (their
        buffers flushed); abort whatever is still open after ``timeout``."""
        waits: list[asyncio.Future[Any]] = []
        open_links: list[tuple[_Link, asyncio.Transport]] = []
        for link in self._links.values():
            if link.connect_task is not None:
                waits.append(link.connect_task)
            if link.protocol is not None and link.transport is not None:
                waits.append(link.protocol.lost)
                open_links.append((link, link.transport))
        if waits:
            await asyncio.wait(waits, timeout=timeout)
        for _link, transport in open_links:
            if not transport.is_closing() or transport.get_write_buffer_size():
                transport.abort()
        await asyncio.sleep(0)
