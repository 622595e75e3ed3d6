"""The replicator's pushes carry at most about a push budget of records each (issue 11).

Hints, handoff batches, repair streams and pull answers were one ``push`` per
``stream_batch`` (500) records: 500 values of 512 KiB make a 256 MiB frame, dropped as
over the 64 MiB peer frame limit, so big values could never be hinted, streamed to a
joining node, handed off by a leaving one or repaired. Now each push carries about
:data:`~actors.cluster.peer_budget.PUSH_BUDGET` of records (one record past it at most) and the next
follows its acknowledgement; a pull's answer says how many of the pulled keys it
covered and the puller pulls the rest. Measured on the simulator, each frame as the
runtime would encode it.
"""

from __future__ import annotations

from typing import Any

from actors.kernel import ScheduledFuture
from actors.protocol.messages import Ack, Set
from actors.protocol.internal import Leave, LeaveDone
from actors.cluster.peer_budget import PUSH_BUDGET
from actors.protocol.peer_messages import Push
from tests.test_cluster_sim import SimCluster
from tests.test_replica_parts import OVERHEAD, frame_bytes, record_frames


def pushes(seen: list[tuple[str, str, Any]]) -> list[Push]:
    return [m for _, _, m in seen if type(m) is Push]


def test_hints_of_big_values_are_delivered_in_budgeted_pushes() -> None:
    c = SimCluster(3, anti_entropy_interval_s=1000.0)
    try:
        c.host.network.partition(["n3"], ["n1", "n2"])
        c.run(2.0)  # n3 is down in the others' eyes
        value = "h" * (300 * 1024)
        for i in range(30):
            assert c.one(Set(f"h{i}", value), "n1") == Ack()
        c.run(0.2)
        assert c.stats("n1")["cluster"]["hints_pending"] == 30  # 9 MiB for n3
        seen = record_frames(c)
        c.host.network.heal()
        c.run(3.0)
        assert c.stats("n1")["cluster"]["hints_delivered"] == 30
        assert all(c.local("n3", f"h{i}").value == value for i in range(30))
        sent = pushes(seen)
        assert len(sent) >= 9 and all(frame_bytes(m) <= PUSH_BUDGET + len(value) + OVERHEAD for m in sent)
    finally:
        c.host.shutdown()


def test_big_values_stream_to_a_restarted_node_and_hand_off_in_budgeted_pushes() -> None:
    c = SimCluster(4)
    try:
        value = "j" * (200 * 1024)
        keys = [f"j{i}" for i in range(60)]  # 12 MiB, three copies of each over four nodes
        for key in keys:
            assert c.one(Set(key, value), "n1") == Ack()
        c.run(0.5)
        c.host.crash("n4")
        c.run(0.5)
        seen = record_frames(c)
        c.start("n4")  # warms: pulls every partition it owns from its co-owners
        c.run(4.0)
        assert c.stats("n4")["cluster"]["ready"]
        assert c.stats("n4")["cluster"]["keys_streamed"] > 0
        for key in keys:
            if "n4" in c.owners(key):
                assert c.local("n4", key).value == value, key
        answers = [m for m in pushes(seen) if m.reply]
        assert any(m.covered is not None for m in answers)  # some pulls were answered in parts
        assert all(frame_bytes(m) <= PUSH_BUDGET + len(value) + OVERHEAD for m in pushes(seen))
        # n4 leaves: its partitions go to their next owners in budgeted, acknowledged pushes.
        done = ScheduledFuture(c.host.scheduler)

        class Reply:
            def tell(self, message: object) -> None:
                done.set(message)

        seen.clear()
        c.host.nodes["n4"].node.tell(Leave(Reply()))
        result = done.get(timeout=15)
        assert type(result) is LeaveDone and result.complete and result.handed_off > 0
        handed = [m for m in pushes(seen) if m.ack]
        assert handed and all(frame_bytes(m) <= PUSH_BUDGET + len(value) + OVERHEAD for m in handed)
        c.run(2.0)
        for key in keys:
            for owner in c.owners(key):
                assert c.local(owner, key).value == value, (key, owner)
    finally:
        c.host.shutdown()


def test_anti_entropy_repairs_big_values_in_budgeted_pushes() -> None:
    c = SimCluster(3, hint_limit=0, anti_entropy_interval_s=0.2, anti_entropy_partitions=256)
    try:
        c.host.network.partition(["n3"], ["n1", "n2"])
        c.run(2.0)
        value = "a" * (250 * 1024)
        for i in range(40):  # 10 MiB n3 misses (no hints: hint_limit 0)
            assert c.one(Set(f"a{i}", value), "n1") == Ack()
        seen = record_frames(c)
        c.host.network.heal()
        c.run(6.0)
        assert all(c.local("n3", f"a{i}") is not None and c.local("n3", f"a{i}").value == value for i in range(40))
        sent = pushes(seen)
        assert sent and all(frame_bytes(m) <= PUSH_BUDGET + len(value) + OVERHEAD for m in sent)
    finally:
        c.host.shutdown()
