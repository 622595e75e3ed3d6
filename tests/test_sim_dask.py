"""``python -m sim.sweep --executor dask``: seeds on a Dask cluster, here one the test
starts (a ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1, free ports,
killed with their process groups afterwards). The sweep must find the same violating
seeds as the local pool, with the same summary and replay lines, having run its seeds in
both workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed", reason="Dask's distributed is not installed: pip install -e '.[dask]'")

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.timeout(120)

# Tombstones and hints off: a deleted value comes back on some seeds (resurrection).
from tests.test_sim_cli import WEAK  # noqa: E402 - after the importorskip above


def _start(*args: str, cwd: Path) -> subprocess.Popen[bytes]:
    # workers import this checkout's sim/, whatever the installed one is
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, "-m", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the nanny's worker goes with it
    )


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The address of a Dask scheduler with two single-threaded workers."""
    tmp = tmp_path_factory.mktemp("dask")
    info = tmp / "scheduler.json"
    procs = [_start("distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                    "--dashboard-address", ":0", "--scheduler-file", str(info), cwd=tmp)]
    try:
        for _ in range(2):
            procs.append(_start("distributed.cli.dask_worker", "--scheduler-file", str(info), "--host", "127.0.0.1",
                                "--nthreads", "1", "--dashboard-address", ":0", "--local-directory", str(tmp), cwd=tmp))
        deadline = time.monotonic() + 60
        while not info.exists():
            assert time.monotonic() < deadline, "the Dask scheduler did not start"
            assert procs[0].poll() is None, "the Dask scheduler exited"
            time.sleep(0.1)
        address = json.loads(info.read_text())["address"]
        with distributed.Client(address, timeout=30, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for proc in reversed(procs):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for proc in reversed(procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def sweep(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sim.sweep", *args], cwd=ROOT, capture_output=True, text=True, timeout=100)


def _lines(out: str) -> list[str]:
    """The report without its first line's wall time and the JSON line's timing fields."""
    lines = out.strip().splitlines()
    head = lines[0].split(" seeds in ")[0] + " " + lines[0].split(" s, ", 1)[1]
    return [head] + lines[1:-1]


def test_a_dask_sweep_reports_what_the_local_pool_reports(scheduler: str, tmp_path: Path) -> None:
    path = tmp_path / "weak.toml"
    path.write_text(WEAK)
    local = sweep(str(path), "--seeds", "1-4", "--jobs", "1", "--json")
    remote = sweep(str(path), "--seeds", "1-4", "--executor", "dask", "--scheduler", scheduler, "--json")
    assert remote.returncode == local.returncode == 1, remote.stdout + remote.stderr
    ours, theirs = json.loads(local.stdout.splitlines()[-1]), json.loads(remote.stdout.splitlines()[-1])
    assert theirs["violating_seeds"] == ours["violating_seeds"] != []
    assert theirs["events"] == ours["events"]  # the very same runs
    assert (theirs["executor"], theirs["processes"]) == ("dask", 2)  # both workers ran seeds
    assert _lines(remote.stdout) == _lines(local.stdout)
    for seed in theirs["violating_seeds"]:
        assert f"    replay: python -m sim.run {path} --seed {seed}" in remote.stdout
    assert f"dask scheduler {scheduler}: 2 workers" in remote.stderr
    assert "4/4 seeds" in remote.stderr  # the progress bar


@pytest.mark.parametrize(
    "args, message",
    [
        (["--scheduler", "tcp://127.0.0.1:9", "--scheduler-timeout", "1"], "cannot reach the Dask scheduler at tcp://127.0.0.1:9"),
        (["--executor", "dask"], "--executor dask needs --scheduler tcp://HOST:8786"),
        (["--executor", "local", "--scheduler", "tcp://127.0.0.1:9"], "--scheduler belongs to --executor dask"),
    ],
)
def test_a_sweep_that_cannot_reach_its_executor_exits_2_with_the_reason(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from sim.sweep import main

    try:
        code = main(["crash-restart", "--seeds", "1", *args])
    except SystemExit as exit:  # argparse's own usage errors
        code = exit.code
    assert code == 2
    assert message in capsys.readouterr().err
