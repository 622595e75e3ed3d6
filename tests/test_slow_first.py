"""tests/slow_first.py's table names tests that exist (a renamed file would silently lose its place)."""

from __future__ import annotations

from pathlib import Path

from sim.scenario import BUILTIN
from tests.slow_first import KNOWN_SLOW, cost

ROOT = Path(__file__).resolve().parent.parent


def test_every_entry_names_an_existing_file_or_sweep_scenario() -> None:
    for nodeid in KNOWN_SLOW:
        path, _, name = nodeid.partition("::")
        assert (ROOT / path).is_file(), nodeid
        if name:
            assert name.startswith("test_no_violation_over_20_seeds[") and name[32:-1] in BUILTIN, nodeid


def test_every_builtin_scenario_sweep_is_listed() -> None:
    missing = [s for s in BUILTIN if f"tests/test_sim_sweep.py::test_no_violation_over_20_seeds[{s}]" not in KNOWN_SLOW]
    assert missing == []


def test_a_test_takes_its_own_figure_else_its_files() -> None:
    assert cost("tests/test_sim_sweep.py::test_no_violation_over_20_seeds[partition-heal]") > cost("tests/test_notebooks.py")
    assert cost("tests/test_notebooks.py::test_kernel_is_this_python") == KNOWN_SLOW["tests/test_notebooks.py"]
    assert cost("tests/test_kinds.py::test_anything") == 0.0
