"""Measuring a real cluster the way the simulator measures its own.

The cluster is a :class:`runtime.local_cluster.LocalCluster` (real ``python -m
runtime.node`` processes on loopback). :func:`real_workload` sends it what the
simulator's clients send, through the client library, and records the same kind of
:class:`~sim.history.History`, timed with ``time.monotonic()`` (the clock of the nodes'
traces, one system-wide clock on Linux); :func:`ping_rtts` measures the loopback hop.
Everything random derives from ``seed``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Sequence

from sim.history import FAIL, INFO, OK, History

__all__ = ["ping_rtts", "real_workload"]


def _rtt_ms(address: str, count: int) -> list[float]:
    from runtime.client import Client

    with Client(address) as client:
        client.ping()
        return [client.ping() * 1000.0 for _ in range(count)]


def ping_rtts(addresses: Iterable[str], count: int = 200) -> list[float]:
    """Round-trip times (ms) of ``count`` pings to each address, one connection each."""
    return [rtt for address in addresses for rtt in _rtt_ms(address, count)]


def real_workload(
    addresses: Sequence[str],
    *,
    ops: int,
    rate: float,
    keys: int = 100,
    seed: int = 1,
    timeout: float = 5.0,
) -> History:
    """Sequential ``set`` requests to randomly chosen nodes at about ``rate`` per second
    (exponential think times, as the simulator's clients), through
    :class:`runtime.client.Client` (one kept connection per node), recorded as a
    :class:`~sim.history.History` timed with ``time.monotonic()`` (the traces' clock)."""
    from actors.protocol.errors import CacheError
    from runtime.client import Client

    rng = random.Random(f"{seed}/real-workload")
    history = History()
    clients = {address: Client(address, timeout=timeout) for address in addresses}
    try:
        for i in range(ops):
            time.sleep(rng.expovariate(rate))
            address = rng.choice(list(addresses))
            key = f"k{rng.randrange(keys)}"
            value = f"v{i + 1}"
            op = history.invoke(0, address, "set", key, "default", time.monotonic(), value=value)
            try:
                clients[address].set(key, value)
            except CacheError as exc:
                History.complete(op, FAIL if exc.definite else INFO, time.monotonic(), error=str(exc))
            else:
                History.complete(op, OK, time.monotonic())
    finally:
        for client in clients.values():
            client.close()
    return history
