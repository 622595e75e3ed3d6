"""The node's metrics, by Prometheus name, made from one ``stats`` snapshot.

One table for every exporter: the real node's ``/metrics`` (runtime/metrics.py wraps each
:class:`Family` in a ``prometheus_client`` family; nothing here formats exposition text)
and the simulator's per-node summary (sim/metrics.py), so a simulated and a real run
compare by metric name. Nothing is counted here: every figure is one ``stats`` already
carries (docs/protocol.md), counted as plain integers by the actor that owns it.

Naming follows Prometheus's conventions: the ``actorcache_`` prefix, base units
(seconds, bytes), counters named without ``_total`` here (the client library and
exposition add it), labels of bounded sets only, never a key. A peer's node id is a
label only while the cluster has at most :data:`PER_PEER_MAX_MEMBERS` members; above
that per-peer series are folded into one, ``peer="_all"`` (histograms summed, phi the
largest), so a big cluster's scrape does not grow with its size squared.

Figures a snapshot lacks (a simulated node has no sockets: no connection limits, bytes,
TLS) are left out rather than reported as zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator

__all__ = ["PER_PEER_MAX_MEMBERS", "PREFIX", "Family", "metric_families"]

PREFIX = "actorcache_"

#: Largest cluster whose peers are labelled one by one (see the module docstring).
PER_PEER_MAX_MEMBERS = 16

#: A histogram sample's value: (per-bucket counts as Histogram.snapshot gives them, sum).
HistogramValue = tuple[list[int], float]


@dataclass
class Family:
    """One metric family: ``kind`` is ``counter``, ``gauge`` or ``histogram``; each sample
    is (label values in ``labels`` order, value), a histogram's value a ``HistogramValue``."""

    name: str
    kind: str
    help: str
    labels: tuple[str, ...] = ()
    samples: list[tuple[tuple[str, ...], Any]] = field(default_factory=list)

    def add(self, value: Any, *labels: str) -> Family:
        self.samples.append((labels, value))
        return self

    def to_json(self) -> dict[str, Any]:
        """The simulator's summary form: type, labels, and each sample as
        ``{"labels": {...}, "value": v}`` (a histogram's value: ``{"counts", "sum"}``)."""
        samples = []
        for values, value in self.samples:
            if self.kind == "histogram":
                value = {"counts": list(value[0]), "sum": value[1]}
            samples.append({"labels": dict(zip(self.labels, values)), "value": value})
        return {"type": self.kind, "help": self.help, "labels": list(self.labels), "samples": samples}


#: Plain counters of ``stats`` (top level): (metric name without prefix, stats key, help).
_COUNTERS = (
    ("connections", "connections_total", "Client connections accepted (both ports)."),
    ("decode_errors", "errors", "Requests that failed to decode (answered bad_request and the like)."),
    ("internal_errors", "internal_errors", "Requests answered internal because handling them raised (a bug)."),
    ("actor_failures", "actor_failures", "Messages whose handling raised in one of the node's actors (survived)."),
    ("keyspace_hits", "hits", "Reads of this node's store that found the key."),
    ("keyspace_misses", "misses", "Reads of this node's store that did not find the key."),
    ("janitor_cycles", "expire_cycles", "Active-expiry cycles the janitor ran."),
    ("janitor_budget_hits", "expire_budget_hits", "Active-expiry cycles that stopped at their time budget (expired keys remain)."),
    ("repairs_skipped_full", "repairs_skipped_full", "Repairs not applied because the store was at --max-memory."),
    ("connections_rejected", "rejected_connections", "Connections refused by limits (max clients, protected mode)."),
    ("auth_failures", "auth_failures", "Failed client authentications."),
    ("client_bytes_received", "bytes_received", "Bytes read from client connections (both ports)."),
    ("client_bytes_sent", "bytes_sent", "Bytes written to client connections (both ports)."),
    ("tls_handshake_failures", "tls_handshake_failures", "TLS handshakes that failed or timed out."),
)

#: Connections the server closed, by reason: (label, stats key).
_KILLS = (
    ("output_buffer", "client_output_buffer_kills"),
    ("idle", "idle_timeouts"),
    ("request_read_timeout", "request_read_timeouts"),
    ("input_buffer", "input_buffer_kills"),
)

