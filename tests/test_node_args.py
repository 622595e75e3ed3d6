"""``python -m runtime.node`` arguments: defaults, sizes, and clear usage errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from runtime.node import parse_args
from tests.nodeproc import ROOT


def test_defaults_match_the_documentation() -> None:
    args = parse_args(["node1", "8081", "localhost:8082"])
    assert (args.node_id, args.port, args.peers) == ("node1", 8081, ["localhost:8082"])
    assert args.host == "127.0.0.1"
    assert args.cleanup_interval == 1.0 and args.cleanup_budget_ms == 2.0
    assert args.max_request_bytes == 1 << 20
    assert args.log_level == "info"


@pytest.mark.parametrize(("text", "size"), [("1024", 1024), ("512K", 512 << 10), ("1M", 1 << 20), ("2MiB", 2 << 20), ("1g", 1 << 30)])
def test_sizes_take_suffixes(text: str, size: int) -> None:
    assert parse_args(["n", "0", "--max-request-bytes", text]).max_request_bytes == size


@pytest.mark.parametrize(
    "argv",
    [
        ["n"],
        ["n", "70000"],
        ["n", "port"],
        ["n", "0", "--cleanup-interval", "0"],
        ["n", "0", "--cleanup-interval", "nan"],
        ["n", "0", "--max-request-bytes", "lots"],
        ["n", "0", "--log-level", "chatty"],
    ],
)
def test_bad_arguments_are_usage_errors_without_traceback(argv: list[str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "runtime.node", *argv], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 2
    assert "usage:" in out.stderr and "Traceback" not in out.stderr


def test_a_busy_port_is_a_clear_error(node) -> None:  # type: ignore[no-untyped-def]
    out = subprocess.run(
        [sys.executable, "-m", "runtime.node", "other", str(node.port)], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 1
    assert "cannot listen" in out.stderr and "Traceback" not in out.stderr
