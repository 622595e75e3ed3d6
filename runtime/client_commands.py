"""The cache API as commands: what :class:`runtime.client.Client` and
:class:`runtime.client.Pipeline` both offer, written once.

Every call of the API becomes one :class:`Command`: the request, its JSON line (encoded
at once, so an unencodable value or a bad argument raises at the call site, before
anything is sent), and how to turn its reply into the call's result. :class:`CacheCommands`
builds them; the class mixing it in decides what a call does with one through ``_issue``:
a :class:`~runtime.client.Client` sends it and returns the result, a
:class:`~runtime.client.Pipeline` queues it and returns itself.

The wire field names live in :mod:`actors.protocol.codec` only; this module builds
:mod:`actors.protocol.messages` dataclasses and reads the reply dataclasses
:func:`~actors.protocol.codec.decode_reply` makes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from actors.protocol.codec import encode_request
from actors.protocol.consistency import CONSISTENCY_LEVELS
from actors.protocol.errors import BadRequestError, CacheError, error_for
from actors.protocol.messages import (
    Ack,
    Delete,
    ErrorReply,
    Expire,
    Get,
    Incr,
    Inspect,
    InspectReply,
    Locate,
    LocateReply,
    MGet,
    MSet,
    Ping,
    Pong,
    RemoveNode,
    Reply,
    Request,
    Set,
    Stats,
    StatsReply,
    Ttl,
    TtlReply,
    Value,
    Values,
)
from actors.protocol.version import Version
from runtime.client_errors import ProtocolError

__all__ = ["CONSISTENCY_LEVELS", "PING", "CacheCommands", "Command", "Inspection", "Location", "check_consistency"]

_json_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def check_consistency(level: Any) -> str | None:
    """``level`` if it is ``None`` or one of :data:`CONSISTENCY_LEVELS`; else ValueError."""
    if level is None or (type(level) is str and level in CONSISTENCY_LEVELS):
        return level
    raise ValueError(
        f"consistency must be one of {', '.join(map(repr, CONSISTENCY_LEVELS))} "
        f"(or None for the default), not {level!r}"
    )


# --- cluster results -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Location:
    """Where a key lives, as the asked node sees the cluster (``Client.locate``).

    ``partition`` is the key's partition number (0 to ``--partitions`` - 1); ``owners``
    the ids of the nodes that hold its replicas, best first as placement ranks them (a
    down member keeps its place until it is removed). Every node that has seen the same
    membership gives the same answer.
    """

    key: str
    partition: int
    owners: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Inspection:
    """The asked node's own copy of a key (``Client.inspect``), without asking any other
    node: a live value, or a tombstone left by a delete or an expiry.

    - ``value``: the stored value (``None`` for a tombstone);
    - ``version``: the :class:`~actors.protocol.version.Version` ``(wall_ms, logical, node_id)``
      that wrote it (last write wins by this);
    - ``deadline``: epoch seconds at which the value expires, ``None`` if it never does;
    - ``purge_at``: for a tombstone, the epoch second after which it may be forgotten;
      ``None`` for a live value.

    ``found`` is True for a live value, ``tombstone`` for a tombstone (exactly one holds).
    When the node holds nothing at all for the key, ``inspect`` returns ``None`` instead.
    """

    key: str
    value: Any
    version: Version
    deadline: float | None
    purge_at: float | None = None

    @property
    def tombstone(self) -> bool:
        return self.purge_at is not None

    @property
    def found(self) -> bool:
        return self.purge_at is None


# --- commands: a request, its encoded line, and how to turn its reply into a result -----


@dataclass(frozen=True, slots=True)
class Command:
    request: Request
    line: bytes = field(repr=False)  # an auth's holds the password
    convert: Callable[[Reply], Any]

    @classmethod
    def of(cls, request: Request, convert: Callable[[Reply], Any]) -> Command:
        """Encode now, so an unencodable value fails at the call site, before anything is sent."""
        try:
            text = _json_encode(encode_request(request))
            line = text.encode("utf-8") + b"\n"
        except (TypeError, ValueError) as exc:  # includes UnicodeEncodeError (lone surrogates)
            raise BadRequestError(f"cannot encode request as JSON: {exc}") from exc
        return cls(request, line, convert)

    def result(self, reply: Reply | CacheError) -> Any:
        """The call's result, or raise the error its reply carries."""
        if isinstance(reply, CacheError):
            raise reply
        if type(reply) is ErrorReply:
            raise error_for(reply.code.value, reply.message)
        return self.convert(reply)


