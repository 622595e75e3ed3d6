"""Benchmarks do not run in CI; these smoke runs (about a second each) keep them working."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from sim.scenario import BUILTIN

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


def test_json_lines_scrape_benchmark_runs() -> None:
    out = _run(
        "bench.json_lines", "--scrape", "--pairs", "1", "--duration", "1.3", "--conns", "2",
        "--workloads", "set", "--pipelines", "4",
    )
    lines = out.strip().splitlines()
    cells = [c.strip() for c in lines[-2].strip("|").split("|")]
    assert cells[:2] == ["set", "4"] and float(cells[2].replace(",", "")) > 0 and float(cells[3].replace(",", "")) > 0
    assert lines[-1].startswith(("1 scrapes", "2 scrapes"))  # one a second during the scraped run


def test_expiry_stall_benchmark_runs() -> None:
    out = _run("bench.expiry_stall", "--keys", "3000", "--ttl", "1.0", "--max-seconds", "20")
    row = out.strip().splitlines()[-1]
    assert "| 3,000 |" in row
    assert "3,000 / 0" in row  # every key removed by the janitor, none had to be read


def test_cluster_latency_benchmark_runs() -> None:
    # 10 warm-up writes per level (not 300) and 0.5 s of writes while node3 is down (not 3 s): the
    # same cells and the same restart, at a fraction of the nodes' CPU.
    out = _run("bench.cluster_latency", "--writes", "50", "--keys", "300", "--warmup", "10", "--down-seconds", "0.5")
    assert "| 3 nodes, --replicas 3, consistency quorum |" in out
    assert "every key latest on node3 after" in out and "after None" not in out
    overwritten = re.search(r"\((\d+) overwritten while node3 was down 0.5 s\)", out)
    assert overwritten and int(overwritten.group(1)) > 0, out  # node3 missed writes it had to catch up on


def test_fill_rate_benchmark_runs() -> None:
    out = _run("bench.fill_rate", "--keys", "2000", "--slice", "1000")
    rows = [line for line in out.splitlines() if line.startswith(("| 0-1,000 |", "| 1,000-2,000 |"))]
    assert len(rows) == 2 and all(float(r.split("|")[2].replace(",", "")) > 0 for r in rows)
    assert "2,000 keys in" in out and "sync_keys_listed" in out


def test_sim_speed_benchmark_runs() -> None:
    # A short built-in scenario (3,000 ops over 25 simulated s, ~2 CPU s, not partition-heal's ~7;
    # test_sim_sweep plays that one's seeds) and a tenth of the bare SimPy loop: the same code.
    out = _run("bench.sim_speed", "--seeds", "1", "--scenario", "clock-skew-ttl", "--bare-events", "30000")
    row = next(line for line in out.splitlines() if line.startswith("| 1 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # the client ops it issued before its load stopped, and no violation
    assert 2_000 < int(cells[1].replace(",", "")) <= BUILTIN["clock-skew-ttl"].workload.ops and cells[-1] == "0", row
    assert float(cells[6].replace(",", "")) > 0 and float(cells[7]) > 0  # events/s, and vs bare SimPy


def test_record_inserts_a_run_under_its_own_heading(tmp_path: Path) -> None:
    from bench.results import record

    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## A\n\n### old run\n\nfigures\n\n## B\n\n### b run\n")
    record("A", "python -m bench.a", "new figures", results)
    record("C", "python -m bench.c", "c figures", results)
    text = results.read_text()
    assert text.index("new figures") < text.index("## B") < text.index("## C") < text.index("c figures")
    assert "`python -m bench.a`" in text


def _redis_tools(*tools: str) -> None:
    """Skip when a Debian redis tool is missing and cannot be installed here (fail under CI,
    whose ``.ci/run`` installs redis-server and redis-tools)."""
    import os
    import shutil

    if all(shutil.which(t) for t in tools):
        return
    from bench.servers import need_redis_tools

    try:
        need_redis_tools(*tools)  # installs them when root with apt-get
    except SystemExit as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc}: .ci/run installs redis-server and redis-tools")
        pytest.skip(str(exc))


def _table_rows(out: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in out.splitlines() if line.startswith("| ")]


def test_resp_redis_benchmark_runs(tmp_path: Path) -> None:
    _redis_tools("redis-server", "redis-benchmark")
    results = tmp_path / "RESULTS.md"
    out = _run("bench.resp_redis", "-n", "2000", "-c", "5", "--rounds", "1", "--record", "--results", str(results))
    assert "## RESP: redis-benchmark against our node and redis-server" in results.read_text()
    rows = {(r[0], r[1]): r for r in _table_rows(out) if r[0] in ("SET", "GET")}
    assert set(rows) == {("SET", "1"), ("SET", "16"), ("GET", "1"), ("GET", "16")}, out
    for r in rows.values():
        ours, redis = float(r[2].replace(",", "")), float(r[5].replace(",", ""))
        assert ours > 0 and redis > 0
        # the ratio column is ours / redis, rounded to 2 places (0.00 when redis is far faster)
        assert abs(float(r[-1]) - ours / redis) <= 0.006, r


def test_redis_benchmark_csv_is_parsed() -> None:
    from bench.resp_redis import parse_csv

    text = (
        '"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"\n'
        '"SET","59171.60","0.550","0.128","0.551","0.791","0.879","2.287"\r\n'
    )
    assert parse_csv(text)["SET"]["rps"] == 59171.60 and parse_csv(text)["SET"]["p99_latency_ms"] == 0.879


def test_memory_benchmark_runs(tmp_path: Path) -> None:
    _redis_tools("redis-server")
    results = tmp_path / "RESULTS.md"
    out = _run("bench.memory", "--keys", "5000", "--record", "--results", str(results))
    assert "ours / redis by RSS:" in results.read_text()
    rows = {r[0]: r for r in _table_rows(out)}
    assert float(rows["ours (`stats.memory_bytes`)"][1]) > 32  # at least the values themselves
    assert float(rows["redis-server (`INFO memory` used_memory)"][1]) > 32
    assert "ours / redis by RSS:" in out and "`memory_bytes` / RSS growth:" in out


def test_gc_pause_benchmark_runs(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    out = _run("bench.gc_pause", "--keys", "20000", "--record", "--results", str(results))
    assert "## GC pause: full gc.collect() with a million keys" in results.read_text()
    rows = {r[0]: r for r in _table_rows(out)}
    plain = rows["plain (default policy): exact tuples"]
    lru = rows["`allkeys-lru`: TrackedEntry objects"]
    assert float(plain[1]) > 0 and float(lru[1]) > 0
    # the LRU keyspace's 20,000 entries are tracked objects; the plain keyspace's tuples are not
    assert int(lru[3].replace(",", "")) - int(plain[3].replace(",", "")) >= 20_000
    assert "allkeys-lru / plain, median full collection:" in out


def test_cluster_throughput_benchmark_runs(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    out = _run(
        "bench.cluster_throughput", "--duration", "0.5", "--rounds", "1", "--conns", "6", "--pipeline", "4",
        "--trace-sample", "0.5", "--trace-cost", "--record", "--results", str(results),
    )
    assert "to every replica (coordinator's own copy included)" in results.read_text()
    rows = {r[0]: r for r in _table_rows(out)}
    for label in ("no --trace", "--trace, every write (--trace-sample 1)", "--trace --trace-sample 0.5"):
        assert float(rows[label][3]) > 0, label  # node CPU per set of each variant
    sampled = int(rows["to every replica (coordinator's own copy included)"][-1].replace(",", ""))
    every = int(rows["to every replica (coordinator's own copy included), every write traced"][-1].replace(",", ""))
    assert 0 < sampled < every  # about half of the keys' writes traced
    assert float(rows["3 nodes, --replicas 3, quorum writes"][1].replace(",", "")) > 0
    assert rows["single node"][4] == "0" and rows["3 nodes, --replicas 3, quorum writes"][4] == "0"  # no errors
    remote = rows["to the other replicas (coordinator's own copy excluded)"]
    every = rows["to every replica (coordinator's own copy included)"]
    assert int(remote[-1].replace(",", "")) > 0
    assert int(every[-1].replace(",", "")) > int(remote[-1].replace(",", ""))  # the coordinator's copies too


def test_loadgen_rate_caps_the_load() -> None:
    from bench.loadgen import parser, run_load
    from bench.servers import bare_server

    bare = bare_server()
    try:
        base = ["--addr", f"127.0.0.1:{bare.port},127.0.0.1:{bare.port}", "--conns", "4", "--pipeline", "2"]
        capped = run_load(parser().parse_args([*base, "--duration", "1", "--rate", "400"]))
    finally:
        bare.terminate()
    assert capped.errors == 0
    assert 250 <= capped.ops_per_s <= 480, capped.ops_per_s


def test_write_stall_benchmark_runs(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    out = _run("bench.write_stall", "--keys", "5000", "--seconds", "2", "--conns", "2", "--record", "--results", str(results))
    assert "## Write stall: ping latency while a large keyspace is overwritten" in results.read_text()
    row = out.strip().splitlines()[-1].strip("|").split("|")
    assert row[0].strip() == "5,000"
    assert float(row[4].replace(",", "")) > 0  # overwrites/s: the load ran
    assert int(row[5].replace(",", "")) > 0  # pings under load


def test_ab_nodes_benchmark_runs() -> None:
    """Both sides from this checkout: the table has one row per cell with figures, and the
    single-node and cluster modes both start, load and stop their nodes."""
    for extra in ((), ("--cluster", "2")):
        out = _run(
            "bench.ab_nodes", "--a", ".", "--b", ".", "--pairs", "1", "--duration", "0.5", "--conns", "4",
            "--workloads", "set", "--pipelines", "4", *extra,
        )
        rows = [line for line in out.splitlines() if line.startswith("| set | 4 |")]
        assert len(rows) == 1, out
        cells = [c.strip() for c in rows[0].strip("|").split("|")]
        assert float(cells[2].replace(",", "")) > 0 and float(cells[3].replace(",", "")) > 0, rows


def test_tls_benchmark_runs(tmp_path: Path) -> None:
    """Plain, TLS and password nodes side by side, JSON lines and RESP: every cell has
    figures for all three and is recorded under its heading."""
    _redis_tools("redis-benchmark")
    results = tmp_path / "RESULTS.md"
    out = _run(
        "bench.tls", "--rounds", "1", "--duration", "0.5", "--conns", "4", "-n", "2000", "--pipelines", "4",
        "--record", "--results", str(results),
    )
    assert "## TLS and client authentication" in results.read_text()
    rows = {(r[0], r[1]): r for r in _table_rows(out) if r[0] in ("JSON lines", "RESP")}
    assert set(rows) == {("JSON lines", "MIX"), ("RESP", "SET"), ("RESP", "GET")}, out
    for r in rows.values():
        plain, tls, auth = (float(r[i].replace(",", "")) for i in (3, 4, 6))
        assert all(float(x) > 0 for x in r[8].split(" / ")), r  # node CPU per request, each mode
        assert plain > 0 and tls > 0 and auth > 0, r


def test_c_loadgen_builds_and_drives_a_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``bench/loadgen.c`` compiles (here into a fresh directory), and for about a second drives a real node at every
    workload's shape (sets, then gets that hit) with every reply a success."""
    from bench import cloadgen
    from bench.servers import node_server

    if cloadgen.compiler() is None:
        pytest.skip("no C compiler (cc, gcc or clang) to build bench/loadgen.c")
    monkeypatch.setattr(cloadgen, "BUILD", tmp_path)
    assert cloadgen.binary().parent == tmp_path
    node = node_server("bench", resp=False)
    try:
        argv = ["--addr", f"127.0.0.1:{node.port}", "--conns", "4", "--pipeline", "4", "--keys", "500", "--duration", "0.5"]
        results = [cloadgen.run_load(cloadgen.parser().parse_args([*argv, "--workload", w])) for w in ("set", "mix")]
    finally:
        node.terminate()
    for r in results:
        assert r.ops > 0 and r.ops_per_s > 0 and r.errors == 0 and r.prefill_errors == 0, r
        assert 0 < r.percentile(0.5) <= r.percentile(0.99)
    out = _run("bench.loadgen_check", "--duration", "0.3", "--rounds", "1", "--conns", "4", "--pipelines", "4")
    assert "errors: 0" in out
    row = next(line for line in out.splitlines() if line.startswith("| mix | 4 |"))
    assert all(float(c.replace(",", "")) > 0 for c in row.strip("|").split("|")[2:8]), row
