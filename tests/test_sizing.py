"""Size accounting: the iterative walk gives the numbers the recursive definition gave,
and a value of any depth is sized without raising."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import given, settings, strategies as st

from actors.store.sizing import estimate_size

#: Run long with e.g. ``ACTORCACHE_HYPOTHESIS_EXAMPLES=20000 pytest tests/test_sizing.py``.
EXAMPLES = int(os.environ.get("ACTORCACHE_HYPOTHESIS_EXAMPLES", "400"))


def recursive_estimate(value: Any) -> int:
    """The definition before the walk became iterative (kept verbatim as the oracle)."""
    t = type(value)
    if t is str:
        return 49 + len(value)
    if t is bytes:
        return 33 + len(value)
    if t is list or t is tuple:
        return 56 + 8 * len(value) + sum(recursive_estimate(v) for v in value)
    if t is dict:
        return 56 * 2 + 24 * len(value) + sum(recursive_estimate(k) + recursive_estimate(v) for k, v in value.items())
    return 32


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=40)
    | st.binary(max_size=40)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=6)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(st.text(max_size=6) | st.binary(max_size=4) | st.integers(), inner, max_size=5)
    ),
    max_leaves=40,
)


@settings(derandomize=True, max_examples=EXAMPLES, deadline=None)
@given(values)
def test_iterative_walk_matches_the_recursive_definition(value: Any) -> None:
    assert estimate_size(value) == recursive_estimate(value)


def _nest(depth: int, leaf: Any = "x", wrap: Any = lambda v: [v]) -> Any:
    value = leaf
    for _ in range(depth):
        value = wrap(value)
    return value


def test_deep_values_within_recursion_range_match_the_oracle() -> None:
    for depth in (0, 1, 2, 50, 300):  # the oracle takes two frames per level
        for value in (_nest(depth), _nest(depth, b"ab", lambda v: {"k": v}), _nest(depth, 7, lambda v: (v, 1.5))):
            assert estimate_size(value) == recursive_estimate(value)


def test_a_100000_deep_value_is_sized_without_raising() -> None:
    depth = 100_000
    assert estimate_size(_nest(depth)) == 49 + 1 + depth * (56 + 8)
    assert estimate_size(_nest(depth, None, lambda v: {"k": v})) == 32 + depth * (112 + 24 + 49 + 1)


def test_wide_values_are_summed_item_by_item() -> None:
    wide = list(range(100_000))
    assert estimate_size(wide) == 56 + 8 * len(wide) + 32 * len(wide)
    assert estimate_size({str(i): i for i in range(1000)}) == recursive_estimate({str(i): i for i in range(1000)})
