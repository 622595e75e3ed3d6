"""Node processes on this machine: the one launcher, and ``python -m runtime.local_cluster``.

Everything that starts ``python -m runtime.node`` as a subprocess (the integration tests,
the benchmarks, the notebooks' real cluster, the command below) starts it here, so the
node's start-up lines are parsed in one place:

- :class:`NodeProcess` starts one node and waits, with a real deadline, for its start-up
  line (``actorcache node ID listening on HOST:PORT``, and with ``--resp-port`` the next
  one, ``actorcache node ID resp on HOST:PORT``). Asking for port 0 and reading the bound
  port from that line means no caller ever races another for a port.
- :class:`LocalCluster` starts ``node1..nodeN``, each joining through every node started
  before it, waits until every node sees every node ``ready``, and however it ends stops
  them all (SIGTERM: a graceful leave; SIGKILL for what is left) and reaps them.

Invariants: every process started here is reaped by its owner's ``kill``/``close``; a
node's output never goes to a pipe nobody reads once it is up (its log file, or the
caller's choice of stderr); nothing here imports the simulator.

``python -m runtime.local_cluster [--nodes 3] [--base-port 8081] [-- NODE_ARGS ...]`` runs a
cluster in the foreground: ``node1`` on the base port, each next node on the next port
(``--base-port 0`` lets every node pick a free port). Each node's start-up line is printed
as it comes up; SIGINT or SIGTERM stops them all gracefully (each leaves the cluster), and
the exit code is the worst of theirs.
"""

from __future__ import annotations

import argparse
import atexit
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from runtime.argtypes import count, port

__all__ = ["LocalCluster", "NodeProcess", "NodeStartError", "START_LINE", "main", "write_secret_file"]

ROOT = Path(__file__).resolve().parent.parent
#: What runs a node when a caller gives no command of its own.
NODE_COMMAND: tuple[str, ...] = (sys.executable, "-m", "runtime.node")
#: The node's start-up line on stdout (``runtime/node.py`` prints it once it serves).
START_LINE = re.compile(r"actorcache node (?P<node>\S+) listening on (?P<host>\S+):(?P<port>\d+)")
#: The line after it when the node serves the Redis protocol too (``--resp-port``).
RESP_LINE = re.compile(r"actorcache node (?P<node>\S+) resp on (?P<host>\S+):(?P<port>\d+)")
#: With --metrics-port, the line after those (docs/operations.md).
METRICS_LINE = re.compile(r"actorcache node (?P<node>\S+) metrics on (?P<host>\S+):(?P<port>\d+)")


class NodeStartError(RuntimeError):
    """A node exited, or printed no start-up line, before its deadline; the message says
    what it printed last."""


