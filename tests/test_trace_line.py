"""The trace line format: exactly ``json.dumps`` with sorted keys and compact separators."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings, strategies as st

from actors.kernel.trace import trace_line

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


@given(
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e9, max_value=1e9),
    st.text(max_size=10),
    st.text(max_size=10),
    st.dictionaries(st.text(max_size=10).filter(lambda k: k not in ("t", "node", "kind")), values, max_size=5),
)
@settings(max_examples=300, deadline=None)
def test_trace_line_is_sorted_compact_json(t: float, node: str, kind: str, fields: dict[str, Any]) -> None:
    expected = json.dumps({"t": round(t, 6), "node": node, "kind": kind, **fields}, sort_keys=True, separators=(",", ":"))
    assert trace_line(t, node, kind, fields) == expected


def test_an_unserializable_field_raises_type_error() -> None:
    import pytest

    with pytest.raises(TypeError, match="not JSON serializable"):
        trace_line(1.0, "n", "k", {"x": object()})


def test_a_field_cannot_overwrite_the_envelope() -> None:
    """An event whose details carry a ``kind`` (e.g. the message kind a refusal names) keeps
    its own kind, node and time: a trace reader files it under the event it is."""
    line = json.loads(trace_line(1.5, "n1", "version_refused", {"kind": "ReplicaResponse", "node": "x", "t": 9, "peer": "n2"}))
    assert (line["t"], line["node"], line["kind"], line["peer"]) == (1.5, "n1", "version_refused", "n2")
