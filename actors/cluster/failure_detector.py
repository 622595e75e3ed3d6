"""The phi-accrual failure detector (Hayashibara et al., 2004; as in Akka and Cassandra).

Instead of a yes/no timeout it answers *how surprised* we would be that no heartbeat has
arrived yet: ``phi = -log10(P(a heartbeat comes later than now))`` under a normal
distribution fitted to recent inter-arrival times. A threshold on phi adapts to the
actual network (a jittery link raises the mean and deviation, so it suspects later).
Fed arrival times by its owner; never reads a clock.

An interval longer than :data:`MAX_INTERVAL_HEARTBEATS` heartbeat intervals is not a
sample of the link but an outage (a partition, a pause, a restart), and it is dropped, as
Cassandra drops intervals above its ``max_interval``: kept, one 6 s gap in a window of
0.2 s heartbeats raises the fitted deviation so much that the next outage is suspected
several seconds late (measured: a second isolation 4 s after the first took 6.8 s to mark
down instead of 2.6 s; ``python -m bench.failure_detection``).
"""

from __future__ import annotations

import collections
import math

__all__ = ["PhiAccrual"]

#: Inter-arrival times the normal distribution is fitted to (the latest ones).
WINDOW = 100
#: Intervals longer than this many heartbeat intervals are outages, not samples: dropped.
MAX_INTERVAL_HEARTBEATS = 10
#: Largest exponent math.exp takes without OverflowError (about 709.78).
_MAX_EXP = 709.0


class PhiAccrual:
    """Heartbeat arrival times of one member, and how overdue the next one is."""

    __slots__ = ("_intervals", "_last", "_sum", "_sum_sq", "max_interval", "min_std")

    def __init__(self, first_interval: float) -> None:
        #: A floor on the deviation: a perfectly regular link would otherwise suspect at
        #: the first heartbeat a little late.
        self.min_std = first_interval / 2
        self.max_interval = first_interval * MAX_INTERVAL_HEARTBEATS
        self._intervals: collections.deque[float] = collections.deque(maxlen=WINDOW)
        self._sum = 0.0
        self._sum_sq = 0.0
        self._last: float | None = None
        # Seed the history so the first heartbeats do not look infinitely surprising.
        std = first_interval / 4
        for x in (first_interval - std, first_interval + std):
            self._add(x)

    def _add(self, interval: float) -> None:
        q = self._intervals
        if len(q) == q.maxlen:
            old = q[0]
            self._sum -= old
            self._sum_sq -= old * old
        q.append(interval)
        self._sum += interval
        self._sum_sq += interval * interval

    def heartbeat(self, now: float) -> None:
        if self._last is not None and now > self._last and now - self._last <= self.max_interval:
            self._add(now - self._last)
        self._last = now if self._last is None else max(self._last, now)

    def phi(self, now: float) -> float:
        if self._last is None:
            return 0.0
        n = len(self._intervals)
        mean = self._sum / n
        variance = max(0.0, self._sum_sq / n - mean * mean)
        std = max(math.sqrt(variance), self.min_std)
        elapsed = now - self._last
        y = (elapsed - mean) / std
        # Logistic approximation of the normal CDF (Akka's PhiAccrualFailureDetector).
        # The exponent is capped where exp() would overflow (Python raises, the JVM gives
        # infinity): a heartbeat far earlier than the mean (a clock stepped back, or a
        # narrow distribution once outages are dropped) is simply "not overdue", phi 0.
        x = -y * (1.5976 + 0.070566 * y * y)
        e = math.exp(x) if x < _MAX_EXP else math.inf
        if elapsed > mean:
            return -math.log10(e / (1.0 + e)) if e > 0 else math.inf
        return -math.log10(1.0 - 1.0 / (1.0 + e)) if e != math.inf else 0.0
