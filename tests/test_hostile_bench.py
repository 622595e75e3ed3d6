"""``bench/hostile.py`` does not run in CI; this smoke run (a few seconds) keeps it working."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.integration


def test_hostile_bench_runs_the_deep_value_reproducer() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench.hostile", "--only", "deep-json"],
        cwd=ROOT, capture_output=True, text=True, timeout=90, check=False,
    )
    assert out.returncode == 0, out.stderr
    header, *_ = out.stdout.splitlines()
    assert f"runtime imported from {ROOT / 'runtime' / '__init__.py'}" in header
    row = out.stdout.strip().splitlines()[-1]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "deep-json"
    assert cells[1] == "alive" and cells[2] == "served", row
    assert "error bad_request" in cells[6] and "--max-value-depth 128" in cells[6], row
