"""The CLI as a real subprocess (``python -m runtime.cli``) against a real node."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from runtime.client import Client
from tests.nodeproc import ROOT, NodeProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

Run = Callable[..., subprocess.CompletedProcess[str]]


def _cli(*args: str, node: str | None = None, timeout_s: float = 5.0) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "runtime.cli", "--timeout", str(timeout_s)]
    if node is not None:
        argv += ["--node", node]
    return subprocess.run(argv + list(args), cwd=ROOT, capture_output=True, text=True, timeout=30)


@pytest.fixture
def cli(node: NodeProcess) -> Run:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return _cli(*args, node=node.addr)

    return run


@pytest.fixture
def client(node: NodeProcess) -> Iterator[Client]:
    with Client(node.addr, timeout=5) as c:
        yield c


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_set_then_get(cli: Run, client: Client) -> None:
    r = cli("set", "k", "hello", "--ttl", "30")
    assert (r.returncode, r.stdout, r.stderr) == (0, "OK\n", "")
    r = cli("get", "k")
    assert (r.returncode, r.stdout, r.stderr) == (0, "hello\n", "")
    assert client.get("k") == "hello"


def test_values_are_json_when_they_parse(cli: Run, client: Client) -> None:
    assert cli("set", "obj", '{"a": [1, 2.5, null]}').returncode == 0
    assert cli("set", "num", "42").returncode == 0
    assert cli("set", "quoted", '"42"').returncode == 0
    assert cli("set", "raw", "42", "--raw").returncode == 0
    assert cli("set", "word", "not json").returncode == 0
    assert cli("set", "nan", "NaN").returncode == 0  # not JSON: stored as the string
    assert client.mget(["obj", "num", "quoted", "raw", "word", "nan"]) == {
        "obj": {"a": [1, 2.5, None]},
        "num": 42,
        "quoted": "42",
        "raw": "42",
        "word": "not json",
        "nan": "NaN",
    }
    # get prints strings as they are and everything else as JSON.
    assert json.loads(cli("get", "obj").stdout) == {"a": [1, 2.5, None]}
    assert cli("get", "num").stdout == "42\n"
    assert cli("get", "quoted").stdout == "42\n"
    assert cli("get", "quoted", "--json").stdout == '"42"\n'


def test_get_miss_exits_1(cli: Run) -> None:
    r = cli("get", "missing")
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "(miss)\n")


def test_set_with_ttl_expires(cli: Run, client: Client) -> None:
    assert cli("set", "t", "v", "--ttl", "0.2").returncode == 0
    deadline = time.monotonic() + 3
    while client.get_entry("t")[0] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cli("get", "t").returncode == 1


def test_delete(cli: Run, client: Client) -> None:
    client.set("d", 1)
    r = cli("delete", "d")
    assert (r.returncode, r.stdout) == (0, "deleted\n")
    r = cli("delete", "d")
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "(miss)\n")
    assert client.get_entry("d") == (False, None)


def test_mset_and_mget(cli: Run, client: Client) -> None:
    r = cli("mset", "a", "1", "b", "two", "c", "[3]")
    assert (r.returncode, r.stdout) == (0, "OK\n")
    assert client.mget(["a", "b", "c"]) == {"a": 1, "b": "two", "c": [3]}
    r = cli("mget", "a", "b", "c")
    assert r.returncode == 0
    assert json.loads(r.stdout) == {"a": 1, "b": "two", "c": [3]}
    r = cli("mget", "a", "nope")
    assert r.returncode == 1
    assert json.loads(r.stdout) == {"a": 1}
    assert r.stderr == "(miss) nope\n"
    r = cli("mset", "x", "1", "y", "2", "--ttl", "60", "--raw")
    assert r.returncode == 0
    assert client.mget(["x", "y"]) == {"x": "1", "y": "2"}
    assert client.stats()["keys_with_ttl"] == 2


def test_stats_prints_pretty_json(cli: Run, client: Client) -> None:
    client.set("k", "v")
    r = cli("stats")
    assert r.returncode == 0
    stats = json.loads(r.stdout)
    assert stats["node_id"] == "node1" and stats["keys"] == 1
    assert r.stdout.startswith("{\n  ")


def test_ping(cli: Run) -> None:
    r = cli("ping")
    assert r.returncode == 0
    assert r.stdout.startswith("pong ") and r.stdout.endswith(" ms\n")


def test_error_reply_exits_3(cli: Run) -> None:
    r = cli("get", "")
    assert r.returncode == 3
    assert r.stdout == ""
    assert "bad_request" in r.stderr and "must not be empty" in r.stderr


def test_too_large_exits_3(node_factory: Callable[..., NodeProcess]) -> None:
    small = node_factory("--max-request-bytes", "1K")
    r = _cli("set", "big", "x" * 4000, node=small.addr)
    assert r.returncode == 3
    assert "too_large" in r.stderr


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("frob",),
        ("get",),
        ("set", "k"),
        ("mset", "a", "1", "b"),
        ("mget",),
        ("set", "k", "v", "--ttl", "-1"),
        ("set", "k", "v", "--ttl", "soon"),
        ("--node", "::1:8081", "ping"),
        ("--timeout", "0", "ping"),
    ],
)
def test_usage_errors_exit_2(args: tuple[str, ...]) -> None:
    r = _cli(*args)
    assert r.returncode == 2, r
    assert r.stdout == ""
    assert "usage:" in r.stderr


def test_help_exits_0() -> None:
    r = _cli("--help")
    assert r.returncode == 0
    assert "exit codes" in r.stdout


def test_connection_refused_exits_4() -> None:
    port = _free_port()
    for args in (("get", "k"), ("set", "k", "v"), ("ping",), ("stats",)):
        r = _cli(*args, node=f"127.0.0.1:{port}")
        assert r.returncode == 4, r
        assert r.stdout == ""
        assert "connection refused" in r.stderr


def test_timeout_exits_4() -> None:
    with socket.socket() as listener:  # accepts (in the kernel), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        r = _cli("get", "k", node=f"127.0.0.1:{listener.getsockname()[1]}", timeout_s=0.3)
    assert r.returncode == 4, r
    assert "no reply" in r.stderr
