"""The CLI as a real subprocess (``python -m runtime.cli``) against a real node."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from runtime import cli as cli_module
from runtime.client import Client
from tests.cluster import Cluster
from runtime.local_cluster import ROOT, NodeProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

Run = Callable[..., subprocess.CompletedProcess[str]]


def _cli(*args: str, node: str | None = None, timeout_s: float = 5.0) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "runtime.cli", "--timeout", str(timeout_s)]
    if node is not None:
        argv += ["--node", node]
    return subprocess.run(argv + list(args), cwd=ROOT, capture_output=True, text=True, timeout=30)


def _main(*args: str, node: str | None = None, timeout_s: float = 5.0) -> subprocess.CompletedProcess[str]:
    """``runtime.cli.main`` in this process (what ``python -m runtime.cli`` exits with),
    for tests that run many commands: no interpreter start-up per command."""
    argv = ["--timeout", str(timeout_s)] + (["--node", node] if node is not None else []) + list(args)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli_module.main(argv)
    return subprocess.CompletedProcess(argv, rc, out.getvalue(), err.getvalue())


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
        ("--consistency", "bogus", "get", "k"),
        ("--consistency", "ALL", "set", "k", "v"),
        ("--consistency", "get", "k"),
        ("get", "k", "--consistency", "two"),
        ("mset", "a", "1", "--consistency", ""),
        ("locate",),
        ("locate", "a", "b"),
        ("inspect",),
        ("remove-node",),
        ("members", "extra"),
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
    for text in ("--consistency {one,quorum,all}", "locate", "inspect", "remove-node", "members"):
        assert text in r.stdout
    for code in range(5):
        assert f"\n  {code}  " in r.stdout  # every exit code is explained


def test_consistency_on_a_single_node(node: NodeProcess, cli: Run) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return _main(*args, node=node.addr)

    for level in ("one", "quorum", "all"):
        assert run("--consistency", level, "set", "k", level).returncode == 0
        assert run("get", "k", "--consistency", level).stdout == f"{level}\n"
        assert run("--consistency", level, "mset", "a", "1").returncode == 0
        assert run("mget", "a", "--consistency", level).stdout == '{"a": 1}\n'
        assert run("delete", "a", "--consistency", level).returncode == 0
    # The option after the command wins over the global one.
    assert run("--consistency", "one", "get", "k", "--consistency", "all").stdout == "all\n"
    # Non-data commands accept (and ignore) the global option.
    assert run("--consistency", "all", "ping").returncode == 0
    # And as a real process.
    r = cli("--consistency", "quorum", "get", "k")
    assert (r.returncode, r.stdout, r.stderr) == (0, "all\n", "")


def test_locate_inspect_members_on_a_single_node(cli: Run, client: Client) -> None:
    r = cli("locate", "k")
    assert r.returncode == 0, r
    partition = client.locate("k").partition
    assert r.stdout == f"partition: {partition}\nowners: node1\n"
    assert json.loads(cli("locate", "k", "--json").stdout) == {"key": "k", "partition": partition, "owners": ["node1"]}

    r = cli("inspect", "k")
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "(miss)\n")
    client.set("k", {"a": 1}, ttl=30)
    r = cli("inspect", "k")
    assert (r.returncode, r.stderr) == (0, "")
    copy = json.loads(r.stdout)
    assert copy["key"] == "k" and copy["value"] == {"a": 1}
    assert (copy["found"], copy["tombstone"], copy["purge_at"]) == (True, False, None)
    assert copy["version"][2] == "node1" and 20 < copy["deadline"] - time.time() <= 30

    r = cli("members")
    assert r.returncode == 0, r
    header, row, *rest = r.stdout.splitlines()
    assert header.split() == ["NODE", "ADDRESS", "STATUS", "STATE", "INCARNATION"] and rest == []
    node_id, addr, status, state, incarnation = row.split()
    assert (node_id, status, state) == ("node1", "ready", "self")
    assert addr.endswith(f":{client.port}") and int(incarnation) > 0
    members = json.loads(cli("members", "--json").stdout)
    assert list(members) == ["node1"] and members["node1"]["incarnation"] == int(incarnation)

    for node_id, why in (("node1", "cannot remove itself"), ("node7", "no member")):
        r = cli("remove-node", node_id)
        assert (r.returncode, r.stdout) == (3, ""), r
        assert r.stderr.startswith("error: bad_request: ") and why in r.stderr


def test_cluster_commands(tmp_path: object) -> None:
    """Against three nodes: locate agrees everywhere; after a node is killed, --consistency
    all is refused (exit 3), one succeeds; remove-node refuses a live node, takes the down one."""
    with Cluster(log_dir=tmp_path) as cluster:  # type: ignore[arg-type]
        cluster.start(3)
        n1, n2, n3 = (cluster.addr(i) for i in (1, 2, 3))

        located = {_main("locate", "k", node=n).stdout for n in (n1, n2, n3)}
        assert len(located) == 1, located
        (text,) = located
        assert text.startswith("partition: ") and sorted(text.split("owners: ")[1].split()) == ["node1", "node2", "node3"]

        assert _main("--consistency", "all", "set", "k", "v", node=n1).returncode == 0
        assert _main("--consistency", "all", "delete", "k", node=n2).returncode == 0
        r = _cli("inspect", "k", node=n3)  # every owner got the delete: a tombstone
        assert (r.returncode, r.stderr) == (1, "(tombstone)\n"), r
        copy = json.loads(r.stdout)
        assert (copy["found"], copy["tombstone"], copy["value"]) == (False, True, None)
        assert copy["version"][2] == "node2" and copy["purge_at"] > time.time()

        cluster.kill(3)
        cluster.wait_member_state(3, {"down"})
        r = _cli("--consistency", "all", "set", "k", "v2", node=n1)
        assert (r.returncode, r.stdout) == (3, ""), r
        assert r.stderr.startswith("error: unavailable: ") and "nothing was applied" in r.stderr
        r = _main("set", "k", "v2", "--consistency", "one", node=n1)
        assert (r.returncode, r.stdout) == (0, "OK\n"), r
        assert _main("get", "k", "--consistency", "all", node=n2).returncode == 3
        assert _main("get", "k", "--consistency", "quorum", node=n2).stdout == "v2\n"

        rows = {line.split()[0]: line.split() for line in _cli("members", node=n1).stdout.splitlines()[1:]}
        assert sorted(rows) == ["node1", "node2", "node3"]
        assert rows["node3"][1:4] == [n3, "ready", "down"] and rows["node1"][3] == "self"

        r = _cli("remove-node", "node2", node=n1)
        assert (r.returncode, r.stdout) == (3, ""), r
        assert "not down" in r.stderr
        r = _cli("remove-node", "node3", node=n1)
        assert (r.returncode, r.stdout, r.stderr) == (0, "removed node3\n", ""), r
        assert json.loads(_main("members", "--json", node=n1).stdout)["node3"]["status"] == "left"


def test_connection_refused_exits_4() -> None:
    port = _free_port()
    for args in (("get", "k"), ("set", "k", "v"), ("ping",), ("stats",), ("members",), ("locate", "k"), ("inspect", "k"), ("remove-node", "n")):
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
