"""Processes the Redis comparisons start and measure: our node (JSON and RESP ports), a
throwaway ``redis-server``, the Debian tools they need, CPU pinning, RSS and CPU time.

Every server here is a subprocess on a free loopback port, stopped (SIGTERM, then
SIGKILL) when its ``with`` block ends, however it ends.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

from runtime.local_cluster import NodeProcess

__all__ = [
    "RedisServer",
    "bare_server",
    "conditions",
    "cpu_seconds",
    "free_port",
    "need_redis_tools",
    "node_server",
    "pin_prefix",
    "resp_command",
    "rss_bytes",
]

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def need_redis_tools(*tools: str, install: bool = True) -> dict[str, str]:
    """Paths of ``tools`` (e.g. ``redis-server``, ``redis-benchmark``). Missing ones are
    installed from Debian's packages (redis-server, redis-tools) when ``install`` and we
    are root with apt-get; otherwise ``SystemExit`` with what to install."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing and install and shutil.which("apt-get") and os.geteuid() == 0:
        packages = sorted({"redis-server" if t == "redis-server" else "redis-tools" for t in missing})
        print(f"installing {' '.join(packages)} (missing: {' '.join(missing)})", file=sys.stderr, flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env, stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=False, env=env, stdout=subprocess.DEVNULL)
        missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise SystemExit(
            f"missing {', '.join(missing)}: install Debian's redis-server and redis-tools "
            "(apt-get install -y redis-server redis-tools)"
        )
    return {t: shutil.which(t) or t for t in tools}


def pin_prefix(cpu: int | None) -> list[str]:
    """``taskset -c CPU`` when pinning is asked for and possible, else nothing."""
    if cpu is None or shutil.which("taskset") is None or (os.cpu_count() or 1) <= cpu:
        return []
    return ["taskset", "-c", str(cpu)]


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (``VmRSS`` of /proc/PID/status), in bytes."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process (all its threads) has used so far."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def resp_command(*args: str | bytes) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a.encode() if isinstance(a, str) else a
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def _stop(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def node_server(node_id: str = "bench", *args: str, cpu: int | None = None, resp: bool = True) -> NodeProcess:
    """``python -m runtime.node ID 0 --log-level warning --resp-port 0`` (plus ``args``),
    optionally pinned to a CPU (``taskset`` execs the node: its pid is the node's), its
    stderr discarded; a context manager that stops it (SIGTERM, then SIGKILL)."""
    return NodeProcess(
        node_id, "--log-level", "warning", *args, *(("--resp-port", "0") if resp else ()),
        prefix=pin_prefix(cpu), stderr=subprocess.DEVNULL,
    )


def bare_server() -> NodeProcess:
    """``python -m bench.bare_server bare 0``: the bare asyncio dict server, started as a node is."""
    return NodeProcess("bare", command=[sys.executable, "-m", "bench.bare_server"], stderr=subprocess.DEVNULL)


class RedisServer:
    """A throwaway ``redis-server`` on a free loopback port, persistence off, in a
    temporary directory (so nothing is ever written next to the project)."""

    def __init__(
        self,
        path: str = "redis-server",
        *,
        cpu: int | None = None,
        start_timeout: float = 10.0,
        extra: Sequence[str] = (),
        directory: str | None = None,
        port: int | None = None,
    ) -> None:
        """``extra``: more options (after ours: ``--appendonly yes`` overrides);
        ``directory``: an existing ``--dir`` to use (and keep) instead of a temporary one."""
        self.port = port or free_port()
        self._own_dir = directory is None
        self.dir = directory or tempfile.mkdtemp(prefix="actorcache-redis-")
        self.argv = [
            *pin_prefix(cpu), path, "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no", "--dir", self.dir, "--logfile", "", "--daemonize", "no", *extra,
        ]
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.pid = self.proc.pid
        try:
            deadline = time.monotonic() + start_timeout
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                        s.sendall(b"PING\r\n")
                        if s.recv(64).startswith(b"+PONG"):
                            break
                except OSError:
                    pass
                if self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not answer on port {self.port}")
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        _stop(self.proc)
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def conditions() -> str:
    """What the figures were measured on: the code (commit, and whether ``actors/`` or
    ``runtime/`` had uncommitted changes) and the machine's load average as the run began
    (the machine is shared: other work competes for the same cores)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "actors", "runtime"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        code = f"code at {head}" + (" with uncommitted changes in actors/ or runtime/" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        code = "code: not a git checkout"
    one, five, _ = os.getloadavg()
    return f"{code}; load average {one:.2f} (1 min) / {five:.2f} (5 min) as the run began"
