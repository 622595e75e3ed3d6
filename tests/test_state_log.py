"""The node's log: JSON lines and state changes logged once each (in-process; the real
cluster's log is checked in tests/test_ops_cluster.py)."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from runtime.logs import JsonFormatter, log_event
from runtime.state_log import StateLog


def _record(msg: str, **extra: Any) -> logging.LogRecord:
    return logging.LogRecord("actorcache.state", logging.WARNING, __file__, 1, "%s", (msg,), None, **extra)


def test_json_lines_carry_the_envelope_and_the_fields() -> None:
    formatter = JsonFormatter("node7")
    record = _record("member node2 is down")
    record.event, record.fields = "member_down", {"member": "node2", "node": "forged", "state": "down"}
    line = json.loads(formatter.format(record))
    assert line["node"] == "node7"  # the envelope wins over a field of the same name
    assert (line["level"], line["event"], line["member"], line["state"]) == ("warning", "member_down", "node2", "down")
    assert line["time"].endswith("Z") and line["logger"] == "actorcache.state"
    plain = json.loads(formatter.format(_record("lone \udcff surrogate")))
    assert plain["event"] == "log" and "surrogate" in plain["message"]
    try:
        raise ValueError("boom")
    except ValueError:
        failed = _record("failed")
        failed.exc_info = sys.exc_info()
    assert "ValueError: boom" in json.loads(formatter.format(failed))["exception"]


def test_log_event_sets_event_and_fields(caplog: Any) -> None:
    with caplog.at_level(logging.INFO, logger="actorcache.test"):
        log_event(logging.getLogger("actorcache.test"), logging.INFO, "left", "left the cluster", keys=3)
    (record,) = caplog.records
    assert record.getMessage() == "left the cluster" and record.event == "left" and record.fields == {"keys": 3}


class _Log:
    def __init__(self) -> None:
        self.events: list[tuple[int, str, dict[str, Any]]] = []

    def __call__(self, level: int, event: str, message: str, fields: dict[str, Any]) -> None:
        assert message
        self.events.append((level, event, fields))

    def names(self) -> list[str]:
        return [event for _, event, _ in self.events]


def test_membership_changes_are_logged_once_each() -> None:
    log = _Log()
    forwarded: list[str] = []
    sink = StateLog("node1", log).sink(lambda t, node, kind, fields: forwarded.append(kind))
    sink(0.0, "node1", "write", {"key": "k"})  # not a state change: only forwarded
    sink(1.0, "node1", "view", {"changes": {"node2": "warming/alive", "node3": "ready/alive"}})
    sink(1.5, "node1", "view", {"changes": {"node2": "ready/alive"}})
    sink(2.0, "node1", "view", {"changes": {"node2": "ready/alive"}})  # nothing new: nothing logged
    sink(3.0, "node1", "view", {"changes": {"node3": "ready/suspect"}})
    sink(4.0, "node1", "view", {"changes": {"node3": "ready/down"}})
    sink(5.0, "node1", "view", {"changes": {"node3": "ready/alive", "node1": "leaving/self"}})
    sink(6.0, "node1", "view", {"changes": {"node2": "left/left"}})
    sink(7.0, "node1", "remove_node", {"node": "node3"})
    assert forwarded == ["write", "view", "view", "view", "view", "view", "view", "view", "remove_node"]
    assert log.names() == [
        "member_joined", "member_joined", "member_status", "member_suspect", "member_down", "node_status",
        "member_up", "member_left", "member_removed",
    ]
    assert log.events[4] == (logging.WARNING, "member_down", {"member": "node3", "status": "ready", "state": "down"})


def test_warming_and_handoff_log_start_progress_and_end() -> None:
    log = _Log()
    state = StateLog("node2", log, progress_s=5.0)
    state.on_trace(10.0, "joined", {"members": 3})
    state.on_trace(10.0, "warming", {"partitions": 256})
    cluster = {"partitions_pulling": 200, "keys_streamed": 1000}
    for now in (11.0, 14.0, 15.5, 17.0, 21.0):
        state.on_stats({"cluster": cluster}, now)
    state.on_trace(22.0, "warm", {"keys": 5000, "incarnation": 1})
    state.on_stats({"cluster": cluster}, 30.0)  # warmed: no more progress lines
    state.on_trace(40.0, "leave", {})
    state.on_trace(40.0, "handoff", {"partitions": 90})
    state.on_stats({"cluster": {"partitions_handing_off": 10, "keys_handed_off": 700}}, 46.0)
    state.on_trace(47.0, "left", {"keys": 900, "complete": True})
    assert log.names() == [
        "cluster_joined", "warming_started", "warming_progress", "warming_progress", "warming_done",
        "leaving", "handoff_started", "handoff_progress", "left",
    ]
    assert log.events[4][2] == {"keys": 5000, "seconds": 12.0}
    assert log.events[7][2] == {"partitions_left": 10, "keys": 700, "seconds": 6.0}
    assert log.events[8] == (logging.INFO, "left", {"keys": 900, "complete": True, "seconds": 7.0})
    state.on_trace(50.0, "left", {"keys": 0, "complete": False})
    assert log.events[-1][0] == logging.WARNING


def test_limits_and_evictions_open_and_close_an_episode_once() -> None:
    log = _Log()
    state = StateLog("node1", log, quiet_s=30.0)
    base = {"eviction_policy": "allkeys-lru", "max_memory": 1000, "memory_bytes": 990, "rejected_connections": 0}
    for now, evicted in ((0, 0), (1, 5), (2, 9), (3, 9), (20, 12), (49, 12), (51, 12), (60, 12), (61, 13)):
        state.on_stats({**base, "evicted": evicted, "cluster": {"hints_dropped": 0}}, float(now))
    assert log.names() == ["evictions_started", "evictions_stopped", "evictions_started"]
    assert log.events[0][2] == {"count": 5, "policy": "allkeys-lru", "memory_bytes": 990, "max_memory": 1000}
    assert log.events[1][2] == {"count": 12}  # 0 -> 12 over the whole episode
    full = {"eviction_policy": "noeviction", "max_memory": 1000, "evicted": 13}
    for used in (500, 1000, 1200, 950, 899, 1000):
        state.on_stats({**full, "memory_bytes": used}, 62.0)
    assert log.names()[3:] == ["memory_limit_reached", "memory_limit_cleared", "memory_limit_reached"]


def test_a_malformed_event_costs_its_line_not_the_turn(caplog: Any) -> None:
    log = _Log()
    state = StateLog("node1", log)
    with caplog.at_level(logging.ERROR, logger="actorcache.state"):
        state.on_trace(1.0, "view", {"changes": ["not", "a", "dict"]})
    assert log.events == [] and "cannot log the view event" in caplog.text
