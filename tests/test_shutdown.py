"""Graceful shutdown of a real node process: SIGTERM/SIGINT stop it within 2 s, with exit
code 0, answering the requests it has already read, and releasing its port.

About "the port is free": when the node closes client connections itself (as it must on
shutdown), the kernel keeps the server side of each in TIME_WAIT for a minute, and a plain
``bind`` without SO_REUSEADDR (``tests.wire.port_is_free``) fails during that time
although nothing listens. So the strict ``port_is_free`` check is used where the clients
closed first; where the node closed them, we check that nothing listens any more, that the
port can be bound the way the node binds it, and that a new node really starts on it.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from runtime.local_cluster import NodeProcess
from tests.wire import Conn, ConnectionClosed, dumps, port_is_free, port_rebindable, port_refuses

pytestmark = pytest.mark.integration

REPLY_TYPES = {"ack", "response", "pong", "stats", "error"}
EXIT_WITHIN = 2.5  # seconds after the signal (the node promises 2 s)


def wait_exit(node: NodeProcess, sent_at: float) -> tuple[int, float]:
    """Wait (bounded) for the node to exit; returns (exit code, seconds since the signal)."""
    try:
        rc = node.proc.wait(timeout=EXIT_WITHIN + 2.0)
    except subprocess.TimeoutExpired:
        pytest.fail(f"node still running {EXIT_WITHIN + 2.0}s after the signal")
    return rc, time.monotonic() - sent_at


_stderr: dict[int, str] = {}


def node_stderr(node: NodeProcess) -> str:
    """The exited node's stderr (read once, then remembered)."""
    assert node.proc.poll() is not None
    if node.proc.pid not in _stderr:
        stream = node.proc.stderr
        raw = stream.read() if stream is not None and not stream.closed else b""
        _stderr[node.proc.pid] = raw.decode("utf-8", errors="replace")  # the launcher's pipes are binary
    return _stderr[node.proc.pid]


def assert_well_formed(line: bytes) -> dict:
    assert line.endswith(b"\n"), line
    reply = json.loads(line)
    assert isinstance(reply, dict), reply
    assert reply.get("type") in REPLY_TYPES, reply
    assert isinstance(reply.get("success"), bool), reply
    return reply


def assert_new_node_starts_on(port: int) -> None:
    """A fresh ``python -m runtime.node`` binds the same port and serves."""
    node = NodeProcess("restarted", port=port)
    try:
        assert node.port == port, node.start_line
        with Conn(port) as c:
            assert c.request({"type": "ping"}) == {"type": "pong", "success": True}
        assert node.terminate(timeout=EXIT_WITHIN + 2.0) == 0
    finally:
        node.kill()


def assert_port_released(port: int) -> None:
    assert port_refuses(port), "something still listens on the port"
    assert port_rebindable(port), "the port cannot be bound again"
    assert_new_node_starts_on(port)


# --- /proc/net/tcp: has the server read everything we sent? --------------------------------


def _queues(local_port: int, remote_port: int) -> tuple[int, int] | None:
    """(tx_queue, rx_queue) of the 127.0.0.1 TCP socket local_port -> remote_port, if any."""
    try:
        text = Path("/proc/net/tcp").read_text()
    except OSError:
        return None
    want_local = f"0100007F:{local_port:04X}"
    want_remote = f"0100007F:{remote_port:04X}"
    for row in text.splitlines()[1:]:
        fields = row.split()
        if len(fields) > 4 and fields[1] == want_local and fields[2] == want_remote:
            tx, rx = fields[4].split(":")
            return int(tx, 16), int(rx, 16)
    return None


def wait_until_server_read_everything(conn: Conn, server_port: int, timeout: float = 5.0) -> None:
    """Bounded poll until our send queue is empty and the server's receive queue is 0."""
    client_port = conn.sock.getsockname()[1]
    if _queues(server_port, client_port) is None:
        pytest.skip("/proc/net/tcp does not show the connection; cannot tell what the server read")
    deadline = time.monotonic() + timeout
    while True:
        server = _queues(server_port, client_port)
        client = _queues(client_port, server_port)
        if server is not None and client is not None and server[1] == 0 and client[0] == 0:
            return
        assert time.monotonic() < deadline, f"server never read everything: server={server} client={client}"
        time.sleep(0.002)


# --- tests ---------------------------------------------------------------------------------


