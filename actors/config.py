"""``NodeConfig``: every setting of a node, with its default, in one place.

``runtime.node``'s command line derives its options from these fields: a field set from
the command line says so in its metadata (:func:`option`: the flag, the help text with a
``{default}`` placeholder, and the scale from the field's unit to the flag's), and the
option's default is the field's. The simulator's scenario files override fields by name,
and the actors read them; nothing else writes a default down a second time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from actors.protocol.consistency import CONSISTENCY_LEVELS
from actors.protocol.value_depth import DEFAULT_MAX_VALUE_DEPTH, MAX_SUPPORTED_VALUE_DEPTH
from actors.store.eviction import EVICTION_POLICIES
from actors.store.partitions import DEFAULT_PARTITIONS

__all__ = ["NodeConfig", "option"]


def option(default: Any, flag: str, help: str, scale: float = 1) -> Any:
    """A field with ``default`` that ``python -m runtime.node`` sets with ``flag``;
    ``help`` may say ``{default}`` (the default in the flag's unit: the field's times
    ``scale``)."""
    return field(default=default, metadata={"flag": flag, "help": help, "scale": scale})


@dataclass(frozen=True, slots=True)
class NodeConfig:
    #: Seconds between active-expiry cycles (``--cleanup-interval``).
    cleanup_interval_s: float = option(1.0, "--cleanup-interval", "seconds between active-expiry cycles (default {default})")
    #: Time budget of one active-expiry cycle (Redis: 25 ms per 100 ms; ours: 2 ms per tick).
    cleanup_budget_s: float = option(
        0.002, "--cleanup-budget-ms", "time budget of one active-expiry cycle in milliseconds (default {default})", scale=1000
    )
    #: Keys sampled per expiry round (Redis's ACTIVE_EXPIRE_CYCLE_KEYS_PER_LOOP).
    cleanup_sample_size: int = 20
    #: The address peers reach this node at (``host:port``); the simulator uses the id.
    address: str = ""
    #: Addresses of running nodes to join the cluster through (``PEER_ADDR`` arguments).
    contacts: tuple[str, ...] = ()
    #: Copies of every key (``--replicas``), capped at the cluster size.
    replicas: int = option(3, "--replicas", "copies of every key (default {default})")
    #: Partitions of the key space (``--partitions``); must agree across the cluster.
    partitions: int = option(
        DEFAULT_PARTITIONS, "--partitions", "partitions of the key space; the same on every node (default {default})"
    )
    #: Default consistency levels: "one", "quorum" or "all".
    write_consistency: str = option(
        "quorum", "--write-consistency", "replicas that must acknowledge a write by default (default {default})"
    )
    read_consistency: str = option("one", "--read-consistency", "replicas that must answer a read by default (default {default})")
    #: How long a coordinator waits for replicas before answering timeout/unavailable.
    request_timeout_s: float = option(1.0, "--request-timeout", "how long a coordinator waits for replicas (default {default})")
    #: How long deletes (and expiries, in a replicated cluster) leave a tombstone.
    tombstone_ttl_s: float = option(
        60.0, "--tombstone-ttl", "how long deletes and expiries are remembered, to stop resurrection (default {default}; 0: off)"
    )
    #: Gossip/heartbeat period; failure detection is driven by these arrivals.
    heartbeat_interval_s: float = option(0.2, "--heartbeat-interval", "gossip/heartbeat period (default {default})")
    #: Phi (Hayashibara et al.) above which a member is suspect.
    suspect_phi: float = option(8.0, "--suspect-phi", "phi accrual level above which a member is suspect (default {default})")
    #: A member suspect for this long is down (hints instead of sends).
    down_after_s: float = option(2.0, "--down-after", "a member suspect this long is down (default {default})")
    #: Seconds between anti-entropy rounds (one peer, a few partitions per round).
    anti_entropy_interval_s: float = option(
        1.0, "--anti-entropy-interval", "seconds between anti-entropy rounds (default {default})"
    )
    #: Partitions compared per anti-entropy round.
    anti_entropy_partitions: int = 16
    #: Largest number of hints kept for unreachable owners (oldest dropped beyond).
    hint_limit: int = option(
        100_000, "--hint-limit", "most hints kept for unreachable replicas; the oldest are dropped beyond (default {default})"
    )
    #: Records per streaming/handoff/hint batch (throttling).
    stream_batch: int = option(
        500, "--stream-batch", "records per hand-off, repair and hint batch sent to a peer (default {default})"
    )
    #: How far ahead of this node's wall clock a peer's version (HLC stamp) or gossiped
    #: incarnation may be (CockroachDB's max-offset): a version further in the future is
    #: refused (not stored, never merged into the clock), traced and counted.
    max_clock_skew_s: float = option(
        0.5,
        "--max-clock-skew",
        "seconds a peer's version or incarnation may be ahead of this node's clock; further ahead is refused "
        "(default {default})",
    )
    #: A graceful leave gives up handing off after this long.
    leave_timeout_s: float = option(
        10.0, "--leave-timeout", "on SIGTERM/SIGINT, how long handing partitions off may take (default {default})"
    )
    #: Bytes of keys, values and overhead (our estimate) a node may hold; 0: no bound.
    max_memory: int = option(
        0, "--max-memory", "bound on keys, values and per-entry overhead, K/M/G suffixes (default {default}: none)"
    )
    #: What to do at the bound: Redis's policy names (see actors/store/eviction.py).
    eviction_policy: str = option(
        "noeviction",
        "--eviction-policy",
        "at the bound: Redis's policies, approximated by sampling (default {default}: refuse writes)",
    )
    #: The deepest value a request may carry (``--max-value-depth``): the node checks
    #: requests forwarded to it by peers against it (hosts' decoders check the rest).
    max_value_depth: int = option(
        DEFAULT_MAX_VALUE_DEPTH,
        "--max-value-depth",
        "deepest nesting of a JSON/msgpack value, from clients and peers; deeper is refused bad_request "
        f"(default {{default}}, at most {MAX_SUPPORTED_VALUE_DEPTH})",
    )

    #: In a cluster, the most bytes of values one write may send to a peer (a value, an
    #: MSET's or a transaction's values, a hash's whole state); more is refused at once
    #: (``value_too_large``, applied nowhere; actors.cluster.value_limit). The runtime's
    #: peer frame limit (64 MiB) less 1 MiB for the envelope; a node alone is not bound.
    max_cluster_value_bytes: int = option(
        (64 << 20) - (1 << 20),
        "--max-cluster-value-bytes",
        "in a cluster, largest sum of values one write sends to a peer, K/M/G suffixes; larger is refused "
        "(default 63M: the 64 MiB peer frame limit less 1 MiB)",
    )

    #: Snapshot rules with ``--dir`` (``--save SECONDS CHANGES``, Redis's defaults; empty: none).
    save: tuple[tuple[int, int], ...] = option(
        ((3600, 1), (300, 100), (60, 10000)),
        "--save",
        "with --dir, snapshot after SECONDS if at least CHANGES keys changed; repeatable, '' for none "
        "(default: 3600 1 300 100 60 10000, Redis's)",
    )
    #: Log every change with ``--dir`` (``--appendonly yes``).
    appendonly: bool = option(False, "--appendonly", "with --dir, log every change before answering (yes/no, default no)")
    #: When the log is fsynced: Redis's ``always``, ``everysec`` or ``no``.
    appendfsync: str = option(
        "everysec", "--appendfsync", "fsync the log before every answer, once a second, or never (default {default})"
    )
    #: Rewrite (snapshot and start a new log) when the log grew past this share of the snapshot...
    auto_aof_rewrite_percentage: int = option(
        100, "--auto-aof-rewrite-percentage", "rewrite the log when it is this %% of the snapshot's size (default {default}; 0: never)"
    )
    #: ...and past this size.
    auto_aof_rewrite_min_size: int = option(
        64 << 20, "--auto-aof-rewrite-min-size", "and at least this big, K/M/G suffixes (default 64M)"
    )

    def __post_init__(self) -> None:
        if self.cleanup_interval_s <= 0:
            raise ValueError("cleanup interval must be positive")
        if self.cleanup_budget_s <= 0:
            raise ValueError("cleanup budget must be positive")
        if self.cleanup_sample_size < 1:
            raise ValueError("cleanup sample size must be at least 1")
        if self.replicas < 1:
            raise ValueError("replicas must be at least 1")
        if self.partitions < 1:
            raise ValueError("partitions must be at least 1")
        for level in (self.write_consistency, self.read_consistency):
            if level not in CONSISTENCY_LEVELS:
                raise ValueError(f"consistency must be one of {', '.join(CONSISTENCY_LEVELS)}, not {level!r}")
        if self.request_timeout_s <= 0 or self.heartbeat_interval_s <= 0 or self.down_after_s <= 0:
            raise ValueError("timeouts and intervals must be positive")
        if not 0 < self.max_clock_skew_s <= 86_400:
            raise ValueError("max clock skew must be positive and at most a day")
        if self.tombstone_ttl_s < 0:
            raise ValueError("tombstone ttl must be >= 0")
        if self.max_cluster_value_bytes < 1:
            raise ValueError("max cluster value bytes must be positive")
        if self.max_memory < 0:
            raise ValueError("max memory must be >= 0")
        if self.eviction_policy not in EVICTION_POLICIES:
            raise ValueError(f"eviction policy must be one of {', '.join(EVICTION_POLICIES)}")
        if self.appendfsync not in ("always", "everysec", "no"):
            raise ValueError("appendfsync must be one of always, everysec, no")
        if self.auto_aof_rewrite_percentage < 0 or self.auto_aof_rewrite_min_size < 0:
            raise ValueError("auto-aof-rewrite settings must be >= 0")
        if any(seconds < 1 or changes < 0 for seconds, changes in self.save):
            raise ValueError("save rules need seconds >= 1 and changes >= 0")
        if not 1 <= self.max_value_depth <= MAX_SUPPORTED_VALUE_DEPTH:
            raise ValueError(f"max value depth must be between 1 and {MAX_SUPPORTED_VALUE_DEPTH}")