class NodeProcess:
    """One ``python -m runtime.node NODE_ID PORT ARGS...`` subprocess, up and listening.

    ``port`` 0 (the default) binds a free port; :attr:`port` is the one bound, read from
    the start-up line (:attr:`start_line`); :attr:`resp_port` is the Redis-protocol port
    when ``--resp-port`` is among ``args``, else None. ``command`` replaces
    ``python -m runtime.node`` (e.g. another checkout's interpreter), ``prefix`` goes in
    front of it (e.g. ``taskset -c 1``), ``cwd`` is where it runs (this checkout).

    Output: with ``log_path`` the node's stderr, and its stdout from the start-up line on,
    go to that file (appended, so a restarted node adds to the same log); without, stderr
    goes to ``stderr`` (``subprocess.PIPE``, read into the error when the start fails;
    ``subprocess.DEVNULL``; None: this process's stderr). :meth:`kill` (SIGKILL, also for
    a SIGSTOPped node) and :meth:`terminate` (SIGTERM, then SIGKILL; also at the end of a
    ``with`` block) reap the process.
    """

    def __init__(
        self,
        node_id: str = "node1",
        *args: str,
        port: int = 0,
        command: Sequence[str] | None = None,
        prefix: Sequence[str] = (),
        cwd: str | os.PathLike[str] = ROOT,
        log_path: str | os.PathLike[str] | None = None,
        stderr: int | None = subprocess.PIPE,
        start_timeout: float = 15.0,
    ) -> None:
        self.node_id = node_id
        self.argv = [*prefix, *(command or NODE_COMMAND), node_id, str(port), *args]
        self.log_path = Path(log_path) if log_path is not None else None
        self.resp_port: int | None = None
        #: The metrics port (``--metrics-port``), else None.
        self.metrics_port: int | None = None
        self._log: IO[str] | None = None
        self._drain: threading.Thread | None = None
        self._pending = b""
        if self.log_path is not None:
            self._log = open(self.log_path, "a", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115 (closed by kill)
            self._log.write(f"--- start {node_id} port={port} args={list(args)}\n")
        self.proc = subprocess.Popen(
            self.argv,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=self._log if self._log is not None else stderr,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
        try:
            self._await_start(
                deadline=time.monotonic() + start_timeout, resp="--resp-port" in args, metrics="--metrics-port" in args
            )
        except BaseException:
            self.kill()
            raise
        if self._log is not None:
            self._drain = threading.Thread(target=self._drain_stdout, name=f"drain-{node_id}", daemon=True)
            self._drain.start()

    def _await_start(self, deadline: float, resp: bool, metrics: bool = False) -> None:
        last = ""
        while True:
            line = self._read_line(deadline)
            if line is None:
                break
            last = line
            if self._log is not None:
                self._log.write(line)
            m = START_LINE.search(line)
            if m is None:
                continue
            self.start_line = line.rstrip("\n")
            self.host = m.group("host")
            self.port = int(m.group("port"))
            if resp:
                self.resp_port = self._port_line(deadline, RESP_LINE, "resp")
            if metrics:
                self.metrics_port = self._port_line(deadline, METRICS_LINE, "metrics")
            return
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
        exited = f"exited with {self.proc.returncode}" if self.proc.poll() is not None else "printed no start-up line"
        raise NodeStartError(f"node {self.node_id} did not start ({exited}): {last!r} {self._error_output()}")

    def _port_line(self, deadline: float, pattern: re.Pattern[str], what: str) -> int:
        """The port the next start-up line (``pattern``: its ``what`` port's) names."""
        line = self._read_line(deadline) or ""
        if self._log is not None:
            self._log.write(line)
        m = pattern.search(line)
        if m is None:
            raise NodeStartError(f"node {self.node_id} printed no {what} line: {line!r}")
        return int(m.group("port"))

    def _read_line(self, deadline: float) -> str | None:
        """The next line of stdout, or None at EOF or past ``deadline`` (never blocks past it)."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._pending:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if not select.select([fd], [], [], left)[0]:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line.decode("utf-8", errors="replace") + "\n"

    def _error_output(self) -> str:
        if self.log_path is not None:
            return self.log_tail(20)
        stderr = self.proc.stderr
        if stderr is not None and self.proc.poll() is not None:
            return stderr.read().decode("utf-8", errors="replace")
        return ""

    def _drain_stdout(self) -> None:
        """Copy the rest of stdout into the log until the process exits (EOF)."""
        assert self.proc.stdout is not None and self._log is not None
        fd, log = self.proc.stdout.fileno(), self._log
        try:
            if self._pending:
                log.write(self._pending.decode("utf-8", errors="replace"))
            while chunk := os.read(fd, 65536):
                log.write(chunk.decode("utf-8", errors="replace"))
        except (ValueError, OSError):
            pass  # closed under us

    def __enter__(self) -> NodeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.terminate()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    @property
    def addr(self) -> str:
        return f"127.0.0.1:{self.port}"

    def signal(self, sig: int) -> None:
        """Send ``sig`` if the process is still running (SIGSTOP/SIGCONT freeze and thaw it)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def log_tail(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the log file ("" without ``log_path``)."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-lines:])

    def terminate(self, timeout: float = 5.0) -> int:
        """SIGTERM (a graceful leave), wait up to ``timeout``, then SIGKILL; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL (also ends a SIGSTOPped process), reap, close the pipes and the log."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self._drain is not None:
            self._drain.join(timeout=5)  # the pipe is at EOF now that the process is gone
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        if self._log is not None:
            self._log.close()


_LIVE: set[LocalCluster] = set()


def _reap_all() -> None:  # atexit: a kernel or interpreter shutting down takes its nodes along
    for cluster in list(_LIVE):
        cluster.close()


class LocalCluster:
    """``n`` node processes ``node1..nodeN`` on loopback, joined into one cluster.

    Use it as a context manager: however the block ends (an exception, a failed notebook
    cell), every node is stopped (SIGTERM in reverse start order, then SIGKILL after
    ``stop_timeout``) and reaped; nodes still running at interpreter exit are too. Node
    ``i`` asks for port ``base_port + i - 1`` (``base_port`` 0: a free port each). With
    ``trace_dir`` each node writes ``--trace trace_dir/ID.jsonl`` (:attr:`trace_files`)
    and its log to ``ID.log`` there; without, logs go to a temporary directory removed on
    close; ``logs=False`` leaves them on this process's stderr instead. ``command``
    replaces ``python -m runtime.node``, ``cwd`` is where the nodes run (another checkout,
    to compare two versions) and ``prefix`` goes in front of each node's command (e.g.
    ``taskset -c 0``); ``leave_timeout`` (seconds, None: the node's default) keeps closing
    quick. ``per_node_args(node_id)`` adds arguments of one node's own (its TLS
    certificate), and ``client_options`` are what :meth:`wait_ready`'s
    :class:`~runtime.client.Client` needs to reach the nodes (``tls``, ``cafile``, ...).
    """

    def __init__(
        self,
        n: int = 3,
        *,
        trace_dir: str | os.PathLike[str] | None = None,
        node_args: Sequence[str] = (),
        cluster_secret: bytes | None = None,
        command: Sequence[str] | None = None,
        cwd: str | os.PathLike[str] = ROOT,
        prefix: Sequence[str] = (),
        base_port: int = 0,
        logs: bool = True,
        leave_timeout: float | None = 1.0,
        start_timeout: float = 20.0,
        stop_timeout: float = 5.0,
        per_node_args: Callable[[str], Sequence[str]] | None = None,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.n = n
        self.per_node_args = per_node_args
        self.client_options = dict(client_options or {})
        self.trace_dir = Path(trace_dir) if trace_dir is not None else None
        leave = ["--leave-timeout", f"{leave_timeout:g}"] if leave_timeout is not None else []
        self.node_args = [*leave, *node_args]
        #: With ``cluster_secret`` every node starts with ``--cluster-secret-file`` naming this
        #: file, which holds it (owner-only, removed on close).
        self.secret_file: Path | None = None
        if cluster_secret is not None:
            self.secret_file = write_secret_file(cluster_secret)
            self.node_args += ["--cluster-secret-file", str(self.secret_file)]
        self.command = list(command) if command else None
        self.cwd = cwd
        self.prefix = tuple(prefix)
        self.base_port = base_port
        self.logs = logs
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.ids = [f"node{i}" for i in range(1, n + 1)]
        self.procs: dict[str, NodeProcess] = {}
        self.log_dir: Path | None = self.trace_dir
        self._tmp: str | None = None

    def __enter__(self) -> LocalCluster:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def addresses(self) -> dict[str, str]:
        """``{node id: "host:port"}`` of the nodes started so far."""
        return {node: f"{proc.host}:{proc.port}" for node, proc in self.procs.items()}

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs.values()]

    @property
    def trace_files(self) -> list[Path]:
        return [self.trace_dir / f"{node}.jsonl" for node in self.ids] if self.trace_dir else []

    def start(self) -> None:
        """Start every node not started yet, then :meth:`wait_ready`."""
        for node in self.ids[len(self.procs) :]:
            self.add(node)
        self.wait_ready()

    def add(self, node: str) -> NodeProcess:
        """Start ``node`` (one of :attr:`ids`), joining through every node started before it."""
        if not _LIVE:
            atexit.register(_reap_all)
        _LIVE.add(self)
        if self.logs and self.log_dir is None:
            self._tmp = tempfile.mkdtemp(prefix="actorcache-cluster-")
            self.log_dir = Path(self._tmp)
        if self.trace_dir is not None:
            self.trace_dir.mkdir(parents=True, exist_ok=True)
        args = [*self.addresses.values(), *self.node_args]
        if self.per_node_args is not None:
            args += self.per_node_args(node)
        if self.trace_dir is not None:
            args += ["--trace", str(self.trace_dir / f"{node}.jsonl")]
        proc = NodeProcess(
            node,
            *args,
            port=self.base_port + self.ids.index(node) if self.base_port else 0,
            command=self.command,
            cwd=self.cwd,
            prefix=self.prefix,
            log_path=self.log_dir / f"{node}.log" if self.logs and self.log_dir is not None else None,
            stderr=None,
            start_timeout=self.start_timeout,
        )
        self.procs[node] = proc
        return proc

    def wait_ready(self) -> None:
        """Until every node sees every node ``ready`` (gossip has converged)."""
        from runtime.client import Client

        deadline = time.monotonic() + self.start_timeout
        pending = dict(self.addresses)
        while pending:
            for node, address in list(pending.items()):
                try:
                    with Client(address, timeout=2.0, **self.client_options) as client:
                        members = client.stats()["cluster"]["members"]
                except Exception:  # noqa: BLE001 (refused, not joined yet, no cluster stats yet: not ready)
                    members = {}
                if len(members) == len(self.procs) and all(m.get("status") == "ready" for m in members.values()):
                    del pending[node]
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"cluster not ready within {self.start_timeout:g} s: waiting for {sorted(pending)}")
            if pending:
                time.sleep(0.1)

    def close(self) -> dict[str, int]:
        """Stop every node (SIGTERM: a graceful leave), SIGKILL what is left after
        ``stop_timeout``, reap all; each node's exit code."""
        procs = list(reversed(self.procs.values()))
        for proc in procs:
            proc.signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        codes = {}
        for proc in procs:
            try:
                proc.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            proc.kill()
            codes[proc.node_id] = proc.proc.returncode
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        if self.secret_file is not None:
            shutil.rmtree(self.secret_file.parent, ignore_errors=True)
        _LIVE.discard(self)
        return codes

    def log(self, node: str) -> str:
        """What ``node`` printed (its start-up line, then its log on stderr)."""
        path = self.log_dir / f"{node}.log" if self.log_dir is not None else None
        return path.read_text(errors="replace") if path is not None and path.exists() else ""


def write_secret_file(secret: bytes) -> Path:
    """``secret`` in a new owner-only file (in its own temporary directory), for
    ``--cluster-secret-file``; the caller removes the directory."""
    directory = Path(tempfile.mkdtemp(prefix="actorcache-secret-"))
    path = directory / "cluster-secret"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secret)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.local_cluster", description=__doc__.split("\n\n")[-1])
    parser.add_argument("--nodes", type=count, default=3, help="how many nodes (default 3)")
    parser.add_argument("--base-port", type=port, default=8081, help="node1's port; nodeN gets base+N-1 (0: free ports)")
    parser.add_argument("node_args", nargs=argparse.REMAINDER, help="after --: arguments for every node")
    args = parser.parse_args(argv)
    stop = threading.Event()

    def on_signal(_sig: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    cluster = LocalCluster(
        args.nodes, node_args=[a for a in args.node_args if a != "--"], base_port=args.base_port,
        logs=False, leave_timeout=None, stop_timeout=20.0,
    )
    try:
        for node in cluster.ids:
            try:
                proc = cluster.add(node)
            except NodeStartError as exc:
                print(exc, file=sys.stderr)
                return 1
            print(proc.start_line, flush=True)
        print(f"local cluster of {args.nodes} nodes up; Ctrl-C stops it", flush=True)
        while not stop.wait(0.5):
            dead = [p for p in cluster.procs.values() if not p.running]
            if dead:
                print(f"a node exited with {dead[0].proc.returncode}; stopping the cluster", file=sys.stderr)
                break
    finally:
        codes = cluster.close()
    return max(codes.values(), default=0)


if __name__ == "__main__":
    sys.exit(main())
