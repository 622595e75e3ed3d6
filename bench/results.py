"""Recording benchmark runs in ``bench/RESULTS.md``: one ``##`` section per benchmark,
one ``###`` entry per run (date, exact command, machine, then the figures)."""

from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

__all__ = ["RESULTS", "machine", "record"]

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def machine() -> str:
    return f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def record(heading: str, command: str, body: str, path: Path = RESULTS) -> None:
    """Add a run under ``## heading`` (created at the end when new), after its last run."""
    entry = f"\n### {datetime.date.today().isoformat()} · `{command.strip()}`\n\n{body.strip()}\n"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    title = f"## {heading}"
    start = text.find(f"\n{title}\n")
    if start < 0:
        text = text.rstrip("\n") + f"\n\n{title}\n" + entry
    else:
        nxt = text.find("\n## ", start + len(title) + 2)
        end = len(text) if nxt < 0 else nxt
        text = text[:end].rstrip("\n") + "\n" + entry + text[end:]
    path.write_text(text, encoding="utf-8")
