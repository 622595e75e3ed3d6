"""Client authentication over RESP (issue 13, item 1): AUTH and HELLO ... AUTH through
redis-py and the real redis-cli (-a, --user/--pass, REDISCLI_AUTH), and the same command
bytes sent to a real redis-server 7.0 with the same users, reply for reply."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from runtime.local_cluster import NodeProcess
from tests.redis_server import needs_redis_server, redis_server as _redis_server
from tests.test_client_auth import ACL, PASSWORD


@pytest.fixture(scope="module")
def node() -> Iterator[NodeProcess]:
    with NodeProcess("node1", "--resp-port", "0", "--requirepass", PASSWORD) as proc:
        yield proc


@pytest.fixture(scope="module")
def acl_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("acl") / "users.acl"
    path.write_text(ACL)
    return path


@pytest.fixture(scope="module")
def acl_node(acl_path: Path) -> Iterator[NodeProcess]:
    with NodeProcess("node1", "--resp-port", "0", "--aclfile", str(acl_path)) as proc:
        yield proc


def _raw(port: int, payload: bytes, replies: int, timeout: float = 10.0) -> list[bytes]:
    """Send ``payload`` and read ``replies`` simple/error/integer/bulk replies (RESP2; maps
    are read as their first line only, so use HELLO 2 here)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        buf = b""
        out: list[bytes] = []
        while len(out) < replies:
            while b"\r\n" not in buf:
                chunk = sock.recv(65536)
                if not chunk:
                    return out
                buf += chunk
            line, buf = buf.split(b"\r\n", 1)
            if line[:1] == b"$" and line != b"$-1":
                size = int(line[1:])
                while len(buf) < size + 2:
                    buf += sock.recv(65536)
                line, buf = line + b" " + buf[:size], buf[size + 2 :]
            elif line[:1] in (b"*", b"%"):
                continue  # an array's or map's elements follow as replies of their own
            out.append(line)
        return out


def _cmd(*args: str) -> bytes:
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        raw = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(parts)


def test_exact_error_texts(node: NodeProcess) -> None:
    assert node.resp_port is not None
    replies = _raw(node.resp_port, _cmd("GET", "k") + _cmd("PING") + _cmd("AUTH", "nope") + _cmd("AUTH", "a", "b", "c")
                   + _cmd("HELLO", "3") + _cmd("AUTH", PASSWORD) + _cmd("SET", "k", "v") + _cmd("GET", "k"), 8)
    assert replies == [
        b"-NOAUTH Authentication required.",
        b"-NOAUTH Authentication required.",
        b"-WRONGPASS invalid username-password pair or user is disabled.",
        b"-ERR syntax error",
        b"-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH "
        b"<user> <pass> option can be used to authenticate the client and select the RESP protocol version "
        b"at the same time",
        b"+OK",
        b"+OK",
        b"$1 v",
    ]


def test_redis_py(node: NodeProcess, acl_node: NodeProcess) -> None:
    assert node.resp_port is not None and acl_node.resp_port is not None
    anonymous = redis.Redis(port=node.resp_port, socket_timeout=10)
    with pytest.raises(redis.AuthenticationError, match="authenticated|Authentication required"):
        anonymous.get("k")
    with pytest.raises(redis.AuthenticationError, match="invalid username-password pair"):
        redis.Redis(port=node.resp_port, password="wrong", socket_timeout=10).get("k")
    counted = redis.Redis(port=node.resp_port, password=PASSWORD, socket_timeout=10)
    assert counted.info("stats")["acl_access_denied_auth"] >= 1
    counted.close()
    for protocol in (2, 3):
        client = redis.Redis(port=node.resp_port, password=PASSWORD, protocol=protocol, socket_timeout=10)
        assert client.set(f"py{protocol}", "v") is True
        assert client.get(f"py{protocol}") == b"v"
        client.close()
    reader = redis.Redis(port=acl_node.resp_port, username="reader", password="readpw", protocol=3, socket_timeout=10)
    assert reader.get("x") is None
    with pytest.raises(redis.exceptions.NoPermissionError, match="no permissions to run the 'set' command"):
        reader.set("x", 1)
    with pytest.raises(redis.exceptions.NoPermissionError, match="no permissions to run the 'info' command"):
        reader.info()
    app = redis.Redis(port=acl_node.resp_port, username="app", password="apppw", socket_timeout=10)
    assert app.mset({"app:1": "a", "app:2": "b"}) is True
    with pytest.raises(redis.exceptions.NoPermissionError, match="one of the keys used as arguments"):
        app.mset({"app:3": "a", "other": "b"})
    with pytest.raises(redis.exceptions.NoPermissionError, match="one of the keys used as arguments"):
        app.delete("app:1", "other")
    assert app.get("app:1") == b"a"
    assert app.client_info()["user"] == "app"
    admin = redis.Redis(port=acl_node.resp_port, username="admin", password="adminpw", socket_timeout=10)
    assert "redis_version" in admin.info()
    assert admin.info("stats")["acl_access_denied_auth"] >= 0
    for client in (anonymous, reader, app, admin):
        client.close()


