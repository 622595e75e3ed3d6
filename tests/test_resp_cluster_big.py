"""A value too big for one peer frame, in a cluster: refused at once, applied nowhere.

Red team (session 24) found such a write applied at its coordinator only: replicas
dropped every frame carrying it and the client waited for ``-TIMEOUT may have been
applied`` (/work/notes/requests.md, "redteam -> strings, lead, 00:24 UTC"). Now a node
with peers refuses any write sending more than ``--max-cluster-value-bytes`` of values to
a peer (actors.cluster.value_limit): ``-ERR value too large for a cluster`` over RESP,
``value_too_large`` over JSON. The limit is lowered to 1 MiB here to keep the test fast;
its default (the 64 MiB peer frame less 1 MiB) is checked in process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from actors.cluster.value_limit import request_value_bytes, written_bytes
from actors.config import NodeConfig
from actors.protocol.collection import Coll
from actors.protocol.messages import CollOp, MSet, Set
from actors.protocol.txn_messages import Multi
from actors.protocol.version import ZERO
from runtime.node import parse_args
from runtime.node_options import PEER_FRAME_VALUE_BYTES, node_config
from runtime.peer_frames import DEFAULT_PEER_FRAME_BYTES
from tests.cluster import Cluster, eventually

_LIMIT = 1 << 20


@pytest.fixture(scope="module")
def nodes() -> Iterator[dict[int, redis.Redis]]:
    flags = ("--resp-port", "0", "--request-timeout", "5", "--max-cluster-value-bytes", "1M", "--max-request-bytes", "4M")
    with Cluster(flags=flags) as cluster:
        cluster.start(3)
        clients = {i: redis.Redis(port=cluster.proc(i).resp_port, socket_timeout=30) for i in (1, 2, 3)}
        try:
            clients[0] = cluster  # type: ignore[assignment]  # the JSON door, by cluster.request
            yield clients
        finally:
            for i in (1, 2, 3):
                clients[i].close()


def _holds(client: redis.Redis, key: str, value: bytes) -> None:
    assert client.get(key) == value


def _refused(call, *args) -> str:
    with pytest.raises(redis.ResponseError) as info:
        call(*args)
    text = str(info.value)
    assert text.startswith("value too large for a cluster"), text
    assert "max-cluster-value-bytes 1048576" in text, text
    return text


def test_a_value_over_the_limit_is_refused_everywhere_and_one_under_it_replicates(nodes) -> None:
    value = os.urandom(_LIMIT + 1)  # incompressible: peer links compress frames
    _refused(nodes[1].set, "big", value)
    assert [nodes[i].exists("big") for i in (1, 2, 3)] == [0, 0, 0]
    under = os.urandom(_LIMIT - 64)
    assert nodes[2].set("under", under) is True
    for i in (1, 2, 3):
        eventually(lambda: _holds(nodes[i], "under", under), 10, f"node{i} holds the value")


def test_the_json_door_gets_the_code(nodes) -> None:
    reply = nodes[0].request(2, {"type": "set", "key": "json", "value": "v" * (_LIMIT + 1)})
    assert reply["type"] == "error" and reply["error"] == "value_too_large", reply
    assert nodes[1].exists("json") == 0


def test_growth_mset_multi_and_hash_are_refused_and_leave_things_as_they_were(nodes) -> None:
    half = b"x" * (_LIMIT // 2 + 10)
    nodes[1].set("grow", half)
    _refused(nodes[2].append, "grow", half)  # the result would be over the limit
    _refused(nodes[3].append, "grow", half)
    assert {nodes[i].strlen("grow") for i in (1, 2, 3)} == {len(half)}
    _refused(nodes[1].mset, {"m1": half, "m2": half})
    assert nodes[2].exists("m1", "m2") == 0
    pipe = nodes[2].pipeline(transaction=True)
    pipe.set("{t}a", half).set("{t}b", half)
    with pytest.raises(redis.ResponseError, match="value too large for a cluster"):
        pipe.execute()
    assert nodes[1].exists("{t}a", "{t}b") == 0
    nodes[3].hset("h", "f1", half)
    _refused(nodes[1].hset, "h", "f2", half)  # the hash's whole record would be over it
    assert nodes[2].hexists("h", "f2") is False and len(nodes[2].hget("h", "f1")) == len(half)
    assert nodes[1].hset("h", "f1", b"small") == 0  # a write that shrinks it goes


def test_the_limit_is_the_peer_frame_less_a_margin_and_the_sizes_are_lengths() -> None:
    assert NodeConfig().max_cluster_value_bytes == PEER_FRAME_VALUE_BYTES == DEFAULT_PEER_FRAME_BYTES - (1 << 20)
    capped = node_config(parse_args(["n1", "0", "--max-cluster-value-bytes", "1G"]))
    assert capped.max_cluster_value_bytes == PEER_FRAME_VALUE_BYTES
    assert node_config(parse_args(["n1", "0", "--max-cluster-value-bytes", "2K"])).max_cluster_value_bytes == 2048
    assert request_value_bytes(Set("k", b"abc")) == 3
    assert request_value_bytes(MSet((("a", "xy"), ("b", b"z")))) == 3
    assert request_value_bytes(Multi((Set("k", "abcd"), CollOp("h", "hset", ("f", "vv"))))) == 7
    old = Coll({"f": ("1234", ZERO), "g": ("56", ZERO)})
    assert written_bytes(old, Coll({"g": ("5678", ZERO)})) == (1 + 4) + (1 + 4)
    assert written_bytes(None, "abc") == 3
