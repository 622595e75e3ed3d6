"""--event-loop: which loop a node runs on (runtime/event_loop.py), and that it falls back."""

from __future__ import annotations

import pytest

from runtime import event_loop
from runtime.event_loop import event_loop_choice
from runtime.node import parse_args

needs_uvloop = pytest.mark.skipif(not event_loop.UVLOOP_AVAILABLE, reason="uvloop is not installed")


def test_explicit_asyncio_and_unknown_names() -> None:
    assert event_loop_choice("asyncio") == "asyncio"
    assert event_loop_choice("asyncio", tls=True) == "asyncio"
    with pytest.raises(ValueError, match="unknown event loop"):
        event_loop_choice("trio")


def test_auto_is_asyncio_with_tls_or_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACTORCACHE_EVENT_LOOP", raising=False)
    assert event_loop_choice("auto", tls=True) == "asyncio"
    monkeypatch.setattr(event_loop, "UVLOOP_AVAILABLE", False)
    monkeypatch.setattr(event_loop, "_uvloop", None)
    assert event_loop_choice("auto") == "asyncio"
    with pytest.raises(ValueError, match="not installed"):
        event_loop_choice("uvloop")


@needs_uvloop
def test_uvloop_when_asked_but_never_with_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    assert event_loop_choice("uvloop") == "uvloop"
    with pytest.raises(ValueError, match="TLS"):
        event_loop_choice("uvloop", tls=True)
    monkeypatch.delenv("ACTORCACHE_EVENT_LOOP", raising=False)
    assert event_loop_choice("auto") == ("uvloop" if event_loop.AUTO_UVLOOP else "asyncio")
    monkeypatch.setenv("ACTORCACHE_EVENT_LOOP", "uvloop")
    assert event_loop_choice("auto") == "uvloop"
    assert event_loop_choice("auto", tls=True) == "asyncio"  # the environment's uvloop yields to TLS


def test_the_node_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_args(["n", "0", "--event-loop", "asyncio"]).event_loop == "asyncio"
    with pytest.raises(SystemExit) as exit_:
        parse_args(["n", "0", "--event-loop", "trio"])
    assert exit_.value.code == 2
