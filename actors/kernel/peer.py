"""The envelope in which every host's peer transport delivers a message from another node.

An actor sends with ``ctx.send(peer, msg)``; the host carries ``msg`` to the node named
``peer`` (the simulator over :class:`sim.network.SimNetwork`, the loop host over its
in-process links, a real node over TCP) and tells the receiving node's inbox actor
``FromPeer(src, addr, msg)``. The envelope is the kernel's, not a system's: the transports
that build it know nothing of what ``msg`` means, and a system's actors match on it.

Invariants:
- ``src`` names the sender as the transport authenticated it (the simulated link's source,
  the ``hello`` of a real peer connection), never as the message claims;
- ``addr`` is where replies to the sender go (``ctx.send(env.addr, ...)``): the sender's
  id in the simulator, its advertised address on a real network;
- per link (sender, receiver) envelopes arrive in the order they were sent, or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["FromPeer"]


@dataclass(slots=True, unsafe_hash=True)
class FromPeer:
    """A peer message as delivered to a node's inbox actor, with its authenticated sender."""

    src: str
    addr: str
    msg: Any
