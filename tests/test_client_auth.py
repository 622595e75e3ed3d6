"""Client authentication over JSON lines and msgpack, the Python client and the CLI
(issue 13, item 1), against real node processes: --requirepass, --requirepass-file,
--aclfile users and their permissions, the start-up errors, and no secret in the logs.
RESP (redis-py, redis-cli) is tests/test_client_auth_resp.py."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from actors.protocol.errors import NoAuthError, NoPermError, WrongPassError
from runtime.client import Client
from runtime.local_cluster import NodeProcess, ROOT
from tests.wire import Conn, MsgpackConn

PASSWORD = "correct horse battery"
ACL = """\
user default off
user admin on >adminpw ~* +@all
user reader on >readpw allkeys +@read
user app on >apppw ~app:* +@read +@write
"""


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    log = tmp_path_factory.mktemp("auth") / "node.log"
    with NodeProcess("node1", "--requirepass", PASSWORD, "--log-level", "debug", log_path=log) as proc:
        yield proc


@pytest.fixture(scope="module")
def acl_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    path = tmp_path_factory.mktemp("acl") / "users.acl"
    path.write_text(ACL)
    with NodeProcess("node1", "--aclfile", str(path)) as proc:
        yield proc


def _codes(replies: list[dict]) -> list[str]:
    return [r.get("error") or r["type"] for r in replies]


def test_json_before_and_after_auth_in_pipeline_order(node: NodeProcess) -> None:
    with Conn(node.port) as conn:
        conn.send_json(
            {"type": "set", "key": "k", "value": 1, "id": 1},
            {"type": "ping", "id": 2},
            {"type": "stats", "id": 3},
            {"type": "auth", "password": "wrong", "id": 4},
            {"type": "get", "key": "k", "id": 5},
            {"type": "auth", "password": PASSWORD, "id": 6},
            {"type": "set", "key": "k", "value": 1, "id": 7},
            {"type": "get", "key": "k", "id": 8},
        )
        replies = conn.read_jsons(8)
    assert _codes(replies) == ["noauth", "pong", "noauth", "wrongpass", "noauth", "ack", "ack", "response"]
    assert [r.get("id") for r in replies] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert replies[0]["message"] == "Authentication required."
    assert replies[3]["message"] == "invalid username-password pair or user is disabled."
    assert replies[7]["value"] == 1
    with Conn(node.port) as conn:  # a new connection starts unauthenticated again
        assert conn.request({"type": "get", "key": "k"})["error"] == "noauth"
        # The default user named explicitly is the same user.
        assert conn.request({"type": "auth", "user": "default", "password": PASSWORD})["type"] == "ack"
        assert conn.request({"type": "get", "key": "k"})["value"] == 1
        assert conn.request({"type": "stats"})["stats"]["auth_failures"] >= 1


def test_msgpack(node: NodeProcess) -> None:
    with MsgpackConn(node.port) as conn:
        conn.send_msgs(
            {"type": "get", "key": "m"}, {"type": "auth", "password": "x"}, {"type": "auth", "password": PASSWORD}
        )
        first = conn.read_msgs(3)
        assert [m.get("error") or m["type"] for m in first] == ["noauth", "wrongpass", "ack"]
        assert conn.msg_request({"type": "set", "key": "m", "value": b"\x00\x01"})["type"] == "ack"
        assert conn.msg_request({"type": "get", "key": "m"})["value"] == b"\x00\x01"
    with MsgpackConn(node.port) as binary:  # a binary password is its bytes
        assert binary.msg_request({"type": "auth", "password": PASSWORD.encode()})["type"] == "ack"
        assert binary.msg_request({"type": "get", "key": "m"})["value"] == b"\x00\x01"


def test_bad_auth_requests_are_bad_requests(node: NodeProcess) -> None:
    with Conn(node.port) as conn:
        assert conn.request({"type": "auth"})["error"] == "bad_request"
        assert conn.request({"type": "auth", "password": 1})["error"] == "bad_request"
        assert conn.request({"type": "get", "key": "k"})["error"] == "noauth"


def test_python_client(node: NodeProcess) -> None:
    with Client(("127.0.0.1", node.port)) as anonymous:
        with pytest.raises(NoAuthError):
            anonymous.get("k")
        assert anonymous.ping() > 0  # ping needs no auth
    with Client(("127.0.0.1", node.port), password="wrong") as wrong:
        with pytest.raises(WrongPassError):
            wrong.get("k")
    client = Client(("127.0.0.1", node.port), password=PASSWORD)
    try:
        assert PASSWORD not in repr(client)
        client.set("c", "v")
        assert client.get("c") == "v"
        client._sock.close()  # type: ignore[union-attr]  # the connection drops: the next call reconnects
        client._sock = None
        assert client.get("c") == "v"  # ... and authenticates again
        with client.pipeline() as p:
            p.set("p", 1).get("p")
        assert p.results == [None, 1]
    finally:
        client.close()


def test_acl_users_and_permissions(acl_node: NodeProcess) -> None:
    addr = ("127.0.0.1", acl_node.port)
    reader = Client(addr, user="reader", password="readpw")
    admin = Client(addr, user="admin", password="adminpw")
    with reader, admin:
        admin.set("x", 1)
        assert reader.get("x") == 1
        with pytest.raises(NoPermError, match="no permissions to run the 'set' command"):
            reader.set("x", 2)
        with pytest.raises(NoPermError, match="'remove_node'"):
            reader.remove_node("node9")
        with pytest.raises(NoPermError, match="'stats'"):
            reader.stats()
        with pytest.raises(NoPermError, match="'inspect'"):
            reader.inspect("x")
        assert admin.stats()["keys"] >= 1  # admin may
        assert admin.inspect("x") is not None
    with Client(addr, user="app", password="apppw") as app:
        app.set("app:1", "ok")
        assert app.get("app:1") == "ok"
        with pytest.raises(NoPermError, match="one of the keys used as arguments"):
            app.get("x")
        with pytest.raises(NoPermError, match="'remove_node'"):
            app.remove_node("node9")
    with Client(addr, password="anything") as default:  # the file leaves default off
        with pytest.raises(WrongPassError):
            default.get("x")
    with Client(addr, user="admin", password="readpw") as crossed:  # another user's password
        with pytest.raises(WrongPassError):
            crossed.get("x")


def _cli(port: int, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runtime.cli", "--node", f"127.0.0.1:{port}", *args],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={**{k: v for k, v in os.environ.items() if k != "ACTORCACHE_PASSWORD"}, **(env or {})},
    )


def test_cli_password_user_and_env(node: NodeProcess, acl_node: NodeProcess) -> None:
    denied = _cli(node.port, "get", "k")
    assert denied.returncode == 3 and "noauth" in denied.stderr
    assert _cli(node.port, "--password", PASSWORD, "set", "cli", "1").returncode == 0
    env_run = _cli(node.port, "get", "cli", env={"ACTORCACHE_PASSWORD": PASSWORD})
    assert env_run.returncode == 0 and env_run.stdout.strip() == "1"
    wrong = _cli(node.port, "-a", "nope", "get", "cli")
    assert wrong.returncode == 3 and "wrongpass" in wrong.stderr
    ro = _cli(acl_node.port, "--user", "reader", "--password", "readpw", "set", "k", "v")
    assert ro.returncode == 3 and "noperm" in ro.stderr
    assert _cli(acl_node.port, "--user", "reader", "--pass", "readpw", "get", "k").returncode == 1  # a miss
    assert _cli(acl_node.port, "--user", "reader", "get", "k").returncode == 2  # --user needs a password


def test_password_file_and_start_up_errors(tmp_path: Path) -> None:
    secret = tmp_path / "pass"
    secret.write_text("from-a-file\n")
    with NodeProcess("node1", "--requirepass-file", str(secret)) as proc:
        with Client(("127.0.0.1", proc.port), password="from-a-file") as client:
            client.set("f", 1)
        with Client(("127.0.0.1", proc.port), password="from-a-file\n") as client:
            with pytest.raises(WrongPassError):
                client.get("f")
    bad_acl = tmp_path / "bad.acl"
    bad_acl.write_text("user ok on >hunter22 +@all\nuser worse on >hunter33 +get\n")
    cases = [
        (["--aclfile", str(bad_acl)], f"{bad_acl}:2: rule 5: single commands are not supported"),
        (["--aclfile", str(tmp_path / "missing")], "cannot read"),
        (["--requirepass", "x", "--aclfile", str(bad_acl)], "--requirepass and --aclfile exclude each other"),
        (["--requirepass-file", str(tmp_path / "empty")], "cannot read"),
    ]
    (tmp_path / "empty2").write_text("\n")
    cases.append((["--requirepass-file", str(tmp_path / "empty2")], "holds no password"))
    for args, message in cases:
        run = subprocess.run(
            [sys.executable, "-m", "runtime.node", "node1", "0", *args],
            capture_output=True, text=True, timeout=60, cwd=ROOT,
        )
        assert run.returncode == 2, (args, run.stderr)
        assert message in run.stderr, (args, run.stderr)
        assert "hunter" not in run.stderr


def test_no_secret_in_the_log(node: NodeProcess) -> None:
    with Conn(node.port) as conn:
        conn.send_json({"type": "auth", "password": PASSWORD + "x"}, {"type": "auth", "password": PASSWORD})
        conn.read_jsons(2)
    assert node.log_path is not None
    text = node.log_path.read_text()
    assert "--- start node1" in text  # the log is the node's (its args line is the test's own)
    body = text.split("\n", 1)[1]
    assert PASSWORD not in body


def test_without_passwords_auth_is_answered_as_redis(tmp_path: Path) -> None:
    with NodeProcess("node1") as proc, Conn(proc.port) as conn:
        conn.send_json(
            {"type": "auth", "user": "default", "password": "any"},
            {"type": "auth", "password": "any"},
            {"type": "auth", "user": "alice", "password": "any"},
            {"type": "get", "key": "k"},
        )
        assert _codes(conn.read_jsons(4)) == ["ack", "bad_request", "wrongpass", "response"]


def test_a_cluster_with_passwords_forms_and_replicates() -> None:
    """Client passwords are the clients' business: peers (with their own handshake) form
    the cluster and replicate as before, and every node asks its clients."""
    from runtime.local_cluster import LocalCluster

    with LocalCluster(
        3, node_args=["--requirepass", PASSWORD, "--replicas", "3"], cluster_secret=b"cluster-secret-for-tests",
        client_options={"password": PASSWORD},
    ) as cluster:
        addresses = list(cluster.addresses.values())
        with Client(addresses[0], password=PASSWORD) as first:
            first.set("replicated", "yes", consistency="all")
            assert first.incr("counter", 2) == 2  # a read-modify-write, at its coordinator
        with Client(addresses[1], password=PASSWORD) as second:
            assert second.incr("counter") == 3
        for address in addresses[1:]:
            with Client(address, password=PASSWORD) as other:
                assert other.get("replicated", consistency="all") == "yes"
                assert other.get("counter", consistency="all") == 3
            with Client(address) as anonymous:
                with pytest.raises(NoAuthError):
                    anonymous.get("replicated")