#: Gauges of ``stats`` (top level).
_GAUGES = (
    ("connections_open", "connections", "Client connections open now."),
    ("keys", "keys", "Keys in this node's store (replicas included)."),
    ("tombstones", "tombstones", "Deletion markers kept until the tombstone TTL."),
    ("keys_with_ttl", "keys_with_ttl", "Keys with an expiry deadline."),
    ("memory_used_bytes", "memory_bytes", "Memory the store accounts for keys and values."),
    ("memory_max_bytes", "max_memory", "--max-memory (0: no limit)."),
    ("uptime_seconds", "uptime_s", "Seconds since the node started."),
)

#: Counters of ``stats["cluster"]``.
_CLUSTER_COUNTERS = (
    ("read_repairs", "read_repairs", "Newer records sent to replicas that answered a quorum read with older ones."),
    ("unavailable", "unavailable", "Requests answered unavailable: too few owners reachable for the consistency level."),
    ("timeouts", "timeouts", "Requests answered timeout: replicas did not answer within --request-timeout."),
    ("hints_written", "hints_written", "Hints kept for owners that were down or did not acknowledge a write."),
    ("hints_delivered", "hints_delivered", "Hints delivered to their owner once it was back."),
    ("hints_dropped", "hints_dropped", "Hints dropped (over --hint-limit, their owner left, or older than --tombstone-ttl)."),
    ("anti_entropy_rounds", "anti_entropy_rounds", "Anti-entropy rounds (digest comparisons with a peer)."),
    ("anti_entropy_keys_repaired", "keys_repaired", "Keys anti-entropy pulled or pushed to repair a replica."),
    ("sync_keys_listed", "sync_keys_listed", "(key, version) items listed to compare partitions with peers (both sides of a round)."),
    ("keys_streamed", "keys_streamed", "Keys streamed to this node while it warmed or took over partitions."),
    ("keys_handed_off", "keys_handed_off", "Keys handed to new owners while leaving."),
    ("sync_rounds_failed", "sync_rounds_failed", "Anti-entropy or streaming rounds that failed (peer gone, timeout)."),
    ("restamps", "restamps", "Writes re-versioned after a replica held a newer version."),
    ("versions_refused", "versions_refused", "Versions refused as beyond the max clock skew."),
    ("clock_refused", "clock_refused", "Requests refused while this node's clock was off its peers'."),
)


def metric_families(stats: dict[str, Any]) -> list[Family]:
    """Every family ``stats`` (a node's ``stats`` reply) makes, in a fixed order."""
    return list(_families(stats))


def _families(stats: dict[str, Any]) -> Iterator[Family]:
    buckets = stats.get("latency_buckets_s", [])
    yield Family(PREFIX + "node_info", "gauge", "Always 1; labels name the node.", ("node_id",)).add(1, str(stats["node_id"]))
    requests = Family(PREFIX + "requests", "counter", "Client requests answered, by command and outcome (ok or an error code).", ("command", "outcome"))
    for command, outcomes in stats.get("requests_by_command", {}).items():
        for outcome, n in outcomes.items():
            requests.add(n, command, outcome)
    yield requests
    latency = Family(
        PREFIX + "request_duration_seconds", "histogram",
        "From the node accepting a request (its batch) to its reply leaving, by command and consistency level.",
        ("command", "consistency"),
    )
    for command, levels in stats.get("request_latency", {}).items():
        for level, h in levels.items():
            latency.add((h["counts"], h["sum"]), command, level)
    yield latency
    for name, key, help_ in _COUNTERS:
        if key in stats:
            yield Family(PREFIX + name, "counter", help_).add(stats[key])
    if any(key in stats for _, key in _KILLS):
        kills = Family(PREFIX + "connections_closed_by_limit", "counter", "Connections the server closed, by limit.", ("reason",))
        for reason, key in _KILLS:
            kills.add(stats.get(key, 0), reason)
        yield kills
    for name, key, help_ in _GAUGES:
        if key in stats:
            yield Family(PREFIX + name, "gauge", help_).add(stats[key])
    policy = str(stats.get("eviction_policy", "noeviction"))
    yield Family(PREFIX + "evictions", "counter", "Keys evicted to stay under --max-memory, by policy.", ("policy",)).add(
        stats.get("evicted", 0), policy
    )
    expirations = Family(PREFIX + "expirations", "counter", "Keys expired: lazy (found expired when read) or active (janitor).", ("mode",))
    yield expirations.add(stats.get("expired_lazy", 0), "lazy").add(stats.get("expired_active", 0), "active")
    cluster = stats.get("cluster")
    if cluster is not None:
        yield from _cluster_families(str(stats["node_id"]), cluster, buckets)


