"""The Python client against real ``python -m runtime.node`` subprocesses (no mocks)."""

from __future__ import annotations

import math
import select
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.protocol.errors import BadRequestError, RequestTimeoutError, TooLargeError, UnavailableError
from actors.protocol.version import Version
from runtime.addresses import parse_address
from runtime.client import Client, ClientTimeoutError, ConnectionLostError, Inspection, Location
from tests.cluster import Cluster, eventually
from runtime.local_cluster import NodeProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
def client(node: NodeProcess) -> Iterator[Client]:
    with Client(node.addr, timeout=5.0, connect_timeout=5.0) as c:
        yield c


@pytest.fixture
def silent_listener() -> Iterator[socket.socket]:
    """A socket that accepts connections (the kernel does) but never reads or answers."""
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock
    finally:
        sock.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- basics -----------------------------------------------------------------------------


def test_set_get_delete(client: Client) -> None:
    assert client.get("k") is None
    assert client.get("k", "dflt") == "dflt"
    assert client.get_entry("k") == (False, None)
    client.set("k", {"any": ["json", 1, 2.5, True, None]})
    assert client.get("k") == {"any": ["json", 1, 2.5, True, None]}
    assert client.get_entry("k") == (True, {"any": ["json", 1, 2.5, True, None]})
    assert client.delete("k") is True
    assert client.delete("k") is False
    assert client.get_entry("k") == (False, None)


def test_stored_null_is_not_a_miss(client: Client) -> None:
    client.set("n", None)
    assert client.get_entry("n") == (True, None)
    assert client.get("n", "dflt") is None


def test_mget_mset(client: Client) -> None:
    client.mset({"a": 1, "b": "two", "c": [3]})
    assert client.mget(["a", "b", "c", "missing"]) == {"a": 1, "b": "two", "c": [3]}
    assert client.mget(k for k in ("b", "nope")) == {"b": "two"}
    assert client.mget([]) == {}
    with pytest.raises(TypeError):
        client.mget("ab")  # a str is an iterable of keys only by accident


def test_ping_and_stats(client: Client) -> None:
    rtt = client.ping()
    assert 0 < rtt < 5
    client.set("x", 1)
    stats = client.stats()
    assert stats["node_id"] == "node1"
    assert stats["keys"] == 1
    assert stats["connections"] == 1


def test_connection_is_reused(client: Client) -> None:
    for i in range(200):
        client.set(f"k{i}", i)
        assert client.get(f"k{i}") == i
    client.ping()
    assert client.stats()["connections_total"] == 1


def test_ipv6_style_address_and_bad_addresses(node: NodeProcess) -> None:
    assert parse_address("[::1]:8081") == ("::1", 8081)
    assert parse_address("localhost:9") == ("localhost", 9)
    assert parse_address("localhost") == ("localhost", 8081)
    for bad in ("::1:8081", "host:0", "host:x", ":80", "[::1"):
        with pytest.raises(ValueError):
            parse_address(bad)
    with Client(f"[127.0.0.1]:{node.port}", timeout=5) as c:  # brackets are accepted for any host
        assert c.ping() > 0


# --- TTL --------------------------------------------------------------------------------


def test_ttl_expiry(client: Client) -> None:
    client.set("short", "v", ttl=0.3)
    client.set("long", "v", ttl=60)
    client.mset({"m1": 1, "m2": 2}, ttl=0.3)
    assert client.get("short") == "v"
    deadline = time.monotonic() + 3.0
    while client.get_entry("short")[0] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert client.get_entry("short") == (False, None)
    assert client.mget(["m1", "m2", "long"]) == {"long": "v"}


# --- typed errors -----------------------------------------------------------------------


def test_error_replies_raise_typed_exceptions(client: Client) -> None:
    with pytest.raises(BadRequestError, match="must not be empty"):
        client.get("")
    with pytest.raises(BadRequestError):
        client.set("k", 1, ttl=-1)
    with pytest.raises(BadRequestError):
        client.mget(["ok", ""])
    with pytest.raises(BadRequestError) as info:
        client.set(42, "v")  # type: ignore[arg-type]
    assert info.value.definite
    # The connection stays in sync after error replies.
    client.set("k", "v")
    assert client.get("k") == "v"
    assert client.stats()["connections_total"] == 1


