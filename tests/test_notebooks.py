"""The notebooks in ``notebooks/``, executed top to bottom as a reader would run them.

Each runs in a fresh kernel of this very Python (the project's ``.venv``) under 90 s and
must draw at least one figure. The files on disk carry no outputs or execution counts, so
diffs show code, not stale results. ``sim_vs_real`` starts real node subprocesses; it
must reap them even when a cell fails.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbclient
import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
LIMIT_S = 90.0
KERNEL = "python3"

pytestmark = pytest.mark.timeout(180)

#: Parameters the top-to-bottom run injects after each notebook's ``parameters`` cell, as
#: papermill would: the same cells, figures and tables from fewer simulated runs, since the
#: suite checks that a reader's run works, not the figures' statistics (about a third of
#: the CPU of the committed parameters). Each kept value still exercises every branch: two
#: points per curve, hints on and off, both write levels, several seeds where a figure
#: scatters seeds, and the real cluster's trace split into calibration and comparison.
SMALL = {
    "partition_recovery": {"SEEDS": "(1, 2)", "DURATIONS": "(1, 8)", "INTERVALS": "(0.25, 2.0)", "LOST_SEEDS": "range(1, 3)"},
    # Its cost is the 45 simulated runs (3 links x 5 replica counts x 3 levels) and their fixed
    # settle time, not OPS (OPS = 60 cost as much CPU as 300): nothing smaller to inject.
    "replication_latency": {},
    "sim_vs_real": {"OPS": "600"},
}


def _params(paths: list[Path]) -> list[object]:
    """sim_vs_real talks to real node subprocesses: marked ``integration`` like the others."""
    return [pytest.param(p, id=p.stem, marks=[pytest.mark.integration] if p.stem == "sim_vs_real" else []) for p in paths]


def _client(nb: object, **kwargs: object) -> nbclient.NotebookClient:
    return nbclient.NotebookClient(
        nb,
        timeout=LIMIT_S,
        kernel_name=KERNEL,
        resources={"metadata": {"path": str(NOTEBOOKS)}},
        # No IPython history database: kernels of parallel test workers would share one.
        extra_arguments=["--HistoryManager.enabled=False"],
        **kwargs,
    )


def _with_overrides(nb: object, overrides: dict[str, str]) -> object:
    """A code cell setting ``overrides`` right after the cell tagged ``parameters``."""
    if not overrides:
        return nb
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    source = "\n".join(f"{name} = {value}" for name, value in overrides.items())
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source))
    return nb


def _images(nb: object) -> int:
    return sum(
        1
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if "image/png" in out.get("data", {})
    )


def test_there_are_three_notebooks() -> None:
    assert [p.stem for p in PATHS] == ["partition_recovery", "replication_latency", "sim_vs_real"]
    assert sorted(SMALL) == [p.stem for p in PATHS]  # every notebook runs with small parameters


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_small_parameters_name_the_notebooks_own(path: Path) -> None:
    """An override of a parameter the notebook dropped or renamed would silently do nothing."""
    cell = next(c for c in nbformat.read(path, as_version=4).cells if "parameters" in c.metadata.get("tags", []))
    assigned = {line.split("=", 1)[0].strip() for line in cell.source.splitlines() if "=" in line and not line.startswith("#")}
    assert set(SMALL[path.stem]) <= assigned, (path.stem, sorted(assigned))


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_committed_notebook_is_clean(path: Path) -> None:
    """No outputs, no execution counts, the project kernel, inline (non-interactive) plots."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == KERNEL
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    for cell in code:
        assert cell.outputs == [], f"{path.name}: a cell keeps outputs; clear them before committing"
        assert cell.execution_count is None, f"{path.name}: a cell keeps an execution count"
    assert any("parameters" in c.metadata.get("tags", []) for c in code), "no cell tagged parameters"
    assert any("%matplotlib inline" in c.source for c in code), "plots must use the inline backend"


def test_kernel_is_this_python() -> None:
    """``python3`` resolves to the interpreter running the tests (the project's .venv),
    which is what runs the notebooks' code and has the project installed."""
    spec = KernelSpecManager().get_kernel_spec(KERNEL)
    exe = spec.argv[0]
    assert exe in ("python", "python3", sys.executable) or Path(exe).resolve() == Path(sys.executable).resolve(), spec.argv


@pytest.mark.parametrize("path", _params(PATHS))
def test_notebook_runs_top_to_bottom(path: Path) -> None:
    nb = _with_overrides(nbformat.read(path, as_version=4), SMALL[path.stem])
    started = time.monotonic()
    _client(nb).execute()
    elapsed = time.monotonic() - started
    assert elapsed < LIMIT_S, f"{path.name} took {elapsed:.1f} s"
    assert _images(nb) >= 1, f"{path.name} drew no figure"
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors


def _node_processes(marker: str) -> list[int]:
    """Pids of live processes whose command line mentions ``marker``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next((ln for ln in (entry / "status").read_text().splitlines() if ln.startswith("State:")), "")
        except OSError:
            continue
        if marker in cmdline and "runtime.node" in cmdline and "Z" not in state.split()[1:2]:
            pids.append(int(entry.name))
    return pids


@pytest.mark.integration
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sim_vs_real_reaps_its_nodes_when_a_cell_fails(tmp_path: Path) -> None:
    traces = tmp_path / "traces"
    # OPS = None makes the workload fail once the cluster is up, inside the cell that started it.
    nb = _with_overrides(nbformat.read(NOTEBOOKS / "sim_vs_real.ipynb", as_version=4),
                         {"TRACE_DIR": repr(str(traces)), "OPS": "None"})
    client = _client(nb)
    failed = False
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            try:
                client.execute_cell(cell, index)
            except CellExecutionError:
                failed = True
                break
        # The kernel is still alive: what reaped the nodes was the cell's own cleanup.
        assert failed, "the injected failure did not happen"
        assert "listening on" in (traces / "node3.log").read_text(), "the cluster never started"
        assert _node_processes(str(traces)) == []
