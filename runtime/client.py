"""A synchronous client for one actorcache node, speaking JSON lines over TCP.

Design, and why:

- **One connection, reused.** It is opened lazily on the first call and kept: a cache
  client that pays a TCP handshake per ``get`` is slower than the cache it fronts.
- **No request ids.** The node answers strictly in request order per connection, so the
  n-th reply line belongs to the n-th request line. That is also what makes
  :meth:`Client.pipeline` cheap: many requests, one write, replies read in order.
- **Honest retries.** Before sending, the client checks whether the peer already closed
  the pooled connection (an idle node restart, or the close that follows a ``too_large``
  reply); if so it reconnects once, transparently: nothing was sent, so nothing can be
  applied twice. Once any byte of a request may have left, a failure is never retried;
  it raises :class:`ConnectionLostError` or :class:`ClientTimeoutError`, whose
  ``definite`` is False (the request may or may not have been applied).
- **Send and receive interleaved.** The socket is non-blocking and driven by a selector
  that writes and reads at the same time, so a huge pipeline cannot deadlock against the
  node's backpressure (it stops reading while its replies to us are not read).
- **Typed errors.** An error reply raises the class from :func:`actors.protocol.errors.error_for`,
  the same classes the server raises, so ``except BadRequestError`` means one thing. In a
  cluster, ``unavailable`` raises :class:`~actors.protocol.errors.UnavailableError` (definite:
  nothing was applied, safe to retry later) and ``timeout`` raises
  :class:`~actors.protocol.errors.RequestTimeoutError` (indefinite: some replicas may have applied
  it).
- **Consistency per request.** Data calls take ``consistency="one" | "quorum" | "all"``
  (docs/cluster.md); ``None`` falls back to the client's default, and a client default of
  ``None`` leaves the choice to the node (``--write-consistency``/``--read-consistency``).
  Anything else is a :class:`ValueError` at the call site, before anything is sent.

The wire field names live in :mod:`actors.protocol.codec` only; this module sends
:mod:`actors.protocol.messages` dataclasses through :func:`~actors.protocol.codec.encode_request` and reads
replies through :func:`~actors.protocol.codec.decode_reply`.

A :class:`Client` is safe to share between threads (calls are serialised by a lock), but
one client per thread is faster under contention.
"""

from __future__ import annotations

import json
import math
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from actors.protocol.codec import decode_reply, encode_request
from actors.protocol.consistency import CONSISTENCY_LEVELS
from actors.protocol.errors import BadRequestError, CacheError, ErrorCode, RequestTimeoutError, error_for
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
from runtime.addresses import DEFAULT_PORT, join_host_port, parse_address

__all__ = [
    "CONSISTENCY_LEVELS",
    "Client",
    "ClientTimeoutError",
    "ConnectionLostError",
    "Inspection",
    "Location",
    "Pipeline",
    "ProtocolError",
    "check_consistency",
]

_RECV_SIZE = 1 << 16
_SEND_CHUNK = 1 << 20

_json_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


# --- errors raised by the client itself -------------------------------------------------


class ConnectionLostError(CacheError):
    """The connection to the node could not be opened, or broke during a request.

    Never sent by a node; raised locally. ``definite`` is per instance: True when the
    request certainly never reached the node (connection refused, name not resolved, the
    node closed the connection right after rejecting an earlier request of the same
    pipeline), False when it may have been applied (the connection broke after sending).
    """

    code = ErrorCode.INTERNAL
    definite = False

    def __init__(self, message: str = "", *, definite: bool = False) -> None:
        super().__init__(message)
        self.definite = definite


class ClientTimeoutError(RequestTimeoutError):
    """The client gave up waiting for the node's reply (a socket timeout).

    A :class:`~actors.protocol.errors.RequestTimeoutError`, so one ``except RequestTimeoutError``
    catches it, but raised locally rather than sent by a node (which lets the CLI tell a
    slow or hung node from a server error reply). The connection is closed because a late
    reply would otherwise be read as the answer to the next request. Indefinite, unless
    not a byte of the request had been sent.
    """

    def __init__(self, message: str = "", *, definite: bool = False) -> None:
        super().__init__(message)
        self.definite = definite