def test_sigterm_under_load(node: NodeProcess) -> None:
    port = node.port
    stop = threading.Event()
    lock = threading.Lock()
    received: list[bytes] = []
    problems: list[str] = []
    pipelines_done = [0]

    def record(lines: list[bytes]) -> None:
        with lock:
            received.extend(lines)

    def pipeliner(name: str) -> None:
        """Pipelines of 50 requests on one connection until the node goes away (<= 3 s)."""
        end = time.monotonic() + 3.0
        try:
            with Conn(port, timeout=5) as c:
                for rnd in range(100_000):
                    if stop.is_set() or time.monotonic() > end:
                        return
                    batch = []
                    for j in range(50):
                        rid = f"{name}-{rnd}-{j}"
                        if j % 3 == 0:
                            batch.append({"type": "set", "key": f"{name}{j}", "value": rid, "ttl": 60, "id": rid})
                        elif j % 3 == 1:
                            batch.append({"type": "get", "key": f"{name}{j - 1}", "id": rid})
                        else:
                            batch.append({"type": "mget", "keys": [f"{name}{j - 2}", "nope"], "id": rid})
                    try:
                        c.send(b"".join(dumps(r) for r in batch))
                    except (BrokenPipeError, ConnectionResetError):
                        return
                    got: list[bytes] = []
                    try:
                        for _ in range(len(batch)):
                            got.append(c.read_line(timeout=5))
                    except ConnectionClosed:
                        pass  # the node closed us: a prefix of the pipeline was answered
                    finally:
                        record(got)
                        for j, line in enumerate(got):
                            try:
                                reply = assert_well_formed(line)
                            except Exception as exc:
                                problems.append(f"{name}: malformed reply {line!r}: {exc!r}")
                                return
                            if reply.get("id") != f"{name}-{rnd}-{j}":
                                problems.append(f"{name}: reply {j} out of order: {reply}")
                                return
                    if len(got) < len(batch):
                        return
                    with lock:
                        pipelines_done[0] += 1
        except (ConnectionRefusedError, ConnectionClosed):
            return
        except Exception as exc:  # reported below
            problems.append(f"{name}: {exc!r}")

    def connector() -> None:
        """New connections, one ping each, until the listener is gone (<= 3 s)."""
        end = time.monotonic() + 3.0
        for _ in range(100_000):
            if stop.is_set() or time.monotonic() > end:
                return
            try:
                with Conn(port, timeout=5) as c:
                    c.send(b'{"type":"ping"}\n')
                    line = c.read_line(timeout=5)
                    record([line])
                    assert_well_formed(line)
            except (ConnectionRefusedError, ConnectionClosed, ConnectionResetError, BrokenPipeError):
                return
            except Exception as exc:
                problems.append(f"connector: {exc!r}")
                return

    threads = [threading.Thread(target=pipeliner, args=(f"c{i}",), daemon=True) for i in range(4)]
    threads.append(threading.Thread(target=connector, daemon=True))
    for t in threads:
        t.start()
    try:
        # Let the load build up, then signal while it is running.
        deadline = time.monotonic() + 5.0
        while pipelines_done[0] < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        assert node.proc.poll() is None
        sent_at = time.monotonic()
        node.proc.send_signal(signal.SIGTERM)
        rc, took = wait_exit(node, sent_at)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=10)
    assert not any(t.is_alive() for t in threads), "client threads hung"
    assert rc == 0, node_stderr(node)
    assert took <= EXIT_WITHIN, f"exited {took:.2f}s after SIGTERM"
    assert problems == []
    assert pipelines_done[0] >= 20
    for line in received:
        assert_well_formed(line)
    assert "Traceback" not in node_stderr(node)
    assert_port_released(port)


def test_sigterm_answers_every_request_already_read(node: NodeProcess) -> None:
    """A pipeline whose last bytes the node has read (its receive queue is empty) but whose
    heavy requests it is still working on when SIGTERM arrives: every request is answered,
    in order, and only then is the connection closed."""
    chunks = []
    for b in range(40):
        heavy = {"type": "mset", "entries": {f"k{b}-{i}": i for i in range(4000)}, "id": f"m{b}"}
        chunks.append(dumps(heavy) + b"".join(dumps({"type": "get", "key": f"k{b}-{j}", "id": f"g{b}-{j}"})
                                              for j in range(10)))
    expected_ids = []
    for b in range(40):
        expected_ids.append(f"m{b}")
        expected_ids.extend(f"g{b}-{j}" for j in range(10))
    with Conn(node.port, timeout=10) as c:
        c.send(b"".join(chunks))  # every request is sent before the signal
        first = c.read_line(timeout=10)  # the node is answering
        wait_until_server_read_everything(c, node.port)
        sent_at = time.monotonic()
        node.proc.send_signal(signal.SIGTERM)
        rest = c.read_until_closed(timeout=EXIT_WITHIN + 2.0)
        rc, took = wait_exit(node, sent_at)
    lines = [first] + [line + b"\n" for line in rest.split(b"\n")[:-1]]
    assert rest.endswith(b"\n") or rest == b"", rest[-200:]
    replies = [assert_well_formed(line) for line in lines]
    assert [r.get("id") for r in replies] == expected_ids
    for r in replies:
        if r["id"].startswith("m"):
            assert r == {"type": "ack", "success": True, "id": r["id"]}
        else:
            b, j = r["id"][1:].split("-")
            assert r == {"type": "response", "value": int(j), "success": True, "id": r["id"]}
    assert rc == 0, node_stderr(node)
    assert took <= EXIT_WITHIN, f"exited {took:.2f}s after SIGTERM"
    assert_port_released(node.port)