def _expect(reply: Reply, kind: type) -> Any:
    if type(reply) is not kind:
        raise ProtocolError(f"expected a {kind.__name__} reply, got {reply!r}")
    return reply


def _entry(reply: Reply) -> tuple[bool, Any]:
    value = _expect(reply, Value)
    return (True, value.value) if value.found else (False, None)


def _getter(default: Any) -> Callable[[Reply], Any]:
    def convert(reply: Reply) -> Any:
        value = _expect(reply, Value)
        return value.value if value.found else default

    return convert


def _value(reply: Reply) -> Any:
    return _expect(reply, Value).value


def _none(reply: Reply) -> None:
    _expect(reply, Ack)


def _applied(reply: Reply) -> bool:
    return bool(_expect(reply, Ack).applied)


def _deleted(reply: Reply) -> bool:
    ack = _expect(reply, Ack)
    if ack.deleted is None:
        raise ProtocolError("delete reply without 'deleted'")
    return bool(ack.deleted)


def _ttl_left(reply: Reply) -> float | None:
    answer = _expect(reply, TtlReply)
    if not answer.found:
        return None
    return math.inf if answer.ttl is None else float(answer.ttl)


def _found_values(reply: Reply) -> dict[str, Any]:
    values = _expect(reply, Values)
    return {key: value for key, value, found in values.items if found}


def _pong(reply: Reply) -> bool:
    _expect(reply, Pong)
    return True


def _stats(reply: Reply) -> dict[str, Any]:
    return dict(_expect(reply, StatsReply).stats)


def _location(reply: Reply) -> Location:
    located = _expect(reply, LocateReply)
    return Location(located.key, located.partition, tuple(located.owners))


def _inspection(reply: Reply) -> Inspection | None:
    record = _expect(reply, InspectReply).record
    if record is None:
        return None
    return Inspection(record.key, record.value, record.version, record.deadline, record.purge_at)


#: A ping: the same every time, so built once.
PING = Command.of(Ping(), _pong)


# --- the API ---------------------------------------------------------------------------------

R = TypeVar("R")