def _cluster_families(me: str, cluster: dict[str, Any], buckets: list[float]) -> Iterator[Family]:
    for name, key, help_ in _CLUSTER_COUNTERS:
        yield Family(PREFIX + name, "counter", help_).add(cluster.get(key, 0))
    yield Family(PREFIX + "hints_pending", "gauge", "Hints waiting for their owner to come back.").add(cluster.get("hints_pending", 0))
    yield Family(PREFIX + "partitions_pulling", "gauge", "Partitions still to pull (warming, or gained): streaming progress.").add(
        cluster.get("partitions_pulling", 0)
    )
    yield Family(PREFIX + "partitions_handing_off", "gauge", "Partitions being handed to new owners (leaving, or lost).").add(
        cluster.get("partitions_handing_off", 0)
    )
    yield Family(PREFIX + "ready", "gauge", "1 when this node is ready (warmed: serves reads), else 0.").add(int(bool(cluster.get("ready"))))
    yield Family(PREFIX + "joined", "gauge", "1 once this node joined a cluster (or started one), else 0.").add(int(bool(cluster.get("joined"))))
    yield Family(PREFIX + "partitions_owned", "gauge", "Partitions this node owns a replica of.").add(cluster.get("partitions_owned", 0))
    yield Family(PREFIX + "partitions", "gauge", "Partitions of the cluster (--partitions).").add(cluster.get("partitions", 0))
    yield Family(PREFIX + "replica_requests_in_flight", "gauge", "Replica requests sent to peers and not answered yet.").add(
        cluster.get("replica_requests_in_flight", 0)
    )
    members = cluster.get("members", {})
    mine = members.get(me, {})
    yield Family(PREFIX + "incarnation", "gauge", "This node's incarnation (raised by each restart and refutation).").add(mine.get("incarnation", 0))
    counts: dict[tuple[str, str], int] = {}
    for member in members.values():
        pair = (str(member.get("status")), str(member.get("state")))
        counts[pair] = counts.get(pair, 0) + 1
    family = Family(
        PREFIX + "members", "gauge",
        "Members as this node sees them, by status (warming/ready/leaving/left) and liveness (alive/suspect/down/left; self).",
        ("status", "state"),
    )
    for (status, state), n in sorted(counts.items()):
        family.add(n, status, state)
    yield family
    down = sum(n for (_, state), n in counts.items() if state == "down")
    yield Family(PREFIX + "members_down", "gauge", "Members this node's failure detector holds down.").add(down)
    per_peer = len(members) <= PER_PEER_MAX_MEMBERS
    phi = Family(PREFIX + "peer_phi", "gauge", "Failure-detector suspicion of each peer (phi accrual; suspect at --suspect-phi).", ("peer",))
    phis = [(peer, float(m.get("phi", 0.0))) for peer, m in sorted(members.items()) if peer != me]
    if per_peer:
        for peer, value in phis:
            phi.add(value, peer)
    elif phis:
        phi.add(max(value for _, value in phis), "_all")
    yield phi
    replication = Family(
        PREFIX + "replication_duration_seconds", "histogram",
        "From the coordinator accepting a write to a replica's answer (applied) arriving, by replica.",
        ("peer",),
    )
    latencies = cluster.get("replication_latency", {})
    if per_peer:
        for peer, h in latencies.items():
            replication.add((h["counts"], h["sum"]), peer)
    elif latencies:
        total = [0] * (len(buckets) + 1)
        for h in latencies.values():
            total = [a + b for a, b in zip(total, h["counts"])]
        replication.add((total, sum(h["sum"] for h in latencies.values())), "_all")
    yield replication
