"""tests/slow_first.py's table names tests that exist (a renamed file would silently lose its place)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from sim.scenario import BUILTIN
from tests.slow_first import KNOWN_SLOW, arrange, cost
from tests.test_sim_sweep import SWEPT

ROOT = Path(__file__).resolve().parent.parent


def test_every_entry_names_an_existing_file_or_sweep_scenario() -> None:
    for nodeid in KNOWN_SLOW:
        path, _, name = nodeid.partition("::")
        assert (ROOT / path).is_file(), nodeid
        if name:
            assert name.startswith("test_no_violation_over_20_seeds[") and name[32:-1] in SWEPT, nodeid


def test_every_builtin_scenario_sweep_is_listed() -> None:
    missing = [s for s in BUILTIN if f"tests/test_sim_sweep.py::test_no_violation_over_20_seeds[{s}]" not in KNOWN_SLOW]
    assert missing == []


def test_a_test_takes_its_own_figure_else_its_files() -> None:
    assert cost("tests/test_sim_sweep.py::test_no_violation_over_20_seeds[partition-heal]") > cost("tests/test_notebooks.py")
    assert cost("tests/test_notebooks.py::test_kernel_is_this_python") == KNOWN_SLOW["tests/test_notebooks.py"]
    assert cost("tests/test_kinds.py::test_anything") == 0.0


def _fake(nodeids: list[str]) -> list[SimpleNamespace]:
    return [SimpleNamespace(nodeid=n) for n in nodeids]


def test_the_long_tests_are_dealt_out_to_every_worker_s_first_chunk() -> None:
    """xdist's load scheduler sends worker k the k-th consecutive chunk of len // workers // 4
    tests first: each chunk must open with about a third of the long work, not worker 0 with all."""
    sweeps = [n for n in KNOWN_SLOW if "::" in n]
    files = {path: [f"{path}::test_{i}" for i in range(6)] for path in KNOWN_SLOW if "::" not in path}
    others = [f"tests/test_small_{i // 20}.py::test_{i}" for i in range(2100)]
    nodeids = others[:1000] + [n for group in files.values() for n in group] + sweeps + others[1000:]
    items = _fake(nodeids)
    arrange(items, 3)
    order = [item.nodeid for item in items]
    assert sorted(order) == sorted(nodeids)  # every test once
    chunk = len(order) // 3 // 4
    loads = []
    for k in range(3):
        head = order[k * chunk:(k + 1) * chunk]
        loads.append(sum(KNOWN_SLOW.get(n, 0.0) for n in head)
                     + sum(KNOWN_SLOW[path] for path in files if f"{path}::test_0" in head))
    assert sum(loads) == sum(KNOWN_SLOW.values())  # all the long work is in the first chunks
    assert max(loads) <= 1.3 * min(loads), loads
    for path, group in files.items():  # a file listed as a whole stays together, in its order
        at = order.index(group[0])
        assert order[at:at + len(group)] == group
    small = [n for n in order if n.startswith("tests/test_small_")]
    assert small == [n for n in nodeids if n.startswith("tests/test_small_")]  # the rest keep their order


def test_one_worker_runs_the_long_tests_first() -> None:
    items = _fake(["tests/test_a.py::test_x", "tests/test_notebooks.py::test_y", *KNOWN_SLOW][:5])
    arrange(items, 1)
    assert cost(items[0].nodeid) == max(cost(item.nodeid) for item in items)
    assert items[-1].nodeid == "tests/test_a.py::test_x"
