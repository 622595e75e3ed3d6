"""Scraping a node's metrics port in tests: HTTP GET with a deadline, the exposition parsed
by ``prometheus_client.parser``, and the metric names docs/operations.md lists."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
OPERATIONS = ROOT / "docs" / "operations.md"


def http_get(port: int, path: str, timeout: float = 10.0) -> tuple[int, bytes, str]:
    """(status, body, content type) of ``GET http://127.0.0.1:port/path``."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers.get("Content-Type", "")


def parse(text: str) -> dict[str, Any]:
    """Families by their exposed name (a counter's with ``_total``, as the docs list them)."""
    out = {}
    for family in text_string_to_metric_families(text):
        name = family.name + "_total" if family.type == "counter" else family.name
        out[name] = family
    return out


def scrape(port: int) -> dict[str, Any]:
    status, body, content_type = http_get(port, "/metrics")
    assert status == 200, body[:200]
    assert content_type.startswith("text/plain; version=0.0.4"), content_type
    return parse(body.decode())


def value(families: dict[str, Any], name: str, suffix: str = "", **labels: str) -> float:
    """The value of the sample ``name + suffix`` whose labels include ``labels`` (0 when
    there is none: a counter not yet incremented has no labelled series)."""
    family = families[name]
    wanted = (family.name + suffix) if suffix else (name if family.type != "counter" else family.name + "_total")
    for sample in family.samples:
        if sample.name == wanted and all(sample.labels.get(k) == v for k, v in labels.items()):
            return float(sample.value)
    return 0.0


def documented_metrics() -> list[str]:
    """Every metric docs/operations.md's Metrics section lists in the first column of its tables."""
    text = OPERATIONS.read_text()
    section = text[text.index("## Metrics"): text.index("## Health")]
    names = re.findall(r"^\| `(actorcache_[a-z_]+)`", section, flags=re.M)
    assert len(names) > 40, "the metrics tables moved: update documented_metrics"
    return names
