"""What every inbound connection the node serves shares: its lifecycle and its limits.

:class:`~runtime.connection.ClientConnection` (JSON lines, msgpack, peers) and
:class:`~runtime.resp_connection.RespConnection` differ in framing and in how they build
replies; they share this:

- the node is told ``ClientConnected`` / ``ClientDisconnected`` for a connection that holds
  one of ``--max-clients`` slots; one over the limit is refused (:meth:`refuse_max_clients`);
- replies leave through :meth:`_emit`: a lazy iterator of reply bytes, one reply at a time.
  :meth:`_pump` encodes them, checking the output buffer limit after every reply (so a
  batch of hundreds of large values never materialises far past it), and hands at most
  :data:`TURN_BYTES` to the transport per loop turn before letting other connections run
  (every :data:`PAUSED_TURN_DELAY_S` only, for a client that does not keep up);
- reading pauses (backpressure) while the transport's write buffer is over its high-water
  mark, while :data:`~runtime.conn_limits.MAX_IN_FLIGHT` batches are read and not written
  yet, while draining, and after EOF or a fatal error (then the connection closes once
  everything read is answered);
- a subclass reports the bytes its decoder holds for a partial request with
  :meth:`_note_input`, which the guard uses for the request read timeout and the global
  input budget (:mod:`runtime.conn_limits`); requests answered but kept for later (a RESP
  transaction's queue) are held in that budget too, with :meth:`hold_queued`.

Memory one client can make the node hold is so bounded by its frame limit (a partial
request), ``MAX_IN_FLIGHT`` reads of requests, and the output limit plus one reply.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import ssl
import struct
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Callable, cast

from actors.protocol.edge import ClientConnected, ClientDisconnected
from runtime.addresses import sockaddr_text
from runtime.conn_limits import MAX_IN_FLIGHT, ConnectionGuard

if TYPE_CHECKING:
    from pykka import ActorRef

__all__ = ["PAUSED_TURN_DELAY_S", "REFUSAL_LINGER_S", "TURN_BYTES", "ServedConnection"]

logger = logging.getLogger("actorcache.connection")

#: Reply bytes one connection hands to its transport per loop turn (at least one reply):
#: a batch of large replies is written over several turns, so other clients wait for at
#: most this much encoding, not for the whole batch.
TURN_BYTES = 256 << 10
#: While a client reads slower than we write (its transport is over the high-water mark),
#: its next turn of encoding waits this long (or until it drains): it still reaches its
#: output limit if it never reads, but it cannot take the loop from the other clients.
PAUSED_TURN_DELAY_S = 0.01

#: How long a refused connection (protected mode) is read and discarded after its refusal.
REFUSAL_LINGER_S = 1.0

_NO_LIMIT = sys.maxsize
#: SO_LINGER on, 0 seconds: close() resets the connection and frees its kernel buffers.
_RESET = struct.pack("ii", 1, 0)


class ServedConnection(asyncio.Protocol):
    #: The one line a connection over ``--max-clients`` gets before it is closed.
    MAX_CLIENTS_REPLY = b""
    #: A member's link (the input budget closes clients before it closes one).
    is_peer = False

    def __init__(
        self,
        conn_id: int,
        node: ActorRef[Any],
        on_closed: Callable[[Any], None],
        guard: ConnectionGuard | None = None,
    ) -> None:
        self.conn_id = conn_id
        self.node = node
        self._on_closed = on_closed
        self.guard = guard if guard is not None else ConnectionGuard()
        self.transport: asyncio.Transport | None = None
        #: Batches sent to the node and not answered yet.
        self.outstanding = 0
        self._close_when_flushed = False
        self._draining = False
        #: Reply iterators not fully written yet, in order; while not empty, a
        #: :meth:`_pump` is armed for the next loop turn.
        self._out: collections.deque[Iterator[bytes]] = collections.deque()
        self._pump_timer: asyncio.TimerHandle | None = None  # a delayed pump (PAUSED_TURN_DELAY_S)
        self._write_paused = False  # the transport's buffer is over its high-water mark
        self._held = False  # reading paused for MAX_IN_FLIGHT
        self._counted = False  # holds a --max-clients slot
        self._announced = False  # the node was told ClientConnected
        #: Bytes this connection holds for a partial request (as last reported).
        self.held_input = 0
        #: Bytes of requests answered but kept for later (a RESP transaction's queued
        #: arguments), counted in the input budget with the partial request.
        self.held_queued = 0
        #: ``guard.now`` when that partial request began.
        self.partial_since = 0.0
        #: ``guard.now`` when bytes arrived last (the idle timeout also waits for replies).
        self.last_active = self.guard.now
        self._soft_since: float | None = None
        limits = self.guard.limits
        self._hard = limits.output_hard or _NO_LIMIT
        self._soft = limits.output_soft

    # --- hooks --------------------------------------------------------------------

    def _unwritten(self) -> bool:
        """Whether answered replies still wait to be written (they keep it open)."""
        return False

    def _in_flight(self) -> int:
        """Batches read and not written out yet."""
        return self.outstanding + len(self._out)

    def _drop_input(self) -> None:
        """Free the decoder's buffered bytes (the connection is being cut off)."""

    def _over_max_clients(self) -> None:
        """A connection arrived while every client slot is taken."""
        self.refuse_max_clients()

    # --- asyncio.Protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # (uvloop's transports are no asyncio.Transport)
        guard = self.guard
        self.last_active = guard.now
        if guard.clients >= guard.limits.max_clients:
            self._over_max_clients()
            return
        guard.clients += 1
        self._counted = True
        self._announced = True
        self.node.tell(ClientConnected(self.conn_id))

    def eof_received(self) -> bool:
        # Half-close (``nc -N``, ``shutdown(SHUT_WR)``): answer everything read, then close.
        # (Over TLS there is no half-close: asyncio's TLS layer closes after the client's
        # close_notify whatever we answer, so we ask it nothing.)
        self._close_when_flushed = True
        self._maybe_close()
        transport = self.transport
        return transport is None or not isinstance(transport.get_extra_info("ssl_object"), ssl.SSLObject)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._release()
        self._on_closed(self)

    def _stop_being_a_client(self) -> None:
        """Give back the ``--max-clients`` slot and tell the node this is no client of its
        any more (the connection closed, or it became a peer's)."""
        if self._counted:
            self._counted = False
            self.guard.clients -= 1
        if self._announced:
            self._announced = False
            if self.node.is_alive():
                self.node.tell(ClientDisconnected(self.conn_id))

    def _release(self) -> None:
        """Give back what this connection holds of the guard's shared state."""
        guard = self.guard
        self._stop_being_a_client()
        self._forget_input()
        guard.soft_over.pop(self, None)
        guard.probation.pop(self, None)
        self._out.clear()

    def pause_writing(self) -> None:
        self._write_paused = True
        if self.transport is not None:
            self.transport.pause_reading()
            self._stop_partial_clock()

    def resume_writing(self) -> None:
        self._write_paused = False
        timer = self._pump_timer
        if timer is not None:  # it drained: write the rest now
            timer.cancel()
            self._pump_timer = None
            asyncio.get_running_loop().call_soon(self._pump)
        self._update_reading()

    def _update_reading(self) -> None:
        """Pause or resume reading as backpressure, in-flight batches and state say."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self._close_when_flushed or self._draining or self._write_paused:
            transport.pause_reading()
            self._stop_partial_clock()
        elif self._in_flight() >= MAX_IN_FLIGHT:
            self._held = True
            transport.pause_reading()
            self._stop_partial_clock()
        else:
            self._held = False
            transport.resume_reading()
            self._restart_partial_clock()

    def _stop_partial_clock(self) -> None:
        """Reading is paused by us: the rest of a partial request may be waiting in the
        kernel, so its ``--request-read-timeout`` must not run (an honest pipelining client
        whose read ended mid-request would be cut off for our backpressure)."""
        self.guard.partial.pop(self, None)

    def _restart_partial_clock(self) -> None:
        """Reading resumed: a partial request held meanwhile gets its full time again."""
        if self.held_input and self not in self.guard.partial:
            self.guard.partial[self] = None
            self.partial_since = self.guard.now

    # --- input accounting -----------------------------------------------------------

    def _note_input(self, buffered: int, completed: bool) -> None:
        """The decoder now holds ``buffered`` bytes of a partial request; ``completed``:
        requests were completed by this read (so a partial one left now began in it)."""
        guard = self.guard
        old = self.held_input
        guard.input_bytes += buffered - old
        self.held_input = buffered
        partial = guard.partial
        if not buffered:
            partial.pop(self, None)
            if not self.held_queued:
                guard.holding.pop(self, None)
            return
        guard.holding[self] = None
        if not old or completed:
            # A new partial request: its clock starts now; move it to the end of the order.
            partial.pop(self, None)
            self.partial_since = guard.now
            if not self._held and not self._write_paused:  # else its clock starts on resume
                partial[self] = None
        if guard.input_bytes > guard.limits.max_input_buffer:
            guard.enforce_input_budget()

    def hold_queued(self, n: int) -> bool:
        """Hold ``n`` more bytes of requests answered but kept (``n`` < 0: give them back)
        in the input budget; False, holding nothing more, when the budget has no room: all
        connections' partial and kept input together stay within it, however many each
        keeps (a transaction's own bound is per connection), and kept input within half."""
        guard = self.guard
        # (This connection's partial input is left out: requests completed by the read being
        # served are still counted in it, until :meth:`_note_input` at the read's end.)
        # Kept input, which no timeout ends, may take at most half the budget: the other
        # half stays for partial requests (else a stranger's queues would leave a large
        # request no room, and it would be the one closed).
        limit = guard.limits.max_input_buffer
        if n > 0 and (guard.input_bytes - self.held_input + n > limit or guard.queued_bytes + n > limit // 2):
            return False
        n = max(n, -self.held_queued)
        guard.input_bytes += n
        guard.queued_bytes += n
        self.held_queued += n
        if self.held_queued:
            guard.holding[self] = None
        elif not self.held_input:
            guard.holding.pop(self, None)
        return True

    def _forget_input(self) -> None:
        if self.held_input:
            self.guard.input_bytes -= self.held_input
            self.held_input = 0
        if self.held_queued:
            self.guard.input_bytes -= self.held_queued
            self.guard.queued_bytes -= self.held_queued
            self.held_queued = 0
        self.guard.partial.pop(self, None)
        self.guard.holding.pop(self, None)

    # --- being cut off ----------------------------------------------------------------

    def kill(self) -> None:
        """Cut the connection off at once: unsent replies and buffered input are dropped,
        those the kernel still holds too (the close is a reset)."""
        self._close_when_flushed = True
        self._out.clear()
        self._drop_input()
        self._forget_input()
        self.guard.soft_over.pop(self, None)
        transport = self.transport
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
                except OSError:
                    pass  # already gone
            transport.abort()

    def request_read_timed_out(self) -> None:
        """Called by the sweep: a partial request took longer than ``--request-read-timeout``."""
        logger.debug("closing %s: partial request of %d bytes timed out", self.remote(), self.held_input)
        self.kill()

    def handshake_timed_out(self) -> None:
        """Called by the sweep: a peer handshake begun here did not complete in time."""
        self.kill()

    def refuse_max_clients(self) -> None:
        """Answer the ``max_clients`` refusal and close (counted in ``rejected_connections``)."""
        guard = self.guard
        guard.probation.pop(self, None)
        guard.counters["rejected_connections"] += 1
        self._answer_and_close(self.MAX_CLIENTS_REPLY)

    def _answer_and_close(self, payload: bytes) -> None:
        """Write ``payload`` (one error) and close; nothing more is read or answered."""
        self._close_when_flushed = True
        self._drop_input()
        self._forget_input()
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.pause_reading()
            transport.write(payload)
            transport.close()

    def _answer_and_linger(self, payload: bytes) -> None:
        """Write ``payload`` (one refusal), then end our side (FIN) and read and discard
        until the client closes or :data:`REFUSAL_LINGER_S` passes: closing with the
        client's request unread would reset the connection, and a reset can destroy the
        refusal before the client reads it. Over TLS (no half-close) it closes at once."""
        self._close_when_flushed = True
        self._drop_input()
        self._forget_input()
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(payload)
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        transport.resume_reading()  # (data_received ignores it: the connection is closing)
        asyncio.get_running_loop().call_later(REFUSAL_LINGER_S, transport.close)

    def idle(self) -> bool:
        """Whether the idle timeout may close this connection: a client with nothing
        outstanding and nothing unwritten (peers and refused connections never are)."""
        transport = self.transport
        return (
            self._counted
            and self.outstanding == 0
            and not self._out
            and not self._unwritten()
            and transport is not None
            and not transport.is_closing()
            and transport.get_write_buffer_size() == 0
        )

    def remote(self) -> str:
        """``host:port`` of the other end (``[v6]:port``), for logs."""
        return sockaddr_text(self.transport.get_extra_info("peername") if self.transport is not None else None)

    # --- writing replies ------------------------------------------------------------

    def _emit(self, chunks: Iterator[bytes]) -> None:
        """Write the replies ``chunks`` yields (one encoded reply each), after those before."""
        out = self._out
        out.append(chunks)
        if len(out) == 1:  # nothing earlier waits (else a pump is armed and keeps the order)
            self._pump()

    def _emit_one(self, data: bytes) -> None:
        """Write one encoded reply when nothing waits before it: what :meth:`_emit` and
        :meth:`_pump` do for a single reply (the same limits), without the iterator."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        buffered = transport.get_write_buffer_size()
        self._written(transport, [data], len(data), buffered, self._hard - buffered)

    def _pump(self) -> None:
        """Write what waits in ``_out``: at most TURN_BYTES this turn, the rest in later ones."""
        self._pump_timer = None
        out = self._out
        transport = self.transport
        if transport is None or transport.is_closing():
            out.clear()
            return
        buffered = transport.get_write_buffer_size()
        room = self._hard - buffered
        budget = TURN_BYTES if TURN_BYTES <= room else room + 1
        parts: list[bytes] = []
        append = parts.append
        size = 0
        try:
            while out:
                for chunk in out[0]:
                    append(chunk)
                    size += len(chunk)
                    if size >= budget:
                        break
                else:
                    out.popleft()
                    continue
                break
        except Exception:  # encoders never raise by contract; if one does, drop this client only
            self._encode_failed()
            return
        self._written(transport, parts, size, buffered, room)

    def _written(self, transport: asyncio.Transport, parts: list[bytes], size: int, buffered: int, room: int) -> None:
        """Hand ``parts`` (``size`` bytes) to the transport, unless that passes the hard
        limit; arm the next turn if more waits; apply the soft limit and flow control."""
        if size > room:
            self._output_overflow(buffered + size, "hard", self._hard)
            return
        if parts:
            transport.write(parts[0] if len(parts) == 1 else b"".join(parts))
            self.guard.counters["bytes_sent"] += size
        if self._out:
            loop = asyncio.get_running_loop()
            if self._write_paused:
                self._pump_timer = loop.call_later(PAUSED_TURN_DELAY_S, self._pump)
            else:
                loop.call_soon(self._pump)
        if self._soft:
            self._check_soft_limit(buffered + size)
        if self._held:
            self._update_reading()
        if self._close_when_flushed:
            self._maybe_close()

    def _encode_failed(self) -> None:
        logger.exception("cannot encode replies for connection %s; closing it", self.conn_id)
        self.kill()

    def _check_soft_limit(self, unsent: int) -> None:
        guard = self.guard
        limits = guard.limits
        if unsent <= limits.output_soft:
            if self._soft_since is not None:
                self._soft_since = None
                guard.soft_over.pop(self, None)
            return
        if self._soft_since is None:
            self._soft_since = guard.now
            guard.soft_over[self] = None
        if guard.now - self._soft_since >= limits.output_soft_s:
            self._output_overflow(unsent, "soft", limits.output_soft)

    def recheck_soft_limit(self) -> None:
        """Called by the sweep while this client is over the soft limit."""
        transport = self.transport
        if transport is None or transport.is_closing():
            self.guard.soft_over.pop(self, None)
            return
        self._check_soft_limit(transport.get_write_buffer_size())

    def _output_overflow(self, unsent: int, which: str, limit: int) -> None:
        extra = f" for {self.guard.limits.output_soft_s:g}s" if which == "soft" else ""
        logger.warning(
            "closing client %s: %d bytes of replies unsent, over the %s output buffer limit of %d bytes%s "
            "(--client-output-buffer-limit)",
            self.remote(), unsent, which, limit, extra,
        )
        self.guard.counters["client_output_buffer_kills"] += 1
        self.kill()

    # --- shutdown -----------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """Requests read and not answered, or answers not handed to the transport yet."""
        return self.outstanding > 0 or bool(self._out)

    def drain(self) -> None:
        """Stop reading new requests; requests already read still get their replies."""
        self._draining = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _maybe_close(self) -> None:
        if (
            self._close_when_flushed
            and self.outstanding == 0
            and not self._out
            and not self._unwritten()
            and self.transport is not None
        ):
            self.transport.close()
