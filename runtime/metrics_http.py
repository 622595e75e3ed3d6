"""The metrics port: ``GET /metrics``, ``/health`` and ``/ready`` over plain HTTP/1.x.

Served on the node's own event loop (runtime/metrics.py says why), by a deliberately
small HTTP handler rather than an HTTP framework: three read-only paths, one request per
connection (``Connection: close``), nothing a client sends is kept beyond its request
line. Every byte is hostile, so everything is bounded:

- a request head (request line and headers) larger than :data:`MAX_HEAD_BYTES` is
  answered 431 and the connection closed;
- a head not complete within :data:`HEAD_TIMEOUT_S` (a slow client, one that never
  ends its headers) is dropped without an answer;
- at most :data:`MAX_CONNECTIONS` connections at once; one more takes the place of the
  oldest connection still sending its head (a slowloris holding every slot would
  otherwise fail the node's health probes), or is closed at once if none is;
- a reply the client does not read is abandoned after :data:`WRITE_TIMEOUT_S`;
- anything but ``GET``/``HEAD`` is 405, an unknown path 404, a head that is not
  HTTP 400; a body is never read.

``/health``: 200 while the process serves and its node actor lives. ``/ready``: 200
when the node is a member of a cluster (joined), warmed (ready) and not leaving; else
503 with the reason in JSON, for load balancers and Kubernetes readiness probes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from runtime.argtypes import port
from runtime.gc_pacer import GcPacer

if TYPE_CHECKING:  # prometheus_client is imported only by a node that serves metrics (start_metrics)
    from prometheus_client import CollectorRegistry

    from runtime.metrics import NodeCollector

__all__ = [
    "HEAD_TIMEOUT_S",
    "MAX_CONNECTIONS",
    "MAX_HEAD_BYTES",
    "MetricsServer",
    "add_metrics_options",
    "readiness",
    "start_metrics",
]

logger = logging.getLogger("actorcache.metrics")

MAX_HEAD_BYTES = 8192
HEAD_TIMEOUT_S = 5.0
WRITE_TIMEOUT_S = 10.0
MAX_CONNECTIONS = 64
#: How long a scrape waits for the node's stats before answering 503.
STATS_TIMEOUT_S = 5.0

#: Asks the node for one ``stats`` snapshot (None: the node is gone).
StatsSource = Callable[[], Awaitable[dict[str, Any] | None]]

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            431: "Request Header Fields Too Large", 503: "Service Unavailable"}


def readiness(stats: dict[str, Any] | None, stopping: bool = False) -> tuple[bool, str]:
    """Whether a node with ``stats`` is ready for traffic, and why not (``ready`` if it is)."""
    if stopping:
        return False, "stopping"
    if stats is None:
        return False, "node_unresponsive"
    cluster = stats.get("cluster", {})
    status = cluster.get("members", {}).get(stats.get("node_id"), {}).get("status")
    if status in ("leaving", "left"):
        return False, status
    if not cluster.get("joined"):
        return False, "joining"
    if not cluster.get("ready"):
        return False, "warming"
    return True, "ready"


class MetricsServer:
    """Serves one node's metrics and health on ``host:port``.

    ``stats``: asks the node for a snapshot; ``alive``: whether its actors live;
    ``registry``/``collector``: from :func:`runtime.metrics.node_registry`.
    """

    def __init__(
        self,
        stats: StatsSource,
        alive: Callable[[], bool],
        registry: CollectorRegistry,
        collector: NodeCollector,
    ) -> None:
        self._stats = stats
        self._alive = alive
        self._registry = registry
        self._collector = collector
        self._server: asyncio.base_events.Server | None = None
        self._open: set[asyncio.Task[None]] = set()
        #: Connections still reading their request head, oldest first (the ones a new
        #: connection may push out when every slot is taken).
        self._heads: dict[asyncio.Task[None], None] = {}
        #: Set while the node shuts down: /ready answers 503 ``stopping``.
        self.stopping = False

    async def start(self, host: str, port: int) -> tuple[str, int]:
        self._server = await asyncio.start_server(self._serve, host, port, limit=MAX_HEAD_BYTES, reuse_address=True)
        sockname = self._server.sockets[0].getsockname()
        return sockname[0], sockname[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._open):
            task.cancel()
        if self._server is not None:
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is None:
            writer.transport.abort()
            return
        if len(self._open) >= MAX_CONNECTIONS:
            if not self._heads:
                writer.transport.abort()
                return
            oldest = next(iter(self._heads))
            del self._heads[oldest]
            self._open.discard(oldest)
            oldest.cancel()  # a probe sends its head at once: the oldest still sending is the slow one
        self._open.add(task)
        try:
            answer = await self._answer(reader, task)
            if answer is not None:
                writer.write(answer)
                await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT_S)
        except (asyncio.TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:  # a bug in a handler costs this request only, never the node
            logger.exception("metrics endpoint failed a request")
        finally:
            self._open.discard(task)
            if writer.transport.get_write_buffer_size():  # the client did not read its answer
                writer.transport.abort()
            else:
                writer.close()

    async def _answer(self, reader: asyncio.StreamReader, task: asyncio.Task[None]) -> bytes | None:
        self._heads[task] = None
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT_S)
        except asyncio.LimitOverrunError:
            return _response(431, b"request head too large\n")
        except (asyncio.TimeoutError, asyncio.IncompleteReadError):
            return None  # slow or gone: nothing to answer
        except ValueError:  # the head passed the stream's limit while looking for its end
            return _response(431, b"request head too large\n")
        finally:
            self._heads.pop(task, None)
        parts = head.split(b"\r\n", 1)[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            return _response(400, b"not an HTTP/1.x request\n")
        method, target = parts[0], parts[1].split(b"?", 1)[0]
        if method not in (b"GET", b"HEAD"):
            return _response(405, b"GET or HEAD only\n", extra=b"Allow: GET, HEAD\r\n")
        head_only = method == b"HEAD"
        if target == b"/health":
            alive = self._alive()
            body = json.dumps({"status": "ok" if alive else "actor_dead"}).encode() + b"\n"
            return _response(200 if alive else 503, body, b"application/json", head_only)
        if target == b"/ready":
            stats = await self._ask() if not self.stopping else None
            ready, reason = readiness(stats, self.stopping)
            body = json.dumps({"ready": ready, "reason": reason}).encode() + b"\n"
            return _response(200 if ready else 503, body, b"application/json", head_only)
        if target == b"/metrics":
            stats = await self._ask()
            if stats is None:
                return _response(503, b"the node did not answer its stats\n")
            from runtime.metrics import CONTENT_TYPE, render  # (loaded by start_metrics already)

            return _response(200, render(self._registry, self._collector, stats), CONTENT_TYPE.encode(), head_only)
        return _response(404, b"try /metrics, /health or /ready\n")

    async def _ask(self) -> dict[str, Any] | None:
        try:
            return await asyncio.wait_for(self._stats(), STATS_TIMEOUT_S)
        except asyncio.TimeoutError:
            return None


def _response(status: int, body: bytes, content_type: bytes = b"text/plain; charset=utf-8",
              head_only: bool = False, extra: bytes = b"") -> bytes:
    head = (
        b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n%s\r\n"
        % (status, _REASONS[status].encode(), content_type, len(body), extra)
    )
    return head if head_only else head + body


def add_metrics_options(parser: argparse.ArgumentParser) -> None:
    """``--metrics-port`` and ``--metrics-host`` (docs/operations.md)."""
    group = parser.add_argument_group("metrics and health (docs/operations.md)")
    group.add_argument(
        "--metrics-port", type=port, metavar="PORT",
        help="serve Prometheus metrics (GET /metrics) and health probes (GET /health, /ready) over HTTP "
        "on this port (0: any free port); default: not served",
    )
    group.add_argument(
        "--metrics-host", metavar="HOST",
        help="address the metrics port binds (default: --host); the endpoints have no authentication",
    )


async def start_metrics(
    args: argparse.Namespace, stats: StatsSource, alive: Callable[[], bool], pacer: GcPacer | None
) -> tuple[MetricsServer, tuple[str, int]] | None:
    """Start the metrics port when ``--metrics-port`` asks for one: the server and its
    bound address (None when not asked). OSError when it cannot bind."""
    if getattr(args, "metrics_port", None) is None:
        return None
    # Imported here: prometheus_client and its collectors are ~10% of a node's import time,
    # paid only by nodes that serve metrics.
    from runtime.metrics import node_registry

    registry, collector = node_registry(pacer)
    server = MetricsServer(stats, alive, registry, collector)
    bound = await server.start(args.metrics_host or args.host, args.metrics_port)
    return server, bound
