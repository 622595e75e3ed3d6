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
- a connection whose sent data stays unacknowledged for ``PEER_USER_TIMEOUT_S`` (5 s) is
  aborted by the kernel (``TCP_USER_TIMEOUT``), so a link that was up through a partition
  does not sit in TCP's retransmission back-off after the heal (see
  :mod:`runtime.peer_link`);
- a connection that fails or closes is retried with exponential backoff (50 ms doubling
  to 1 s). The backoff resets once a connection has stayed up for the cap. A link with
  nothing queued when its retry comes due goes idle and reconnects on its next send.

Links are one-way: the receiver never answers on them (its replies come back on its own
link to us), except the handshake's challenge and one error reply to a refused hello or
auth, which we log.

Frames already handed to a transport when its connection dies are lost with it (TCP
gives no way to know what the peer read); they count as ``sent``.

Each link's state machine (queue, connection, handshake, retries) is
:class:`runtime.peer_link.Link`; this module holds the set of links and their shared
settings. The transport knows nothing of the system whose messages it carries: the
system gives it the cluster secret, the hello and the function that turns a message into
a msgpack-able object (the cache's are :func:`actors.protocol.peer_codec.encode_hello`
and ``encode_peer``, wired in :mod:`runtime.node`), so any actor system can use it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any, Callable

from runtime.peer_compress import DEFAULT_MODE, DEFAULT_THRESHOLD, MODES, offer
from runtime.peer_frames import DEFAULT_PEER_FRAME_BYTES, UnencodableError, encode_frame, peer_packer
from runtime.peer_link import CONNECTED, COUNTERS, Link

__all__ = ["DEFAULT_PEER_FRAME_BYTES", "PeerLinks"]

logger = logging.getLogger("actorcache.peers")

# DEFAULT_PEER_FRAME_BYTES (the largest peer frame) lives in runtime.peer_frames with the
# packer and the limit check every peer-protocol speaker shares; importable from here too.

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
        compress: str = DEFAULT_MODE,
        compress_threshold: int = DEFAULT_THRESHOLD,
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
        self._pack = peer_packer()
        self._encode = encode
        node_id = hello.get("node_id") if type(hello) is dict else None
        if type(node_id) is not str or not node_id:
            raise ValueError("the hello must be a map naming this node in 'node_id'")
        self.node_id = node_id
        if compress not in MODES:
            raise ValueError(f"compress must be one of {', '.join(MODES)}, not {compress!r}")
        #: Which links offer compression in their hello (runtime.peer_compress.compresses:
        #: decided per connection by the address it reached); the acceptor chooses.
        self.compress = compress
        self.compress_threshold = compress_threshold
        self.hello_fields = dict(hello)
        self.hello_offering = {**hello, **offer()}
        self.secret = secret
        self.loopback_only = not secret if loopback_only is None else loopback_only
        #: Checks the node a challenge proved against the connection (e.g. its TLS
        #: certificate's names): a reason to refuse it, or None.
        self.verify = verify
        self._links: dict[str, Link] = {}
        self._dirty: list[Link] = []
        self._flush_armed = False
        self._closed = False
        self._closed_counts = dict.fromkeys(COUNTERS, 0)  # sends after close

    # --- the Ctx send function --------------------------------------------------------

    def send(self, address: str, msg: Any) -> None:
        """Queue ``msg`` for the peer at ``address``: async, FIFO per address, may be lost."""
        if self._closed:
            self._closed_counts["dropped"] += 1
            return
        link = self._links.get(address)
        if link is None:
            link = self._links[address] = Link(self, address)
        try:
            # (a frame over the limit would make the receiver close the link, losing what follows)
            frame = encode_frame(self._pack, self._encode, msg, self.max_frame_bytes)
        except UnencodableError as exc:  # never raise into an actor turn
            link.counts["unencodable"] += 1
            logger.error("peer %s: %s; dropped", address, exc.message)
            return
        link.enqueue(frame)

    def _mark_dirty(self, link: Link) -> None:
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
        (authenticated) ``connects``, failed attempts (``failures``), handshakes that failed
        on our side (``auth_failures``: a wrong or missing challenge, a refused certificate
        name), established connections that ended (``disconnects``), error replies from
        refusing peers (``refused``), bytes written (``wire_bytes``), frames sent
        compressed (``compressed``) and the bytes that saved (``compressed_saved``), plus the
        current ``links``, ``connected`` links and ``queued`` frames/bytes."""
        out = dict(self._closed_counts)
        links = list(self._links.values())  # (one step under the GIL: a node's stats read it from the actor thread)
        for link in links:
            for name, value in list(link.counts.items()):
                out[name] += value
        out["links"] = len(links)
        out["connected"] = sum(1 for link in links if link.state is CONNECTED)
        out["queued"] = sum(len(link.queue) for link in links)
        out["queued_bytes"] = sum(link.queued_bytes for link in links)
        return out

    def peer_stats(self) -> dict[str, dict[str, Any]]:
        """Per address: the link's state, the node id its last handshake proved (``peer``),
        whether its transport is paused, its queue, the bytes waiting in the transport's
        own buffer, the codec its connection's acceptor chose (``codec``: None when it
        offered none, or the acceptor chose none), and its counters."""
        return {
            address: {
                "state": link.state,
                "peer": link.peer_id,
                "paused": link.paused,
                "queued": len(link.queue),
                "queued_bytes": link.queued_bytes,
                "buffered_bytes": link.transport.get_write_buffer_size() if link.transport is not None else 0,
                "codec": link.codec.name if link.codec is not None else None,
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
        open_links: list[tuple[Link, asyncio.Transport]] = []
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
