"""One Redis-protocol (RESP) client connection, on the event loop thread.

As :class:`runtime.connection.ClientConnection` does for JSON lines and msgpack: every
socket read is parsed (:class:`runtime.resp.RespParser`), its commands are turned into
node requests by the command table (:mod:`runtime.resp_commands`), and all the requests
of one read go to the node as one ``ClientBatch`` with this object as ``reply_to``; the
node answers one ``BatchReply`` per batch, in order, with the replies in request order.

Some commands are answered here without the node (``ECHO``, ``CONFIG GET``, ``CLIENT``,
argument errors, ...). Their replies must still leave in command order, so each read
becomes a *batch* of segments, each either ready bytes or "``n`` node replies from index
``i`` and how to build the reply from them"; batches are written strictly in order, each
in one ``write`` once the node's replies for it (if it needed any) have arrived.

Limits, backpressure and half-close as for JSON lines
(:class:`~runtime.served_connection.ServedConnection`): replies are rendered one command
at a time under the output buffer limit, reading pauses while the write buffer is over
its high-water mark or too many batches are unwritten, and after EOF
(``shutdown(SHUT_WR)``) every command read is answered before the connection closes.
Over ``--max-clients`` the connection gets ``-ERR max number of clients reached`` and is
closed at once, as Redis does (peers never use this port); in protected mode a client from
a non-loopback address gets ``-DENIED ...`` and is closed at once. With passwords on the
node (``--requirepass``, ``--aclfile``) commands go through
:func:`~runtime.resp_commands.dispatch_authenticated` (``-NOAUTH``, ``-NOPERM``). ``QUIT`` answers ``+OK`` and
closes; a protocol error answers ``-ERR Protocol error: ...`` after the replies to the
commands before it, and closes, as Redis does.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Callable

from actors.protocol.edge import BatchReply, ClientBatch
from runtime.addresses import sockaddr_text
from runtime.conn_limits import MAX_IN_FLIGHT, ConnectionGuard
from runtime.resp import HiredisRespParser, RespParser, error, new_parser
from runtime.client_auth import DENIED_MESSAGE, refused_by_protected_mode
from runtime.resp_commands import dispatch, dispatch_authenticated, monitored
from runtime.resp_monitor import feed_monitors
from runtime.resp_plain import take_plain
from runtime.resp_session import RespServerInfo, Session
from runtime.served_connection import ServedConnection

if TYPE_CHECKING:
    from pykka import ActorRef

__all__ = ["RespConnection"]

logger = logging.getLogger("actorcache.resp")


class _Batch:
    """The replies of one read: ``segments`` (bytes, ``(build, start, proto, arg)``, or a
    run of plain commands' ``[build, start, proto, count]``, runtime/resp_plain.py)
    and, once the node answered (or at once when it needed nothing), its ``replies``."""

    __slots__ = ("replies", "segments")

    def __init__(self, segments: list[Any], replies: tuple[Any, ...] | None) -> None:
        self.segments = segments
        self.replies = replies


def _render(batches: list[_Batch]) -> Iterator[bytes]:
    """The reply bytes of ``batches``, one command's reply at a time (a builder may
    return an iterator of parts for a reply of many values)."""
    for batch in batches:
        replies = batch.replies
        for seg in batch.segments:
            if type(seg) is bytes:
                yield seg
                continue
            build, start, proto, arg = seg
            try:
                out = build(replies, start, proto, arg)
                if type(out) is bytes:
                    yield out
                else:
                    yield from out
            except Exception as exc:  # noqa: BLE001 - a builder bug costs one reply
                logger.exception("cannot build a RESP reply")
                yield error(f"ERR internal error: {exc!r}")


class RespConnection(ServedConnection):
    MAX_CLIENTS_REPLY = b"-ERR max number of clients reached\r\n"

    def __init__(
        self,
        conn_id: int,
        node: ActorRef[Any],
        max_request_bytes: int,
        on_closed: Callable[[RespConnection], None],
        info: RespServerInfo | None = None,
        *,
        guard: ConnectionGuard | None = None,
    ) -> None:
        super().__init__(conn_id, node, on_closed, guard)
        self.session = Session(conn_id, info or RespServerInfo(max_request_bytes=max_request_bytes))
        self.session.counters = self.guard.counters
        self.session.hold = self.hold_queued
        server = self.session.server
        self._parser: RespParser | HiredisRespParser | None = new_parser(
            server.resp_request_limit, server.proto_max_bulk_len
        )
        #: Batches not written yet, in read order.
        self._queue: collections.deque[_Batch] = collections.deque()
        #: With passwords on the node, every command passes the user's checks (runtime/acl.py).
        self._dispatch = dispatch if self.session.server.acl is None else dispatch_authenticated

    def _unwritten(self) -> bool:
        return bool(self._queue)

    def _in_flight(self) -> int:
        return len(self._queue) + len(self._out)

    def _drop_input(self) -> None:
        self._parser = None

    # --- asyncio.Protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.session.addr = sockaddr_text(transport.get_extra_info("peername"))
        self.session.laddr = sockaddr_text(transport.get_extra_info("sockname"))
        super().connection_made(transport)
        if self.session.server.protected and not self._close_when_flushed and refused_by_protected_mode(transport):
            self.guard.counters["rejected_connections"] += 1
            logger.debug("refusing client %s: protected mode", self.session.addr)  # (counted, not logged at info)
            self._answer_and_linger(error("DENIED " + DENIED_MESSAGE))

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if self._close_when_flushed or self._draining or parser is None:
            return
        self.guard.counters["bytes_received"] += len(data)
        self.last_active = self.guard.now
        commands = parser.feed(data)
        session = self.session
        monitors = session.server.monitors
        if monitors and commands:
            shown = [argv for argv in commands if monitored(argv)]
            if shown:
                feed_monitors(monitors, shown, session.addr)
        segments: list[Any] = []
        requests: list[Any] = []
        # Plain GET/SET skip the table (runtime/resp_plain.py): not in MULTI, not with passwords.
        unlocked = self._dispatch is dispatch
        plain = unlocked and session.txn is None and not session.monitor
        i = 0
        count = len(commands)
        while i < count:
            if plain:
                i = take_plain(commands, i, requests, segments, session.proto)
                if i == count:
                    break
            result = self._dispatch(commands[i], session)
            i += 1
            if type(result) is bytes:
                segments.append(result)
            else:
                reqs, build, arg = result
                segments.append((build, len(requests), session.proto, arg))
                requests.extend(reqs)
            if session.quit:
                break
            plain = unlocked and session.txn is None and not session.monitor  # (MULTI queues; a monitor may not)
        if session.monitor and self not in monitors:
            monitors[self] = None
        closing = session.quit
        if parser.error is not None and not closing:
            segments.append(error("ERR " + parser.error))
            logger.debug("closing RESP connection %s: %s", self.conn_id, parser.error)
            closing = True
        if closing:
            self._close_when_flushed = True
            if self.transport is not None:
                self.transport.pause_reading()
        if segments:
            if requests:
                self._queue.append(_Batch(segments, None))
                self.outstanding += 1
                self.node.tell(ClientBatch(self.conn_id, tuple(requests), self))
            else:
                self._queue.append(_Batch(segments, ()))
                self._flush()
            if len(self._queue) + len(self._out) >= MAX_IN_FLIGHT:
                self._update_reading()
        self._maybe_close()
        buffered = parser.buffered
        if buffered or self.held_input:
            self._note_input(buffered, bool(commands))

    def connection_lost(self, exc: Exception | None) -> None:
        self.session.server.monitors.pop(self, None)
        super().connection_lost(exc)

    def monitor_write(self, data: bytes) -> None:
        """A MONITOR line (or a read's lines): written after what was handed to the writer."""
        if not self._close_when_flushed:
            self._emit(iter((data,)))

    # --- reply target (called by the node, on the loop thread) ------------------------

    def tell(self, message: BatchReply) -> None:
        self.outstanding -= 1
        for batch in self._queue:  # the node answers batches in order: the first waiting one
            if batch.replies is None:
                batch.replies = message.replies
                break
        if not self._flush():
            if self._held:
                self._update_reading()
            self._maybe_close()

    def _flush(self) -> bool:
        """Hand the batches ready at the head of the queue to the writer; False if none."""
        queue = self._queue
        if not queue or queue[0].replies is None:
            return False
        ready = []
        while queue and queue[0].replies is not None:
            ready.append(queue.popleft())
        self._emit(_render(ready))
        return True
