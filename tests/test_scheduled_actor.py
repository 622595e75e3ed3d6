"""Parity of the scheduled actor's envelope handling with Pykka's, on every host."""

from __future__ import annotations

from typing import Any

import pykka
import pytest

from actors.kernel import BlockingCallInActorError, ScheduledActor


class Echo(ScheduledActor):
    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.seen: list[Any] = []
        self.failures: list[type[BaseException]] = []
        self.stopped = False

    def on_receive(self, message: Any) -> Any:
        if message == "boom":
            raise ValueError("boom")
        if message == "block":
            # A blocking ask from inside a turn must fail loudly, never deadlock.
            return self.actor_ref.ask("x", timeout=1)
        self.seen.append(message)
        return ("echo", message)

    def on_failure(self, exc_type: Any, exc_value: Any, tb: Any) -> None:
        self.failures.append(exc_type)

    def on_stop(self) -> None:
        self.stopped = True

    def get_state(self) -> tuple[list[Any], list[Any], bool]:
        return list(self.seen), list(self.failures), self.stopped


def _ctx(host: Any, node_id: str = "n1") -> Any:
    return host.ctx(node_id)


def _spawn(host: Any) -> pykka.ActorRef[Any]:
    return _ctx(host).spawn(Echo)


def test_ask_gets_the_reply(host: Any) -> None:
    ref = _spawn(host)
    assert ref.ask("hi", timeout=5) == ("echo", "hi")
    ref.stop(timeout=5)


def test_exception_propagates_to_the_asker_and_actor_lives(host: Any) -> None:
    ref = _spawn(host)
    with pytest.raises(ValueError, match="boom"):
        ref.ask("boom", timeout=5)
    assert ref.is_alive()
    assert ref.ask("after", timeout=5) == ("echo", "after")
    ref.stop(timeout=5)


def test_told_exception_calls_on_failure_and_stops_the_actor(host: Any) -> None:
    ref = _spawn(host)
    proxy_state = ref.proxy().get_state
    assert proxy_state().get(timeout=5) == ([], [], False)
    actor = ref._actor_weakref()  # inspect after death without asking the dead actor
    ref.tell("boom")
    host.run_for(0.1)
    assert not ref.is_alive()
    assert actor is not None and actor.failures == [ValueError]


def test_dead_actor_raises_actor_dead_error(host: Any) -> None:
    ref = _spawn(host)
    assert ref.stop(timeout=5) is True
    with pytest.raises(pykka.ActorDeadError):
        ref.tell("late")
    with pytest.raises(pykka.ActorDeadError):
        ref.ask("late", timeout=5)
    assert ref.stop(timeout=5) is False


def test_queued_asks_after_stop_get_actor_dead_error(host: Any) -> None:
    ref = _spawn(host)
    stop = ref.stop(block=False)
    late = ref.ask("queued", block=False)
    assert stop.get(timeout=5) is True
    with pytest.raises(pykka.ActorDeadError):
        late.get(timeout=5)


def test_messages_are_handled_in_order(host: Any) -> None:
    a, b = _spawn(host), _spawn(host)
    for i in range(50):
        a.tell(i)
        b.tell(i)
    assert a.proxy().get_state().get(timeout=5)[0] == list(range(50))
    assert b.proxy().get_state().get(timeout=5)[0] == list(range(50))
    a.stop(timeout=5)
    b.stop(timeout=5)


class TurnRecorder(ScheduledActor):
    """Records each message and, at each ``on_turn_end``, how many the turn handled."""

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.seen: list[Any] = []
        self.turns: list[int] = []
        self._this_turn = 0

    def on_receive(self, message: Any) -> Any:
        self.seen.append(message)
        self._this_turn += 1
        if message == "echo-self":
            self.actor_ref.tell("from-self")
        return None

    def on_turn_end(self) -> None:
        self.turns.append(self._this_turn)
        self._this_turn = 0

    def get_state(self) -> tuple[list[Any], list[int]]:
        return list(self.seen), list(self.turns)


def test_a_turn_handles_what_waits_up_to_the_bound_then_calls_on_turn_end(host: Any) -> None:
    from actors.kernel.scheduled import TURN_ENVELOPES

    ref = _ctx(host).spawn(TurnRecorder)
    total = 2 * TURN_ENVELOPES + 10
    for i in range(total):
        ref.tell(i)
    ref.proxy().get_state().get(timeout=5)  # a proxy call: one more envelope, not counted
    seen, turns = ref.proxy().get_state().get(timeout=5)  # asked after that turn ended
    assert seen == list(range(total))
    assert sum(turns) == total
    # A turn that held only the first proxy call (when the tells were all handled
    # before it arrived, as a loaded asyncio host can do) handled no told message.
    assert turns.count(0) <= 1
    assert all(0 <= n <= TURN_ENVELOPES for n in turns)
    if type(host).__name__ == "CacheSimHost":  # every tell is queued before the first turn runs
        assert turns == [TURN_ENVELOPES, TURN_ENVELOPES, 10]
    ref.stop(timeout=5)


