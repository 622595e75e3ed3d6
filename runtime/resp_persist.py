"""RESP's persistence commands: ``SAVE``, ``BGSAVE``, ``LASTSAVE`` (Redis's replies).

``SAVE`` answers ``+OK`` once the snapshot is installed; ``BGSAVE`` answers ``+Background
saving started`` once it began (an error when one is already running, as Redis's
``-ERR Background save already in progress``); ``LASTSAVE`` is the epoch second of the last
successful snapshot (loaded or written; 0: none). All need ``--dir`` and are @admin.
"""

from __future__ import annotations

from typing import Any, Sequence

from actors.protocol.messages import Ack, Reply, Save, Stats, StatsReply
from runtime.resp import integer, simple
from runtime.resp_session import Deferred, Session, node_error

__all__ = ["cmd_bgsave", "cmd_lastsave", "cmd_save"]


def _b_saved(replies: Sequence[Reply], i: int, proto: int, arg: Any) -> bytes:
    reply = replies[i]
    if type(reply) is not Ack:
        return node_error(reply)
    return simple("Background saving started" if arg else "OK")


def _b_lastsave(replies: Sequence[Reply], i: int, proto: int, arg: Any) -> bytes:
    reply = replies[i]
    if type(reply) is not StatsReply:
        return node_error(reply)
    return integer(int(reply.stats.get("rdb_last_save_time", 0)))


def cmd_save(argv: list[bytes], s: Session) -> bytes | Deferred:
    return (Save(False),), _b_saved, False


def cmd_bgsave(argv: list[bytes], s: Session) -> bytes | Deferred:
    return (Save(True),), _b_saved, True


def cmd_lastsave(argv: list[bytes], s: Session) -> bytes | Deferred:
    return (Stats(),), _b_lastsave, None
