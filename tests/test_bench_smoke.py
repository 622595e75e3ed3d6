"""Benchmarks do not run in CI; these smoke runs (about a second each) keep them working."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.integration


def _run(*args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=90, check=False
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_json_lines_benchmark_runs() -> None:
    out = _run("bench.json_lines", "--duration", "0.5", "--conns", "4", "--workloads", "mix", "--pipelines", "4")
    row = out.strip().splitlines()[-1]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "mix" and cells[1] == "4"
    assert float(cells[2].replace(",", "")) > 0 and float(cells[4].replace(",", "")) > 0


def test_expiry_stall_benchmark_runs() -> None:
    out = _run("bench.expiry_stall", "--keys", "3000", "--ttl", "1.0", "--max-seconds", "20")
    row = out.strip().splitlines()[-1]
    assert "| 3,000 |" in row
    assert "3,000 / 0" in row  # every key removed by the janitor, none had to be read
