"""Smoke tests of bench/stack.py and bench/stack_resp.py: every server row gets positive
figures in a very short run (no timing is asserted), and --record writes the section."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runtime import event_loop, framing
from runtime.local_cluster import ROOT

pytestmark = pytest.mark.integration


def _run(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    assert out.returncode == 0, out.stderr
    assert "failed" not in out.stdout and "failed" not in out.stderr, out.stdout + out.stderr
    return out.stdout


def _rows(out: str, table: int = 0) -> dict[str, list[str]]:
    """Label -> cells of the ``table``-th Markdown table in ``out`` (0: ops/s, -1: ratios)."""
    block = [b for b in out.strip().split("\n\n") if b.startswith("|")][table]
    return {c[0]: c[1:] for line in block.splitlines() if line.startswith("| ") for c in [[x.strip() for x in line.strip().strip("|").split("|")]]}


def _servers(names: tuple[str, ...]) -> list[str]:
    """The rows this machine can serve: uvloop and orjson rows only when they are installed
    (and the node's uvloop rows only once the node runs on it: event_loop.AUTO_UVLOOP)."""
    keep = []
    for name in names:
        kind = name.split(" ")[0]
        if "uvloop" in name and (not event_loop.UVLOOP_AVAILABLE or (kind == "node" and not event_loop.AUTO_UVLOOP)):
            continue
        if "orjson" in name and not framing.ORJSON_AVAILABLE:
            continue
        keep.append(name)
    return keep


def test_stack_benchmark_runs(tmp_path: Path) -> None:
    from bench.stack import SERVERS

    servers = _servers(SERVERS)
    results = tmp_path / "RESULTS.md"
    out = _run(
        "bench.stack", "--duration", "0.15", "--rounds", "1", "--conns", "4", "--keys", "200",
        "--servers", ",".join(servers), "--record", "--results", str(results),
    )
    assert "## The stack: uvloop and orjson" in results.read_text()
    rows = _rows(out)
    for name in servers:
        cells = rows[name]
        assert len(cells) == 6, out
        for cell in cells:  # "ops/s (p99 ms)"
            assert float(cell.split(" ")[0].replace(",", "")) > 0, (name, cell)
    ratios = _rows(out, -1)
    assert all(float(x) > 0 for x in ratios["node / bare, asyncio+stdlib"]), out


def test_stack_resp_benchmark_runs(tmp_path: Path) -> None:
    from bench.stack_resp import SERVERS

    for tool in ("redis-server", "redis-benchmark"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (Debian packages redis-server, redis-tools)")
    servers = [s for s in _servers(SERVERS) if "hiredis" not in s or _has_hiredis()]
    results = tmp_path / "RESULTS.md"
    out = _run(
        "bench.stack_resp", "-n", "1000", "-c", "4", "--rounds", "1", "--servers", ",".join(servers),
        "--record", "--results", str(results),
    )
    assert "## The stack over RESP" in results.read_text()
    rows = _rows(out)
    for name in servers:
        assert len(rows[name]) == 4 and all(float(c.split(" ")[0].replace(",", "")) > 0 for c in rows[name]), out


def _has_hiredis() -> bool:
    from runtime.resp import HIREDIS_AVAILABLE

    return HIREDIS_AVAILABLE


def test_stack_codec_benchmark_runs(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    out = subprocess.run(
        [sys.executable, "-m", "bench.stack_codec", "--number", "50", "--repeat", "1", "--record", "--results", str(results)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    assert "## The stack, codecs alone" in results.read_text()
    rows = _rows(out)
    del rows["step"]  # the header
    assert set(rows) == {"decode set", "decode get", "encode hit", "parse SET", "parse GET"}, out
    for cells in rows.values():
        assert float(cells[0]) > 0 and (cells[1] == "-" or float(cells[1]) > 0), out
