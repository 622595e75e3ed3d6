"""The ``stats`` reply: the node's, its store's, its host's and its cluster's figures.

Assembled from the parts that keep them (each counts its own; nothing here counts):
the reply order (connections, and through it requests by command and outcome with their
latency histograms), the local planner (decode errors), the node's failure
counts, the coordinator (coordination counters, replica requests), the replica server
(split answers), membership and the replicator's last report. Keys are the public
``stats`` schema (docs/protocol.md): renaming one is a protocol change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from actors.cluster.membership import State
from actors.cluster.replicator import REPLICATOR_COUNTERS
from actors.kernel.latency import LATENCY_BUCKETS_S

if TYPE_CHECKING:
    from actors.node.actor import Node

__all__ = ["node_stats"]


def node_stats(node: Node, store_stats: dict[str, Any]) -> dict[str, Any]:
    """``node``'s stats, given its store's (the answer to a ``StatsQuery``)."""
    ctx = node.ctx
    stats = {
        "node_id": ctx.node_id,
        "uptime_s": round(ctx.now() - node.started_at, 3),
        "connections": len(node.order),
        "connections_total": node.order.total,
        "requests": node.requests,
        "errors": node.local.errors,
    }
    stats.update(node.request_metrics.snapshot())
    stats["latency_buckets_s"] = list(LATENCY_BUCKETS_S)
    stats.update(store_stats)
    stats["internal_errors"] = node.io.internal_errors + store_stats.get("internal_errors", 0)
    stats["actor_failures"] = node.actor_failures + node.reported_failures
    stats.update(ctx.host_stats())
    stats["cluster"] = _cluster_stats(node)
    return stats


def _cluster_stats(node: Node) -> dict[str, Any]:
    life = node.life
    view = life.view
    config = node.config
    phis = life.membership.phis(node.ctx.now())
    members = {
        m.node_id: {
            "addr": m.addr,
            "incarnation": m.incarnation,
            "status": m.status,
            "state": view.states.get(m.node_id, State.ALIVE),
            "phi": phis.get(m.node_id, 0.0),
        }
        for m in view.members
    }
    coordinator = node.coordinator
    answers = node.replica.answers
    replicator = node.replicator_counters
    out: dict[str, Any] = {
        "members": members,
        "replicas": view.placement.replicas,
        "partitions": view.placement.partitions,
        "partitions_owned": len(view.placement.owned_by(node.ctx.node_id)),
        "ready": life.ready,
        "joined": life.joined,
        "write_consistency": config.write_consistency,
        "read_consistency": config.read_consistency,
        **dict.fromkeys(REPLICATOR_COUNTERS, 0),
    }
    out.update(coordinator.counters)
    out["replication_latency"] = {peer: h.snapshot() for peer, h in sorted(coordinator.replication.items())}
    out["replica_requests_in_flight"] = len(coordinator.requests.routes)
    out["replica_requests_waiting"] = coordinator.requests.waiting()
    out["replica_responses_split"] = answers.split
    out["replica_responses_abandoned"] = answers.abandoned
    out.update(replicator)
    # Both count peers' answers to what was sent to another node: one figure.
    out["replies_from_wrong_peer"] = coordinator.counters["replies_from_wrong_peer"] + replicator.get("replies_from_wrong_peer", 0)
    # Versions stamped beyond the clock bound, refused wherever they arrived (the clock's
    # own count: versions only this node's store could have offered it).
    out["versions_refused"] = (
        coordinator.counters["versions_refused"]
        + node.replica.refused
        + node.clock.refused
        + replicator.get("versions_refused", 0)
    )
    out["gossip_rows_refused"] = life.membership.refused
    out["heartbeats_refused"] = life.heartbeats_refused
    out["clock_offset_ms"] = life.offsets.offset_ms(node.ctx.now(), voters=life.clock_voters())
    out["clock_refused"] = node.clock_refused
    return out
