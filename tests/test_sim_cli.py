"""``python -m sim.run`` and ``python -m sim.sweep`` as users run them: real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sim.scenario import BUILTIN

ROOT = Path(__file__).resolve().parent.parent
SUMMARY_KEYS = {
    "scenario", "seed", "sim_time_s", "events", "trace_sha256", "ops",
    "violations", "replication_latency_ms", "convergence_s",
}

SMALL = """
name = "small"
description = "three nodes, a short partition"
nodes = 3
duration = 6.0
settle = 10.0

[link]
latency = { kind = "uniform", min_ms = 0.2, max_ms = 1.0 }
loss = 0.01

[workload]
clients = 3
ops = 300
rate = 100.0
keys = 20

[[faults]]
at = 1.0
action = "partition"
kind = "isolate"
node = "n3"

[[faults]]
at = 3.0
action = "heal"
"""

WEAK = """
name = "weak"
nodes = 3
duration = 8.0
write_consistency = "quorum"

[node]
tombstone_ttl_s = 0.0
hint_limit = 0
anti_entropy_interval_s = 0.2

[link]
latency = { kind = "constant", ms = 0.5 }

[workload]
clients = 4
ops = 400
rate = 150.0
keys = 20
read_fraction = 0.0
delete_fraction = 0.5

[[faults]]
at = 1.0
action = "partition"
kind = "isolate"
node = "n3"

[[faults]]
at = 6.0
action = "heal"
"""


def sim(*args: str, hashseed: str = "0", timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONHASHSEED=hashseed)
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def test_list_names_every_builtin_scenario() -> None:
    proc = sim("sim.run", "--list")
    assert proc.returncode == 0
    names = [line.split()[0] for line in proc.stdout.splitlines()]
    assert names == list(BUILTIN)
    assert len(names) >= 7


@pytest.mark.parametrize(
    "args, message",
    [
        (["no-such-scenario"], "unknown scenario 'no-such-scenario'"),
        ([], "a scenario is required"),
    ],
)
def test_bad_usage_exits_2_without_traceback(args: list[str], message: str) -> None:
    proc = sim("sim.run", *args)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "text, message",
    [
        ("nodes = [", "cannot read"),
        ("nodes = 3\nbogus = 1\n", "unknown scenario keys ['bogus']"),
        ('[[faults]]\nat = 1.0\naction = "explode"\n', "unknown fault 'explode'"),
        ('[workload]\nread_fraction = 2.0\n', "read_fraction must be within [0, 1]"),
        ('[link]\nlatency = { kind = "gamma" }\n', "latency kind must be constant, uniform or lognormal"),
    ],
)
def test_bad_scenario_files_exit_2_with_a_clear_message(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    proc = sim("sim.run", str(path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_toml_scenario_runs_and_ends_with_a_json_summary(tmp_path: Path) -> None:
    path = tmp_path / "small.toml"
    path.write_text(SMALL)
    trace = tmp_path / "trace.jsonl"
    proc = sim("sim.run", str(path), "--seed", "3", "--json", "--trace", str(trace))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = last_json(proc.stdout)
    assert SUMMARY_KEYS <= set(summary)
    assert summary["scenario"] == "small" and summary["seed"] == 3
    assert summary["violations"] == []
    assert summary["ops"]["ok"] > 0
    assert summary["replication_latency_ms"]["p50"] > 0
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    assert {"t", "node", "kind"} <= set(events[0])
    kinds = {e["kind"] for e in events}
    assert {"write", "apply", "fault", "view"} <= kinds
    import hashlib

    assert hashlib.sha256(trace.read_text().rstrip("\n").encode()).hexdigest() == summary["trace_sha256"]


def test_a_violation_exits_1_and_prints_the_replay_command(tmp_path: Path) -> None:
    path = tmp_path / "weak.toml"
    path.write_text(WEAK)
    proc = sim("sim.run", str(path), "--seed", "1", "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"replay: python -m sim.run {path} --seed 1" in proc.stdout
    assert any(v["checker"] == "resurrection" for v in last_json(proc.stdout)["violations"])


def test_same_seed_same_trace_across_hash_seeds_and_processes() -> None:
    """Two processes under different hash seeds, at once. (Another seed gives another
    trace: tests/test_cluster_sim.py; each disk scenario across processes:
    tests/test_sim_disk.py.)"""
    env = [dict(os.environ, PYTHONHASHSEED=h) for h in ("1", "987")]
    procs = [
        subprocess.Popen([sys.executable, "-m", "sim.run", "crash-restart", "--seed", "5", "--json"], cwd=ROOT, env=e,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for e in env
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, outs):
        assert proc.returncode == 0, out + err
    assert last_json(outs[0][0])["trace_sha256"] == last_json(outs[1][0])["trace_sha256"]


def test_check_determinism_flag(tmp_path: Path) -> None:
    path = tmp_path / "small.toml"
    path.write_text(SMALL)
    proc = sim("sim.run", str(path), "--seed", "2", "--check-determinism")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "deterministic: two runs gave trace sha256" in proc.stdout


def test_sweep_reports_violating_seeds_with_replay_commands(tmp_path: Path) -> None:
    path = tmp_path / "weak.toml"
    path.write_text(WEAK)
    proc = sim("sim.sweep", str(path), "--seeds", "1-3", "--jobs", "2", "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    summary = last_json(proc.stdout)
    assert summary["seeds"] == 3 and summary["violating_seeds"]
    for seed in summary["violating_seeds"]:
        assert f"replay: python -m sim.run {path} --seed {seed}" in proc.stdout


def test_the_documented_scenario_file_is_valid() -> None:
    import re
    import tomllib

    from sim.scenario import scenario_from_dict

    text = (ROOT / "docs" / "simulation.md").read_text()
    block = re.search(r"```toml\n(.*?)```", text, re.S)
    assert block is not None
    scenario = scenario_from_dict(tomllib.loads(block.group(1)))
    assert scenario.name == "zone-outage" and scenario.nodes == 6
    assert scenario.links[("n1", "n6")].latency.a == pytest.approx(0.04)
    assert scenario.workload.distribution == "zipf"
