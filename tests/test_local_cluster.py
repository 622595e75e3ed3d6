"""``python -m runtime.local_cluster``: a whole cluster from one command, stopped by one signal."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def ask(port: int, request: dict) -> dict:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(json.dumps(request).encode() + b"\n")
        return json.loads(sock.makefile("rb").readline())


def test_three_nodes_replicate_and_stop_together() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime.local_cluster", "--nodes", "3", "--base-port", "0", "--",
         "--heartbeat-interval", "0.1"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        ports = []
        for _ in range(4):
            line = proc.stdout.readline()
            m = re.search(r"listening on \S+:(\d+)", line)
            if m:
                ports.append(int(m.group(1)))
        assert len(ports) == 3
        deadline = time.monotonic() + 15
        while True:
            members = ask(ports[2], {"type": "stats"})["stats"]["cluster"]["members"]
            if len(members) == 3 and all(m["status"] == "ready" for m in members.values()):
                break
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert ask(ports[0], {"type": "set", "key": "k", "value": "hello", "consistency": "all"})["success"]
        assert ask(ports[2], {"type": "get", "key": "k"}) == {"type": "response", "value": "hello", "success": True}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the launcher and every node it started
        except ProcessLookupError:
            pass
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
