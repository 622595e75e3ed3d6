"""A node's state changes in its log, each once: the host side of ``--log-format``.

Why here and not in the actors: actors never read the wall clock nor decide how a host
reports, and the simulator must stay deterministic. They already trace their transitions
through ``ctx.trace`` (``view``, ``joined``, ``warming``, ``warm``, ``leave``, ``handoff``,
``left``, ``remove_node``); the runtime gives the node's ``Ctx`` the sink from
:meth:`StateLog.sink` (with ``tracing`` off unless ``--trace`` asks for every event, so
no per-write event is built for it) and this turns those events into log records. What
no event marks (limits being hit, evictions, progress of a long warming or hand-off) it
reads off the node's ``stats``, which the host asks for every second
(``StatsAsk``, runtime/node.py): a counter that starts moving opens an episode,
logged once, and one that has stood still for ``quiet_s`` closes it, logged once.

Sans-IO: fed trace events and stats snapshots with the time; emits through ``emit``.
Events (``event`` in JSON logs; docs/operations.md lists them with their fields):
``node_status``, ``member_joined``, ``member_up``, ``member_suspect``, ``member_down``,
``member_left``, ``member_status``, ``member_removed``, ``cluster_joined``,
``warming_started``, ``warming_progress``, ``warming_done``, ``leaving``,
``handoff_started``, ``handoff_progress``, ``left``, ``evictions_started``,
``evictions_stopped``, ``memory_limit_reached``, ``memory_limit_cleared``,
``hints_dropping``, ``hints_dropping_stopped``, ``connections_refused``,
``connections_refused_stopped``, ``output_buffer_kills``, ``output_buffer_kills_stopped``.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from actors.kernel.ctx import TraceSink
from runtime.logs import log_event

__all__ = ["LOGGED_TRACES", "StateLog"]

logger = logging.getLogger("actorcache.state")

Emit = Callable[[int, str, str, dict[str, Any]], None]

#: Trace events that are state changes (all others pass through to ``--trace`` only).
LOGGED_TRACES = frozenset({"view", "joined", "warming", "warm", "leave", "handoff", "left", "remove_node"})

#: A member's state as this node sees it -> the event when it changes to it, and its words.
_STATE_EVENTS = {
    "alive": ("member_up", "is up"),
    "suspect": ("member_suspect", "is suspect"),
    "down": ("member_down", "is down"),
    "left": ("member_left", "left"),
}

#: Counters whose moving is an episode: the stats path, the events that open and close
#: it, the opening's level, and what the node is doing meanwhile.
_COUNTER_EPISODES = (
    (("evicted",), "evictions_started", "evictions_stopped", logging.WARNING, "evicting keys at --max-memory"),
    (("cluster", "hints_dropped"), "hints_dropping", "hints_dropping_stopped", logging.WARNING,
     "dropping hints at --hint-limit"),
    (("rejected_connections",), "connections_refused", "connections_refused_stopped", logging.WARNING,
     "refusing connections (--max-clients or protected mode)"),
    (("client_output_buffer_kills",), "output_buffer_kills", "output_buffer_kills_stopped", logging.WARNING,
     "disconnecting clients over --client-output-buffer-limit"),
)


def _default_emit(level: int, event: str, message: str, fields: dict[str, Any]) -> None:
    log_event(logger, level, event, message, **fields)


def _get(stats: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = stats
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value


class StateLog:
    """Logs node ``node_id``'s state changes once each (see the module docstring)."""

    def __init__(self, node_id: str, emit: Emit | None = None, progress_s: float = 5.0, quiet_s: float = 30.0) -> None:
        self.node_id = node_id
        self.emit = emit if emit is not None else _default_emit
        self.progress_s = progress_s
        self.quiet_s = quiet_s
        #: Each member's (status, state) as last logged.
        self.members: dict[str, tuple[str, str]] = {}
        #: When warming / the hand-off began (trace time), None when not under way.
        self.warming_since: float | None = None
        self.handoff_since: float | None = None
        self._last_progress = 0.0
        #: Per counter episode: the counter's last value, when it last moved (None: not moving)
        #: and its value when the episode began.
        self._counters: dict[str, int] = {}
        self._moving: dict[str, tuple[float, int]] = {}
        self._memory_full = False

    def sink(self, forward: TraceSink | None = None) -> TraceSink:
        """The ``Ctx`` trace sink: state changes to the log, every event on to ``forward``."""

        def sink(t: float, node: str, kind: str, fields: dict[str, Any]) -> None:
            if kind in LOGGED_TRACES:
                self.on_trace(t, kind, fields)
            if forward is not None:
                forward(t, node, kind, fields)

        return sink

    # --- trace events --------------------------------------------------------------------

    def on_trace(self, t: float, kind: str, fields: dict[str, Any]) -> None:
        """One traced state change (called inside the node's turn: must not raise)."""
        try:
            getattr(self, f"_on_{kind}")(t, fields)
        except Exception:  # a malformed event costs its log line, never the node's turn
            logger.exception("cannot log the %s event %r", kind, fields)

    def _on_view(self, t: float, fields: dict[str, Any]) -> None:
        changes = fields.get("changes") or {}
        for member in sorted(changes):
            status, _, state = str(changes[member]).partition("/")
            before = self.members.get(member)
            self.members[member] = (status, state)
            if member == self.node_id:
                if before is None or before[0] != status:
                    self.emit(logging.INFO, "node_status", f"this node is {status}", {"status": status})
                continue
            info = {"member": member, "status": status, "state": state}
            if before is None:
                self.emit(logging.INFO, "member_joined", f"member {member} in the cluster ({status}, {state})", info)
            elif before[1] != state:
                level = logging.WARNING if state in ("suspect", "down") else logging.INFO
                event, words = _STATE_EVENTS.get(state, ("member_state", f"is {state}"))
                self.emit(level, event, f"member {member} {words} (was {before[1]}; {status})", info)
            elif before[0] != status:
                self.emit(logging.INFO, "member_status", f"member {member} is {status} (was {before[0]})", info)

    def _on_joined(self, t: float, fields: dict[str, Any]) -> None:
        members = fields.get("members")
        self.emit(logging.INFO, "cluster_joined", f"joined the cluster: {members} members", {"members": members})

    def _on_warming(self, t: float, fields: dict[str, Any]) -> None:
        self.warming_since = self._last_progress = t
        partitions = fields.get("partitions")
        self.emit(
            logging.INFO, "warming_started", f"warming: pulling {partitions} partitions from peers",
            {"partitions": partitions},
        )

    def _on_warm(self, t: float, fields: dict[str, Any]) -> None:
        since, self.warming_since = self.warming_since, None
        seconds = round(t - since, 3) if since is not None else 0.0
        keys = fields.get("keys", 0)
        self.emit(
            logging.INFO, "warming_done", f"warmed: {keys} keys streamed in {seconds:g}s; serving reads",
            {"keys": keys, "seconds": seconds},
        )

    def _on_leave(self, t: float, fields: dict[str, Any]) -> None:
        self.emit(logging.INFO, "leaving", "leaving the cluster", {})

    def _on_handoff(self, t: float, fields: dict[str, Any]) -> None:
        self.handoff_since = self._last_progress = t
        partitions = fields.get("partitions")
        self.emit(
            logging.INFO, "handoff_started", f"handing off {partitions} partitions", {"partitions": partitions}
        )

    def _on_left(self, t: float, fields: dict[str, Any]) -> None:
        since, self.handoff_since = self.handoff_since, None
        keys, complete = fields.get("keys", 0), bool(fields.get("complete"))
        seconds = round(t - since, 3) if since is not None else 0.0
        self.emit(
            logging.INFO if complete else logging.WARNING, "left",
            f"left the cluster: {keys} keys handed off in {seconds:g}s{'' if complete else ' (incomplete)'}",
            {"keys": keys, "complete": complete, "seconds": seconds},
        )

    def _on_remove_node(self, t: float, fields: dict[str, Any]) -> None:
        member = fields.get("node")
        self.emit(logging.WARNING, "member_removed", f"member {member} removed for good", {"member": member})

    # --- stats snapshots -----------------------------------------------------------------

    def on_stats(self, stats: dict[str, Any], now: float) -> None:
        """A ``stats`` snapshot taken at ``now`` (the same clock as the trace's)."""
        cluster = stats.get("cluster") if isinstance(stats.get("cluster"), dict) else {}
        self._progress(cluster, now)
        for path, started, stopped, level, what in _COUNTER_EPISODES:
            value = _get(stats, path)
            if type(value) is int:
                self._counter(started, stopped, level, what, value, now, stats)
        self._memory(stats)

    def _progress(self, cluster: dict[str, Any], now: float) -> None:
        if now - self._last_progress < self.progress_s:
            return
        under_way = (
            (self.warming_since, "warming_progress", "warming", "partitions_pulling", "keys_streamed", "streamed"),
            (self.handoff_since, "handoff_progress", "handing off", "partitions_handing_off", "keys_handed_off",
             "handed off"),
        )
        for since, event, doing, left_key, keys_key, done in under_way:
            if since is None:
                continue
            self._last_progress = now
            left, keys = cluster.get(left_key), cluster.get(keys_key)
            self.emit(
                logging.INFO, event, f"{doing}: {left} partitions left, {keys} keys {done}",
                {"partitions_left": left, "keys": keys, "seconds": round(now - since, 3)},
            )

    def _counter(
        self, started: str, stopped: str, level: int, what: str, value: int, now: float, stats: dict[str, Any]
    ) -> None:
        before = self._counters.get(started)
        self._counters[started] = value
        if before is None:
            return  # the first snapshot: no movement seen yet
        episode = self._moving.get(started)
        if value > before:
            if episode is None:
                fields: dict[str, Any] = {"count": value - before}
                if started == "evictions_started":
                    fields.update(
                        policy=stats.get("eviction_policy"),
                        memory_bytes=stats.get("memory_bytes"),
                        max_memory=stats.get("max_memory"),
                    )
                self.emit(level, started, f"{what} ({value - before} so far)", fields)
                episode = (now, before)
            self._moving[started] = (now, episode[1])
        elif episode is not None and now - episode[0] >= self.quiet_s:
            del self._moving[started]
            count = value - episode[1]
            self.emit(logging.INFO, stopped, f"no longer {what} ({count} in all)", {"count": count})

    def _memory(self, stats: dict[str, Any]) -> None:
        """``--max-memory`` under ``noeviction``: writes are refused while the store is full."""
        used, limit = stats.get("memory_bytes"), stats.get("max_memory")
        if type(used) is not int or type(limit) is not int or not limit or stats.get("eviction_policy") != "noeviction":
            return
        fields = {"memory_bytes": used, "max_memory": limit}
        if not self._memory_full and used >= limit:
            self._memory_full = True
            self.emit(logging.WARNING, "memory_limit_reached", "at --max-memory: new writes are refused", fields)
        elif self._memory_full and used < 0.9 * limit:
            self._memory_full = False
            self.emit(logging.INFO, "memory_limit_cleared", "below 90% of --max-memory again", fields)