def test_what_an_actor_tells_itself_waits_for_the_next_turn(host: Any) -> None:
    ref = _ctx(host).spawn(TurnRecorder)
    ref.tell("echo-self")
    host.run_for(0.05)
    seen, turns = ref.proxy().get_state().get(timeout=5)
    assert seen[:2] == ["echo-self", "from-self"]
    assert turns[:2] == [1, 1]  # "from-self" was not handled in the turn that sent it
    ref.stop(timeout=5)


def test_blocking_inside_a_turn_is_refused(host: Any) -> None:
    ref = _spawn(host)
    with pytest.raises(BlockingCallInActorError):
        ref.ask("block", timeout=5)
    ref.stop(timeout=5)


def test_actor_ids_are_deterministic(host: Any) -> None:
    ctx = _ctx(host, "nodeX")
    refs = [ctx.spawn(Echo) for _ in range(3)]
    assert [r.actor_urn for r in refs] == ["nodeX/Echo/0", "nodeX/Echo/1", "nodeX/Echo/2"]
    for r in refs:
        r.stop(timeout=5)


def test_timer_delivers_a_message(host: Any) -> None:
    ctx = _ctx(host)
    ref = ctx.spawn(Echo)
    start = host.now()
    ctx.call_later(0.05, ref, "timer")
    host.run_for(0.3)
    assert ref.proxy().get_state().get(timeout=5)[0] == ["timer"]
    assert host.now() - start >= 0.05
    ref.stop(timeout=5)


def test_cancelled_timer_never_fires(host: Any) -> None:
    ctx = _ctx(host)
    ref = ctx.spawn(Echo)
    timer = ctx.call_later(0.05, ref, "timer")
    timer.cancel()
    host.run_for(0.2)
    assert ref.proxy().get_state().get(timeout=5)[0] == []
    ref.stop(timeout=5)


# --- survive_failures: the switch the node's service actors turn on --------------------------


class Survivor(Echo):
    """``Echo`` that lives through told exceptions (``survive_failures``)."""

    survive_failures = True

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.turn_end_boom = False

    def on_receive(self, message: Any) -> Any:
        if message == "boom-at-turn-end":
            self.turn_end_boom = True
            return None
        if message == "boom-base":
            raise KeyboardInterrupt("a BaseException still stops the actor")
        if not isinstance(message, str):  # ReportFailuresTo: the base class's (Echo keeps the rest)
            return ScheduledActor.on_receive(self, message)
        return super().on_receive(message)

    def on_turn_end(self) -> None:
        if self.turn_end_boom:
            self.turn_end_boom = False
            raise RuntimeError("turn end")

    def counts(self) -> tuple[int, list[Any]]:
        return self.actor_failures, list(self.failures)


class Sink(ScheduledActor):
    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.reports: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        self.reports.append(message)
        return None

    def get_reports(self) -> list[Any]:
        return list(self.reports)


def test_a_surviving_actor_lives_through_a_told_exception_counts_and_reports_it(
    host: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from actors.kernel.failures import ActorFailed, ReportFailuresTo

    ctx = _ctx(host)
    sink = ctx.spawn(Sink)
    ref = ctx.spawn(Survivor)
    ref.tell(ReportFailuresTo(sink))
    ref.tell("boom")
    ref.tell("boom-at-turn-end")
    host.run_for(0.1)
    assert ref.is_alive()
    assert ref.ask("after", timeout=5) == ("echo", "after")
    failures, on_failure_calls = ref.proxy().counts().get(timeout=5)
    assert failures == 2
    assert on_failure_calls == []  # nothing stopped, so on_failure is not called
    urn = ref.actor_urn
    assert sink.proxy().get_reports().get(timeout=5) == [
        ActorFailed(urn, "handling str"),
        ActorFailed(urn, "on_turn_end"),
    ]
    logged = [r for r in caplog.records if "lives on" in r.getMessage()]
    assert len(logged) == 2  # once each
    ref.stop(timeout=5)
    sink.stop(timeout=5)


def test_a_surviving_actor_still_stops_on_a_base_exception() -> None:
    """Simulator only: there the ``BaseException`` reaches whoever drives the host (on the
    asyncio host it would end the loop's thread, as it ends a real node's process)."""
    from sim.cache_host import CacheSimHost

    host = CacheSimHost(seed=1)
    ref = host.ctx("n1").spawn(Survivor)
    ref.tell("boom-base")
    with pytest.raises(KeyboardInterrupt):
        host.run_for(0.1)
    assert not ref.is_alive()
    pykka.ActorRegistry.unregister(ref)


def test_the_node_actors_survive_failures_and_pykka_s_default_is_kept() -> None:
    from actors.store.janitor import Janitor
    from actors.node.actor import Node
    from actors.cluster.replicator import Replicator
    from actors.store.actor import Store

    assert ScheduledActor.survive_failures is False
    assert all(cls.survive_failures for cls in (Node, Store, Replicator, Janitor))
