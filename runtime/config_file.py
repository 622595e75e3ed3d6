"""``python -m runtime.node --config node.toml``: a node's options from a TOML file.

Why the file knows no option of its own: its keys are read off the node's argparse parser
(every long flag without its ``--``, plus the positionals ``node-id``, ``port`` and
``peers``), and each value goes through the flag's own ``type`` and ``choices``. So a flag
added to ``runtime.node`` is a key of the file the moment it exists, the two can never
disagree on a name, a unit or a range, and nothing here writes a default down.

Precedence: the file's values become the parser's defaults; whatever the command line
says wins. A positional the file gives (``node-id = "node1"``) may then be left out of
the command line. An unknown key, a table, or a value its flag refuses is a
:class:`ConfigFileError` naming the file and the key (``runtime.node`` prints it as a
usage error, exit 2). Relative paths in the file are relative to the working directory,
as on the command line.

:func:`effective_options` renders what a node runs with (after the file, the flags and
their checks) as text per key, secrets masked: ``stats`` shows it under ``config`` and
``CONFIG GET`` over RESP answers from it.
"""

from __future__ import annotations

import argparse
import difflib
import tomllib
from collections.abc import Sequence
from typing import Any

__all__ = [
    "MASK",
    "ConfigFileError",
    "apply_config_file",
    "config_keys",
    "config_path",
    "effective_options",
    "parse_args_with_config",
]

#: What a secret's value shows as.
MASK = "******"

#: Parser options that are no setting of the node.
_NOT_SETTINGS = frozenset({"help", "config"})


class ConfigFileError(ValueError):
    """The config file cannot be read, or a key in it is unknown or has a bad value."""

    def __init__(self, path: str, message: str, key: str | None = None) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.key = key


def _key(action: argparse.Action) -> str | None:
    """The file's key for ``action``: its long flag without ``--``, or its positional
    name with hyphens (None: no setting)."""
    if action.option_strings:
        longs = [flag for flag in action.option_strings if flag.startswith("--")]
        key = longs[0][2:] if longs else None
    else:
        key = action.dest.replace("_", "-")
    return None if key is None or key in _NOT_SETTINGS or action.dest == argparse.SUPPRESS else key


def config_keys(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Every key a config file may set, in the parser's order -> its action."""
    keys = {}
    for action in parser._actions:  # (argparse has no public list of its actions)
        key = _key(action)
        if key is not None:
            keys[key] = action
    return keys


def config_path(argv: Sequence[str] | None) -> str | None:
    """``--config``'s value in ``argv`` (None: not given), read before the full parse."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    return known.config


def _text(value: Any) -> str:
    if type(value) is bool:
        return "yes" if value else "no"
    if type(value) in (int, float, str):
        return str(value)
    raise TypeError(f"a {type(value).__name__}, expected a string or a number")


def _convert(action: argparse.Action, value: Any) -> Any:
    """``value`` from the file as the flag would have parsed it; ValueError says why not."""
    if isinstance(action, argparse._AppendAction):
        # A flag given once per item (``--save 900 1 --save 300 10``): a list in the file
        # is one occurrence per item, a single value one occurrence.
        items = value if isinstance(value, list) else [value]
        one = argparse.Action(
            action.option_strings, action.dest, action.nargs, type=action.type, choices=action.choices
        )
        return [_convert(one, [item] if action.nargs in ("*", "+") else item) for item in items]
    if isinstance(action, argparse._StoreConstAction):  # store_true / store_false
        if type(value) is not bool:
            raise ValueError("expected true or false")
        return action.const if value else action.default
    if isinstance(value, dict):
        raise ValueError("a table; options are top-level keys")
    many = action.nargs in ("*", "+")
    if isinstance(value, list) != many:
        raise ValueError("expected a list of strings" if many else "a list, expected one value")
    items = value if many else [value]
    out = []
    for item in items:
        try:
            text = _text(item)
            converted = action.type(text) if callable(action.type) else text
        except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
            raise ValueError(str(exc)) from None
        if action.choices is not None and converted not in action.choices:
            raise ValueError(f"must be one of {', '.join(map(str, action.choices))}")
        out.append(converted)
    return out if many else out[0]


def apply_config_file(parser: argparse.ArgumentParser, path: str) -> dict[str, Any]:
    """Make ``path``'s values ``parser``'s defaults (flags still override them). Returns
    the values of append options (``--save``) by dest, which cannot be defaults (argparse
    appends a flag's occurrences to its default): set each on the parsed namespace when the
    command line gave none (:func:`parse_args_with_config` does). Raises
    :class:`ConfigFileError`."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigFileError(path, f"cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigFileError(path, f"not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:  # TOML is UTF-8
        raise ConfigFileError(path, f"not valid TOML: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except RecursionError:  # tomllib nests by recursion: arrays/tables thousands deep
        raise ConfigFileError(path, "not valid TOML: nested too deeply") from None
    keys = config_keys(parser)
    defaults: dict[str, Any] = {}
    appended: dict[str, Any] = {}
    for key, value in data.items():
        action = keys.get(key)
        if action is None:
            close = difflib.get_close_matches(key.replace("_", "-"), list(keys), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigFileError(path, f"unknown key {key!r}{hint}", key)
        try:
            converted = _convert(action, value)
        except ValueError as exc:
            shown = MASK if _secret(key) else repr(value)  # a mistyped password is still one
            raise ConfigFileError(path, f"{key} = {shown}: {exc}", key) from None
        (appended if isinstance(action, argparse._AppendAction) else defaults)[action.dest] = converted
        if not action.option_strings and action.nargs is None:
            # A required positional the file gives: the command line may leave it out.
            action.nargs, action.required = "?", False
    parser.set_defaults(**defaults)
    return appended


def parse_args_with_config(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``parser.parse_args(argv)`` with ``--config FILE``'s values under the command line's
    (a bad file is a usage error: exit 2 with the file, the key and why)."""
    path = config_path(argv)
    appended: dict[str, Any] = {}
    if path is not None:
        try:
            appended = apply_config_file(parser, path)
        except ConfigFileError as exc:
            parser.error(str(exc))
    args = parser.parse_args(argv)
    for dest, value in appended.items():
        if getattr(args, dest, None) is None:  # not given on the command line
            setattr(args, dest, value)
    return args


def _secret(key: str) -> bool:
    """A value that is itself a secret (a path to a file holding one is not)."""
    return not key.endswith("-file") and any(word in key for word in ("pass", "secret"))


def _show(value: Any) -> str:
    if value is None:
        return ""
    if type(value) is bool:
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return " ".join(_show(item) for item in value if item is not None)
    if type(value) is float:
        return f"{value:g}"
    return str(value)


def effective_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, str]:
    """Every setting's effective value as text, by key (secrets masked when set)."""
    out = {}
    for key, action in config_keys(parser).items():
        value = getattr(args, action.dest, None)
        out[key] = (MASK if value not in (None, "") else "") if _secret(key) else _show(value)
    return out
