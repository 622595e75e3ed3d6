"""The default configuration survives every built-in scenario, and every disk-fault
scenario (``scenarios/disk-*.toml``, issue 17), over 20 seeds.

Each scenario's sweep is one test (so ``pytest -n 3`` spreads them over both cores);
``python -m sim.sweep SCENARIO --seeds 1-500`` is the same check at depth, run by hand.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sim.scenario import BUILTIN

ROOT = Path(__file__).resolve().parent.parent
SEEDS = "1-20"
#: The disk-fault scenario files, by their path from the repository's root (what
#: ``python -m sim.sweep`` takes, and the test's id).
DISK_SCENARIOS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "scenarios").glob("disk-*.toml"))
#: Every scenario swept here: the built-ins by name, then the disk files.
SWEPT = [*BUILTIN, *DISK_SCENARIOS]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("scenario", SWEPT)
def test_no_violation_over_20_seeds(scenario: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sim.sweep", scenario, "--seeds", SEEDS, "--jobs", "1", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=580,
    )
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["seeds"] == 20
    assert summary["violating_seeds"] == [], proc.stdout
    assert proc.returncode == 0
