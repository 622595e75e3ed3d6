"""``python -m runtime.node --config node.toml``: the file's keys are the flags', flags
override it, an unknown key or a bad value is refused naming the key and the file, and a
real node shows its effective settings (secrets masked) in ``stats`` and ``CONFIG GET``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import redis

from runtime.client import Client
from runtime.config_file import MASK, ConfigFileError, apply_config_file, config_keys, effective_options
from runtime.local_cluster import ROOT, NodeProcess
from runtime.node import build_parser, parse_args

EXAMPLE = """\
# a node of the docs' shape
node-id = "filenode"
port = 0
resp-port = 0
max-memory = "64M"
eviction-policy = "allkeys-lru"
replicas = 2
heartbeat-interval = 0.1
protected-mode = false
requirepass = "correct horse battery"
client-output-buffer-limit = "32M 8M 30"
peers = ["localhost:9001", "127.0.0.1:9002"]
"""


def _write(tmp_path: Path, text: str, name: str = "node.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_every_long_flag_is_a_key_and_nothing_else() -> None:
    parser = build_parser()
    flags = {
        flag[2:]
        for action in parser._actions
        for flag in action.option_strings[:1]
        if flag.startswith("--") and flag not in ("--help", "--config")
    }
    assert set(config_keys(parser)) == flags | {"node-id", "port", "peers"}


def test_the_file_sets_options_and_flags_override_it(tmp_path: Path) -> None:
    path = _write(tmp_path, EXAMPLE)
    args = parse_args(["--config", path, "--replicas", "3", "--max-memory", "1G"])
    assert (args.node_id, args.port, args.resp_port) == ("filenode", 0, 0)
    assert args.replicas == 3 and args.max_memory == 1 << 30  # the flags win
    assert args.eviction_policy == "allkeys-lru" and args.heartbeat_interval == 0.1  # the file's
    assert args.protected_mode == "no" and args.client_output_buffer_limit == (32 << 20, 8 << 20, 30.0)
    assert args.peers == ["127.0.0.1:9001", "127.0.0.1:9002"]  # normalised by the flag's own type
    positional = parse_args(["--config", path, "other", "7000", "127.0.0.1:9100"])
    assert (positional.node_id, positional.port, positional.peers) == ("other", 7000, ["127.0.0.1:9100"])


def test_effective_options_mask_secrets_and_show_units(tmp_path: Path) -> None:
    parser = build_parser()
    apply_config_file(parser, _write(tmp_path, EXAMPLE))
    args = parser.parse_args(["--cluster-secret-file", "/etc/secret"])
    shown = effective_options(parser, args)
    assert shown["requirepass"] == MASK and "correct horse" not in repr(shown)
    assert shown["cluster-secret-file"] == "/etc/secret"  # a path, not the secret
    assert shown["max-memory"] == str(64 << 20) and shown["heartbeat-interval"] == "0.1"
    assert shown["client-output-buffer-limit"] == f"{32 << 20} {8 << 20} 30"
    assert effective_options(parser, parser.parse_args(["--requirepass", ""]))["requirepass"] == ""


@pytest.mark.parametrize(
    ("text", "key", "says"),
    [
        ('max_memory = "1G"\n', "max_memory", "unknown key 'max_memory' (did you mean 'max-memory'?)"),
        ("replicas = 0\n", "replicas", "replicas = 0: must be at least 1"),
        ('eviction-policy = "lru"\n', "eviction-policy", "must be one of noeviction"),
        ("replicas = [2]\n", "replicas", "a list, expected one value"),
        ("[cluster]\nreplicas = 2\n", "cluster", "unknown key 'cluster'"),
        ('max-memory = "lots"\n', "max-memory", "not a size"),
        ('peers = "127.0.0.1:1"\n', "peers", "expected a list of strings"),
    ],
)
def test_bad_keys_and_values_name_the_key_and_the_file(tmp_path: Path, text: str, key: str, says: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigFileError) as caught:
        apply_config_file(build_parser(), path)
    assert caught.value.key == key and caught.value.path == path
    assert str(caught.value).startswith(f"{path}: ") and says in str(caught.value)


def test_unreadable_and_invalid_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="cannot read"):
        apply_config_file(build_parser(), str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigFileError, match="not valid TOML"):
        apply_config_file(build_parser(), _write(tmp_path, "replicas = = 2\n"))


def test_a_real_node_refuses_an_unknown_key(tmp_path: Path) -> None:
    path = _write(tmp_path, 'replicas = 2\nmax-memroy = "1G"\n')
    done = subprocess.run(
        [sys.executable, "-m", "runtime.node", "--config", path, "n1", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 2
    assert f"{path}: unknown key 'max-memroy' (did you mean 'max-memory'?)" in done.stderr


def test_a_real_node_runs_with_the_file_and_shows_its_effective_settings(tmp_path: Path) -> None:
    path = _write(tmp_path, EXAMPLE.replace('peers = ["localhost:9001", "127.0.0.1:9002"]\n', ""))
    # (NodeProcess passes the id and port 0 itself: the command line's win over the file's)
    with NodeProcess("n7", "--config", path, "--replicas", "1", "--resp-port", "0") as node:
        with Client(node.addr, password="correct horse battery") as client:
            stats = client.stats()
        config = stats["config"]
        assert stats["node_id"] == "n7" and config["node-id"] == "n7"
        assert config["port"] == str(node.port) and config["resp-port"] == str(node.resp_port)  # bound, not 0
        assert config["replicas"] == "1" and stats["cluster"]["replicas"] == 1  # the flag won
        assert config["max-memory"] == str(64 << 20) and config["eviction-policy"] == "allkeys-lru"
        assert config["requirepass"] == MASK
        r = redis.Redis(port=node.resp_port, password="correct horse battery", decode_responses=True)
        try:
            got = r.config_get("max*")
            assert got["max-memory"] == got["maxmemory"] == str(64 << 20)
            assert r.config_get("requirepass") == {"requirepass": MASK}
            assert r.config_get("heartbeat-interval") == {"heartbeat-interval": "0.1"}
            assert r.config_get("port") == {"port": str(node.resp_port)}  # Redis's meaning
        finally:
            r.close()


def test_the_documented_example_is_a_valid_config(tmp_path: Path) -> None:
    doc = (ROOT / "docs" / "operations.md").read_text()
    example = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    parser = build_parser()
    assert apply_config_file(parser, _write(tmp_path, example)) == {}  # (no append option in it)
    args = parser.parse_args([])
    assert args.max_memory == 1 << 30 and args.protected_mode == "yes" and args.advertise == ("10.0.0.1", None)
    assert args.node_id == "node1" and args.cluster_secret_file == "/etc/actorcache/cluster.secret"


def test_append_options_take_the_file_unless_the_command_line_gives_them(tmp_path: Path) -> None:
    path = _write(tmp_path, f'dir = "{tmp_path}"\nsave = ["900 1", "300 10"]\n')
    assert parse_args(["--config", path, "n", "0"]).save == ((900, 1), (300, 10))
    assert parse_args(["--config", path, "n", "0", "--save", "60", "5"]).save == ((60, 5),)  # replaced, not added
    assert parse_args(["--config", _write(tmp_path, 'save = ""\n', "off.toml"), "n", "0"]).save == ()