class CacheCommands(Generic[R]):
    """Every call of the cache API, for a class that says what issuing a command means.

    The results below are :class:`~runtime.client.Client`'s; a
    :class:`~runtime.client.Pipeline` queues the command and returns itself, and gives
    the same results, in order, from ``execute``.

    ``consistency`` on the data calls: ``"one"``, ``"quorum"`` or ``"all"``
    (docs/cluster.md); None uses the client's default. A level the cluster cannot meet
    raises UnavailableError (definite: nothing applied) or RequestTimeoutError
    (indefinite). A bad argument raises at the call, before anything is sent.
    """

    __slots__ = ()

    def _issue(self, cmd: Command) -> R:
        """Send or queue ``cmd``."""
        raise NotImplementedError

    def _level(self, consistency: str | None) -> str | None:
        """The level a request goes out with: its own, else the client's default."""
        raise NotImplementedError

    # --- data -----------------------------------------------------------------------

    def get(self, key: str, default: Any = None, *, consistency: str | None = None) -> R:
        """The value stored under ``key``, or ``default`` if there is none.

        A stored ``null`` is indistinguishable from a miss here; use :meth:`get_entry`.
        """
        return self._issue(Command.of(Get(key, consistency=self._level(consistency)), _getter(default)))

    def get_entry(self, key: str, *, consistency: str | None = None) -> R:
        """``(found, value)``: tells a stored ``None`` from a miss."""
        return self._issue(Command.of(Get(key, consistency=self._level(consistency)), _entry))

    def set(
        self,
        key: str,
        value: Any,
        ttl: float | None = None,
        *,
        nx: bool = False,
        xx: bool = False,
        get: bool = False,
        keepttl: bool = False,
        consistency: str | None = None,
    ) -> R:
        """Store any JSON value; ``ttl`` seconds until it expires (None or 0: never).

        Redis's options: ``nx`` (only if absent) or ``xx`` (only if present) make it
        return whether it stored; ``get`` makes it return the previous value (None if
        there was none); ``keepttl`` keeps the key's TTL. Otherwise it returns None.
        """
        level = self._level(consistency)
        if nx and xx:
            raise ValueError("nx and xx exclude each other")
        if keepttl and ttl:
            raise ValueError("keepttl and ttl exclude each other")
        cond = "nx" if nx else "xx" if xx else None
        request = Set(key, value, ttl, consistency=level, cond=cond, get=get, keep_ttl=keepttl)
        return self._issue(Command.of(request, _getter(None) if get else _applied if cond else _none))

    def expire(self, key: str, ttl: float, *, consistency: str | None = None) -> R:
        """Give an existing key ``ttl`` more seconds to live; False if there is no such key."""
        level = self._level(consistency)
        if ttl is not None and not ttl > 0:
            raise ValueError("ttl must be > 0 seconds (use persist() to remove a TTL, delete() to drop the key)")
        return self._issue(Command.of(Expire(key, ttl, consistency=level), _applied))

    def persist(self, key: str, *, consistency: str | None = None) -> R:
        """Remove ``key``'s TTL; False if there is no such key or it had none."""
        return self._issue(Command.of(Expire(key, None, consistency=self._level(consistency)), _applied))

    def ttl(self, key: str, *, consistency: str | None = None) -> R:
        """Seconds ``key`` has left: ``math.inf`` if it never expires, None if it is absent."""
        return self._issue(Command.of(Ttl(key, consistency=self._level(consistency)), _ttl_left))

    def incr(self, key: str, by: int = 1, *, consistency: str | None = None) -> R:
        """Add ``by`` to the integer at ``key`` (absent: 0) and return the result, atomically."""
        level = self._level(consistency)
        if type(by) is not int:
            raise ValueError("by must be an int")
        return self._issue(Command.of(Incr(key, by, consistency=level), _value))

    def delete(self, key: str, *, consistency: str | None = None) -> R:
        """Remove ``key``; whether it existed."""
        return self._issue(Command.of(Delete(key, consistency=self._level(consistency)), _deleted))

    def mget(self, keys: Iterable[str], *, consistency: str | None = None) -> R:
        """The found keys among ``keys`` and their values (missing keys are absent)."""
        level = self._level(consistency)
        if isinstance(keys, str):
            raise TypeError("mget takes an iterable of keys, not a single string")
        return self._issue(Command.of(MGet(tuple(keys), consistency=level), _found_values))

    def mset(self, mapping: Mapping[str, Any], ttl: float | None = None, *, consistency: str | None = None) -> R:
        """Store every item of ``mapping`` in one request, all with the same ``ttl``; None."""
        level = self._level(consistency)
        return self._issue(Command.of(MSet(tuple(mapping.items()), ttl, consistency=level), _none))

    # --- cluster --------------------------------------------------------------------

    def locate(self, key: str) -> R:
        """Which partition ``key`` is in and which nodes own it, best first (a :class:`Location`)."""
        return self._issue(Command.of(Locate(key), _location))

    def inspect(self, key: str) -> R:
        """This node's own copy of ``key`` (an :class:`Inspection`: a value or a tombstone),
        asking no other node; ``None`` when it holds nothing for the key. For debugging
        replication."""
        return self._issue(Command.of(Inspect(key), _inspection))

    def remove_node(self, node_id: str) -> R:
        """Declare member ``node_id`` gone for good, so its partitions move to the others; None.

        The node refuses (:class:`~actors.protocol.errors.BadRequestError`) unless it sees that
        member ``down``; an unknown id or its own id is refused the same way.
        """
        return self._issue(Command.of(RemoveNode(node_id), _none))

    # --- node -----------------------------------------------------------------------

    def ping(self) -> R:
        """Whether the node answers (True); :meth:`Client.ping` returns the round-trip time."""
        return self._issue(PING)

    def stats(self) -> R:
        """The node's counters (keys, memory, connections, requests, ...)."""
        return self._issue(Command.of(Stats(), _stats))
