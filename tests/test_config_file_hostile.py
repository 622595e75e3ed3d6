"""Red-team regressions for ``--config`` (session 24): a hostile TOML file is a
ConfigFileError naming the file (exit 2), never a traceback, and an error about a secret
key does not print the secret.

Found: 100,000 nested ``[`` (or 5,000 nested inline tables) raised RecursionError out of
tomllib; a file that is not UTF-8 raised UnicodeDecodeError; ``requirepass = ["pw"]``
printed the password in the error.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.config_file import MASK, ConfigFileError, apply_config_file
from runtime.node import build_parser


def _refused(tmp_path: Path, data: bytes) -> ConfigFileError:
    path = tmp_path / "node.toml"
    path.write_bytes(data)
    with pytest.raises(ConfigFileError) as info:
        apply_config_file(build_parser(), str(path))
    assert str(path) in str(info.value)
    return info.value


@pytest.mark.parametrize(
    "data",
    [
        b"replicas = " + b"[" * 100_000 + b"]" * 100_000 + b"\n",
        b"replicas = " + b"{a=" * 5_000 + b"1" + b"}" * 5_000 + b"\n",
    ],
    ids=["arrays", "inline-tables"],
)
def test_deep_nesting_is_a_config_error(tmp_path: Path, data: bytes) -> None:
    _refused(tmp_path, data)


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=1, max_size=64))
def test_any_bytes_are_a_config_error_or_a_config(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("cfg") / "node.toml"
    path.write_bytes(data)
    try:
        apply_config_file(build_parser(), str(path))
    except ConfigFileError:
        pass


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    assert "UTF-8" in str(_refused(tmp_path, b"\xff\xfe requirepass = 1\n"))


def test_a_mistyped_secret_is_not_shown(tmp_path: Path) -> None:
    error = _refused(tmp_path, b'requirepass = ["hunter2hunter2"]\n')
    assert "hunter2" not in str(error) and MASK in str(error)
