"""Time that work takes: what each message costs a simulated node, and the clients' link.

Theory of operation
-------------------
A real node is one Python process on one event loop: it handles one thing at a time,
and a request that arrives while it is busy waits. The simulator models that with one
single server per node (:class:`sim.scheduler.NodeScheduler`):

- every message that reaches a node from outside is a *job*: a client batch costs the
  sum of its requests' costs (``client.set`` for a set or delete, ``client.get`` for
  anything else), a peer message ``peer.request`` (a ``ReplicaRequest``: decode, apply,
  hand the answer over) or ``peer.answer`` (any other peer message: read, decode,
  handle). The server takes jobs one at a time in arrival order; when a job's cost
  has passed, its message enters the node's actors;
- the actor turns and timers that become due run while the server is free, before it
  takes the next job (an asyncio loop runs every ready callback before it polls its
  sockets again), one after another in the order they became due;
- every peer message a turn sends costs ``peer.send`` (encode, write): it leaves when
  that cost has passed, and the node's later turns wait for it too (the store applying
  the coordinator's own copy, say: on a real node the own copy lands only after the
  loop pass that encoded and wrote the remote ones).

Costs are drawn per message from distributions fitted to a real node's measured CPU
time per message type (``python -m bench.service_time --write sim/data/service_times.toml``),
loaded from :data:`DATA_FILE` as data: this module holds no figures of its own. Each node
draws from ``Random(f"{seed}/service/{node_id}")`` (``/{life}`` after a restart), so the
network's and the workload's draws are not shifted by it: same seed, same trace.

Clients reach their node over a link of their own (``client.link`` in the same file:
half a loopback ping round trip), drawn by the workload each way
(:mod:`sim.workload`): a write's client-visible latency is never 0. A scenario may
replace it (``client_link``) or turn the whole model off (``service = "none"``: every
message handled the instant it arrives, as the simulator did before).
"""

from __future__ import annotations

import functools
import random
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actors.protocol.messages import Delete, Set
from actors.protocol.peer_messages import ReplicaRequest
from sim.link_models import LatencyModel, constant, lognormal

__all__ = ["DATA_FILE", "KINDS", "ServiceModel", "default_service"]

#: The fitted costs the simulator loads by default (written by ``bench.service_time``).
DATA_FILE = Path(__file__).resolve().parent / "data" / "service_times.toml"

#: Every cost a model may hold, and what it is the cost of.
KINDS = {
    "client.set": "a client set or delete at its node (decode, coordinate, own store apply, reply)",
    "client.get": "any other client request (decode, read, reply)",
    "peer.request": "a ReplicaRequest received (decode, apply, hand the answer to the sender)",
    "peer.answer": "any other peer message received (read, decode, handle)",
    "peer.send": "one peer message sent (encode, write)",
    "client.link": "one way between a client and its node (not node CPU: the clients' link)",
}

_WRITES = (Set, Delete)


@dataclass(frozen=True)
class ServiceModel:
    """Per-message-type cost distributions (seconds), and the clients' one-way link."""

    costs: dict[str, LatencyModel] = field(default_factory=dict)
    #: Where the figures came from (the command and date that measured them).
    source: str = ""

    def __post_init__(self) -> None:
        unknown = set(self.costs) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown service cost kinds {sorted(unknown)}; known: {', '.join(KINDS)}")

    def draw(self, kind: str, rng: random.Random) -> float:
        model = self.costs.get(kind)
        return model.draw(rng) if model is not None else 0.0

    @property
    def client_link(self) -> LatencyModel:
        return self.costs.get("client.link") or constant(0.0)

    def batch_cost(self, requests: Any, rng: random.Random) -> float:
        """What a client batch costs its node: each request's cost, drawn in order."""
        return sum(self.draw("client.set" if isinstance(r, _WRITES) else "client.get", rng) for r in requests)

    def peer_cost(self, msg: Any, rng: random.Random) -> float:
        return self.draw("peer.request" if type(msg) is ReplicaRequest else "peer.answer", rng)

    # --- as data --------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path = DATA_FILE) -> ServiceModel:
        """A model from its TOML file: ``source = "..."`` and one ``[costs."KIND"]`` table
        per kind with the fields of :class:`~sim.link_models.LatencyModel` in milliseconds
        (``kind = "lognormal"``, ``median_ms``, ``sigma``, ``tail_p``, ``tail_factor``; or
        ``kind = "constant"``, ``ms``)."""
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        costs = {}
        for kind, spec in data.get("costs", {}).items():
            if spec.get("kind", "lognormal") == "constant":
                costs[kind] = constant(float(spec["ms"]) / 1000.0)
            else:
                costs[kind] = lognormal(
                    float(spec["median_ms"]) / 1000.0, float(spec["sigma"]),
                    float(spec.get("tail_p", 0.0)), float(spec.get("tail_factor", 1.0)),
                )
        return cls(costs, str(data.get("source", "")))

    def save(self, path: str | Path) -> None:
        lines = [
            "# Per-message CPU cost of a real node, and the clients' one-way link, for the simulator",
            "# (sim/service.py loads this file; bench/service_time.py writes it, see bench/RESULTS.md).",
            f"source = {_toml_str(self.source)}",
        ]
        for kind, model in sorted(self.costs.items()):
            lines += ["", f'[costs."{kind}"]', f"# {KINDS[kind]}"]
            if model.kind == "constant":
                lines += ['kind = "constant"', f"ms = {model.a * 1000:.6g}"]
            elif model.kind == "lognormal":
                lines += ['kind = "lognormal"', f"median_ms = {model.a * 1000:.6g}", f"sigma = {model.b:.6g}"]
                if model.tail_p:
                    lines += [f"tail_p = {model.tail_p:.6g}", f"tail_factor = {model.tail_factor:.6g}"]
            else:
                raise ValueError(f"a service cost is constant or lognormal, not {model.kind}")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")

    def replace(self, **costs: LatencyModel) -> ServiceModel:
        """This model with some costs replaced (``client_link=...`` names ``client.link``)."""
        return ServiceModel({**self.costs, **{k.replace("_", "."): v for k, v in costs.items()}}, self.source)


def _toml_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@functools.cache
def default_service() -> ServiceModel:
    """The measured model in :data:`DATA_FILE` (read once per process)."""
    return ServiceModel.load(DATA_FILE)
