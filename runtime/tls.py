"""TLS for the node's ports and its outbound peer links: settings, contexts, and the accept path.

Theory of operation
-------------------
TLS belongs to the port. With ``--tls-cert-file``/``--tls-key-file`` the client port (which
peers share) and the RESP port accept TLS only, and peer links connect with TLS. Options
and their meaning follow Redis's (``tls-auth-clients``, ``tls-cluster``):

- ``--tls-auth-clients yes`` (the default, as Redis's) asks every connection for a
  certificate signed by ``--tls-ca-cert-file`` and refuses the handshake without one;
  ``optional`` verifies a certificate when one is presented; ``no`` asks for none;
- ``--tls-cluster yes``: peer links are mutual TLS. The node presents its certificate and
  verifies the other side's against the CA, and the acceptor names the connector by its
  certificate (:func:`certificate_names`; the peer handshake checks the node id it claims
  is one of them). The port then always asks for a certificate (optionally, under
  ``--tls-auth-clients no``), since peers share it with clients. A certificate cannot tell
  a node from a client, so without ``--cluster-secret-file`` it needs ``--tls-auth-clients
  no`` (``runtime.node`` refuses to start otherwise: a client's certificate could claim a
  node id); with a secret a peer needs both;
- outbound peer links always present the node's certificate (as Redis uses
  ``tls-cert-file`` for both ends) and verify the acceptor's against the CA when one is
  configured. The CA is required unless both options above are ``no`` (Redis's rule).

Accepting (:class:`TlsAcceptor`): the listener accepts plain TCP and runs the handshake
with ``loop.start_tls`` before the connection's own protocol exists, so

- a connection that fails its handshake (a plaintext client, a certificate from another
  CA, a client without one under ``yes``) never becomes a client: it is closed, counted in
  ``tls_handshake_failures`` and logged (at most one INFO line a second, the rest at
  DEBUG: a scanner cannot flood the log); the node lives on;
- a handshake takes no ``--max-clients`` slot, but it is bounded: it must finish within
  :data:`HANDSHAKE_TIMEOUT_S`, and at most ``max_pending`` run at once (one more closes the
  oldest, as the peer-hello probation does: a stranger must open handshakes faster than a
  peer completes one to keep peers out);
- after the handshake the connection's protocol (client, RESP) is made and runs
  unchanged over the TLS transport, including the switch of a client connection to the
  peer protocol (``set_protocol`` works on asyncio's TLS transport).

Limits over TLS: the output buffer limit counts the TLS layer's unsent bytes (its
``get_write_buffer_size``); pausing reading stops delivery at once, and the TLS layer
then holds at most :data:`READ_HIGH_WATER` bytes of ciphertext plus one socket read
before it stops reading the socket too.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import ssl
from typing import Callable

from runtime.addresses import sockaddr_text

__all__ = [
    "AUTH_CLIENTS",
    "HANDSHAKE_TIMEOUT_S",
    "READ_HIGH_WATER",
    "TlsAcceptor",
    "TlsSettings",
    "add_tls_options",
    "certificate_names",
    "client_context",
    "tls_settings",
]

logger = logging.getLogger("actorcache.tls")

#: ``--tls-auth-clients`` values: a client certificate is required, checked if given, not asked for.
AUTH_CLIENTS = ("yes", "no", "optional")
#: A TLS handshake not complete after this long is aborted (it holds a socket meanwhile).
HANDSHAKE_TIMEOUT_S = 10.0
#: Ciphertext the TLS layer of one connection buffers while its reading is paused.
READ_HIGH_WATER = 64 << 10
#: At most one handshake failure a second is logged at INFO (the rest at DEBUG).
_LOG_EVERY_S = 1.0
#: OpenSSL's reasons for a first record that is no TLS at all.
_PLAINTEXT_REASONS = frozenset({"WRONG_VERSION_NUMBER", "HTTP_REQUEST", "HTTPS_PROXY_REQUEST", "UNKNOWN_PROTOCOL"})


def certificate_names(transport: asyncio.BaseTransport | None) -> tuple[str, ...]:
    """The names the verified certificate of the other end of ``transport`` gives: its
    subject alternative DNS names, then its common name(s), each once. Empty when the
    transport is not TLS or the other end presented no verified certificate."""
    if transport is None:
        return ()
    cert = transport.get_extra_info("peercert")
    if not cert:
        return ()
    names: dict[str, None] = {}
    for kind, value in cert.get("subjectAltName", ()):
        if kind == "DNS":
            names[value] = None
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                names[value] = None
    return tuple(names)


@dataclasses.dataclass(frozen=True)
class TlsSettings:
    """The node's TLS options; :meth:`server_context` and :meth:`peer_context` build the contexts."""

    cert_file: str
    key_file: str
    ca_cert_file: str | None = None
    auth_clients: str = "yes"
    cluster: bool = False

    def __post_init__(self) -> None:
        if self.auth_clients not in AUTH_CLIENTS:
            raise ValueError(f"--tls-auth-clients must be one of {', '.join(AUTH_CLIENTS)}")
        if self.ca_cert_file is None and (self.auth_clients != "no" or self.cluster):
            raise ValueError(
                "--tls-ca-cert-file is required when --tls-auth-clients is yes or optional "
                "(yes is the default) or --tls-cluster is yes"
            )

    def server_context(self) -> ssl.SSLContext:
        """The listeners' context (raises ValueError for an unreadable or bad file)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        self._load(ctx)
        mode = {"yes": ssl.CERT_REQUIRED, "optional": ssl.CERT_OPTIONAL, "no": ssl.CERT_NONE}[self.auth_clients]
        if self.cluster and mode == ssl.CERT_NONE:
            mode = ssl.CERT_OPTIONAL  # peers share the port: their certificates must be asked for
        ctx.verify_mode = mode
        return ctx

    def peer_context(self) -> ssl.SSLContext:
        """Outbound peer links' context: present our certificate, verify theirs against the
        CA when there is one (the node id is checked against its names, not the host)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.check_hostname = False
        self._load(ctx)
        ctx.verify_mode = ssl.CERT_REQUIRED if self.ca_cert_file is not None else ssl.CERT_NONE
        return ctx

    def _load(self, ctx: ssl.SSLContext) -> None:
        try:
            ctx.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(f"cannot load --tls-cert-file/--tls-key-file: {_reason(exc)}") from None
        if self.ca_cert_file is not None:
            try:
                ctx.load_verify_locations(cafile=self.ca_cert_file)
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(f"cannot load --tls-ca-cert-file: {_reason(exc)}") from None


