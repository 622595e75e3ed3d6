"""RequestMetrics (the node's requests by command and outcome, latency by command and level)
against a plain model, batch by batch: its fast paths (one request; one kind answered ok;
runs) must count exactly what a request-by-request count would."""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from actors.kernel.latency import LATENCY_BUCKETS_S, quantile
from actors.node.request_metrics import RequestMetrics
from actors.protocol.errors import ErrorCode
from actors.protocol.messages import Ack, ErrorReply, Expire, Get, Ping, Set, Value

REQUESTS = {
    "get": lambda level: Get("k", consistency=level),
    "set": lambda level: Set("k", 1, consistency=level),
    "ping": lambda level: Ping(),
    "expire": lambda level: Expire("k", 5.0),
    "persist": lambda level: Expire("k", None),
    "invalid": lambda level: ErrorReply(ErrorCode.BAD_REQUEST, "bad"),
}
DEFAULTS = {"get": "one", "set": "quorum"}

request_st = st.tuples(
    st.sampled_from(sorted(REQUESTS)),
    st.sampled_from([None, "one", "quorum", "all"]),
    st.sampled_from(["ok", "timeout", "unavailable"]),
)
# mixed batches, and batches of one request repeated (a pipelined client's usual batch)
batch_st = st.tuples(
    st.one_of(
        st.lists(request_st, min_size=1, max_size=20),
        st.builds(lambda request, n: [request] * n, request_st, st.integers(2, 16)),
    ),
    st.floats(0, 10, allow_nan=False),
)


def _reply(name: str, outcome: str) -> Any:
    if name == "invalid":
        return ErrorReply(ErrorCode.BAD_REQUEST, "bad")
    if outcome != "ok":
        return ErrorReply(ErrorCode(outcome), "x")
    return Value(1, True) if name == "get" else Ack()


def _model(batches: list[tuple[list[tuple[str, Any, str]], float]]) -> tuple[Counter, Counter]:
    outcomes: Counter = Counter()
    latency: Counter = Counter()
    for batch, seconds in batches:
        for name, level, outcome in batch:
            outcome = "bad_request" if name == "invalid" else outcome
            outcomes[(name, outcome)] += 1
            latency[(name, (level or DEFAULTS[name]) if name in DEFAULTS else "none", bisect_left(LATENCY_BUCKETS_S, seconds))] += 1
    return outcomes, latency


@settings(max_examples=60, deadline=None)
@given(st.lists(batch_st, min_size=1, max_size=8))
def test_counts_match_a_request_by_request_model(batches: list[tuple[list[tuple[str, Any, str]], float]]) -> None:
    metrics = RequestMetrics("one", "quorum")
    for batch, seconds in batches:
        requests = tuple(REQUESTS[name](level) for name, level, _ in batch)
        replies = [_reply(name, outcome) for name, _, outcome in batch]
        metrics.record(requests, replies, seconds)
    snapshot = metrics.snapshot()
    outcomes, latency = _model(batches)
    got_outcomes = Counter({(c, o): n for c, by in snapshot["requests_by_command"].items() for o, n in by.items()})
    assert got_outcomes == outcomes
    got_latency: Counter = Counter()
    for command, levels in snapshot["request_latency"].items():
        for level, histogram in levels.items():
            for bucket, n in enumerate(histogram["counts"]):
                if n:
                    got_latency[(command, level, bucket)] += n
    assert got_latency == latency


def test_quantile_reads_bucket_bounds() -> None:
    counts = [0] * (len(LATENCY_BUCKETS_S) + 1)
    assert quantile(counts, 0.99) is None
    counts[3] = 99  # <= 1 ms
    counts[-1] = 1  # past 5 s
    assert quantile(counts, 0.5) == LATENCY_BUCKETS_S[3]
    assert quantile(counts, 0.99) == LATENCY_BUCKETS_S[3]
    assert quantile(counts, 1.0) == float("inf")