def test_unencodable_values_fail_before_sending(client: Client) -> None:
    for value in (math.nan, math.inf, {1, 2}, object(), "lone \ud800 surrogate"):
        with pytest.raises(BadRequestError):
            client.set("k", value)
    assert client.get_entry("k") == (False, None)


def test_too_large_then_usable_again(node_factory: Any) -> None:
    small = node_factory("--max-request-bytes", "1K")
    with Client(small.addr, timeout=5) as c:
        c.set("before", 1)
        with pytest.raises(TooLargeError) as info:
            c.set("big", "x" * 4096)
        assert info.value.definite
        # The node closed that connection; the client reconnects for the next call.
        c.set("after", 2)
        assert c.mget(["before", "big", "after"]) == {"before": 1, "after": 2}
        assert c.stats()["connections_total"] == 2


def test_too_large_while_still_sending(node_factory: Any) -> None:
    """A request far over the limit: the node answers and closes while we are still
    writing; the client still surfaces the node's too_large, not a broken pipe."""
    small = node_factory("--max-request-bytes", "1K")
    with Client(small.addr, timeout=10) as c:
        with pytest.raises(TooLargeError):
            c.set("huge", "x" * (8 << 20))
        assert c.ping() > 0


# --- pipelines --------------------------------------------------------------------------


def test_pipeline_of_500_in_order(client: Client) -> None:
    with client.pipeline() as p:
        for i in range(250):
            p.set(f"k{i}", {"i": i})
        for i in range(250):
            p.get(f"k{i}")
    assert len(p.results) == 500
    assert p.results[:250] == [None] * 250
    assert p.results[250:] == [{"i": i} for i in range(250)]
    assert client.stats()["connections_total"] == 1


def test_pipeline_mixed_results_and_errors(client: Client) -> None:
    p = client.pipeline()
    p.set("a", 1).get("a").get_entry("zz").delete("a").delete("a").get("")
    p.mset({"b": 2, "c": 3}).mget(["b", "c", "d"]).ping().stats()
    results = p.execute(raise_on_error=False)
    assert results[:5] == [None, 1, (False, None), True, False]
    assert isinstance(results[5], BadRequestError)
    assert results[6:9] == [None, {"b": 2, "c": 3}, True]
    assert results[9]["keys"] == 2
    assert len(p) == 0 and p.execute() == []
    # raise_on_error: every reply is read, then the first error raised; still in sync.
    with pytest.raises(BadRequestError):
        client.pipeline().set("x", 1).get("").set("y", 2).execute()
    assert client.mget(["x", "y"]) == {"x": 1, "y": 2}


def test_pipeline_not_executed_when_block_raises(client: Client) -> None:
    with pytest.raises(RuntimeError):
        with client.pipeline() as p:
            p.set("never", 1)
            raise RuntimeError("boom")
    assert client.get_entry("never") == (False, None)


def test_large_pipeline_does_not_deadlock(client: Client) -> None:
    """More data both ways than socket buffers hold: sending and reading interleave."""
    value = "v" * 200
    count = 20_000
    p = client.pipeline()
    for i in range(count):
        p.set(f"key{i}", value)
    for i in range(count):
        p.get(f"key{i}")
    results = p.execute()
    assert results[count:] == [value] * count


def test_pipeline_after_too_large_marks_the_rest_definite(node_factory: Any) -> None:
    small = node_factory("--max-request-bytes", "1K")
    with Client(small.addr, timeout=5) as c:
        results = c.pipeline().set("a", 1).set("b", "x" * 5000).set("c", 3).execute(raise_on_error=False)
        assert results[0] is None
        assert isinstance(results[1], TooLargeError)
        assert isinstance(results[2], ConnectionLostError) and results[2].definite
        assert c.mget(["a", "b", "c"]) == {"a": 1}


# --- connection failures ----------------------------------------------------------------