def client_context(
    cafile: str | None = None, certfile: str | None = None, keyfile: str | None = None
) -> ssl.SSLContext:
    """A client's context: verify the node against ``cafile`` (else the system's CAs) and
    its host name; present ``certfile``/``keyfile`` when given (``--tls-auth-clients``)."""
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if certfile is not None:
        ctx.load_cert_chain(certfile, keyfile)
    return ctx


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}{': ' + exc.filename if exc.filename else ''}"
    return str(exc) or type(exc).__name__


# --- the command line -----------------------------------------------------------------


def _yes_no(text: str) -> bool:
    if text not in ("yes", "no"):
        raise argparse.ArgumentTypeError("must be yes or no")
    return text == "yes"


def add_tls_options(parser: argparse.ArgumentParser) -> None:
    """The node's TLS options, in their own group (Redis's names)."""
    group = parser.add_argument_group("TLS (Redis's option names; see docs/protocol.md, TLS)")
    group.add_argument(
        "--tls-cert-file", metavar="PATH",
        help="this node's certificate (PEM); with --tls-key-file the client and RESP ports speak TLS only "
        "and peer links connect with TLS",
    )
    group.add_argument("--tls-key-file", metavar="PATH", help="the private key of --tls-cert-file (PEM)")
    group.add_argument(
        "--tls-ca-cert-file", metavar="PATH",
        help="CA certificates (PEM) that client and peer certificates must be signed by",
    )
    group.add_argument(
        "--tls-auth-clients", choices=AUTH_CLIENTS, default="yes",
        help="client certificates: required, verified when presented, or not asked for (default yes)",
    )
    group.add_argument(
        "--tls-cluster", type=_yes_no, default=False, metavar="{yes,no}",
        help="peer links use mutual TLS: each node verifies the other's certificate against the CA, "
        "and a peer's certificate must name its node id (default no)",
    )


def tls_settings(args: argparse.Namespace) -> TlsSettings | None:
    """The parsed options' :class:`TlsSettings` (None: TLS off); ValueError says what is wrong."""
    if args.tls_cert_file is None and args.tls_key_file is None:
        options = (("--tls-ca-cert-file", args.tls_ca_cert_file), ("--tls-cluster yes", args.tls_cluster))
        given = [flag for flag, value in options if value]
        if given:
            raise ValueError(f"{' and '.join(given)} need --tls-cert-file and --tls-key-file")
        return None
    if args.tls_cert_file is None or args.tls_key_file is None:
        raise ValueError("--tls-cert-file and --tls-key-file go together")
    settings = TlsSettings(
        args.tls_cert_file, args.tls_key_file, args.tls_ca_cert_file, args.tls_auth_clients, args.tls_cluster
    )
    settings.server_context()  # read the files now: a bad one is a usage error, not a failure later
    settings.peer_context()
    return settings


# --- accepting ------------------------------------------------------------------------