class ProtocolError(CacheError):
    """The node sent something that is not a valid reply to what was asked.

    The stream can no longer be trusted, so the connection is closed. Indefinite.
    """

    code = ErrorCode.INTERNAL
    definite = False


# --- consistency levels and cluster results -----------------------------------------------


def check_consistency(level: Any) -> str | None:
    """``level`` if it is ``None`` or one of :data:`CONSISTENCY_LEVELS`; else ValueError."""
    if level is None or (type(level) is str and level in CONSISTENCY_LEVELS):
        return level
    raise ValueError(
        f"consistency must be one of {', '.join(map(repr, CONSISTENCY_LEVELS))} "
        f"(or None for the default), not {level!r}"
    )


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
class _Command:
    request: Request
    line: bytes
    convert: Callable[[Reply], Any]


def _command(request: Request, convert: Callable[[Reply], Any]) -> _Command:
    """Encode now, so an unencodable value fails at the call site, before anything is sent."""
    try:
        text = _json_encode(encode_request(request))
        line = text.encode("utf-8") + b"\n"
    except (TypeError, ValueError) as exc:  # includes UnicodeEncodeError (lone surrogates)
        raise BadRequestError(f"cannot encode request as JSON: {exc}") from exc
    return _Command(request, line, convert)


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


def _none(reply: Reply) -> None:
    _expect(reply, Ack)


def _deleted(reply: Reply) -> bool:
    ack = _expect(reply, Ack)
    if ack.deleted is None:
        raise ProtocolError("delete reply without 'deleted'")
    return bool(ack.deleted)


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


def _get_cmd(key: str, default: Any, consistency: str | None) -> _Command:
    return _command(Get(key, consistency=consistency), _getter(default))


def _get_entry_cmd(key: str, consistency: str | None) -> _Command:
    return _command(Get(key, consistency=consistency), _entry)


def _set_cmd(
    key: str,
    value: Any,
    ttl: float | None,
    consistency: str | None,
    nx: bool = False,
    xx: bool = False,
    get: bool = False,
    keepttl: bool = False,
) -> _Command:
    if nx and xx:
        raise ValueError("nx and xx exclude each other")
    if keepttl and ttl:
        raise ValueError("keepttl and ttl exclude each other")
    cond = "nx" if nx else "xx" if xx else None
    request = Set(key, value, ttl, consistency=consistency, cond=cond, get=get, keep_ttl=keepttl)
    if get:
        return _command(request, _getter(None))
    return _command(request, _applied if cond else _none)


def _applied(reply: Reply) -> bool:
    ack = _expect(reply, Ack)
    return bool(ack.applied)


def _expire_cmd(key: str, ttl: float | None, consistency: str | None) -> _Command:
    if ttl is not None and not ttl > 0:
        raise ValueError("ttl must be > 0 seconds (use persist() to remove a TTL, delete() to drop the key)")
    return _command(Expire(key, ttl, consistency=consistency), _applied)


def _ttl_left(reply: Reply) -> float | None:
    answer = _expect(reply, TtlReply)
    if not answer.found:
        return None
    return math.inf if answer.ttl is None else float(answer.ttl)


def _incr_cmd(key: str, by: int, consistency: str | None) -> _Command:
    if type(by) is not int:
        raise ValueError("by must be an int")
    return _command(Incr(key, by, consistency=consistency), lambda reply: _expect(reply, Value).value)


def _delete_cmd(key: str, consistency: str | None) -> _Command:
    return _command(Delete(key, consistency=consistency), _deleted)


def _mget_cmd(keys: Iterable[str], consistency: str | None) -> _Command:
    if isinstance(keys, str):
        raise TypeError("mget takes an iterable of keys, not a single string")
    return _command(MGet(tuple(keys), consistency=consistency), _found_values)


def _mset_cmd(mapping: Mapping[str, Any], ttl: float | None, consistency: str | None) -> _Command:
    return _command(MSet(tuple(mapping.items()), ttl, consistency=consistency), _none)


def _locate_cmd(key: str) -> _Command:
    return _command(Locate(key), _location)


