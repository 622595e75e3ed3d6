"""Debian's ``redis-cli`` and ``redis-benchmark`` (package redis-tools), unmodified,
against a real node's ``--resp-port``. ``.ci/run`` installs them; elsewhere the tests
are skipped when the tools are missing (and fail under CI, where they must be there)."""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from runtime.local_cluster import NodeProcess

pytestmark = pytest.mark.integration


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is missing: .ci/run installs redis-tools")
        pytest.skip(f"{tool} is not installed (Debian package redis-tools)")
    return path


@pytest.fixture(scope="module")
def node() -> Iterator[NodeProcess]:
    proc = NodeProcess("node1", "--resp-port", "0")
    try:
        yield proc
    finally:
        proc.kill()


def cli(node: NodeProcess, *args: str, stdin: str | None = None, rc: int = 0) -> str:
    result = subprocess.run(
        [_need("redis-cli"), "-p", str(node.resp_port), *args],
        input=stdin, capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == rc, result.stderr
    return result.stdout + result.stderr


def test_redis_cli_commands(node: NodeProcess) -> None:
    assert cli(node, "ping") == "PONG\n"
    assert cli(node, "set", "cli:k", "hello world") == "OK\n"
    assert cli(node, "get", "cli:k") == "hello world\n"
    assert cli(node, "--no-raw", "get", "cli:nope") == "(nil)\n"
    assert cli(node, "incrby", "cli:n", "5") == "5\n"
    assert cli(node, "--no-raw", "mget", "cli:k", "cli:nope", "cli:n") == '1) "hello world"\n2) (nil)\n3) "5"\n'
    assert cli(node, "set", "cli:t", "v", "EX", "100") == "OK\n"
    assert cli(node, "ttl", "cli:t") in ("100\n", "99\n")
    assert cli(node, "del", "cli:k", "cli:nope", "cli:t") == "2\n"
    assert "unknown command 'nosuch'" in cli(node, "nosuch", "a")
    assert "wrong number of arguments for 'get' command" in cli(node, "get")
    assert cli(node, "-3", "--no-raw", "get", "cli:nope") == "(nil)\n"  # RESP3 via HELLO 3


def test_redis_cli_session_on_stdin(node: NodeProcess) -> None:
    out = cli(node, stdin="set sess:a 1\nincr sess:a\nget sess:a\necho 'one two'\nexists sess:a sess:b\n")
    assert out == "OK\n2\n2\none two\n1\n"


def test_redis_cli_pipe_mode(node: NodeProcess) -> None:
    commands = "".join(f"SET pipe:{i} {i}\r\n" for i in range(500)) + "INCR pipe:7\r\n"
    out = cli(node, "--pipe", stdin=commands)
    assert "errors: 0, replies: 501" in out, out
    out = cli(node, "--pipe", stdin="SET pipe:x 1\r\nBADCMD\r\nGET pipe:x\r\n", rc=1)  # 1: some replies were errors
    assert "errors: 1, replies: 3" in out and "ERR unknown command 'BADCMD'" in out, out
    assert cli(node, "get", "pipe:7") == "8\n"


def test_redis_cli_info(node: NodeProcess) -> None:
    server = cli(node, "info", "server")
    assert "# Server" in server and "redis_version:7.0.0" in server and f"tcp_port:{node.resp_port}" in server
    everything = cli(node, "info")
    for title in ("# Server", "# Clients", "# Memory", "# Stats", "# Replication", "# Cluster", "# Keyspace"):
        assert title in everything
    assert re.search(r"^used_memory:\d+\r?$", everything, re.M)


def test_redis_cli_interactive(node: NodeProcess) -> None:
    """The prompt, with the start-up ``COMMAND DOCS`` it sends for hints, in a terminal."""
    tool = _need("redis-cli")
    pid, fd = pty.fork()
    if pid == 0:  # the child: redis-cli on the pty
        # TERM=dumb: linenoise then reads plain lines instead of asking where the cursor is.
        os.execve(tool, [tool, "-p", str(node.resp_port)], {**os.environ, "TERM": "dumb"})
    try:
        screen = b""

        def expect(text: bytes, timeout: float = 10.0) -> None:
            nonlocal screen
            deadline = time.monotonic() + timeout
            while text not in screen:
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"never saw {text!r} in {screen!r}"
                ready, _, _ = select.select([fd], [], [], remaining)
                if ready:
                    try:
                        screen += os.read(fd, 4096)
                    except OSError:
                        break

        expect(b"> ")
        os.write(fd, b"set tty:k 42\r")
        expect(b"OK")
        os.write(fd, b"get tty:k\r")
        expect(b'"42"')
        os.write(fd, b"quit\r")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            done, _status = os.waitpid(pid, os.WNOHANG)
            if done:
                pid = 0
                break
            time.sleep(0.02)
        assert pid == 0, "redis-cli did not exit after quit"
    finally:
        if pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)


def test_redis_benchmark_smoke(node: NodeProcess) -> None:
    tool = _need("redis-benchmark")
    result = subprocess.run(
        [tool, "-p", str(node.resp_port), "-c", "5", "-n", "2000", "-t", "set,get", "-q"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    assert "Could not fetch server CONFIG" not in out
    for test in ("SET", "GET"):
        m = re.search(rf"{test}: ([\d.]+) requests per second", out)
        assert m and float(m.group(1)) > 0, out


def test_redis_cli_bigkeys_and_monitor(node: NodeProcess) -> None:
    """``--bigkeys`` (SCAN, TYPE, STRLEN) and ``monitor`` (issue 16), the real tool."""
    assert cli(node, "mset", "big:a", "x", "big:bb", "x" * 5000) == "OK\n"
    out = cli(node, "--bigkeys")
    assert re.search(r"Biggest string found '\"?big:bb\"?' has 5000 bytes", out), out
    monitor = subprocess.Popen(
        [_need("redis-cli"), "-p", str(node.resp_port), "monitor"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert monitor.stdout is not None
        assert monitor.stdout.readline() == "OK\n"
        cli(node, "append", "big:a", "y z")
        line = monitor.stdout.readline()
        assert re.fullmatch(r'[0-9]+\.[0-9]{6} \[0 127\.0\.0\.1:[0-9]+\] "append" "big:a" "y z"\n', line), line
    finally:
        monitor.kill()
        monitor.wait(timeout=10)
