"""The one continuation table an actor keeps for everything it waits on."""

from __future__ import annotations

import itertools

from actors.kernel.continuations import Continuations


def test_an_answer_resumes_its_continuation_once_and_unknown_ids_are_ignored() -> None:
    seen: list[tuple[str, object]] = []
    table: Continuations[object] = Continuations(itertools.count(10))
    a = table.add(lambda answer: seen.append(("a", answer)))
    b = table.add(lambda answer: seen.append(("b", answer)))
    assert (a, b) == (10, 11) and len(table) == 2 and a in table
    assert table.resume(b, "B") is True
    assert table.resume(b, "again") is False  # answered twice: continues nothing
    assert table.resume(999, "stray") is False  # never asked
    table.discard(a)
    assert table.resume(a, "late") is False  # given up on: its answer is ignored
    assert seen == [("b", "B")] and len(table) == 0


def test_a_continuation_may_file_the_next_one() -> None:
    table: Continuations[int] = Continuations()
    out: list[int] = []

    def step(n: int) -> None:
        out.append(n)
        if n < 3:
            nxt = table.add(step)
            table.resume(nxt, n + 1)

    table.resume(table.add(step), 1)
    assert out == [1, 2, 3] and len(table) == 0
