"""bench/profile_shares.py: py-spy's collapsed stacks summed by the innermost frame's part."""

from __future__ import annotations

from pathlib import Path

from bench.profile_shares import main, part_of, shares

LINES = [
    "<module> (runtime/node.py:1);_run_once (asyncio/base_events.py:1);select (selectors.py:468) 6",
    "<module> (runtime/node.py:1);_dispatch_turn (actors/kernel/scheduled.py:280);plan (actors/node/local_plan.py:110) 3",
    "<module> (runtime/node.py:1);set (actors/store/keyspace.py:290) 1",
    "garbage line without a count",
]


def test_each_sample_is_charged_to_its_innermost_frame() -> None:
    total, parts, functions = shares(LINES)
    assert total == 10
    assert parts == {"event loop and socket calls": 6, "node (planning, ordering, replies)": 3, "store": 1}
    assert functions["plan (node/local_plan.py)"] == 3
    assert part_of("data_received (runtime/connection.py:200)") == "connections (runtime)"
    assert part_of("feed (runtime/framing.py:150)") == "decoding requests"
    assert part_of("mystery (somewhere.py:1)") == "other"


def test_the_command_prints_the_shares(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    raw = tmp_path / "node.raw"
    raw.write_text("\n".join(LINES) + "\n")
    assert main([str(raw), "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert "| event loop and socket calls | 60% |" in out
    assert "| store | 10% |" in out
