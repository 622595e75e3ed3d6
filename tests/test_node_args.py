"""``python -m runtime.node`` arguments: defaults, sizes, and clear usage errors."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from actors.config import NodeConfig
from runtime.conn_limits import ClientLimits
from runtime.node import advertised_address, client_limits, memory_warning, node_config, parse_args
from runtime.local_cluster import ROOT, NodeProcess


def test_defaults_match_the_documentation() -> None:
    args = parse_args(["node1", "8081", "localhost:8082", "--dir", "data"])  # (save rules need a directory)
    assert (args.node_id, args.port, args.peers) == ("node1", 8081, ["127.0.0.1:8082"])
    assert args.host == "127.0.0.1" and args.advertise is None
    assert args.cleanup_interval == 1.0 and args.cleanup_budget_ms == 2.0
    assert args.max_request_bytes == 1 << 20
    assert args.log_level == "info"
    assert args.peer_compress == "auto"  # docs/operations.md, "Peer compression"
    config = node_config(args, "127.0.0.1:8081")
    assert config == NodeConfig(
        address="127.0.0.1:8081",
        contacts=("127.0.0.1:8082",),
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


#: NodeConfig fields no flag sets: the advertised address and contacts come from the
#: positional arguments and the bound port; the rest are tuning knobs of the simulator.
#: Persistence options take effect only with a data directory (checked when the node starts).
WITH_DIR = ("--dir", "data")

NOT_ON_THE_COMMAND_LINE = {"address", "contacts", "cleanup_sample_size", "anti_entropy_partitions"}


@pytest.mark.parametrize("field", dataclasses.fields(NodeConfig), ids=lambda f: f.name)
def test_every_node_config_default_is_the_command_line_default(field: dataclasses.Field) -> None:  # type: ignore[type-arg]
    defaults = node_config(parse_args(["n", "0", *WITH_DIR]))
    assert getattr(defaults, field.name) == field.default
    if field.name in NOT_ON_THE_COMMAND_LINE:
        assert "flag" not in field.metadata
        return
    flag = field.metadata["flag"]
    help_text = subprocess_help()
    assert flag in help_text
    # The option sets the field: a value other than the default arrives in the field's unit.
    other = {int: 100, float: 0.5, str: "all", bool: True, tuple: ((10, 5),)}[type(field.default)]
    text = {True: "yes", ((10, 5),): "10 5"}.get(other, other) if type(other) in (bool, tuple) else None
    if field.name == "eviction_policy":
        other = "allkeys-lru"
    if field.name == "appendfsync":
        other = "always"
    scale = field.metadata["scale"]
    if text is None:
        text = str(other * scale if scale != 1 else other)
    config = node_config(parse_args(["n", "0", *WITH_DIR, flag, text]))
    assert getattr(config, field.name) == other


_HELP: list[str] = []


def subprocess_help() -> str:
    """``python -m runtime.node --help`` (run once)."""
    if not _HELP:
        out = subprocess.run(
            [sys.executable, "-m", "runtime.node", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=30
        )
        _HELP.append(" ".join(out.stdout.split()))
    return _HELP[0]


def test_the_help_states_each_config_default_once_from_the_config() -> None:
    text = subprocess_help()
    assert "partitions of the key space; the same on every node (default 256)" in text
    assert "time budget of one active-expiry cycle in milliseconds (default 2)" in text
    assert "gossip/heartbeat period (default 0.2)" in text
    assert "(default 128, at most 500)" in text


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
    assert config.contacts == ("[::1]:9000", "node2:7000", "127.0.0.1:7001")
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
        ["n", "0", "--max-request-bytes", "inf"],
        ["n", "0", "--client-output-buffer-limit", "64M 1M"],
        ["n", "0", "--max-value-depth", "100000"],
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
    (["--max-clients", "0"], "--max-clients: must be at least 1"),
    (["--max-clients", "many"], "--max-clients: not a whole number"),
    (["--client-output-buffer-limit", "lots"], "--client-output-buffer-limit: not a size: 'lots'"),
    (["--client-output-buffer-limit", "32"], "--client-output-buffer-limit: a limit must be 0 (none) or at least 64 bytes"),
    (["--client-output-buffer-limit", "64M 16M"], "--client-output-buffer-limit: expected HARD or 'HARD SOFT SECONDS'"),
    (["--client-output-buffer-limit", "16M 64M 60"], "--client-output-buffer-limit: the soft limit must not exceed the hard limit"),
    (["--client-output-buffer-limit", "64M 16M -1"], "--client-output-buffer-limit: must be a finite number >= 0"),
    (["--client-output-buffer-limit", "inf"], "--client-output-buffer-limit: not a size: 'inf'"),
    (["--timeout", "-1"], "--timeout: must be a finite number >= 0"),
    (["--request-read-timeout", "soon"], "--request-read-timeout: not a number of seconds: 'soon'"),
    (["--max-input-buffer-bytes", "0"], "--max-input-buffer-bytes: must be at least 64 bytes"),
    (["--max-value-depth", "0"], "--max-value-depth: must be at least 1"),
    (["--max-value-depth", "501"], "--max-value-depth: must be at most 500"),
    (["host:99999"], "PEER_ADDR: bad address 'host:99999': port must be 1..65535"),
    (["host:"], "PEER_ADDR: bad address 'host:': port '' is not a number"),
    (["--save", "60", "1"], "--save: needs --dir (without it the node keeps its data in memory only)"),
    (["--appendonly", "yes"], "--appendonly: needs --dir (without it the node keeps its data in memory only)"),
]


def test_without_a_data_directory_nothing_is_saved_and_the_settings_say_so() -> None:
    """Redis's default save rules apply only where there is a directory to save to:
    ``CONFIG GET save`` (from ``options``) must not promise snapshots a memory-only node never writes."""
    memory_only = parse_args(["n", "0"])
    assert memory_only.save == () and memory_only.options["save"] == ""
    assert parse_args(["n", "0", "--save", ""]).save == ()
    with_dir = parse_args(["n", "0", "--dir", "/nonexistent-is-checked-at-start"])
    assert with_dir.save == ((3600, 1), (300, 100), (60, 10000))
    assert with_dir.options["save"] == "3600 1 300 100 60 10000"


@pytest.mark.parametrize(("argv", "message"), BAD_CLUSTER_ARGS, ids=[" ".join(a) for a, _ in BAD_CLUSTER_ARGS])
def test_bad_cluster_arguments_say_what_is_wrong(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(["n", "0", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err and message in err, err


def test_client_limits_default_as_redis_and_the_issue_say() -> None:
    limits = client_limits(parse_args(["n", "0"]))
    assert limits == ClientLimits(
        output_hard=64 << 20,
        output_soft=0,
        output_soft_s=0.0,
        max_clients=10_000,
        idle_timeout_s=0.0,
        request_read_timeout_s=10.0,
        max_input_buffer=256 << 20,
        max_value_depth=128,
    )
    assert node_config(parse_args(["n", "0"])).max_value_depth == 128


def test_client_limit_flags_map_onto_the_limits() -> None:
    args = parse_args(
        [
            "n", "0", "--client-output-buffer-limit", "32M 8m 30", "--max-clients", "50",
            "--timeout", "300", "--request-read-timeout", "2.5", "--max-input-buffer-bytes", "1G",
            "--max-value-depth", "64",
        ]
    )
    limits = client_limits(args)
    assert (limits.output_hard, limits.output_soft, limits.output_soft_s) == (32 << 20, 8 << 20, 30.0)
    assert (limits.max_clients, limits.idle_timeout_s, limits.request_read_timeout_s) == (50, 300.0, 2.5)
    assert (limits.max_input_buffer, limits.max_value_depth) == (1 << 30, 64)
    assert node_config(args).max_value_depth == 64


@pytest.mark.parametrize(
    ("text", "limits"),
    [("0", (0, 0, 0.0)), ("8M", (8 << 20, 0, 0.0)), ("64M,16M,60", (64 << 20, 16 << 20, 60.0)), ("0 1G 10", (0, 1 << 30, 10.0))],
)
def test_the_output_buffer_limit_takes_one_or_three_values(text: str, limits: tuple[int, int, float]) -> None:
    assert parse_args(["n", "0", "--client-output-buffer-limit", text]).client_output_buffer_limit == limits


@pytest.mark.parametrize(
    ("host", "max_memory", "warns"),
    [
        ("127.0.0.1", 0, False),
        ("127.0.0.2", 0, False),
        ("::1", 0, False),
        ("[::1]", 0, False),
        ("localhost", 0, False),
        ("0.0.0.0", 0, True),
        ("::", 0, True),
        ("10.1.2.3", 0, True),
        ("cache.example", 0, True),
        ("0.0.0.0", 1 << 30, False),
    ],
)
def test_a_reachable_node_without_max_memory_is_warned_about(host: str, max_memory: int, warns: bool) -> None:
    warning = memory_warning(host, max_memory)
    assert (warning is not None) == warns
    if warning is not None:
        assert "unbounded" in warning and "--max-memory 1G --eviction-policy allkeys-lru" in warning


def test_a_loopback_node_starts_without_the_memory_warning(tmp_path) -> None:  # type: ignore[no-untyped-def]
    proc = NodeProcess("quiet", log_path=tmp_path / "node.log")
    try:
        assert "listening on 127.0.0.1" in proc.start_line
    finally:
        proc.terminate()
    assert "--max-memory is not set" not in (tmp_path / "node.log").read_text()


def test_the_help_describes_the_client_limits() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "runtime.node", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0
    for flag in (
        "--max-clients", "--client-output-buffer-limit", "--timeout", "--request-read-timeout",
        "--max-input-buffer-bytes", "--max-value-depth",
    ):
        assert flag in out.stdout
    assert "default 64M" in out.stdout and "default 10000" in out.stdout and "default 256M" in out.stdout


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


def test_too_few_file_descriptors_for_max_clients_is_warned_about() -> None:
    import resource

    def low_fd_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime.node", "n", "0", "--max-clients", "1000"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=low_fd_limit,
    )
    try:
        assert proc.stdout is not None and "listening on" in proc.stdout.readline()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=15)
    assert "--max-clients 1000 needs about 1064 file descriptors but this process may open 256" in err
