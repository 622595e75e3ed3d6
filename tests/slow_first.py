"""Long tests spread over the workers from the start, so ``pytest -n 3`` does not end on
one worker running long tests alone while the others idle.

How xdist's default ``--dist load`` hands out tests (xdist 3.x, ``LoadScheduling``): each
worker first gets a *consecutive chunk* of the collection, ``len(items) // workers // 4``
tests (about 175 of 2,100 with 3 workers), then more, a few at a time, as it runs out.
Collected in alphabetical order, the long tests (each built-in scenario's 20-seed sweep, the
notebooks, the benchmark smoke runs) came last and the suite ended on one of them; sorted
longest first, they all fell into worker 0's first chunk and ran one after the other there.
So :func:`arrange` deals the long ones out as a scheduler would (longest first, each to the
worker with the least work so far) and puts each worker's share at the head of the chunk
that worker is sent first, filled up with the other tests in their usual order. A file
listed as a whole moves as one piece, so a module-scoped node or cluster is still started
once. It changes when tests run, never what they do; with another scheduler or worker count
it is still a valid order, only a less useful one.

The figures are CPU seconds (user + system, the test process and its reaped children, from
``resource.getrusage``), measured one file at a time on the shared 2-core machine in session
24; only their relative sizes matter. A new long test belongs here with its own figure.
"""

from __future__ import annotations

import os

import pytest

#: CPU seconds per test (``path::name[param]``) or per file (``path``), roughly.
KNOWN_SLOW: dict[str, float] = {
    # 20 seeds each in one subprocess: 20 x the scenario's CPU per seed (seeds 1 and 2, in process)
    "tests/test_sim_sweep.py::test_no_violation_over_20_seeds[partition-heal]": 131.0,
    "tests/test_sim_sweep.py::test_no_violation_over_20_seeds[rolling-restart]": 127.0,
    "tests/test_sim_sweep.py::test_no_violation_over_20_seeds[join-under-load]": 74.0,
    "tests/test_sim_sweep.py::test_no_violation_over_20_seeds[crash-restart]": 67.0,
    "tests/test_sim_sweep.py::test_no_violation_over_20_seeds[lossy-network]": 56.0,
    "tests/test_sim_sweep.py::test_no_violation_over_20_seeds[leave-during-crash-restart]": 56.0,
    "tests/test_sim_sweep.py::test_no_violation_over_20_seeds[random-nemesis]": 45.0,
    "tests/test_sim_sweep.py::test_no_violation_over_20_seeds[clock-skew-ttl]": 40.0,
    "tests/test_sim_sweep.py::test_no_violation_over_20_seeds[clock-skew-beyond-bound]": 36.0,
    "tests/test_sim_sweep.py::test_no_violation_over_20_seeds[stranger]": 34.0,
    # the disk-fault scenario files (session 25: measured whole, ``python -m sim.sweep FILE
    # --seeds 1-20 --jobs 1``, user + system; the four one-node files are under 5 s, not listed)
    "tests/test_sim_sweep.py::test_no_violation_over_20_seeds[scenarios/disk-partition-hashes.toml]": 47.0,
    "tests/test_sim_sweep.py::test_no_violation_over_20_seeds[scenarios/disk-cluster-old-snapshot.toml]": 17.0,
    "tests/test_bench_smoke.py": 35.0,
    "tests/test_notebooks.py": 30.0,
    "tests/test_sim_cli.py": 25.0,
    "tests/test_real_mode.py": 25.0,
    "tests/test_cluster_integration.py": 20.0,
    "tests/test_sim_shrink.py": 12.0,
    "tests/test_sim_checkers.py": 12.0,
}


def cost(nodeid: str) -> float:
    """The table's figure for a test: its own, else its file's, else 0."""
    if nodeid in KNOWN_SLOW:
        return KNOWN_SLOW[nodeid]
    return KNOWN_SLOW.get(nodeid.split("::", 1)[0], 0.0)


def _units(items: list[pytest.Item]) -> tuple[list[tuple[float, list[pytest.Item]]], list[pytest.Item]]:
    """The long pieces (a listed test alone, or every test of a listed file together, in
    their order) with their figures, longest first; and the other tests in their order."""
    pieces: dict[str, tuple[float, list[pytest.Item]]] = {}
    rest: list[pytest.Item] = []
    for item in items:
        nodeid = item.nodeid
        path = nodeid.split("::", 1)[0]
        key = nodeid if nodeid in KNOWN_SLOW else path if path in KNOWN_SLOW else None
        if key is None:
            rest.append(item)
        else:
            pieces.setdefault(key, (KNOWN_SLOW[key], []))[1].append(item)
    ordered = sorted(pieces.values(), key=lambda piece: -piece[0])  # (stable: ties keep their order)
    return ordered, rest


def arrange(items: list[pytest.Item], workers: int) -> None:
    """Order ``items`` in place for ``workers`` xdist workers (see the module docstring)."""
    pieces, rest = _units(items)
    if workers <= 1:
        items[:] = [item for _, piece in pieces for item in piece] + rest
        return
    chunk = max(2, len(items) // workers // 4)  # xdist's first batch per worker
    lanes: list[list[pytest.Item]] = [[] for _ in range(workers)]
    loads = [0.0] * workers
    for figure, piece in pieces:
        lane = min(range(workers), key=lambda w: (loads[w], w))
        lanes[lane].extend(piece)
        loads[lane] += figure
    out: list[pytest.Item] = []
    late: list[pytest.Item] = []
    filler = iter(rest)
    for lane in lanes:
        out.extend(lane[:chunk])
        late.extend(lane[chunk:])  # (a lane longer than a chunk: the rest is handed out early anyway)
        for _ in range(chunk - min(len(lane), chunk)):
            item = next(filler, None)
            if item is None:
                break
            out.append(item)
    items[:] = out + late + list(filler)


def longest_first(items: list[pytest.Item], workers: int | None = None) -> None:
    """:func:`arrange` for this run's worker count (``PYTEST_XDIST_WORKER_COUNT``, set in
    every xdist worker, which each collect and must agree on the order)."""
    if workers is None:
        workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    arrange(items, workers)
