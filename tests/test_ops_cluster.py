"""Operating a real 3-node cluster: ``runtime.cli top`` in a pseudo-terminal shows every
member and a SIGKILLed one as down, and the nodes' JSON logs parse line by line and hold
each state change of a join, a crash and a graceful leave once.

One cluster for the whole file (one test): starting real nodes is the expensive part.
"""

from __future__ import annotations

import io
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from runtime.client import Client
from runtime.local_cluster import ROOT, LocalCluster
from runtime.top import BELOW, EOL, HOME, SHOW, Top


def _read_until(fd: int, seen: bytearray, done: Callable[[str], bool], timeout: float) -> str:
    """Read the pty into ``seen`` until ``done(last complete frame)``; that frame."""
    deadline = time.monotonic() + timeout
    frame = ""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
        frames = [f for f in seen.decode("utf-8", "replace").split(HOME) if BELOW in f]
        if frames:
            frame = frames[-1].split(BELOW)[0].replace(EOL, "")
            if done(frame):
                return frame
    raise AssertionError(f"top never showed what was expected; last frame:\n{frame}")


def _rows(frame: str) -> dict[str, list[str]]:
    return {cells[0]: cells for cells in (line.split() for line in frame.splitlines()) if cells[:1] != ["NODE"]
            and cells and cells[0].startswith("node")}


def _log_events(text: str, node: str) -> list[dict[str, Any]]:
    """Every line of a node's log file parsed; the launcher's own lines set aside."""
    events = []
    for line in text.splitlines():
        if line.startswith(("--- start ", f"actorcache node {node} ")):
            continue  # NodeProcess's header, and the start-up line on stdout
        event = json.loads(line)  # every line the node logged is one JSON object
        assert {"time", "level", "node", "event", "message"} <= set(event) and event["node"] == node
        events.append(event)
    return events


def _once(events: list[dict[str, Any]], event: str, **fields: Any) -> dict[str, Any]:
    found = [e for e in events if e["event"] == event and all(e.get(k) == v for k, v in fields.items())]
    assert len(found) == 1, (event, fields, [(e["event"], e["message"]) for e in events])
    return found[0]


def test_top_and_json_logs_on_a_real_cluster() -> None:
    args = ["--log-format", "json", "--heartbeat-interval", "0.1", "--down-after", "1"]
    with LocalCluster(3, node_args=args, leave_timeout=3.0) as cluster:
        addrs = cluster.addresses
        with Client(addrs["node1"]) as client:
            client.mset({f"k{i}": i for i in range(200)})

        # Not a terminal: plain lines, no escape codes.
        plain = io.StringIO()
        Top(addrs["node1"], lambda addr: Client(addr, timeout=2.0)).run(plain, 0.1, count=1)
        assert "\x1b" not in plain.getvalue()
        assert set(_rows(plain.getvalue())) == {"node1", "node2", "node3"}

        master, slave = pty.openpty()
        top = subprocess.Popen(
            [sys.executable, "-m", "runtime.cli", "--node", addrs["node1"], "--timeout", "2",
             "top", "--interval", "0.3"],
            cwd=ROOT, stdin=slave, stdout=slave, stderr=slave, close_fds=True,
            # A terminal's Ctrl-C: SIGINT at its default disposition, whatever this process
            # inherited. A suite started in the background by a shell without job control
            # (``cmd &`` in a script) ignores SIGINT, an ignored SIGINT stays ignored across
            # exec, and Python then installs no KeyboardInterrupt handler: top went on
            # refreshing and was killed after 10 s (a run of .ci/run, session 24).
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        os.close(slave)
        seen = bytearray()
        try:
            frame = _read_until(master, seen, lambda f: len(_rows(f)) == 3 and _rows(f)["node2"][6] != "-", 30)
            rows = _rows(frame)
            for node in ("node1", "node2", "node3"):
                assert rows[node][1:4] == [addrs[node], "ready", "alive"], frame
                assert rows[node][4] == "200"  # keys: every node holds every key (replicas 3)
            assert "3 members, 3 up, 0 down" in frame

            cluster.procs["node3"].kill()  # SIGKILL
            frame = _read_until(master, seen, lambda f: _rows(f).get("node3", [""] * 4)[3] == "down", 30)
            assert _rows(frame)["node1"][3] == "alive" and "2 up, 1 down" in frame
            assert top.poll() is None  # the view survives a member it cannot reach
            top.send_signal(signal.SIGINT)
            assert top.wait(timeout=10) == 0
            _read_until(master, seen, lambda f: True, 2)
            assert SHOW in seen.decode("utf-8", "replace")  # the cursor is given back
        finally:
            if top.poll() is None:
                top.kill()
                top.wait()
            os.close(master)

        # The node that saw node3 die declares it down (suspect first) once, not every round.
        deadline = time.monotonic() + 20
        while not any(e["event"] == "member_down" for e in _log_events(cluster.log("node1"), "node1")):
            assert time.monotonic() < deadline, cluster.log("node1")
            time.sleep(0.2)
        cluster.procs["node2"].terminate()  # SIGTERM: a graceful leave
        deadline = time.monotonic() + 20
        while not any(e["event"] == "member_left" for e in _log_events(cluster.log("node1"), "node1")):
            assert time.monotonic() < deadline, cluster.log("node1")
            time.sleep(0.2)
        node1 = _log_events(cluster.log("node1"), "node1")
        node2 = _log_events(cluster.log("node2"), "node2")

    _once(node1, "member_joined", member="node2")
    _once(node1, "member_joined", member="node3")
    down = _once(node1, "member_down", member="node3")
    assert down["level"] == "warning" and down["state"] == "down"
    _once(node1, "member_left", member="node2")
    _once(node2, "cluster_joined")
    started = _once(node2, "warming_started")
    assert started["partitions"] > 0
    _once(node2, "warming_done")
    _once(node2, "leaving")
    _once(node2, "handoff_started")
    left = _once(node2, "left")
    assert left["keys"] >= 0 and "complete" in left
    # No per-request logging at info: 200 writes and a second of stats asks left no trace.
    assert not [e for e in node1 + node2 if "k1" in e["message"].split()]
