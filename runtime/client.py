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
- **Authentication.** With ``password=`` (and ``user=``, default ``default``) every
  connection the client opens, the first and each reconnect, sends ``auth`` before any
  request; a refusal raises :class:`~actors.protocol.errors.WrongPassError` (definite) and
  the connection is closed. The password is never in a ``repr``.
- **Send and receive interleaved.** The socket is non-blocking and driven by a selector
  that writes and reads at the same time, so a huge pipeline cannot deadlock against the
  node's backpressure (it stops reading while its replies to us are not read).
- **TLS when asked.** ``tls=True`` wraps the connection in TLS (``cafile``: the CA to
  verify the node against, else the system's; ``certfile``/``keyfile``: our certificate,
  for a node with ``--tls-auth-clients yes``); the node's host name is checked. The socket
  stays non-blocking under the selector: TLS "want read/write" is waiting like
  ``EAGAIN``, and bytes the TLS layer already decrypted are read before waiting again.
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

The calls themselves (``get``, ``set``, ... with their arguments, checks and results) are
written once, in :class:`runtime.client_commands.CacheCommands`, which :class:`Client`
(send now, return the result) and :class:`Pipeline` (queue, return the pipeline) both
mix in; this module moves their encoded lines and decodes the replies
(:func:`~actors.protocol.codec.decode_reply`). The errors raised locally are in
:mod:`runtime.client_errors`.

