"""``python -m runtime.node`` arguments: defaults, sizes, and clear usage errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from actors import NodeConfig
from runtime.node import advertised_address, node_config, parse_args
from tests.nodeproc import ROOT


def test_defaults_match_the_documentation() -> None:
    args = parse_args(["node1", "8081", "localhost:8082"])
    assert (args.node_id, args.port, args.peers) == ("node1", 8081, ["127.0.0.1:8082"])
    assert args.host == "127.0.0.1" and args.advertise is None
    assert args.cleanup_interval == 1.0 and args.cleanup_budget_ms == 2.0
    assert args.max_request_bytes == 1 << 20
    assert args.log_level == "info"
    config = node_config(args, "127.0.0.1:8081")
    assert config == NodeConfig(
        address="127.0.0.1:8081",
        seeds=("127.0.0.1:8082",),
        replicas=3,
        partitions=256,
        write_consistency="quorum",
        read_consistency="one",
        request_timeout_s=1.0,
        tombstone_ttl_s=60.0,
        heartbeat_interval_s=0.2,
        suspect_phi=8.0,
        down_after_s=2.0,
        anti_entropy_interval_s=1.0,
        hint_limit=100_000,
        leave_timeout_s=10.0,
    )


def test_cluster_flags_map_onto_the_node_config() -> None:
    args = parse_args(
        [
            "n", "0", "[::1]:9000", "Node2:7000", "127.0.0.1:7001", "localhost:7001",
            "--replicas", "5", "--partitions", "1024",
            "--write-consistency", "all", "--read-consistency", "quorum",
            "--request-timeout", "0.25", "--tombstone-ttl", "0",
            "--heartbeat-interval", "0.05", "--suspect-phi", "12.5", "--down-after", "0.5",
            "--anti-entropy-interval", "3", "--hint-limit", "0", "--leave-timeout", "0",
            "--advertise", "cache-1.example:9100",
        ]
    )
    assert args.peers == ["[::1]:9000", "node2:7000", "127.0.0.1:7001"]  # normalised, deduplicated
    config = node_config(args, "cache-1.example:9100")
    assert (config.replicas, config.partitions) == (5, 1024)
    assert (config.write_consistency, config.read_consistency) == ("all", "quorum")
    assert (config.request_timeout_s, config.tombstone_ttl_s) == (0.25, 0.0)
    assert (config.heartbeat_interval_s, config.suspect_phi, config.down_after_s) == (0.05, 12.5, 0.5)
    assert (config.anti_entropy_interval_s, config.hint_limit, config.leave_timeout_s) == (3.0, 0, 0.0)
    assert config.seeds == ("[::1]:9000", "node2:7000", "127.0.0.1:7001")
    assert args.advertise == ("cache-1.example", 9100)


@pytest.mark.parametrize(
    ("advertise", "host", "bound", "address"),
    [
        (None, "127.0.0.1", 41000, "127.0.0.1:41000"),
        (None, "0.0.0.0", 41000, "127.0.0.1:41000"),
        ("myhost", "0.0.0.0", 41000, "myhost:41000"),
        ("MyHost:9", "0.0.0.0", 41000, "myhost:9"),
        ("[::1]", "::", 41000, "[::1]:41000"),
        ("localhost:5", "127.0.0.1", 41000, "127.0.0.1:5"),
    ],
)
def test_the_advertised_address_defaults_to_the_bound_one(
    advertise: str | None, host: str, bound: int, address: str
) -> None:
    argv = ["n", "0"] + (["--advertise", advertise] if advertise else [])
    assert advertised_address(parse_args(argv), host, bound) == address


def test_the_start_up_line_keeps_its_format_with_seeds(node_factory) -> None:  # type: ignore[no-untyped-def]
    first = node_factory(node_id="seed")
    second = node_factory(f"localhost:{first.port}", node_id="joiner")
    assert second.start_line == f"actorcache node joiner listening on 127.0.0.1:{second.port} peers={first.addr}"


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


# (argv after "n 0", what the message must say)
BAD_CLUSTER_ARGS: list[tuple[list[str], str]] = [
    (["--replicas", "0"], "--replicas: must be at least 1"),
    (["--replicas", "two"], "--replicas: not a whole number"),
    (["--partitions", "0"], "--partitions: must be at least 1"),
    (["--partitions", "1.5"], "--partitions: not a whole number"),
    (["--partitions", "100000"], "--partitions: must be at most 65536"),
    (["--write-consistency", "most"], "--write-consistency: invalid choice: 'most'"),
    (["--read-consistency", "ALL"], "--read-consistency: invalid choice: 'ALL'"),
    (["--request-timeout", "0"], "--request-timeout: must be > 0"),
    (["--request-timeout", "-1"], "--request-timeout: must be a finite number >= 0"),
    (["--tombstone-ttl", "-1"], "--tombstone-ttl: must be a finite number >= 0"),
    (["--tombstone-ttl", "inf"], "--tombstone-ttl: must be a finite number >= 0"),
    (["--heartbeat-interval", "0"], "--heartbeat-interval: must be > 0"),
    (["--suspect-phi", "0"], "--suspect-phi: must be a finite number > 0"),
    (["--suspect-phi", "nan"], "--suspect-phi: must be a finite number > 0"),
    (["--down-after", "soon"], "--down-after: not a number of seconds: 'soon'"),
    (["--anti-entropy-interval", "0"], "--anti-entropy-interval: must be > 0"),
    (["--hint-limit", "-1"], "--hint-limit: must be >= 0"),
    (["--leave-timeout", "-2"], "--leave-timeout: must be a finite number >= 0"),
    (["--advertise", "host:port"], "--advertise: bad address 'host:port': port 'port' is not a number"),
    (["--advertise", "0.0.0.0:8081"], "--advertise: 0.0.0.0 is not an address peers can connect to"),
    (["--advertise", "::1:8081"], "write IPv6 addresses as [addr]:port"),
    (["host:99999"], "PEER_ADDR: bad address 'host:99999': port must be 1..65535"),
    (["host:"], "PEER_ADDR: bad address 'host:': port '' is not a number"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_CLUSTER_ARGS, ids=[" ".join(a) for a, _ in BAD_CLUSTER_ARGS])
def test_bad_cluster_arguments_say_what_is_wrong(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(["n", "0", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err and message in err, err


def test_a_bad_cluster_argument_exits_2_from_the_command_line() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "runtime.node", "n", "0", "--write-consistency", "some"],
        cwd=ROOT, capture_output=True, text=True, timeout=30,
    )
    assert out.returncode == 2
    assert "invalid choice: 'some'" in out.stderr and "Traceback" not in out.stderr


def test_a_busy_port_is_a_clear_error(node) -> None:  # type: ignore[no-untyped-def]
    out = subprocess.run(
        [sys.executable, "-m", "runtime.node", "other", str(node.port)], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 1
    assert "cannot listen" in out.stderr and "Traceback" not in out.stderr