def _inspect_cmd(key: str) -> _Command:
    return _command(Inspect(key), _inspection)


def _remove_node_cmd(node_id: str) -> _Command:
    return _command(RemoveNode(node_id), _none)


# --- the client -------------------------------------------------------------------------


class Client:
    """A connection to one node. See the module docstring for the retry rules.

    ``timeout`` bounds each call as a whole (sending the request and reading every reply);
    ``connect_timeout`` bounds opening the connection. Both are in seconds.
    ``consistency`` (``"one"``, ``"quorum"``, ``"all"``) is the level of every data request
    that does not name its own; ``None`` (the default) leaves it to the node.
    """

    def __init__(
        self,
        address: str | tuple[str, int] = f"localhost:{DEFAULT_PORT}",
        *,
        timeout: float = 5.0,
        connect_timeout: float = 5.0,
        consistency: str | None = None,
    ) -> None:
        if not timeout > 0 or not connect_timeout > 0:
            raise ValueError("timeouts must be > 0 seconds")
        self.host, self.port = parse_address(address)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.consistency = check_consistency(consistency)
        self._sock: socket.socket | None = None
        self._selector: selectors.BaseSelector | None = None
        self._buf = bytearray()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        state = "connected" if self._sock is not None else "idle"
        return f"<Client {self.address} {state}>"

    @property
    def address(self) -> str:
        return join_host_port(self.host, self.port)

    def _level(self, consistency: str | None) -> str | None:
        """The level a request goes out with: its own, else the client's default."""
        return check_consistency(consistency) if consistency is not None else self.consistency

    # --- the cache API --------------------------------------------------------------
    #
    # ``consistency`` on the data calls: "one", "quorum" or "all" (docs/cluster.md); None
    # uses the client's default. A level the cluster cannot meet raises UnavailableError
    # (definite: nothing applied) or RequestTimeoutError (indefinite).

    def get(self, key: str, default: Any = None, *, consistency: str | None = None) -> Any:
        """The value stored under ``key``, or ``default`` if there is none.

        A stored ``null`` is indistinguishable from a miss here; use :meth:`get_entry`.
        """
        return self._call(_get_cmd(key, default, self._level(consistency)))

    def get_entry(self, key: str, *, consistency: str | None = None) -> tuple[bool, Any]:
        """``(found, value)``: tells a stored ``None`` from a miss."""
        return self._call(_get_entry_cmd(key, self._level(consistency)))

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
    ) -> Any:
        """Store any JSON value; ``ttl`` seconds until it expires (None or 0: never).

        Redis's options: ``nx`` (only if absent) or ``xx`` (only if present) make it
        return whether it stored; ``get`` makes it return the previous value (None if
        there was none); ``keepttl`` keeps the key's TTL. Otherwise it returns None.
        """
        return self._call(_set_cmd(key, value, ttl, self._level(consistency), nx, xx, get, keepttl))

    def expire(self, key: str, ttl: float, *, consistency: str | None = None) -> bool:
        """Give an existing key ``ttl`` more seconds to live; False if there is no such key."""
        return self._call(_expire_cmd(key, ttl, self._level(consistency)))

    def persist(self, key: str, *, consistency: str | None = None) -> bool:
        """Remove ``key``'s TTL; False if there is no such key or it had none."""
        return self._call(_expire_cmd(key, None, self._level(consistency)))

    def ttl(self, key: str, *, consistency: str | None = None) -> float | None:
        """Seconds ``key`` has left: ``math.inf`` if it never expires, None if it is absent."""
        return self._call(_command(Ttl(key, consistency=self._level(consistency)), _ttl_left))

    def incr(self, key: str, by: int = 1, *, consistency: str | None = None) -> int:
        """Add ``by`` to the integer at ``key`` (absent: 0) and return the result, atomically."""
        return self._call(_incr_cmd(key, by, self._level(consistency)))

    def delete(self, key: str, *, consistency: str | None = None) -> bool:
        """Remove ``key``; whether it existed."""
        return self._call(_delete_cmd(key, self._level(consistency)))

    def mget(self, keys: Iterable[str], *, consistency: str | None = None) -> dict[str, Any]:
        """The found keys among ``keys`` and their values (missing keys are absent)."""
        return self._call(_mget_cmd(keys, self._level(consistency)))

    def mset(self, mapping: Mapping[str, Any], ttl: float | None = None, *, consistency: str | None = None) -> None:
        """Store every item of ``mapping`` in one request, all with the same ``ttl``."""
        self._call(_mset_cmd(mapping, ttl, self._level(consistency)))

    # --- cluster --------------------------------------------------------------------

    def locate(self, key: str) -> Location:
        """Which partition ``key`` is in and which nodes own it, best first."""
        return self._call(_locate_cmd(key))

    def inspect(self, key: str) -> Inspection | None:
        """This node's own copy of ``key`` (a value or a tombstone), asking no other node;
        ``None`` when it holds nothing for the key. For debugging replication."""
        return self._call(_inspect_cmd(key))

    def remove_node(self, node_id: str) -> None:
        """Declare member ``node_id`` gone for good, so its partitions move to the others.

        The node refuses (:class:`~actors.protocol.errors.BadRequestError`) unless it sees that
        member ``down``; an unknown id or its own id is refused the same way.
        """
        self._call(_remove_node_cmd(node_id))

    # --- node -----------------------------------------------------------------------

    def ping(self) -> float:
        """Round-trip time of one ping in seconds (after connecting, if needed)."""
        cmd = _command(Ping(), _pong)
        with self._lock:
            self._ensure_connected()
            started = time.perf_counter()
            (reply,) = self._exchange([cmd])
            elapsed = time.perf_counter() - started
        _result(cmd, reply)
        return elapsed

    def stats(self) -> dict[str, Any]:
        """The node's counters (keys, memory, connections, requests, ...)."""
        return self._call(_command(Stats(), _stats))

    def pipeline(self) -> Pipeline:
        """Queue many requests, send them in one write, get the results in order."""
        return Pipeline(self)

    # --- connection management ----------------------------------------------------

    def connect(self) -> None:
        """Open the connection now instead of on the first call (a no-op if open)."""
        with self._lock:
            self._ensure_connected()

    def close(self) -> None:
        """Close the connection; the next call opens a new one."""
        sock, self._sock = self._sock, None
        selector, self._selector = self._selector, None
        self._buf.clear()
        if selector is not None:
            selector.close()
        if sock is not None:
            sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- internals ----------------------------------------------------------------

    def _call(self, cmd: _Command) -> Any:
        with self._lock:
            self._ensure_connected()
            (reply,) = self._exchange([cmd])
        return _result(cmd, reply)

    def _ensure_connected(self) -> None:
        if self._sock is not None and self._peer_gone():
            # Closed (or out of sync) before we sent anything: reconnecting is safe.
            self.close()
        if self._sock is None:
            self._open()

    def _peer_gone(self) -> bool:
        """Whether the pooled connection is unusable: closed by the peer, or unsolicited bytes."""
        if self._buf:
            return True
        assert self._sock is not None
        try:
            self._sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return False  # open, and nothing unexpected waiting
        except OSError:
            return True
        return True  # b"" is EOF; any byte is a reply nobody asked for

    def _open(self) -> None:
        where = self.address
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        except socket.gaierror as exc:
            raise ConnectionLostError(f"cannot resolve {self.host!r}: {exc.strerror}", definite=True) from exc
        except TimeoutError as exc:
            raise ConnectionLostError(
                f"connecting to {where} timed out after {self.connect_timeout:g}s", definite=True
            ) from exc
        except ConnectionRefusedError as exc:
            raise ConnectionLostError(f"cannot connect to {where}: connection refused", definite=True) from exc
        except OSError as exc:
            raise ConnectionLostError(f"cannot connect to {where}: {exc.strerror or exc}", definite=True) from exc
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
            selector = selectors.DefaultSelector()
            selector.register(sock, selectors.EVENT_READ)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        self._selector = selector
        self._buf.clear()

    def _exchange(self, commands: list[_Command]) -> list[Reply | CacheError]:
        """Send every command's line and read one reply per command, in order.

        Returns a reply per command; after a ``too_large`` reply the node closes the
        connection without reading further, so the remaining slots hold a definite
        :class:`ConnectionLostError` instead. Raises (and closes the connection) when the
        exchange cannot complete.
        """
        sock, selector = self._sock, self._selector
        assert sock is not None and selector is not None
        payload = memoryview(b"".join(cmd.line for cmd in commands))
        total = len(payload)
        count = len(commands)
        deadline = time.monotonic() + self.timeout
        replies: list[Reply | CacheError] = []
        buf = self._buf
        sent = 0
        send_error: OSError | None = None
        events = 0
        try:
            try:  # optimistic: a small request usually fits the socket buffer at once
                sent = sock.send(payload[:_SEND_CHUNK])
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as exc:
                send_error = exc
            while True:
                pos = 0
                while len(replies) < count:
                    nl = buf.find(b"\n", pos)
                    if nl < 0:
                        break
                    line = bytes(buf[pos:nl])
                    pos = nl + 1
                    if line.strip():
                        replies.append(self._decode(line, commands[len(replies)].request))
                        last = replies[-1]
                        if type(last) is ErrorReply and last.code is ErrorCode.TOO_LARGE:
                            return self._after_too_large(replies, count)
                if pos:
                    del buf[:pos]
                if len(replies) == count:
                    return replies

                want = selectors.EVENT_READ
                if sent < total and send_error is None:
                    want |= selectors.EVENT_WRITE
                if want != events:
                    selector.modify(sock, want)
                    events = want
                remaining = deadline - time.monotonic()
                ready = selector.select(remaining) if remaining > 0 else []
                if not ready:
                    raise ClientTimeoutError(
                        f"no reply from {self.address} within {self.timeout:g}s "
                        f"({len(replies)} of {count} replies received)",
                        definite=sent == 0,
                    )
                mask = ready[0][1]
                if mask & selectors.EVENT_WRITE:
                    try:
                        sent += sock.send(payload[sent : sent + _SEND_CHUNK])
                    except (BlockingIOError, InterruptedError):
                        pass
                    except OSError as exc:
                        # Keep reading: the node may have answered (e.g. too_large) first.
                        send_error = exc
                if mask & selectors.EVENT_READ:
                    try:
                        chunk = sock.recv(_RECV_SIZE)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError as exc:
                        raise self._lost(replies, count, sent, exc) from exc
                    if not chunk:
                        raise self._lost(replies, count, sent, send_error)
                    buf += chunk
        except BaseException:
            # Timeout, lost connection, bad reply, KeyboardInterrupt: the stream is out of sync.
            self.close()
            raise

    def _after_too_large(self, replies: list[Reply | CacheError], count: int) -> list[Reply | CacheError]:
        # The node stops reading after a too_large frame and closes once it has answered.
        self.close()
        while len(replies) < count:
            replies.append(
                ConnectionLostError(
                    "not processed: the node closed the connection after a too_large request",
                    definite=True,
                )
            )
        return replies

    def _lost(self, replies: list[Any], count: int, sent: int, exc: OSError | None) -> ConnectionLostError:
        reason = "closed by the node" if exc is None else (exc.strerror or str(exc))
        return ConnectionLostError(
            f"connection to {self.address} lost ({reason}) after {len(replies)} of {count} replies",
            definite=sent == 0,
        )

    def _decode(self, line: bytes, request: Request) -> Reply:
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise ProtocolError(f"reply is not JSON: {line[:200]!r}") from exc
        try:
            return decode_reply(obj, request)
        except (CacheError, KeyError, TypeError, ValueError) as exc:
            raise ProtocolError(f"malformed reply {line[:200]!r}: {exc}") from exc


