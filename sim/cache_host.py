"""The cache on the simulator: :class:`sim.host.SimHost` bound to ``spawn_node``.

Tests, :mod:`sim.runner` and notebooks drive cache nodes through this: the framework's
host calls (``start_node``, ``run_for``, ``pause``, ``crash``, ``network``...) plus the
cache's client calls (``connect``, ``submit``, ``request``) of
:class:`~actors.node.driver.NodeDriver`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from actors.config import NodeConfig
from actors.node.driver import NodeDriver
from actors.node.system import NodeRefs, spawn_node
from sim.host import SimHost

__all__ = ["CacheSimHost"]


class CacheSimHost(NodeDriver, SimHost):
    """Cache nodes on virtual time; ``seed`` drives every random choice."""

    def __init__(self, seed: int | str = 0, secret: bytes | None = None) -> None:
        """``secret``: the cluster secret every node holds (default: drawn from the seed)."""
        super().__init__(spawn_node, seed, secret)

    def start_node(self, node_id: str = "node1", config: NodeConfig | None = None, **host_options: Any) -> NodeRefs:
        """As :meth:`SimHost.start_node`; a config without an address advertises the node's
        id, which is what the simulated network routes by."""
        if config is not None and not config.address:
            config = dataclasses.replace(config, address=node_id)
        return super().start_node(node_id, config, **host_options)
