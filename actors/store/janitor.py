"""The ``Janitor`` actor: paces active expiry.

Every ``interval_s`` it asks the store for one expiry cycle limited to ``budget_s``.
When a cycle ran out of budget (a backlog of expired keys), the next one comes after
``backlog_interval_s = 4 * budget_s`` instead, so a mass expiry drains in steady small
slices using at most ~25% of the node's time (Redis's slow cycle allows the same share),
and a client request never waits behind more than one budget. Never more than one cycle
is in flight.
"""

from __future__ import annotations

from typing import Any

from pykka import ActorDeadError, ActorRef

from actors.kernel.scheduled import ScheduledActor
from actors.kernel.scheduler import Cancellable
from actors.kernel.ctx import Ctx
from actors.store.ops import ExpireCycle, ExpireCycleDone
from actors.protocol.internal import ExpireTick

__all__ = ["Janitor"]


class Janitor(ScheduledActor):
    survive_failures = True  # see ScheduledActor.survive_failures

    def __init__(
        self,
        ctx: Ctx,
        store: ActorRef[Any],
        interval_s: float = 1.0,
        budget_s: float = 0.002,
        sample_size: int = 20,
    ) -> None:
        super().__init__(ctx)
        if interval_s <= 0 or budget_s <= 0:
            raise ValueError("janitor interval and budget must be positive")
        self.store = store
        self.interval_s = interval_s
        self.budget_s = budget_s
        self.sample_size = sample_size
        self.backlog_interval_s = min(interval_s, 4 * budget_s)
        self._in_flight = False
        self._timer: Cancellable | None = None

    def on_start(self) -> None:
        self._schedule(self.interval_s)

    def on_stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def on_receive(self, message: Any) -> Any:
        if type(message) is ExpireTick:
            self._timer = None
            if not self._in_flight:
                try:
                    self.store.tell(ExpireCycle(self.budget_s, self.actor_ref, self.sample_size))
                except ActorDeadError:
                    # The store stopped (a disk it cannot write, a shutdown): the node is
                    # exiting, and there is nothing left to expire; stop quietly.
                    self.actor_ref.stop(block=False)
                    return None
                self._in_flight = True
        elif type(message) is ExpireCycleDone:
            self._in_flight = False
            backlog = message.hit_budget and message.remaining_volatile > 0
            self._schedule(self.backlog_interval_s if backlog else self.interval_s)
        else:
            return super().on_receive(message)
        return None

    def _schedule(self, delay: float) -> None:
        if self._timer is None:
            self._timer = self.ctx.call_later(delay, self.actor_ref, ExpireTick())
