"""Consistency levels: how many of a key's owners must answer before the client does."""

from __future__ import annotations

__all__ = ["CONSISTENCY_LEVELS", "required_acks"]

CONSISTENCY_LEVELS = ("one", "quorum", "all")


def required_acks(level: str, owners: int) -> int:
    """Answers needed from ``owners`` replicas at ``level`` (quorum: a strict majority)."""
    if level == "one":
        return min(1, owners)
    if level == "quorum":
        return owners // 2 + 1 if owners else 0
    if level == "all":
        return owners
    raise ValueError(f"unknown consistency level {level!r}")
