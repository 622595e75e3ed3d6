"""The default configuration survives every built-in scenario over 20 seeds.

Each scenario's sweep is one test (so ``pytest -n 2`` spreads them over both cores);
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


@pytest.mark.timeout(600)
@pytest.mark.parametrize("scenario", list(BUILTIN))
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
