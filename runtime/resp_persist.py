"""RESP's persistence commands: ``SAVE``, ``BGSAVE``, ``LASTSAVE`` (Redis's replies).

``SAVE`` answers ``+OK`` once the snapshot is installed; ``BGSAVE`` (and Redis 7's
``BGSAVE SCHEDULE``: a log rewrite here is a snapshot too, so there is never another job
to wait for) answers ``+Background saving started`` once it began. While a snapshot is
being written both answer Redis 7's ``-ERR Background save already in progress`` (the node
says ``unavailable``: nothing was done). ``LASTSAVE`` is the epoch second of the last
successful snapshot (loaded or written; 0: none). All need ``--dir`` and are @admin.
"""

from __future__ import annotations

from typing import Any, Sequence

from actors.protocol.errors import ErrorCode
from actors.protocol.messages import Ack, ErrorReply, Reply, Save, Stats, StatsReply
from runtime.resp import error, integer, simple
from runtime.resp_session import Deferred, Session, node_error

__all__ = ["cmd_bgsave", "cmd_lastsave", "cmd_save"]


def _b_saved(replies: Sequence[Reply], i: int, proto: int, arg: Any) -> bytes:
    reply = replies[i]
    if type(reply) is not Ack:
        if type(reply) is ErrorReply and reply.code == ErrorCode.UNAVAILABLE:
            return error("ERR " + reply.message)  # Redis's words: a save is already running
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
    if len(argv) > 2 or (len(argv) == 2 and argv[1].lower() != b"schedule"):
        return error("ERR syntax error")
    return (Save(True),), _b_saved, True


def cmd_lastsave(argv: list[bytes], s: Session) -> bytes | Deferred:
    return (Stats(),), _b_lastsave, None
