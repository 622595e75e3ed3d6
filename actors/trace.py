"""The trace schema both worlds write: one JSON object per line.

``{"t": seconds, "node": id, "kind": event, ...details}``, keys sorted, times rounded to
the microsecond, compact separators. The simulator stamps virtual time; the real node
(``python -m runtime.node --trace FILE``) stamps its monotonic clock, which on Linux is
system-wide, so the traces of nodes on one machine share a timeline. Key events:
``write`` (a coordinator accepted a write: ``key``, ``version``, ``replicas``) and
``apply`` (a replica applied it: ``key``, ``version``; ``via`` for repairs).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["trace_line"]


def trace_line(t: float, node: str, kind: str, fields: dict[str, Any]) -> str:
    return json.dumps({"t": round(t, 6), "node": node, "kind": kind, **fields}, sort_keys=True, separators=(",", ":"))