def _result(cmd: _Command, reply: Reply | CacheError) -> Any:
    """The command's result, or raise the error its reply carries."""
    if isinstance(reply, CacheError):
        raise reply
    if type(reply) is ErrorReply:
        raise error_for(reply.code.value, reply.message)
    return cmd.convert(reply)


class Pipeline:
    """Requests queued on a :class:`Client` and sent together in one write.

    Each method queues one request and returns the pipeline (so calls chain);
    :meth:`execute` sends them all and returns their results in order, each the same as
    the corresponding :class:`Client` method would return (``ping`` gives ``True``). A
    request without its own ``consistency`` takes the client's default. Bad arguments
    (an unknown consistency level, an unencodable value) raise at the queuing call.

    As a context manager, leaving the block without an exception executes whatever is
    still queued, and :attr:`results` holds what :meth:`execute` returned::

        with client.pipeline() as p:
            for i in range(500):
                p.set(f"k{i}", i)
        assert p.results == [None] * 500

    Errors: every reply is read first (the connection stays in sync), then, with
    ``raise_on_error`` (the default), the first error is raised; without it each failed
    request's exception takes its place in the result list. Errors that break the
    connection itself (lost, timeout) always raise: the results after them are unknown.
    """

    def __init__(self, client: Client) -> None:
        self._client = client
        self._commands: list[_Command] = []
        self.results: list[Any] | None = None

    def __len__(self) -> int:
        return len(self._commands)

    def get(self, key: str, default: Any = None, *, consistency: str | None = None) -> Pipeline:
        self._commands.append(_get_cmd(key, default, self._client._level(consistency)))
        return self

    def get_entry(self, key: str, *, consistency: str | None = None) -> Pipeline:
        self._commands.append(_get_entry_cmd(key, self._client._level(consistency)))
        return self

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
    ) -> Pipeline:
        level = self._client._level(consistency)
        self._commands.append(_set_cmd(key, value, ttl, level, nx, xx, get, keepttl))
        return self

    def expire(self, key: str, ttl: float, *, consistency: str | None = None) -> Pipeline:
        self._commands.append(_expire_cmd(key, ttl, self._client._level(consistency)))
        return self

    def persist(self, key: str, *, consistency: str | None = None) -> Pipeline:
        self._commands.append(_expire_cmd(key, None, self._client._level(consistency)))
        return self

    def ttl(self, key: str, *, consistency: str | None = None) -> Pipeline:
        self._commands.append(_command(Ttl(key, consistency=self._client._level(consistency)), _ttl_left))
        return self

    def incr(self, key: str, by: int = 1, *, consistency: str | None = None) -> Pipeline:
        self._commands.append(_incr_cmd(key, by, self._client._level(consistency)))
        return self

    def delete(self, key: str, *, consistency: str | None = None) -> Pipeline:
        self._commands.append(_delete_cmd(key, self._client._level(consistency)))
        return self

    def mget(self, keys: Iterable[str], *, consistency: str | None = None) -> Pipeline:
        self._commands.append(_mget_cmd(keys, self._client._level(consistency)))
        return self

    def mset(self, mapping: Mapping[str, Any], ttl: float | None = None, *, consistency: str | None = None) -> Pipeline:
        self._commands.append(_mset_cmd(mapping, ttl, self._client._level(consistency)))
        return self

    def locate(self, key: str) -> Pipeline:
        self._commands.append(_locate_cmd(key))
        return self

    def inspect(self, key: str) -> Pipeline:
        self._commands.append(_inspect_cmd(key))
        return self

    def remove_node(self, node_id: str) -> Pipeline:
        self._commands.append(_remove_node_cmd(node_id))
        return self

    def ping(self) -> Pipeline:
        self._commands.append(_command(Ping(), _pong))
        return self

    def stats(self) -> Pipeline:
        self._commands.append(_command(Stats(), _stats))
        return self

    def execute(self, *, raise_on_error: bool = True) -> list[Any]:
        """Send everything queued, in one write; the results in order. Empties the queue."""
        commands, self._commands = self._commands, []
        if not commands:
            self.results = []
            return self.results
        client = self._client
        with client._lock:
            client._ensure_connected()
            replies = client._exchange(commands)
        results: list[Any] = []
        first_error: CacheError | None = None
        for cmd, reply in zip(commands, replies):
            try:
                results.append(_result(cmd, reply))
            except CacheError as exc:
                results.append(exc)
                if first_error is None:
                    first_error = exc
        self.results = results
        if first_error is not None and raise_on_error:
            raise first_error
        return results

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None and self._commands:
            self.execute()
        else:
            self._commands.clear()