@pytest.mark.skipif(shutil.which("redis-cli") is None, reason="redis-cli is not installed")
def test_redis_cli(node: NodeProcess, acl_node: NodeProcess) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDISCLI_AUTH"}

    def cli(port: int | None, *args: str, extra_env: dict[str, str] | None = None) -> str:
        run = subprocess.run(
            ["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=30,
            env={**env, **(extra_env or {})},
        )
        return (run.stdout + run.stderr).strip()

    assert cli(node.resp_port, "get", "k") == "NOAUTH Authentication required."
    assert cli(node.resp_port, "-a", PASSWORD, "--no-auth-warning", "set", "cli", "1") == "OK"
    assert cli(node.resp_port, "get", "cli", extra_env={"REDISCLI_AUTH": PASSWORD}) == "1"
    assert "WRONGPASS invalid username-password pair or user is disabled." in cli(
        node.resp_port, "-a", "nope", "--no-auth-warning", "get", "cli"
    )
    assert cli(acl_node.resp_port, "--user", "reader", "--pass", "readpw", "--no-auth-warning", "set", "k", "v") == (
        "NOPERM this user has no permissions to run the 'set' command"
    )
    assert cli(acl_node.resp_port, "--user", "admin", "--pass", "adminpw", "--no-auth-warning", "set", "k", "v") == "OK"
    assert cli(acl_node.resp_port, "--user", "reader", "--pass", "readpw", "--no-auth-warning", "get", "k") == "v"
    assert cli(acl_node.resp_port, "-3", "--user", "reader", "--pass", "readpw", "--no-auth-warning", "get", "k") == "v"


# --- differential: the same bytes to a real redis-server 7.0 --------------------------------

#: Commands whose replies (with these users) are the same in Redis 7.0 and here.
SCRIPT = [
    ("GET", "dk"),
    ("AUTH", "nope"),
    ("AUTH", "reader", "wrong"),
    ("AUTH", "nobody", "readpw"),
    ("HELLO", "2"),
    ("HELLO", "2", "AUTH", "reader", "wrong"),
    ("AUTH", "a", "b", "c"),
    ("AUTH", "reader", "readpw"),
    ("SET", "dk", "v"),
    ("DEL", "dk"),
    ("GET", "dk"),
    ("AUTH", "app", "apppw"),
    ("SET", "app:d1", "v"),
    ("GET", "app:d1"),
    ("GET", "dother"),
    ("MSET", "app:d2", "x", "dother", "y"),
    ("MGET", "app:d1", "dother"),
    ("AUTH", "admin", "wrongpass"),
    ("GET", "dother"),
    ("AUTH", "admin", "adminpw"),
    ("SET", "dother", "1"),
    ("GET", "dother"),
]


def _same_replies(ours_port: int, theirs_port: int, script: list[tuple[str, ...]]) -> list[bytes]:
    payload = b"".join(_cmd(*command) for command in script) + _cmd("QUIT")  # (+OK, then both close)
    ours = _raw(ours_port, payload, 1 << 30)  # (until closed)
    theirs = _raw(theirs_port, payload, 1 << 30)
    assert ours == theirs and ours[-1] == b"+OK" and len(ours) >= len(script)
    return ours


@needs_redis_server
def test_same_replies_as_redis_server(acl_node: NodeProcess, acl_path: Path) -> None:
    assert acl_node.resp_port is not None
    with _redis_server("--aclfile", str(acl_path)) as port:
        ours = _same_replies(acl_node.resp_port, port, SCRIPT)
    assert b"-NOPERM this user has no permissions to run the 'set' command" in ours
    assert b"-NOPERM this user has no permissions to access one of the keys used as arguments" in ours


@needs_redis_server
def test_same_replies_as_redis_server_without_passwords() -> None:
    script = [
        ("AUTH", "default", "x"), ("AUTH", "x"), ("AUTH", "alice", "x"), ("HELLO", "2", "AUTH", "alice", "x"),
        ("AUTH", "a", "b", "c"), ("SET", "k", "v"), ("GET", "k"),
    ]
    with NodeProcess("node1", "--resp-port", "0") as node, _redis_server() as port:
        assert node.resp_port is not None
        ours = _same_replies(node.resp_port, port, script)
    assert ours[:3] == [
        b"+OK",
        b"-ERR AUTH <password> called without any password configured for the default user. "
        b"Are you sure your configuration is correct?",
        b"-WRONGPASS invalid username-password pair or user is disabled.",
    ]


#: Key patterns whose corners differ between glob dialects, and keys that probe them.
GLOBS = ["a*", "*b", "a?c", "a[bc]d", "a[^b]d", "a[b-d]e", "a[d-b]e", "a\\*b", "a[\\]]b", "*a*a*b", "[a-]x", "a[]b",
         "a[^]b", "a[", "a\\", "?", "[*]"]
GLOB_KEYS = ["a", "ab", "abc", "acd", "abd", "aed", "ace", "a*b", "axb", "a]b", "aab", "-x", "ax", "a[", "a\\", "[",
             "*", "b", "zab"]


_rng = random.Random(13)  # a fixed sample, the same every run
GLOBS += ["".join(_rng.choice("ab*?[]^-\\") for _ in range(_rng.randint(1, 7))) for _ in range(40)]
GLOB_KEYS += ["".join(_rng.choice("ab]-\\*[^") for _ in range(_rng.randint(1, 5))) for _ in range(30)]


@needs_redis_server
def test_key_patterns_match_as_redis(tmp_path: Path) -> None:
    acl = tmp_path / "globs.acl"
    acl.write_text("user default off\n" + "".join(f"user g{i} on nopass ~{p} +@read\n" for i, p in enumerate(GLOBS)))
    script: list[tuple[str, ...]] = []
    for i in range(len(GLOBS)):
        script.append(("AUTH", f"g{i}", "x"))
        script.extend(("GET", key) for key in GLOB_KEYS)
    node = NodeProcess("node1", "--resp-port", "0", "--aclfile", str(acl))
    with node, _redis_server("--aclfile", str(acl)) as port:
        assert node.resp_port is not None
        ours = _same_replies(node.resp_port, port, script)
    assert b"$-1" in ours and any(r.startswith(b"-NOPERM") for r in ours)