class TlsAcceptor:
    """The protocol factory of a TLS listener: ``loop.create_server(acceptor, ...)``.

    Each accepted TCP connection runs its TLS handshake first; once it completes,
    ``factory()`` makes the connection's real protocol, which takes the TLS transport. See
    the module docstring for the bounds. ``max_pending``: handshakes at once.
    """

    def __init__(
        self,
        factory: Callable[[], asyncio.Protocol],
        context: ssl.SSLContext,
        *,
        max_pending: int,
        handshake_timeout: float = HANDSHAKE_TIMEOUT_S,
        port_name: str = "client",
    ) -> None:
        self.factory = factory
        self.context = context
        self.max_pending = max(1, max_pending)
        self.handshake_timeout = handshake_timeout
        self.port_name = port_name
        #: Handshakes running, oldest first.
        self.pending: dict[_Handshake, None] = {}
        self.failures = 0
        self._logged_at = float("-inf")

    def __call__(self) -> asyncio.Protocol:
        return _Handshake(self)

    def close(self) -> None:
        """Abort every handshake still running (the server is shutting down)."""
        for handshake in list(self.pending):
            handshake.abort("the server is shutting down")

    def _failed(self, handshake: _Handshake, exc: BaseException | None) -> None:
        self.failures += 1
        now = asyncio.get_running_loop().time()
        level = logging.DEBUG
        if now - self._logged_at >= _LOG_EVERY_S:
            level = logging.INFO
            self._logged_at = now
        if logger.isEnabledFor(level):
            why = f"aborted: {handshake.reason}" if handshake.reason else _why(exc, self.handshake_timeout)
            logger.log(level, "TLS handshake on the %s port from %s failed: %s", self.port_name, handshake.remote, why)


def _why(exc: BaseException | None, timeout: float) -> str:
    if exc is None:
        return "closed during the handshake"
    if isinstance(exc, (asyncio.TimeoutError, ConnectionAbortedError)):
        return f"not complete within {timeout:g}s"
    if isinstance(exc, ssl.SSLError) and exc.reason in _PLAINTEXT_REASONS:
        return f"{exc.reason} (not TLS: a plaintext client?)"
    return _reason(exc)


class _Handshake(asyncio.Protocol):
    """One accepted connection until its handshake completes; then it hands the TLS
    transport to the connection's protocol and only forwards what arrived meanwhile."""

    def __init__(self, acceptor: TlsAcceptor) -> None:
        self.acceptor = acceptor
        self.transport: asyncio.Transport | None = None
        self.remote = "?"
        self.reason: str | None = None  # why we aborted it, if we did
        self.app: asyncio.Protocol | None = None
        self._early: list[bytes] = []
        self._eof = False
        self._lost = False
        self._lost_exc: Exception | None = None
        self._write_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()  # start_tls resumes it under the TLS layer
        self.transport = transport
        self.remote = sockaddr_text(transport.get_extra_info("peername"))
        acceptor = self.acceptor
        acceptor.pending[self] = None
        if len(acceptor.pending) > acceptor.max_pending:
            next(iter(acceptor.pending)).abort("too many TLS handshakes at once")  # the oldest waits no longer
        if self in acceptor.pending:
            asyncio.get_running_loop().create_task(self._handshake())

    def abort(self, reason: str) -> None:
        self.reason = reason
        self.acceptor.pending.pop(self, None)
        if self.transport is not None:
            self.transport.abort()

    async def _handshake(self) -> None:
        acceptor = self.acceptor
        transport = self.transport
        if transport is None or transport.is_closing():
            acceptor.pending.pop(self, None)
            acceptor._failed(self, None)
            return
        loop = asyncio.get_running_loop()
        try:
            tls = await asyncio.wait_for(
                loop.start_tls(
                    transport, self, acceptor.context,
                    server_side=True, ssl_handshake_timeout=acceptor.handshake_timeout,
                ),
                acceptor.handshake_timeout + 1.0,
            )
        except Exception as exc:  # noqa: BLE001 - TLS errors, resets, the timeout: all end this connection only
            acceptor.pending.pop(self, None)
            acceptor._failed(self, exc)
            return
        acceptor.pending.pop(self, None)
        if tls is None or self._lost:
            acceptor._failed(self, self._lost_exc)
            return
        assert isinstance(tls, asyncio.Transport)
        tls.set_read_buffer_limits(high=READ_HIGH_WATER)
        app = acceptor.factory()
        self.app = app
        tls.set_protocol(app)
        app.connection_made(tls)
        if self._write_paused:
            app.pause_writing()
        early, self._early = self._early, []
        for data in early:
            if tls.is_closing():
                break
            app.data_received(data)
        if self._eof and not tls.is_closing() and not app.eof_received():
            tls.close()

    # Until the switch the TLS layer reports to this object: keep what it says for the
    # connection's protocol; after it, forward (a callback scheduled before the switch).

    def data_received(self, data: bytes) -> None:
        if self.app is not None:
            self.app.data_received(data)
        else:
            self._early.append(data)

    def eof_received(self) -> bool | None:
        if self.app is not None:
            return self.app.eof_received()
        self._eof = True
        return False  # (the TLS layer closes after close_notify whatever we answer)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.app is not None:
            self.app.connection_lost(exc)
            return
        self._lost = True
        self._lost_exc = exc
        self._early.clear()

    def pause_writing(self) -> None:
        if self.app is not None:
            self.app.pause_writing()
        else:
            self._write_paused = True

    def resume_writing(self) -> None:
        if self.app is not None:
            self.app.resume_writing()
        else:
            self._write_paused = False