def test_connection_refused() -> None:
    with Client(f"127.0.0.1:{_free_port()}", timeout=2, connect_timeout=2) as c:
        with pytest.raises(ConnectionLostError) as info:
            c.ping()
    assert info.value.definite  # nothing was sent


def test_connection_lost_when_node_killed(node: NodeProcess) -> None:
    with Client(node.addr, timeout=5, connect_timeout=2) as c:
        c.set("k", "v")
        node.kill()
        with pytest.raises(ConnectionLostError):
            c.get("k")
        with pytest.raises(ConnectionLostError):
            c.get("k")


def test_reconnects_when_peer_closed_an_idle_connection(client: Client) -> None:
    client.set("k", "v")
    sock = client._sock
    assert sock is not None
    # Half-close our side: the node answers what it has (nothing) and closes the connection.
    sock.shutdown(socket.SHUT_WR)
    readable, _, _ = select.select([sock], [], [], 5.0)
    assert readable, "the node did not close the connection"
    # Closed before anything was sent: the client reconnects transparently.
    assert client.get("k") == "v"
    assert client.stats()["connections_total"] == 2


def test_never_retries_a_request_that_may_have_been_sent() -> None:
    """A peer that reads the request and then drops the connection: the request may have
    been applied, so the client raises an indefinite error and does not resend it."""
    accepted: list[bytes] = []
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.settimeout(5.0)

        def serve() -> None:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5.0)
                data = b""
                while not data.endswith(b"\n"):
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                accepted.append(data)
            listener.settimeout(0.5)
            try:  # a silent retry would show up as a second connection
                conn2, _ = listener.accept()
            except OSError:
                return
            conn2.close()
            accepted.append(b"retry")

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        host, port = listener.getsockname()
        with Client(f"{host}:{port}", timeout=5, connect_timeout=2) as c:
            with pytest.raises(ConnectionLostError) as info:
                c.set("k", "v")
        server.join(timeout=10)
    assert not info.value.definite
    assert len(accepted) == 1 and b'"set"' in accepted[0]


def test_timeout_when_peer_never_answers(silent_listener: socket.socket) -> None:
    host, port = silent_listener.getsockname()
    with Client(f"{host}:{port}", timeout=0.3, connect_timeout=2) as c:
        started = time.monotonic()
        with pytest.raises(RequestTimeoutError) as info:
            c.get("k")
        assert 0.25 < time.monotonic() - started < 3
        assert isinstance(info.value, ClientTimeoutError)
        assert not info.value.definite  # the request was sent: it may have been applied
        assert c._sock is None  # closed: a late reply must not answer the next request
        with pytest.raises(RequestTimeoutError):
            c.pipeline().ping().ping().execute()


# --- consistency levels and cluster calls -----------------------------------------------


@pytest.fixture
def cluster(tmp_path: Any) -> Iterator[Cluster]:
    """Three nodes (``--heartbeat-interval 0.1 --down-after 1``, 3 replicas: every node
    owns every key), joined and converged; every process reaped afterwards."""
    c = Cluster(("--request-timeout", "0.5"), log_dir=tmp_path)
    try:
        c.start(3)
        yield c
    finally:
        c.close()


