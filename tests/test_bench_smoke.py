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


def test_cluster_latency_benchmark_runs() -> None:
    out = _run("bench.cluster_latency", "--writes", "50", "--keys", "300")
    assert "| 3 nodes, --replicas 3, consistency quorum |" in out
    assert "every key latest on node3 after" in out and "after None" not in out


def test_sim_speed_benchmark_runs() -> None:
    out = _run("bench.sim_speed", "--seeds", "1")
    row = next(line for line in out.splitlines() if line.startswith("| 1 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "10,000" and cells[-1] == "0"  # every op issued, no violation


def test_record_inserts_a_run_under_its_own_heading(tmp_path: Path) -> None:
    from bench.results import record

    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## A\n\n### old run\n\nfigures\n\n## B\n\n### b run\n")
    record("A", "python -m bench.a", "new figures", results)
    record("C", "python -m bench.c", "c figures", results)
    text = results.read_text()
    assert text.index("new figures") < text.index("## B") < text.index("## C") < text.index("c figures")
    assert "`python -m bench.a`" in text
