"""Command-line value types shared by ``runtime.node`` and ``runtime.cli``.

Each raises :class:`argparse.ArgumentTypeError` with a message that says what is wrong,
so argparse prints a usage error (exit 2) instead of a traceback.
"""

from __future__ import annotations

import argparse
import math

from runtime.addresses import format_address, parse_address, split_address

__all__ = [
    "advertise_address",
    "byte_size",
    "output_buffer_limit",
    "count",
    "fraction",
    "non_negative_count",
    "peer_address",
    "port",
    "positive_number",
    "positive_seconds",
    "seconds",
]


def seconds(text: str) -> float:
    """A finite number of seconds, >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError("must be a finite number >= 0")
    return value


def positive_seconds(text: str) -> float:
    """A finite number of seconds, > 0."""
    value = seconds(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value


def port(text: str) -> int:
    """A TCP port, 0..65535 (0: let the system pick a free one)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be 0..65535")
    return value


def _bytes(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    clean = text.strip().lower().removesuffix("b").removesuffix("i")
    scale = units.get(clean[-1:], 1)
    number = clean[:-1] if clean[-1:] in units else clean
    try:
        value = float(number) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 1048576, 512K, 1M)") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 1048576, 512K, 1M)")
    return int(value)


def byte_size(text: str) -> int:
    """Bytes with an optional K/M/G suffix (powers of 1024): ``1048576``, ``512K``, ``1M``."""
    value = _bytes(text)
    if value < 64:
        raise argparse.ArgumentTypeError("must be at least 64 bytes")
    return value


def _limit_size(text: str) -> int:
    """A byte size where 0 means no limit."""
    value = _bytes(text)
    if 0 < value < 64:
        raise argparse.ArgumentTypeError("a limit must be 0 (none) or at least 64 bytes")
    return value


def output_buffer_limit(text: str) -> tuple[int, int, float]:
    """``HARD`` or ``HARD SOFT SECONDS`` (Redis's ``client-output-buffer-limit`` for normal
    clients): sizes with K/M/G suffixes, 0 for no limit; returns ``(hard, soft, seconds)``."""
    fields = text.replace(",", " ").split()
    if len(fields) not in (1, 3):
        raise argparse.ArgumentTypeError(f"expected HARD or 'HARD SOFT SECONDS', got {text!r}")
    hard = _limit_size(fields[0])
    if len(fields) == 1:
        return hard, 0, 0.0
    soft = _limit_size(fields[1])
    secs = seconds(fields[2])
    if hard and soft > hard:
        raise argparse.ArgumentTypeError("the soft limit must not exceed the hard limit")
    return hard, soft, secs


def _integer(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number{what}: {text!r}") from None


def count(text: str) -> int:
    """A whole number >= 1."""
    value = _integer(text, "")
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def non_negative_count(text: str) -> int:
    """A whole number >= 0."""
    value = _integer(text, "")
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def positive_number(text: str) -> float:
    """A finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError("must be a finite number > 0")
    return value


def fraction(text: str) -> float:
    """A number in (0, 1]: a share of something, such as the writes ``--trace-sample`` keeps."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value <= 1:  # NaN fails this too
        raise argparse.ArgumentTypeError("must be a number > 0 and <= 1")
    return value


def peer_address(text: str) -> str:
    """A peer's ``host:port`` (``[v6]:port``; a bare host means port 8081), normalised
    by :func:`~runtime.addresses.format_address` so every node writes the same address
    the same way."""
    try:
        host, port_number = parse_address(text, "address")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return format_address(host, port_number)


def advertise_address(text: str) -> tuple[str, int | None]:
    """``HOST[:PORT]`` this node is reached at; without a port, the port it binds."""
    try:
        host, port_number = split_address(text, "address")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if host.strip().lower() in ("0.0.0.0", "::"):
        raise argparse.ArgumentTypeError(f"{host} is not an address peers can connect to")
    return host, port_number