A :class:`Client` is safe to share between threads (calls are serialised by a lock), but
one client per thread is faster under contention.
"""

from __future__ import annotations

import json
import selectors
import socket
import ssl
import threading
import time
from types import TracebackType
from typing import Any

from actors.protocol.codec import decode_reply
from actors.protocol.errors import CacheError, ErrorCode
from actors.protocol.messages import Ack, Auth, ErrorReply, Reply, Request
from runtime.addresses import DEFAULT_PORT, join_host_port, parse_address
from runtime.client_commands import (
    CONSISTENCY_LEVELS,
    PING,
    CacheCommands,
    Command,
    Inspection,
    Location,
    check_consistency,
)
from runtime.client_errors import ClientTimeoutError, ConnectionLostError, ProtocolError
from runtime.tls import client_context

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
#: A non-blocking socket operation that must wait for the socket (TLS adds its own two).
_WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


class Client(CacheCommands[Any]):
    """A connection to one node. See the module docstring for the retry rules.

    ``timeout`` bounds each call as a whole (sending the request and reading every reply);
    ``connect_timeout`` bounds opening the connection. Both are in seconds.
    ``consistency`` (``"one"``, ``"quorum"``, ``"all"``) is the level of every data request
    that does not name its own; ``None`` (the default) leaves it to the node.
    ``tls=True`` speaks TLS (``cafile``, ``certfile``, ``keyfile``: see the module docstring).
    """

    def __init__(
        self,
        address: str | tuple[str, int] = f"localhost:{DEFAULT_PORT}",
        *,
        timeout: float = 5.0,
        connect_timeout: float = 5.0,
        consistency: str | None = None,
        tls: bool = False,
        cafile: str | None = None,
        certfile: str | None = None,
        keyfile: str | None = None,
        password: str | None = None,
        user: str | None = None,
    ) -> None:
        if not timeout > 0 or not connect_timeout > 0:
            raise ValueError("timeouts must be > 0 seconds")
        if not tls and (cafile or certfile or keyfile):
            raise ValueError("cafile, certfile and keyfile need tls=True")
        #: The TLS context (None: plaintext); made now, so a bad file fails here.
        self._tls: ssl.SSLContext | None = client_context(cafile, certfile, keyfile) if tls else None
        self._tls_cert = certfile is not None
        self.host, self.port = parse_address(address)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.consistency = check_consistency(consistency)
        self._sock: socket.socket | None = None
        self._selector: selectors.BaseSelector | None = None
        self._buf = bytearray()
        self._lock = threading.Lock()
        if user is not None and password is None:
            raise ValueError("user needs a password")
        #: Sent first on every connection it opens (never shown: see Command.line).
        self._auth: Command | None = None if password is None else Command.of(Auth(user, password), _authenticated)

    def __repr__(self) -> str:
        state = "connected" if self._sock is not None else "idle"
        return f"<Client {self.address} {state}>"

    @property
    def address(self) -> str:
        return join_host_port(self.host, self.port)

    def _level(self, consistency: str | None) -> str | None:
        """The level a request goes out with: its own, else the client's default."""
        return check_consistency(consistency) if consistency is not None else self.consistency

    # --- node -----------------------------------------------------------------------

    def ping(self) -> float:
        """Round-trip time of one ping in seconds (after connecting, if needed)."""
        with self._lock:
            self._ensure_connected()
            started = time.perf_counter()
            (reply,) = self._exchange([PING])
            elapsed = time.perf_counter() - started
        PING.result(reply)
        return elapsed

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

    def _issue(self, cmd: Command) -> Any:
        """Send ``cmd`` and return its result."""
        with self._lock:
            self._ensure_connected()
            (reply,) = self._exchange([cmd])
        return cmd.result(reply)

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
            if self._tls is not None:  # (no MSG_PEEK on TLS; a byte read here is unsolicited anyway)
                self._sock.recv(1)
            else:
                self._sock.recv(1, socket.MSG_PEEK)
        except _WOULD_BLOCK:
            return False  # open, and nothing unexpected waiting (TLS: maybe a session ticket)
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
        if self._tls is not None:
            sock = self._tls_handshake(sock)
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
        if self._auth is not None:
            self._authenticate(self._auth)

    def _authenticate(self, auth: Command) -> None:
        """Authenticate a new connection before anything else is sent on it; a refusal
        (``wrongpass``, ...) closes it and raises."""
        (reply,) = self._exchange([auth])
        try:
            auth.result(reply)
        except CacheError:
            self.close()
            raise

    def _tls_handshake(self, sock: socket.socket) -> ssl.SSLSocket:
        """Wrap ``sock`` in TLS (within the connect timeout) or close it and raise."""
        assert self._tls is not None
        where = self.address
        try:
            return self._tls.wrap_socket(sock, server_hostname=self.host)
        except ssl.SSLCertVerificationError as exc:
            sock.close()
            raise ConnectionLostError(
                f"TLS handshake with {where} failed: {exc.verify_message or exc.reason}", definite=True
            ) from exc
        except TimeoutError as exc:
            sock.close()
            raise ConnectionLostError(
                f"TLS handshake with {where} timed out after {self.connect_timeout:g}s", definite=True
            ) from exc
        except OSError as exc:  # ssl.SSLError (is an OSError), reset, closed: a plaintext port closes
            sock.close()
            reason = getattr(exc, "reason", None) or exc.strerror or str(exc) or "closed by the node"
            raise ConnectionLostError(f"TLS handshake with {where} failed: {reason}", definite=True) from exc

    def _exchange(self, commands: list[Command]) -> list[Reply | CacheError]:
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
            except _WOULD_BLOCK:
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
                    except _WOULD_BLOCK:
                        pass
                    except OSError as exc:
                        # Keep reading: the node may have answered (e.g. too_large) first.
                        send_error = exc
                if mask & selectors.EVENT_READ:
                    try:
                        chunk = sock.recv(_RECV_SIZE)
                        while self._tls is not None and chunk and sock.pending():  # type: ignore[attr-defined]
                            # Decrypted already: the selector will not report it again.
                            chunk += sock.recv(_RECV_SIZE)
                    except _WOULD_BLOCK:
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
        if self._tls is not None and not replies and not self._tls_cert:
            # TLS 1.3 checks our certificate after our side of the handshake is done: a
            # node that requires one closes the connection at our first request.
            reason += "; does the node require a client certificate (certfile=, --cert)?"
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


def _authenticated(reply: Reply) -> None:
    if type(reply) is not Ack:
        raise ProtocolError(f"unexpected reply to auth: {type(reply).__name__}")


class Pipeline(CacheCommands["Pipeline"]):
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
        self._commands: list[Command] = []
        self.results: list[Any] | None = None

    def __len__(self) -> int:
        return len(self._commands)

    def _issue(self, cmd: Command) -> Pipeline:
        self._commands.append(cmd)
        return self

    def _level(self, consistency: str | None) -> str | None:
        return self._client._level(consistency)

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
                results.append(cmd.result(reply))
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
