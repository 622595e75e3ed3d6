"""Model-based test: a single node (in the simulator) always agrees with a dict-with-TTL.

Hypothesis drives random sets, deletes, reads and the passage of virtual time, and
shrinks any disagreement to a few steps. Times are multiples of 1/4 s, exactly
representable, so "expired at the deadline" is checked exactly.
"""

from __future__ import annotations

from typing import Any

from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from actors.config import NodeConfig
from actors.protocol.messages import Ack, Delete, Get, MGet, MSet, Set, Stats, Value, Values
from sim.cache_host import CacheSimHost

KEYS = st.sampled_from(["a", "b", "c", "d", "e"])
VALUES = st.integers(0, 100) | st.text(max_size=3)
TTLS = st.none() | st.integers(1, 8).map(lambda q: q / 4)


class SingleNodeMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.host = CacheSimHost(seed=0)
        self.host.start_node(config=NodeConfig(cleanup_interval_s=0.5))
        self.model: dict[str, tuple[Any, float | None]] = {}

    def _live(self, key: str) -> tuple[Any, bool]:
        entry = self.model.get(key)
        if entry is None:
            return None, False
        value, deadline = entry
        if deadline is not None and deadline <= self.host.now():
            return None, False
        return value, True

    @rule(key=KEYS, value=VALUES, ttl=TTLS)
    def set(self, key: str, value: Any, ttl: float | None) -> None:
        assert self.host.request([Set(key, value, ttl)]) == (Ack(),)
        self.model[key] = (value, None if ttl is None else self.host.now() + ttl)

    @rule(entries=st.dictionaries(KEYS, VALUES, max_size=3), ttl=TTLS)
    def mset(self, entries: dict[str, Any], ttl: float | None) -> None:
        assert self.host.request([MSet(tuple(entries.items()), ttl)]) == (Ack(),)
        for key, value in entries.items():
            self.model[key] = (value, None if ttl is None else self.host.now() + ttl)

    @rule(key=KEYS)
    def delete(self, key: str) -> None:
        _, existed = self._live(key)
        assert self.host.request([Delete(key)]) == (Ack(deleted=existed),)
        self.model.pop(key, None)

    @rule(key=KEYS)
    def get(self, key: str) -> None:
        value, found = self._live(key)
        assert self.host.request([Get(key)]) == (Value(value, found),)

    @rule(keys=st.lists(KEYS, max_size=4))
    def mget(self, keys: list[str]) -> None:
        expected = tuple((k, *self._live(k)) for k in keys)
        assert self.host.request([MGet(tuple(keys))]) == (Values(expected),)

    @rule(quarters=st.integers(1, 6))
    def advance(self, quarters: int) -> None:
        self.host.run_for(quarters / 4)

    @invariant()
    def key_count_never_counts_more_than_the_model_holds(self) -> None:
        (stats,) = self.host.request([Stats()])
        live = sum(1 for k in self.model if self._live(k)[1])
        # Expired keys may linger until the janitor or a read removes them, never the reverse.
        assert live <= stats.stats["keys"] <= len(self.model)

    def teardown(self) -> None:
        self.host.shutdown()


SingleNodeMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=30, deadline=None)
TestSingleNode = SingleNodeMachine.TestCase
