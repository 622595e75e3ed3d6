"""What a connection may make the node hold, and the one sweep that enforces the timed limits.

Theory of operation
-------------------
Every inbound connection (:class:`runtime.served_connection.ServedConnection`: JSON lines,
msgpack, peers, RESP) shares one :class:`ConnectionGuard` with the others of its server.
It holds :class:`ClientLimits` (the command-line options) and the state no connection can
judge alone: how many client slots are taken, how many bytes of partial input all
connections hold together, which connections hold a partial request and since when, and
the counters the node reports in ``stats``. Everything runs on the event loop thread.

Limits checked as bytes arrive or leave (by the connections, no timer involved):

- ``--max-clients``: a connection over the limit is refused (one error line, then close);
  on the JSON/msgpack port it may still present a peer ``hello`` within
  :data:`PEER_HELLO_GRACE_S` (see :class:`runtime.connection.ClientConnection`);
- a peer handshake (hello, challenge, auth) completes within :data:`PEER_HELLO_GRACE_S`
  of the hello, or the connection is refused (the sweep checks :attr:`ConnectionGuard.handshakes`);
- ``--client-output-buffer-limit``: replies are encoded one at a time; unsent bytes (the
  transport's write buffer plus what is being encoded) over the hard limit cut the client
  off at once;
- ``--max-input-buffer-bytes``: when the partial input of all connections together (with
  what they keep of answered requests: a RESP transaction's queue, which is refused past
  the budget or past half of it for all queues together) passes the budget, the client connection holding the most is closed, then
  the next, until under (a peer's only once no client holds any).

Limits that need a clock are checked by :meth:`ConnectionGuard.sweep`, every
:data:`SWEEP_INTERVAL_S`. It is cheap with 10,000 connections because it rarely looks at
all of them: connections holding a partial request are kept in a dict ordered by when that
request began (so the request-read-timeout pass stops at the first one still in time), the
soft output limit only looks at connections over it, and only the idle timeout (off by
default, as Redis's ``timeout``) walks every connection, once a second. Connections stamp
their activity with :attr:`ConnectionGuard.now`, a clock the sweep refreshes (Redis caches
its ``unixtime`` the same way), so the hot path never reads the clock.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import TYPE_CHECKING

from actors.protocol.value_depth import DEFAULT_MAX_VALUE_DEPTH

if TYPE_CHECKING:
    from runtime.served_connection import ServedConnection

__all__ = [
    "COUNTERS",
    "INFLATE_TURN_BYTES",
    "MAX_IN_FLIGHT",
    "PEER_HELLO_GRACE_S",
    "PROBATION_SLOTS",
    "SWEEP_INTERVAL_S",
    "ClientLimits",
    "ConnectionGuard",
]

logger = logging.getLogger("actorcache.limits")

#: Seconds between two sweeps (Redis's ``hz`` 10): the resolution of every timeout.
SWEEP_INTERVAL_S = 0.1
#: The idle timeout walks every connection: once every this many sweeps (1 s).
_IDLE_EVERY = 10

#: Batches a connection may have read and not yet written out (at the node, or replies
#: waiting to be encoded). Reading pauses at this many and resumes when one is answered.
#: A batch is one socket read (asyncio reads at most 256 KiB), so a client can make the
#: node hold at most 1 MiB of requests beyond its partial one, the default frame limit;
#: 4 still lets a pipelining client keep the next batches queued behind the one being
#: served (a cluster write waits a replication round trip), so it never waits on a read.
MAX_IN_FLIGHT = 4

#: Bytes compressed peer frames may inflate to in one event loop turn, all peer connections
#: together (at least one frame: the peer frame limit). A compressed frame of a few KB can
#: inflate to that limit (64 MiB), so one read of them would build GBs of messages before
#: the node sees the first; past the budget a connection's frames wait, reading paused, for
#: the next turn, after the node's turns for those told before.
INFLATE_TURN_BYTES = 64 << 20

#: How long a connection over ``--max-clients`` on the JSON/msgpack port has to present a
#: peer ``hello`` (a peer link writes it with its first bytes, so one round trip suffices).
PEER_HELLO_GRACE_S = 2.0
#: At most this many such connections wait at once; a new one refuses the oldest, so a
#: stranger must open connections faster than a peer's hello arrives to keep peers out.
PROBATION_SLOTS = 64

#: The counters merged into the node's ``stats``.
COUNTERS = (
    "rejected_connections",
    "auth_failures",
    "client_output_buffer_kills",
    "idle_timeouts",
    "request_read_timeouts",
    "input_buffer_kills",
    "bytes_received",
    "bytes_sent",
)


@dataclasses.dataclass(frozen=True)
class ClientLimits:
    """The connection limits of one server (``python -m runtime.node --help``, "limits")."""

    #: Unsent reply bytes that cut a client off at once (0: no limit).
    output_hard: int = 64 << 20
    #: Unsent reply bytes that cut a client off once over them for ``output_soft_s`` (0: none).
    output_soft: int = 0
    output_soft_s: float = 0.0
    #: Client connections on both ports together (peers not counted once their hello is accepted).
    max_clients: int = 10_000
    #: Seconds without a request before a client is closed (0: never).
    idle_timeout_s: float = 0.0
    #: Seconds a partial request may take to complete (0: no limit).
    request_read_timeout_s: float = 10.0
    #: Bytes of partial input all connections may hold together.
    max_input_buffer: int = 256 << 20
    #: Deepest JSON/msgpack value accepted (clients and peers).
    max_value_depth: int = DEFAULT_MAX_VALUE_DEPTH


class ConnectionGuard:
    """Shared connection state and counters of one server; see the module docstring.

    ``connections`` is the server's set of live connections (the idle timeout walks it).
    """

    def __init__(self, limits: ClientLimits | None = None, connections: set[ServedConnection] | None = None) -> None:
        self.limits = limits if limits is not None else ClientLimits()
        #: The server's live connections (a peer's hello swaps its client for its peer protocol).
        self.connections: set[ServedConnection] = connections if connections is not None else set()
        #: The sweep's clock (monotonic seconds); connections stamp activity with it.
        self.now = time.monotonic()
        #: Client connections holding one of ``max_clients`` slots.
        self.clients = 0
        #: Connections accepted as peers (limited to ``max_clients`` too).
        self.peers = 0
        #: Bytes held for partial requests and kept of answered ones (transactions' queues),
        #: all connections together.
        self.input_bytes = 0
        #: Of those, the kept ones (at most half the budget: ServedConnection.hold_queued).
        self.queued_bytes = 0
        #: Connections holding a partial request, ordered by when it began, while its
        #: clock runs (not while we paused reading them: backpressure).
        self.partial: dict[ServedConnection, None] = {}
        #: Every connection holding partial or kept input (the input budget's candidates).
        self.holding: dict[ServedConnection, None] = {}
        #: Connections over the soft output limit.
        self.soft_over: dict[ServedConnection, None] = {}
        #: Over-limit connections that may still present a peer hello, with their deadline.
        self.probation: dict[ServedConnection, float] = {}
        #: Connections whose peer hello was challenged, with the deadline for its ``auth``
        #: (ordered by it: the grace is one constant).
        self.handshakes: dict[ServedConnection, float] = {}
        self.counters = dict.fromkeys(COUNTERS, 0)
        #: Bytes peer frames inflated this loop turn (reset at the next one).
        self._inflated = 0
        self._timer: asyncio.TimerHandle | None = None
        self._ticks = 0

    # --- the sweep ---------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run :meth:`sweep` every :data:`SWEEP_INTERVAL_S` on ``loop`` (idempotent)."""
        if self._timer is None:
            self._timer = loop.call_later(SWEEP_INTERVAL_S, self._tick, loop)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            self.sweep()
        except Exception:  # noqa: BLE001 - a bug here must not stop future sweeps
            logger.exception("connection sweep failed")
        self._timer = loop.call_later(SWEEP_INTERVAL_S, self._tick, loop)

    def sweep(self, now: float | None = None) -> None:
        """Refresh the clock and close whatever connection a timed limit says must go."""
        now = self.now = time.monotonic() if now is None else now
        limits = self.limits
        if self.probation:
            expired = []
            for conn, deadline in self.probation.items():
                if deadline > now:
                    break
                expired.append(conn)
            for conn in expired:
                conn.refuse_max_clients()
        if self.handshakes:
            late_handshakes = []
            for conn, deadline in self.handshakes.items():
                if deadline > now:
                    break
                late_handshakes.append(conn)
            for conn in late_handshakes:
                conn.handshake_timed_out()
        if limits.request_read_timeout_s and self.partial:
            cutoff = now - limits.request_read_timeout_s
            late = []
            for conn in self.partial:  # ordered by when the partial request began
                if conn.partial_since > cutoff:
                    break
                late.append(conn)
            for conn in late:
                conn.request_read_timed_out()
            if late:
                self.counters["request_read_timeouts"] += len(late)
                logger.warning(
                    "closed %d connection(s) whose partial request did not complete within %gs (--request-read-timeout)",
                    len(late), limits.request_read_timeout_s,
                )
        if self.soft_over:
            for conn in list(self.soft_over):
                conn.recheck_soft_limit()
        self._ticks += 1
        if limits.idle_timeout_s and self._ticks % _IDLE_EVERY == 0:
            cutoff = now - limits.idle_timeout_s
            idle = [c for c in self.connections if c.last_active <= cutoff and c.idle()]
            for conn in idle:
                conn.close()
            if idle:
                self.counters["idle_timeouts"] += len(idle)
                logger.info("closed %d idle client connection(s) (--timeout %g)", len(idle), limits.idle_timeout_s)

    # --- the input budget --------------------------------------------------------------

    def enforce_input_budget(self) -> None:
        """Close the connections holding the most input (partial and kept) until under the
        budget: clients first, a peer only once no client holds any (a stranger's queued
        transactions, which no timeout ends, must not get a member's large frame cut off)."""
        limit = self.limits.max_input_buffer
        while self.input_bytes > limit and self.holding:
            victim = max(self.holding, key=_victim_order)
            held, total = _held(victim), self.input_bytes
            self.counters["input_buffer_kills"] += 1
            logger.warning(
                "closing connection %s: it holds %d bytes of input (partial and queued), the most while all "
                "connections hold %d, over --max-input-buffer-bytes %d",
                victim.remote(), held, total, limit,
            )
            victim.kill()

    # --- the inflation budget ------------------------------------------------------------

    def inflate_room(self) -> int:
        """Bytes compressed peer frames may still inflate to this loop turn (<= 0: none)."""
        return INFLATE_TURN_BYTES - self._inflated

    def inflated(self, n: int) -> None:
        """A peer frame inflated to ``n`` bytes this turn; the budget is back at the next."""
        if not self._inflated:
            asyncio.get_running_loop().call_soon(self._new_turn)
        self._inflated += n

    def _new_turn(self) -> None:
        self._inflated = 0

    def stats(self) -> dict[str, int]:
        """The counters, for the node's ``stats``."""
        return dict(self.counters)


def _held(conn: ServedConnection) -> int:
    return conn.held_input + conn.held_queued


def _victim_order(conn: ServedConnection) -> tuple[bool, int]:
    return not conn.is_peer, _held(conn)
