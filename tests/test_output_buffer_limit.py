"""``--client-output-buffer-limit`` against a real node (issue 11: "a client that pipelines
and never reads makes the node grow without bound").

The attacker pipelines ``get``s of a 512 KiB value over each protocol and never reads.
The node must cut it off (counted in ``client_output_buffer_kills``) with its peak RSS
under the limit plus a fixed margin, while a client on another connection keeps its
p99 under 10 ms. A small limit (8M) keeps the test light; on the code before the limit,
one read of 256 gets made the node encode and buffer 128 MiB at once (peak RSS +370 MiB).
"""

from __future__ import annotations

import socket
import threading
import time

import msgpack
import pytest

from runtime.resp import encode_command
from tests.limits_support import memory_mib, node_stats, wait_closed
from runtime.local_cluster import NodeProcess
from tests.wire import Conn, MsgpackConn, dumps

pytestmark = pytest.mark.integration

LIMIT_MIB = 8
#: Peak RSS may pass the RSS before the attack by the limit plus this much: one reply
#: being encoded (and its JSON text), the kernel-side socket buffers, allocator slack.
MARGIN_MIB = 40
BIG = "x" * (512 << 10)
GETS_PER_ROUND = 256
ROUNDS = 20  # the attacker gives up after this many rounds if the node never cuts it off
PROBES = 400


def attack_bytes(protocol: str) -> bytes:
    if protocol == "json":
        return dumps({"type": "get", "key": "big"}) * GETS_PER_ROUND
    if protocol == "msgpack":
        return msgpack.packb({"type": "get", "key": "big"}) * GETS_PER_ROUND
    return encode_command([b"GET", b"big"]) * GETS_PER_ROUND


def probe(port: int, latencies: list[float]) -> None:
    """PROBES sequential small requests on a connection of its own (about a second, while
    the attack runs), timed one by one."""
    with Conn(port) as conn:
        for i in range(PROBES):
            start = time.perf_counter()
            conn.send(b'{"type":"get","key":"small","id":%d}\n' % i)
            conn.read_line()
            latencies.append((time.perf_counter() - start) * 1000)
            time.sleep(0.002)


@pytest.mark.parametrize("protocol", ["json", "msgpack", "resp"])
def test_a_client_that_never_reads_is_cut_off_and_the_node_stays_small(protocol: str) -> None:
    node = NodeProcess("node1", "--client-output-buffer-limit", f"{LIMIT_MIB}M", "--resp-port", "0")
    try:
        port = node.resp_port if protocol == "resp" else node.port
        assert port is not None
        with Conn(node.port) as conn:
            assert conn.request({"type": "set", "key": "big", "value": BIG})["success"] is True
            assert conn.request({"type": "set", "key": "small", "value": "s"})["success"] is True
            for _ in range(3):  # warm up: the reply path has encoded the big value before
                assert conn.request({"type": "get", "key": "big"})["value"] == BIG
        before = memory_mib(node.pid)

        latencies: list[float] = []
        prober = threading.Thread(target=probe, args=(node.port, latencies), daemon=True)
        prober.start()
        time.sleep(0.1)
        attacker = socket.create_connection(("127.0.0.1", port), timeout=10)
        attacker.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        payload = attack_bytes(protocol)
        sent_rounds = 0
        try:
            for _ in range(ROUNDS):
                attacker.sendall(payload)
                sent_rounds += 1
                time.sleep(0.05)
        except OSError:
            pass  # reset: the node cut us off
        after = memory_mib(node.pid)
        prober.join(timeout=30)
        closed, got = wait_closed(attacker, timeout=10)
        attacker.close()

        grown = after["peak"] - before["rss"]
        assert grown < LIMIT_MIB + MARGIN_MIB, f"peak RSS {grown:.0f} MiB over the RSS before ({before}, {after})"
        assert closed, f"the node never closed the non-reading client ({got} bytes read)"
        assert sent_rounds < ROUNDS
        stats = node_stats(node.port)
        assert stats["client_output_buffer_kills"] == 1
        latencies.sort()
        p99 = latencies[int(len(latencies) * 0.99) - 1]
        # Without the limit the probe waited 3.6-4.6 s behind the attacker's replies; a quiet
        # machine gives a p99 under 10 ms. The bound sits far from both so that a loaded CI
        # machine (p99 16-31 ms seen with other work running) cannot fail it by noise alone.
        assert len(latencies) == PROBES and p99 < 250.0, f"p99 {p99:.2f} ms over {len(latencies)} requests; slowest {latencies[-8:]}"
        with Conn(node.port) as conn:  # alive, and serving the value the attacker asked for
            assert conn.request({"type": "get", "key": "big"})["value"] == BIG
    finally:
        node.kill()


def test_a_client_that_reads_gets_a_batch_larger_than_the_limit() -> None:
    """The limit is on replies not yet sent: a client reading as fast as it can receives
    40 x 512 KiB (20 MiB, over an 8 MiB limit) pipelined in one write."""
    node = NodeProcess("node1", "--client-output-buffer-limit", f"{LIMIT_MIB}M")
    try:
        with MsgpackConn(node.port, timeout=30) as conn:
            conn.send_msgs({"type": "set", "key": "big", "value": BIG})
            assert conn.read_msgs(1)[0]["success"] is True
            conn.send_msgs(*({"type": "get", "key": "big", "id": i} for i in range(40)))
            replies = conn.read_msgs(40)
        assert [r["id"] for r in replies] == list(range(40))
        assert all(r["value"] == BIG for r in replies)
        assert node_stats(node.port)["client_output_buffer_kills"] == 0
    finally:
        node.kill()


def test_the_soft_limit_cuts_off_a_client_over_it_for_its_seconds() -> None:
    """'HARD SOFT SECONDS': 64M hard, 2M soft for 0.5 s; the attacker stays under the hard
    limit (6 gets of 512 KiB, ~3 MiB) but over the soft one, and is closed."""
    node = NodeProcess("node1", "--client-output-buffer-limit", "64M 2M 0.5")
    try:
        with Conn(node.port) as conn:
            assert conn.request({"type": "set", "key": "big", "value": BIG})["success"] is True
        attacker = socket.create_connection(("127.0.0.1", node.port), timeout=10)
        attacker.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        # Loopback socket buffers absorb a few MiB: send enough to stay over 2 MiB past them.
        attacker.sendall(dumps({"type": "get", "key": "big"}) * 24)
        start = time.monotonic()
        with Conn(node.port) as conn:  # (reading the attacker's socket would drain it)
            deadline = start + 10
            while conn.request({"type": "stats"})["stats"]["client_output_buffer_kills"] == 0:
                assert time.monotonic() < deadline, "the client over the soft limit was never cut off"
                time.sleep(0.05)
        assert time.monotonic() - start >= 0.5
        closed, _ = wait_closed(attacker, timeout=10)
        attacker.close()
        assert closed
    finally:
        node.kill()
