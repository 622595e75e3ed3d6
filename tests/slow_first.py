"""Longest tests first, so ``pytest -n 3`` does not end on one worker running a long test.

xdist's default ``--dist load`` hands tests out round-robin in collection order, then to
whichever worker is free. With the long ones (each built-in scenario's 20-seed sweep, the
notebooks, the benchmark smoke runs) collected last, as alphabetical order did, the suite's
tail was one of them running alone on one core while the other idled. This orders the
collection by :data:`KNOWN_SLOW`, longest first; files keep their own order inside (so a
module-scoped node or cluster is still started once per worker), unlisted tests follow in
their usual order. It changes when tests run, never what they do.

The figures are CPU seconds (user + system, the test process and its reaped children, from
``resource.getrusage``), measured one file at a time on the shared 2-core machine in session
24; only their order matters. A new long test belongs here with its own figure.
"""

from __future__ import annotations

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


def longest_first(items: list[pytest.Item]) -> None:
    """Sort ``items`` in place by :func:`cost`, descending; stable, so ties keep their order."""
    items.sort(key=lambda item: -cost(item.nodeid))
