"""A replicated counter: the framework's second system, after the cache.

Every node holds a grow-only counter (a G-Counter: one count per replica life, the value
is their sum) and gossips its state to a random peer on a timer; merging takes the maximum
per entry, so replicas converge once messages flow, whatever was lost, duplicated or cut
off meanwhile. ``python -m examples.counter`` runs it on both hosts.
"""

from examples.counter.replica import Gossip, Increment, Read, Replica
from examples.counter.system import CounterConfig, CounterNode, spawn_counter

__all__ = ["CounterConfig", "CounterNode", "Gossip", "Increment", "Read", "Replica", "spawn_counter"]