def test_sigterm_with_idle_and_half_written_clients(node: NodeProcess) -> None:
    with Conn(node.port) as idle, Conn(node.port) as partial, Conn(node.port) as used:
        assert used.request({"type": "set", "key": "k", "value": 1}) == {"type": "ack", "success": True}
        partial.send(b'{"type":"get","ke')
        idle.sock.settimeout(5)
        assert used.request({"type": "ping"})["type"] == "pong"
        sent_at = time.monotonic()
        node.proc.send_signal(signal.SIGTERM)
        rc, took = wait_exit(node, sent_at)
        # Each client sees an orderly close with nothing more (the partial line is dropped).
        for c in (idle, partial, used):
            assert c.read_until_closed(timeout=5) == b""
    assert rc == 0, node_stderr(node)
    assert took <= EXIT_WITHIN
    assert_port_released(node.port)


def test_sigterm_idle_node_frees_port(node: NodeProcess) -> None:
    with Conn(node.port) as c:
        assert c.request({"type": "ping"})["type"] == "pong"
    # The client closed first, so no TIME_WAIT on the node's side: the port is plainly free.
    wait_for_connections(node, 0)
    sent_at = time.monotonic()
    node.proc.send_signal(signal.SIGTERM)
    rc, took = wait_exit(node, sent_at)
    assert rc == 0, node_stderr(node)
    assert took <= EXIT_WITHIN
    assert port_is_free(node.port)
    assert "Traceback" not in node_stderr(node)


def wait_for_connections(node: NodeProcess, others: int, timeout: float = 5.0) -> None:
    """Bounded poll until the node counts ``others`` connections besides the asking one."""
    deadline = time.monotonic() + timeout
    with Conn(node.port) as probe:
        while True:
            s = probe.request({"type": "stats"})["stats"]
            if s["connections"] == others + 1:
                break
            assert time.monotonic() < deadline, s
            time.sleep(0.02)
    # Let the node process the probe's own disconnect too.
    time.sleep(0.05)


def test_sigint_exits_cleanly_and_frees_port(node: NodeProcess) -> None:
    with Conn(node.port) as c:
        c.send(b"".join(dumps({"type": "set", "key": f"k{i}", "value": i}) for i in range(500)))
        assert len(c.read_lines(500)) == 500
    wait_for_connections(node, 0)
    sent_at = time.monotonic()
    node.proc.send_signal(signal.SIGINT)
    rc, took = wait_exit(node, sent_at)
    assert rc == 0, node_stderr(node)
    assert took <= EXIT_WITHIN
    assert port_is_free(node.port)
    err = node_stderr(node)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err


def test_sigint_with_a_pipeline_in_flight(node: NodeProcess) -> None:
    with Conn(node.port, timeout=10) as c:
        c.send(b"".join(dumps({"type": "set", "key": f"k{i}", "value": "v" * 100, "id": i}) for i in range(300)))
        first = c.read_line()
        wait_until_server_read_everything(c, node.port)
        sent_at = time.monotonic()
        node.proc.send_signal(signal.SIGINT)
        rest = c.read_until_closed(timeout=EXIT_WITHIN + 2.0)
        rc, took = wait_exit(node, sent_at)
    lines = [first] + [line + b"\n" for line in rest.split(b"\n")[:-1]]
    assert [assert_well_formed(line)["id"] for line in lines] == list(range(300))
    assert rc == 0, node_stderr(node)
    assert took <= EXIT_WITHIN
    err = node_stderr(node)
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert_port_released(node.port)


def test_second_signal_during_shutdown_still_exits_zero(node: NodeProcess) -> None:
    with Conn(node.port) as c:
        assert c.request({"type": "ping"})["type"] == "pong"
        sent_at = time.monotonic()
        node.proc.send_signal(signal.SIGTERM)
        node.proc.send_signal(signal.SIGINT)
        node.proc.send_signal(signal.SIGTERM)
        rc, took = wait_exit(node, sent_at)
        assert c.read_until_closed(timeout=5) == b""
    assert rc == 0, node_stderr(node)
    assert took <= EXIT_WITHIN
    assert_port_released(node.port)


def test_no_new_connections_after_shutdown(node: NodeProcess) -> None:
    port = node.port
    node.proc.send_signal(signal.SIGTERM)
    rc, _ = wait_exit(node, time.monotonic())
    assert rc == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
