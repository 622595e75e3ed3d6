"""Command-line value types shared by ``runtime.node`` and ``runtime.cli``.

Each raises :class:`argparse.ArgumentTypeError` with a message that says what is wrong,
so argparse prints a usage error (exit 2) instead of a traceback.
"""

from __future__ import annotations

import argparse
import math

__all__ = ["byte_size", "port", "positive_seconds", "seconds"]


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


def byte_size(text: str) -> int:
    """Bytes with an optional K/M/G suffix (powers of 1024): ``1048576``, ``512K``, ``1M``."""
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    clean = text.strip().lower().removesuffix("b").removesuffix("i")
    scale = units.get(clean[-1:], 1)
    number = clean[:-1] if clean[-1:] in units else clean
    try:
        value = int(float(number) * scale)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 1048576, 512K, 1M)") from None
    if value < 64:
        raise argparse.ArgumentTypeError("must be at least 64 bytes")
    return value
