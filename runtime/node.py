"""``python -m runtime.node NODE_ID PORT [PEER_ADDR ...]``: run one cache node.

As the seed's ``go run main.go node1 8081``. Prints one start-up line with the node id
and the bound address; SIGINT or SIGTERM stops it within 2 s, answering the requests it
has already read, with exit code 0. PORT 0 picks a free port (the line says which).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import signal
import sys

from actors import NodeConfig, spawn_node
from runtime.argtypes import byte_size, port, positive_seconds
from runtime.host import real_ctx
from runtime.loop_scheduler import LoopScheduler
from runtime.server import CacheServer

__all__ = ["main", "parse_args"]

logger = logging.getLogger("actorcache")

#: Exit code when an actor died of an unhandled error (EX_SOFTWARE).
EXIT_ACTOR_DIED = 70


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m runtime.node",
        description="Run one actorcache node (JSON lines or msgpack over TCP).",
    )
    parser.add_argument("node_id", help="this node's id, e.g. node1")
    parser.add_argument("port", type=port, help="TCP port to listen on (0: any free port)")
    parser.add_argument("peers", nargs="*", metavar="PEER_ADDR", help="host:port of peers to join through")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 to serve other machines)")
    parser.add_argument(
        "--cleanup-interval", type=positive_seconds, default=1.0, metavar="SECONDS",
        help="seconds between active-expiry cycles (default 1)",
    )
    parser.add_argument(
        "--cleanup-budget-ms", type=positive_seconds, default=2.0, metavar="MS",
        help="time budget of one active-expiry cycle in milliseconds (default 2)",
    )
    parser.add_argument(
        "--max-request-bytes", type=byte_size, default=1 << 20, metavar="BYTES",
        help="largest request accepted; a larger one is answered too_large and the connection closed (default 1M)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="default info",
    )
    return parser.parse_args(argv)


def _raise_fd_limit() -> None:
    """Thousands of idle clients need thousands of descriptors: lift the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 65536 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, target), hard))
        except (ValueError, OSError):
            pass


async def serve(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    scheduler = LoopScheduler(loop)
    scheduler.bind_thread()
    config = NodeConfig(
        cleanup_interval_s=args.cleanup_interval,
        cleanup_budget_s=args.cleanup_budget_ms / 1000.0,
    )
    refs = spawn_node(real_ctx(args.node_id, scheduler), config)
    server = CacheServer(refs.node, max_request_bytes=args.max_request_bytes)
    try:
        host, port = await server.start(args.host, args.port)
    except OSError as exc:
        print(f"actorcache {args.node_id}: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        refs.stop()
        return 1
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    peers = f" peers={','.join(args.peers)}" if args.peers else ""
    print(f"actorcache node {args.node_id} listening on {host}:{port}{peers}", flush=True)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=0.5)
        except asyncio.TimeoutError:
            pass
        dead = [ref for ref in (refs.node, refs.store, refs.janitor) if not ref.is_alive()]
        if dead and not stop.is_set():
            # An actor died of a bug: serving on would hang clients. Exit so a supervisor restarts us.
            logger.critical("actor %s died; exiting", dead[0].actor_urn)
            await server.shutdown(grace_s=0.2)
            refs.stop()
            return EXIT_ACTOR_DIED
    logger.info("stopping %s", args.node_id)
    await server.shutdown(grace_s=1.5)
    refs.stop()
    await asyncio.sleep(0)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    _raise_fd_limit()
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