def test_bad_consistency_is_a_value_error_before_sending(client: Client) -> None:
    for bad in ("ALL", "two", "", 1, True):
        with pytest.raises(ValueError, match="consistency must be one of 'one', 'quorum', 'all'"):
            client.set("k", 1, consistency=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            client.get("k", consistency=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            client.pipeline().mget(["k"], consistency=bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            Client(client.address, consistency=bad)  # type: ignore[arg-type]
    assert client.get_entry("k") == (False, None)
    assert client.stats()["requests"] == 2  # only the get_entry and this stats reached the node


def test_every_level_on_a_single_node(client: Client) -> None:
    for level in ("one", "quorum", "all", None):
        client.set("k", level, consistency=level)
        assert client.get("k", consistency=level) == level
        assert client.get_entry("k", consistency=level) == (True, level)
        client.mset({"a": 1, "b": 2}, ttl=60, consistency=level)
        assert client.mget(["a", "b"], consistency=level) == {"a": 1, "b": 2}
        assert client.delete("a", consistency=level) is True
    results = (
        client.pipeline()
        .set("p", 1, consistency="all")
        .get("p", consistency="one")
        .get_entry("p", consistency="quorum")
        .delete("p", consistency="all")
        .mset({"q": 2}, consistency="one")
        .mget(["q"], consistency="all")
        .execute()
    )
    assert results == [None, 1, (True, 1), True, None, {"q": 2}]


def test_single_node_locate_inspect_remove_node(client: Client) -> None:
    where = client.locate("k")
    assert where == Location("k", where.partition, ("node1",))
    assert 0 <= where.partition < 256
    assert client.inspect("k") is None
    client.set("k", [1, 2], ttl=30)
    copy = client.inspect("k")
    assert isinstance(copy, Inspection)
    assert (copy.key, copy.value, copy.found, copy.tombstone, copy.purge_at) == ("k", [1, 2], True, False, None)
    assert isinstance(copy.version, Version) and copy.version.node_id == "node1"
    assert copy.deadline is not None and 20 < copy.deadline - time.time() <= 30
    with pytest.raises(BadRequestError, match="cannot remove itself") as info:
        client.remove_node("node1")
    assert info.value.definite
    with pytest.raises(BadRequestError, match="no member"):
        client.remove_node("node9")
    assert client.pipeline().locate("k").inspect("nope").execute() == [where, None]


def test_locate_and_inspect_across_a_cluster(cluster: Cluster) -> None:
    ids = ("node1", "node2", "node3")
    clients = [Client(cluster.addr(n), timeout=5) for n in ids]
    try:
        keys = [f"key-{i}" for i in range(20)]
        for key in keys:
            locations = {c.locate(key) for c in clients}
            assert len(locations) == 1, locations  # every node gives the same answer
            (where,) = locations
            assert where.key == key and 0 <= where.partition < 256
            assert sorted(where.owners) == list(ids)  # 3 replicas on 3 nodes
        # Pipelined locates answer in order, the same as one by one.
        assert clients[1].pipeline().locate(keys[0]).locate(keys[1]).execute() == [
            clients[2].locate(keys[0]),
            clients[2].locate(keys[1]),
        ]

        clients[0].set("k", {"v": 1}, ttl=60, consistency="all")  # every owner has applied it
        copies = [c.inspect("k") for c in clients]
        assert all(isinstance(copy, Inspection) and copy.found and not copy.tombstone for copy in copies), copies
        assert {copy.value["v"] for copy in copies} == {1}  # type: ignore[union-attr]
        assert len({copy.version for copy in copies}) == 1  # type: ignore[union-attr]
        assert copies[0].version.node_id == "node1"  # type: ignore[union-attr]  # the coordinator

        assert clients[1].delete("k", consistency="all") is True
        for c in clients:
            copy = c.inspect("k")
            assert copy is not None and copy.tombstone and not copy.found, copy
            assert copy.value is None and copy.deadline is None
            assert copy.purge_at is not None and copy.purge_at > time.time()
            assert copy.version.node_id == "node2" and copy.version > copies[0].version  # type: ignore[union-attr]
            assert c.get_entry("k", consistency="all") == (False, None)
        assert clients[2].inspect("never-written") is None
    finally:
        for c in clients:
            c.close()


def test_consistency_timeout_unavailable_and_remove_node(cluster: Cluster) -> None:
    with Client(cluster.addr(1), timeout=5) as c1, Client(cluster.addr(2), timeout=5) as c2, Client(
        cluster.addr(1), timeout=5, consistency="all"
    ) as strict:
        # A frozen node is not yet down: a write at "all" goes out and times out on the node.
        cluster.freeze(3)
        with pytest.raises(RequestTimeoutError) as timed_out:
            c1.set("t", 1, consistency="all")
        assert not isinstance(timed_out.value, ClientTimeoutError)  # the node's reply, not ours
        assert timed_out.value.definite is False  # indefinite: some owners applied it
        assert c1.get("t", consistency="quorum") == 1

        # Once it is down, "all" is refused before anything is sent: definite.
        cluster.kill(3)
        cluster.wait_member_state(3, {"down"})
        with pytest.raises(UnavailableError) as unavailable:
            c1.set("k", "all", consistency="all")
        assert unavailable.value.definite is True
        assert c1.inspect("k") is None and c2.inspect("k") is None  # nothing applied anywhere
        c1.set("k", "one", consistency="one")
        c1.set("k", "quorum", consistency="quorum")
        assert c2.get("k", consistency="quorum") == "quorum"
        for call in (
            lambda: c1.get("k", consistency="all"),
            lambda: c1.mget(["k"], consistency="all"),
            lambda: c1.mset({"k": 0}, consistency="all"),
            lambda: c1.delete("k", consistency="all"),
        ):
            with pytest.raises(UnavailableError):
                call()
        # The client default applies to every data call that does not name its own level.
        with pytest.raises(UnavailableError):
            strict.set("k", "strict")
        strict.set("k", "override", consistency="one")
        results = strict.pipeline().get("k", consistency="one").get("k").execute(raise_on_error=False)
        assert results[0] == "override" and isinstance(results[1], UnavailableError)

        # remove_node: refused for a live node, itself or a stranger; accepted for a down one.
        for node_id, why in (("node2", "not down"), ("node1", "cannot remove itself"), ("nodeX", "no member")):
            with pytest.raises(BadRequestError, match=why) as refused:
                c1.remove_node(node_id)
            assert refused.value.definite
        assert c1.remove_node("node3") is None
        assert c1.stats()["cluster"]["members"]["node3"]["status"] == "left"

        def owners_without_node3() -> None:
            for c in (c1, c2):
                assert sorted(c.locate("k").owners) == ["node1", "node2"]

        def write_all() -> None:
            try:
                c1.set("k", "all again", consistency="all")
            except (UnavailableError, RequestTimeoutError) as exc:
                raise AssertionError(f"not yet: {exc!r}") from exc

        eventually(owners_without_node3, 5, "node3's partitions to move")
        eventually(write_all, 5, "writes at 'all' to succeed again")
        assert c2.get("k", consistency="all") == "all again"


# --- property: any JSON value round-trips exactly -----------------------------------------

_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)  # the protocol's range (msgpack's)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
_json_values = st.recursive(
    _json_scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=25,
)


def _same(a: Any, b: Any) -> bool:
    """Equal, and of the same types all the way down (1 vs 1.0 vs True, -0.0 vs 0.0)."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        return repr(a) == repr(b)
    if type(a) is list:
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if type(a) is dict:
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return a == b


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.text(min_size=1, max_size=30), value=_json_values)
def test_values_round_trip_exactly(client: Client, key: str, value: Any) -> None:
    client.set(key, value)
    found, got = client.get_entry(key)
    assert found
    assert _same(got, value), (got, value)
    assert _same(client.mget([key])[key], value)


def test_read_modify_write_calls(node) -> None:  # type: ignore[no-untyped-def]
    import math

    from runtime.client import Client

    with Client(node.addr) as c:
        assert c.set("lock", "me", nx=True) is True
        assert c.set("lock", "you", nx=True) is False
        assert c.set("lock", "you", xx=True, get=True) == "me"
        assert c.set("absent", "x", xx=True) is False
        assert c.get("lock") == "you"
        assert c.incr("n") == 1 and c.incr("n", 41) == 42 and c.incr("n", -2) == 40
        assert c.ttl("n") == math.inf
        assert c.expire("n", 100) is True and 99 < c.ttl("n") <= 100
        assert c.persist("n") is True and c.ttl("n") == math.inf
        assert c.expire("nope", 5) is False and c.ttl("nope") is None
        c.set("n", 7, keepttl=True)
        assert c.get("n") == 7
        with pytest.raises(ValueError):
            c.set("k", 1, nx=True, xx=True)
        with pytest.raises(ValueError):
            c.expire("k", 0)
        with pytest.raises(BadRequestError):
            c.incr("lock")  # "you" is not an integer
        results = c.pipeline().incr("p").incr("p").set("q", 1, nx=True).ttl("q").execute()
        assert results == [1, 2, True, math.inf]
