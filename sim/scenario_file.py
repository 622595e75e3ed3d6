"""Writing a :class:`~sim.scenario.Scenario` as the TOML file :mod:`sim.scenario` reads.

The shrinker (:mod:`sim.shrink`) hands its result over as a file, so the writer is the
reader's inverse: ``scenario_from_dict(tomllib.loads(dumps(s))) == s`` for every scenario
the reader can produce (``tests/test_sim_shrink.py`` checks it with Hypothesis, and for
every built-in). The schema is flat, so a small writer does: top-level keys, then one
``[table]`` per section (deeper tables inline), then ``[[links]]`` and ``[[faults]]``.

Latencies are written in milliseconds, as the reader takes them: the writer picks the
float whose product with 0.001 is exactly the model's seconds, which exists for every
value the reader produced; a value set in seconds by code may miss by one ulp (the
shrinker re-runs the written file to confirm it still reproduces).
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import Any

from sim.network import LatencyModel, Link
from sim.scenario import Scenario
from sim.workload import WorkloadSpec

__all__ = ["WRITTEN_FIELDS", "dumps", "scenario_to_dict", "toml_dumps", "write_scenario"]

_MS = 0.001
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


# --- Scenario -> dict -------------------------------------------------------------------------


def _ms(seconds: float) -> float:
    """The milliseconds the reader turns back into exactly ``seconds`` (``ms * 0.001``)."""
    for guess in (seconds * 1000.0, seconds / _MS):
        up = down = guess
        for _ in range(5):  # the guess, then up to 4 ulps either side
            for candidate in (up, down):
                if candidate * _MS == seconds:
                    return candidate
            up, down = math.nextafter(up, math.inf), math.nextafter(down, -math.inf)
    return seconds * 1000.0


def _latency(model: LatencyModel) -> dict[str, Any]:
    if model.kind == "constant":
        return {"kind": "constant", "ms": _ms(model.a)}
    if model.kind == "uniform":
        return {"kind": "uniform", "min_ms": _ms(model.a), "max_ms": _ms(model.b)}
    return {
        "kind": "lognormal",
        "median_ms": _ms(model.a),
        "sigma": model.b,
        "tail_p": model.tail_p,
        "tail_factor": model.tail_factor,
    }


def _link(link: Link) -> dict[str, Any]:
    out: dict[str, Any] = {"latency": _latency(link.latency), "loss": link.loss, "duplicate": link.duplicate}
    if link.reorder:
        out["reorder"] = True
    return out


#: The Scenario fields this module writes: a field added to Scenario must be added here (and
#: to the reader), or writing a scenario that sets it raises rather than silently dropping it.
WRITTEN_FIELDS = frozenset({
    "name", "description", "nodes", "replicas", "write_consistency", "read_consistency", "link", "links",
    "clocks", "workload", "faults", "duration", "settle", "node", "initial_nodes", "secret", "secrets",
    "service", "client_link", "disk",
})


def scenario_to_dict(scenario: Scenario) -> dict[str, Any]:
    """The TOML document of ``scenario`` as plain data (the inverse of
    :func:`sim.scenario.scenario_from_dict`). Workload fields at their default and empty
    sections are left out."""
    s = scenario
    blank = Scenario("", "")
    unknown = [
        f.name for f in dataclasses.fields(Scenario) if f.name not in WRITTEN_FIELDS and getattr(s, f.name) != getattr(blank, f.name)
    ]
    if unknown:
        raise ValueError(f"sim.scenario_file cannot write the scenario fields {unknown} yet")
    out: dict[str, Any] = {
        "name": s.name,
        "description": s.description,
        "nodes": s.nodes,
        "replicas": s.replicas,
        "write_consistency": s.write_consistency,
        "read_consistency": s.read_consistency,
        "duration": s.duration,
        "settle": s.settle,
    }
    if s.initial_nodes is not None:
        out["initial_nodes"] = s.initial_nodes
    if s.secret is not None:
        out["secret"] = s.secret
    if s.secrets:
        out["secrets"] = dict(s.secrets)
    out["link"] = _link(s.link)
    if s.links:
        out["links"] = [{"from": src, "to": dst, **_link(link)} for (src, dst), link in s.links.items()]
    if s.clocks:
        out["clocks"] = {node: {"offset": offset, "drift": drift} for node, (offset, drift) in s.clocks.items()}
    if s.node:
        out["node"] = dict(s.node)
    defaults = WorkloadSpec()
    workload = {
        f.name: getattr(s.workload, f.name)
        for f in dataclasses.fields(WorkloadSpec)
        if getattr(s.workload, f.name) != getattr(defaults, f.name) and getattr(s.workload, f.name) is not None
    }
    if workload:
        out["workload"] = workload
    if s.faults:
        out["faults"] = [{"at": f.at, "action": f.action, **f.args} for f in s.faults]
    if s.service is None:
        out["service"] = "none"
    elif s.service != blank.service:
        raise ValueError("sim.scenario_file writes the measured service model or none, not another one")
    if s.client_link is not None:
        out["client_link"] = {"latency": _latency(s.client_link)}
    if s.disk:
        out["disk"] = True
    return out


def dumps(scenario: Scenario) -> str:
    """``scenario`` as a TOML scenario file."""
    return toml_dumps(scenario_to_dict(scenario))


def write_scenario(scenario: Scenario, path: Path) -> None:
    path.write_text(dumps(scenario), encoding="utf-8")


# --- dict -> TOML ------------------------------------------------------------------------------


def toml_dumps(data: dict[str, Any]) -> str:
    """A TOML document of ``data``: keys whose value is neither a table nor a list of
    tables first, then a ``[table]`` per dict and a ``[[table]]`` per list of dicts; dicts
    below that are inline tables. None values are an error (TOML has no null)."""
    lines: list[str] = []
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    arrays = {k: v for k, v in data.items() if _is_array_of_tables(v)}
    for key, value in data.items():
        if key not in tables and key not in arrays:
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, table in tables.items():
        lines += ["", f"[{_key(key)}]"] + [f"{_key(k)} = {_value(v)}" for k, v in table.items()]
    for key, items in arrays.items():
        for item in items:
            lines += ["", f"[[{_key(key)}]]"] + [f"{_key(k)} = {_value(v)}" for k, v in item.items()]
    return "\n".join(lines) + "\n"


def _is_array_of_tables(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, dict) for v in value)


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _string(text: str) -> str:
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }" if value else "{}"
    raise TypeError(f"cannot write {value!r} ({type(value).__name__}) as TOML")
