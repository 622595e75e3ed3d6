"""From parsed node arguments to what the node is built with.

``runtime.node_args`` turns the command line (and ``--config``) into an ``argparse``
namespace; the functions here turn that namespace into the objects start-up hands on:
the :class:`~actors.config.NodeConfig` (each field with a flag takes its option's value,
in the field's unit), the server's :class:`~runtime.conn_limits.ClientLimits`, the peer
:class:`~runtime.peer_trust.PeerTrust`, the advertised address and the start-up memory
warning. Split out of ``runtime.node`` (which re-exports them) so that the parser, this
mapping and the node's start-up and shutdown are each a module of one concept.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from typing import Any

from actors.config import NodeConfig
from runtime.addresses import format_address, is_loopback
from runtime.conn_limits import ClientLimits
from runtime.peer_frames import DEFAULT_PEER_FRAME_BYTES
from runtime.peer_trust import PeerTrust

__all__ = ["advertised_address", "client_limits", "memory_warning", "node_config", "peer_trust"]

logger = logging.getLogger("actorcache")

_WILDCARD_HOSTS = ("0.0.0.0", "::", "")

#: The NodeConfig fields the command line sets (those whose metadata names a flag).
_CONFIG_OPTIONS = {field.name: field for field in dataclasses.fields(NodeConfig) if "flag" in field.metadata}


#: The most bytes of values one write may send to a peer: a peer frame less 1 MiB for its
#: envelope (keys, versions, owners, msgpack headers); ``--max-cluster-value-bytes`` is
#: capped at it, and NodeConfig's default is it.
PEER_FRAME_VALUE_BYTES = DEFAULT_PEER_FRAME_BYTES - (1 << 20)


def _dest(field: dataclasses.Field[Any]) -> str:
    return str(field.metadata["flag"]).removeprefix("--").replace("-", "_")


def node_config(args: argparse.Namespace, address: str = "", contacts: tuple[str, ...] | None = None) -> NodeConfig:
    """The :class:`NodeConfig` for parsed arguments (``address``: the advertised one):
    every field with a flag takes its option's value, in the field's unit."""
    values = {}
    for name, field in _CONFIG_OPTIONS.items():
        value = getattr(args, _dest(field))
        scale = field.metadata["scale"]
        values[name] = value if scale == 1 else value / scale
    if "max_cluster_value_bytes" in values:  # never past what one peer frame can carry
        values["max_cluster_value_bytes"] = min(values["max_cluster_value_bytes"], PEER_FRAME_VALUE_BYTES)
    return NodeConfig(address=address, contacts=tuple(args.peers) if contacts is None else contacts, **values)


def client_limits(args: argparse.Namespace) -> ClientLimits:
    """The server's :class:`ClientLimits` for parsed arguments."""
    hard, soft, soft_s = args.client_output_buffer_limit
    return ClientLimits(
        output_hard=hard,
        output_soft=soft,
        output_soft_s=soft_s,
        max_clients=args.max_clients,
        idle_timeout_s=args.timeout,
        request_read_timeout_s=args.request_read_timeout,
        max_input_buffer=args.max_input_buffer_bytes,
        max_value_depth=args.max_value_depth,
    )


def peer_trust(args: argparse.Namespace) -> PeerTrust:
    """Whom the node peers with: its id, ``--cluster-secret-file``'s secret, whether
    ``--tls-cluster yes`` makes certificates name the peers, and whether clients need a
    password (then, without a secret, no peer is accepted)."""
    tls = getattr(args, "tls", None)
    return PeerTrust(
        node_id=args.node_id,
        secret=args.cluster_secret,
        tls_cluster=bool(tls is not None and tls.cluster),
        closed=getattr(args, "acl", None) is not None,
    )


def memory_warning(host: str, max_memory: int) -> str | None:
    """The start-up warning for a node that can be reached from other machines and has no
    memory bound, or None."""
    if max_memory or is_loopback(host):
        return None
    return (
        f"--max-memory is not set and the node listens on {host or 'all interfaces'}: memory for keys and "
        "values is unbounded, so clients can fill this machine; set a bound, e.g. "
        "--max-memory 1G --eviction-policy allkeys-lru"
    )


def advertised_address(args: argparse.Namespace, host: str, bound_port: int) -> str:
    """``--advertise`` (its port defaulting to the bound one), else the bound address."""
    if args.advertise is not None:
        adv_host, adv_port = args.advertise
        return format_address(adv_host, bound_port if adv_port is None else adv_port)
    if host in _WILDCARD_HOSTS:
        logger.warning(
            "listening on all interfaces without --advertise: peers on other machines cannot "
            "reach 127.0.0.1:%d; pass --advertise HOST", bound_port,
        )
        host = "127.0.0.1"
    return format_address(host, bound_port)
