"""``NodeConfig``: every setting of a node, with its default, in one place.

``runtime.node``'s command line derives its defaults from these fields, the simulator's
scenario files override them by name, and the actors read them; nothing else writes a
default down a second time.
"""

from __future__ import annotations

from dataclasses import dataclass

from actors.protocol.consistency import CONSISTENCY_LEVELS
from actors.protocol.value_depth import DEFAULT_MAX_VALUE_DEPTH, MAX_SUPPORTED_VALUE_DEPTH
from actors.store.eviction import EVICTION_POLICIES
from actors.store.partitions import DEFAULT_PARTITIONS

__all__ = ["NodeConfig"]


@dataclass(frozen=True, slots=True)
class NodeConfig:
    #: Seconds between active-expiry cycles (``--cleanup-interval``).
    cleanup_interval_s: float = 1.0
    #: Time budget of one active-expiry cycle (Redis: 25 ms per 100 ms; ours: 2 ms per tick).
    cleanup_budget_s: float = 0.002
    #: Keys sampled per expiry round (Redis's ACTIVE_EXPIRE_CYCLE_KEYS_PER_LOOP).
    cleanup_sample_size: int = 20
    #: The address peers reach this node at (``host:port``); the simulator uses the id.
    address: str = ""
    #: Addresses to join the cluster through (``PEER_ADDR`` arguments).
    seeds: tuple[str, ...] = ()
    #: Copies of every key (``--replicas``), capped at the cluster size.
    replicas: int = 3
    #: Partitions of the key space (``--partitions``); must agree across the cluster.
    partitions: int = DEFAULT_PARTITIONS
    #: Default consistency levels: "one", "quorum" or "all".
    write_consistency: str = "quorum"
    read_consistency: str = "one"
    #: How long a coordinator waits for replicas before answering timeout/unavailable.
    request_timeout_s: float = 1.0
    #: How long deletes (and expiries, in a replicated cluster) leave a tombstone.
    tombstone_ttl_s: float = 60.0
    #: Gossip/heartbeat period; failure detection is driven by these arrivals.
    heartbeat_interval_s: float = 0.2
    #: Phi (Hayashibara et al.) above which a member is suspect.
    suspect_phi: float = 8.0
    #: A member suspect for this long is down (hints instead of sends).
    down_after_s: float = 2.0
    #: Seconds between anti-entropy rounds (one peer, a few partitions per round).
    anti_entropy_interval_s: float = 1.0
    #: Partitions compared per anti-entropy round.
    anti_entropy_partitions: int = 16
    #: Largest number of hints kept for unreachable owners (oldest dropped beyond).
    hint_limit: int = 100_000
    #: Records per streaming/handoff/hint batch (throttling).
    stream_batch: int = 500
    #: A graceful leave gives up handing off after this long.
    leave_timeout_s: float = 10.0
    #: Bytes of keys, values and overhead (our estimate) a node may hold; 0: no bound.
    max_memory: int = 0
    #: What to do at the bound: Redis's policy names (see actors/store/eviction.py).
    eviction_policy: str = "noeviction"
    #: The deepest value a request may carry (``--max-value-depth``): the node checks
    #: requests forwarded to it by peers against it (hosts' decoders check the rest).
    max_value_depth: int = DEFAULT_MAX_VALUE_DEPTH

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
        if self.tombstone_ttl_s < 0:
            raise ValueError("tombstone ttl must be >= 0")
        if self.max_memory < 0:
            raise ValueError("max memory must be >= 0")
        if self.eviction_policy not in EVICTION_POLICIES:
            raise ValueError(f"eviction policy must be one of {', '.join(EVICTION_POLICIES)}")
        if not 1 <= self.max_value_depth <= MAX_SUPPORTED_VALUE_DEPTH:
            raise ValueError(f"max value depth must be between 1 and {MAX_SUPPORTED_VALUE_DEPTH}")
