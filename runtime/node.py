"""``python -m runtime.node NODE_ID PORT [PEER_ADDR ...]``: run one cache node.

As the Go original's ``go run main.go node1 8081``. Prints one start-up line with the node id
and the bound address (``actorcache node node1 listening on 127.0.0.1:8081``, plus
`` peers=...`` when it joins through contacts); with ``--resp-port`` a second line follows
(``actorcache node node1 resp on 127.0.0.1:6379``: the Redis-protocol port), and with
``--metrics-port`` one more (``actorcache node node1 metrics on 127.0.0.1:9121``:
Prometheus metrics and health probes, docs/operations.md). PORT 0
picks a free port (the line says which). PEER_ADDR arguments are the contacts it joins the
cluster through.

Start-up order: bind the port (not yet accepting), so the advertised address is known
even for port 0; build the peer links and the actors' ``Ctx`` with ``send`` wired to
them; spawn the node's actors; then accept connections.

Start-up warns when ``--max-memory`` is unset and the node listens on anything but a
loopback address: keys and values could then fill the machine's memory. Without
``--cluster-secret-file`` it says that only loopback peers are accepted (in and out):
every peer connection opens with a challenge-response over that secret (docs/protocol.md);
when clients need a password it says that no peer is accepted at all, and a secret
shorter than 16 bytes, or ``--tls-cluster yes`` with client certificates and no secret,
is refused (exit 2): docs/security.md.

SIGINT or SIGTERM: the node leaves the cluster gracefully (hands its partitions off,
announces ``left``; at most ``--leave-timeout`` seconds, a second signal cuts it short),
keeps serving meanwhile, then stops accepting, answers the requests it has already read
and exits with code 0. A lone node has nothing to hand off and stops within 2 s.
Exit codes: 1 when the port cannot be bound, 2 for bad arguments, 70 when an actor died.
This module is the node's start-up and shutdown; its command line is
:mod:`runtime.node_args` (the parser and the checks after parsing) and the mapping from
parsed arguments to what the node is built with (NodeConfig, client limits, peer trust,
advertised address) is :mod:`runtime.node_options`: both re-exported here, so
``from runtime.node import parse_args`` and the others work as before.
"""

from __future__ import annotations

import argparse
import dataclasses
import asyncio
import gc
import logging
import resource
import signal
import sys
import time
from typing import Any

from actors.kernel.disk import DiskError
from actors.store.ops import SaveSnapshot, StatsQuery, StoreCall
from actors.node.system import NodeRefs, spawn_node
from actors.protocol.peer_codec import encode_hello, encode_peer
from actors.protocol.internal import Leave, StatsAsk
from runtime.addresses import format_address, is_loopback
from runtime.client_auth import protected_mode
from runtime.event_loop import run_on
from runtime.gc_pacer import GcPacer, tune_collector
from runtime.file_disk import FileDisk
from runtime.host import real_ctx
from runtime.metrics_http import start_metrics
from runtime.trace_file import TraceFile
from runtime.logs import setup_logging
from runtime.loop_scheduler import LoopScheduler
from runtime.peer_trust import LOOPBACK_ONLY_MESSAGE, NO_PEERS_MESSAGE, advertised_addresses
from runtime.node_args import MAX_PARTITIONS, build_parser, parse_args, save_rules
from runtime.node_options import advertised_address, client_limits, memory_warning, node_config, peer_trust
from runtime.peers import PeerLinks
from runtime.server import CacheServer
from runtime.state_log import StateLog
from runtime.future_reply import FutureReply

__all__ = [
    "MAX_PARTITIONS",
    "advertised_address",
    "build_parser",
    "client_limits",
    "main",
    "memory_warning",
    "node_config",
    "parse_args",
    "peer_trust",
    "save_rules",
]

logger = logging.getLogger("actorcache")

#: Exit code when an actor died of an unhandled error (EX_SOFTWARE).
EXIT_ACTOR_DIED = 70

#: Descriptors a node needs besides its clients' (listeners, peer links, files), as Redis
#: reserves 32 beyond maxclients.
_RESERVED_FDS = 64


def _raise_fd_limit(max_clients: int) -> None:
    """Thousands of idle clients need thousands of descriptors: lift the soft limit, and
    warn when it stays below what ``--max-clients`` needs (accepting would fail first)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 65536 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, target), hard))
        except (ValueError, OSError):
            pass
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < max_clients + _RESERVED_FDS:
        logger.warning(
            "--max-clients %d needs about %d file descriptors but this process may open %d: "
            "connections past that fail to be accepted; raise the limit (ulimit -n) or lower --max-clients",
            max_clients, max_clients + _RESERVED_FDS, soft,
        )


def _dead_actor(refs: NodeRefs) -> Any:
    return next((ref for ref in refs.actors() if not ref.is_alive()), None)


async def _watch_state(refs: NodeRefs, state_log: StateLog, every_s: float = 1.0) -> None:
    """Feed the state log a ``stats`` snapshot every ``every_s``: limits hit, evictions, the
    progress of warming and of the hand-off (runtime/state_log.py)."""
    while True:
        await asyncio.sleep(every_s)
        stats = await _ask_stats(refs)
        if stats is not None:
            try:
                state_log.on_stats(stats, time.monotonic())
            except Exception:  # a bug here must not stop the node: say it, keep watching
                logger.exception("state log failed on a stats snapshot")


async def _leave(refs: NodeRefs, timeout: float, hurry: asyncio.Event) -> None:
    """Ask the node to hand off and announce ``left``; wait for ``LeaveDone`` (bounded)."""
    if not refs.node.is_alive():
        return
    loop = asyncio.get_running_loop()
    reply = FutureReply(loop)
    refs.node.tell(Leave(reply_to=reply))
    deadline = loop.time() + timeout
    hurried = asyncio.ensure_future(hurry.wait())
    try:
        while not reply.future.done() and not hurry.is_set():
            remaining = deadline - loop.time()
            if remaining <= 0 or _dead_actor(refs) is not None:
                break
            await asyncio.wait(
                {reply.future, hurried}, timeout=min(remaining, 0.5), return_when=asyncio.FIRST_COMPLETED
            )
    finally:
        hurried.cancel()
    # (leaving, the hand-off and having left are logged as the node traces them: runtime/state_log.py)
    if reply.future.done():
        return
    if hurry.is_set():
        logger.warning("second signal: stopping without waiting for the handoff")
    else:
        logger.warning("leaving did not finish within %.1fs; stopping anyway", timeout)


async def _loaded(refs: NodeRefs) -> bool:
    """Wait until the store has loaded the data directory (it does so in its first turn,
    before any message): False when it died doing so (a corrupt log)."""
    loop = asyncio.get_running_loop()
    reply = FutureReply(loop)
    refs.store.tell(StoreCall(0, ((0, StatsQuery()),), reply))
    while not reply.future.done():
        if not refs.store.is_alive():
            return False
        await asyncio.wait({reply.future}, timeout=0.1)
    return True


async def _save_before_exit(refs: NodeRefs) -> None:
    """SIGTERM with ``--save`` rules: write a snapshot before leaving (Redis's shutdown save)."""
    loop = asyncio.get_running_loop()
    reply = FutureReply(loop)
    refs.store.tell(StoreCall(0, ((0, SaveSnapshot(False, take_over=True)),), reply))
    try:
        answer = await asyncio.wait_for(reply.future, timeout=120)
    except asyncio.TimeoutError:
        logger.error("the shutdown snapshot did not finish within 120 s")
        return
    result = answer.results[0][1]
    if result is True:
        logger.info("saved a snapshot before exiting")
    else:
        logger.error("the shutdown snapshot failed: %s", getattr(result, "message", result))


async def _ask_stats(refs: NodeRefs) -> dict[str, Any] | None:
    """The node's ``stats`` for the metrics port (None once its actor is gone)."""
    if not refs.node.is_alive():
        return None
    reply = FutureReply(asyncio.get_running_loop())
    refs.node.tell(StatsAsk(reply_to=reply))
    return await reply.future  # type: ignore[no-any-return]


async def serve(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    scheduler = LoopScheduler(loop)
    scheduler.bind_thread()
    trust = peer_trust(args)
    server = CacheServer(
        max_request_bytes=args.max_request_bytes, partitions=args.partitions, limits=client_limits(args), trust=trust,
        acl=args.acl, protected=protected_mode(args, args.acl),
    )
    server.options = getattr(args, "options", {})  # stats' and CONFIG GET's effective settings
    tls = args.tls.server_context() if getattr(args, "tls", None) is not None else None
    try:
        host, bound_port = await server.start(args.host, args.port, start_serving=False, tls=tls)
    except OSError as exc:
        print(f"actorcache {args.node_id}: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    resp_bound: tuple[str, int] | None = None
    if args.resp_port is not None:
        try:
            resp_bound = await server.start_resp(
                args.host,
                args.resp_port,
                node_id=args.node_id,
                start_serving=False,
                max_memory=args.max_memory,
                eviction_policy=args.eviction_policy,
                tls=tls,
                proto_max_bulk_len=args.proto_max_bulk_len,
            )
        except OSError as exc:
            print(
                f"actorcache {args.node_id}: cannot listen on {args.host}:{args.resp_port}: {exc.strerror}",
                file=sys.stderr,
            )
            server.close_listener()
            return 1
    address = advertised_address(args, host, bound_port)
    if server.options:  # the ports bound (port 0: a free one), in place: RESP's info holds the dict
        server.options["port"] = str(bound_port)
        if resp_bound is not None:
            server.options["resp-port"] = str(resp_bound[1])
    contacts = tuple(peer for peer in args.peers if peer != address)  # a shared contact list may name us
    config = node_config(args, address, contacts)
    # Where peers may reach us (a hello's ``to``) besides each connection's own socket
    # name: the advertised address and its host's IPs, resolved once (behind NAT, peers
    # dial the advertised address). Set before serving: every connection sees it.
    trust = server.trust = dataclasses.replace(trust, addresses=await advertised_addresses(loop, address))
    links = PeerLinks(
        encode_hello(args.node_id, address, config.partitions),
        encode_peer,
        secret=trust.secret,
        loopback_only=trust.loopback_only,
        verify=trust.certificate_refusal if trust.tls_cluster else None,
        loop=loop,
        tls=args.tls.peer_context() if tls is not None else None,
        compress=args.peer_compress,
    )
    trace = TraceFile(args.trace, loop, sample=args.trace_sample) if args.trace else None
    disk = None
    if getattr(args, "dir", None):
        try:
            disk = FileDisk(args.dir)
        except DiskError as exc:
            print(f"actorcache {args.node_id}: {exc}", file=sys.stderr)
            server.close_listener()
            return 1
    if disk is not None:
        # Loading allocates millions of objects: the cyclic GC would scan them again and
        # again (it halves the load time at 200k keys); the collector is tuned after.
        gc.disable()
    state_log = StateLog(args.node_id)
    refs = spawn_node(
        real_ctx(
            args.node_id, scheduler, trace=state_log.sink(trace), send=links.send,
            host_stats=lambda: {**server.stats(), "peer_links": links.stats()},
            disk=disk, tracing=trace is not None,
        ),
        config,
    )
    server.attach(refs.node)
    loaded = disk is None or await _loaded(refs)
    gc.enable()
    if not loaded:
        logger.critical("the data directory could not be loaded (see above); not starting")
        await server.shutdown(grace_s=0.0)
        links.close()
        refs.stop()
        disk.close()
        return EXIT_ACTOR_DIED
    tune_collector()  # (before serving: its one full collection walks what was loaded, ~0.4 s at 1M keys)
    await server.start_serving()
    gc_pacer = GcPacer(loop)
    gc_pacer.start()
    try:
        metrics = await start_metrics(args, lambda: _ask_stats(refs), lambda: _dead_actor(refs) is None, gc_pacer)
    except OSError as exc:
        print(f"actorcache {args.node_id}: cannot listen on metrics port {args.metrics_port}: {exc.strerror}", file=sys.stderr)
        await server.shutdown(grace_s=0.0)
        gc_pacer.stop()
        links.close()
        refs.stop()
        if disk is not None:
            disk.close()
        return 1
    if metrics is not None and server.options:
        server.options["metrics-port"] = str(metrics[1][1])  # the port bound, as for port and resp-port

    stop = asyncio.Event()
    hurry = asyncio.Event()

    def on_signal() -> None:
        (hurry if stop.is_set() else stop).set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    peers = f" peers={','.join(args.peers)}" if args.peers else ""
    print(f"actorcache node {args.node_id} listening on {host}:{bound_port}{peers}", flush=True)
    if resp_bound is not None:
        print(f"actorcache node {args.node_id} resp on {resp_bound[0]}:{resp_bound[1]}", flush=True)
    if metrics is not None:
        print(f"actorcache node {args.node_id} metrics on {metrics[1][0]}:{metrics[1][1]}", flush=True)
    if address != format_address(host, bound_port):
        logger.info("advertising %s to peers", address)
    warning = memory_warning(args.host, args.max_memory)
    if warning is not None:
        logger.warning("%s", warning)
    if tls is not None:
        logger.info(
            "TLS on the client%s port: client certificates %s, peer links %s", " and RESP" if resp_bound else "",
            {"yes": "required", "optional": "verified when presented", "no": "not asked for"}[args.tls.auth_clients],
            "mutual TLS (--tls-cluster yes)" if args.tls.cluster else "encrypted",
        )
    if trust.no_peers:
        logger.warning("%s", NO_PEERS_MESSAGE)
    elif trust.loopback_only:
        logger.warning("%s", LOOPBACK_ONLY_MESSAGE)
    if server.protected and not is_loopback(args.host):
        logger.warning(
            "protected mode: no password is set for the default user, so clients from non-loopback addresses "
            "are refused; set --requirepass-file or --aclfile (or --protected-mode no on a trusted network)"
        )

    exit_code = 0
    watch = asyncio.ensure_future(_watch_state(refs, state_log))
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=0.5)
        except asyncio.TimeoutError:
            pass
        dead = _dead_actor(refs)
        if dead is not None and not stop.is_set():
            # An actor died of a bug: serving on would hang clients. Exit so a supervisor restarts us.
            logger.critical("actor %s died; exiting", dead.actor_urn)
            exit_code = EXIT_ACTOR_DIED
            break
    if metrics is not None:
        metrics[0].stopping = True  # /ready: 503 from now on, while the node hands off and stops
    if exit_code == 0 and disk is not None and config.save:
        await _save_before_exit(refs)
    if exit_code == 0:
        logger.info("stopping %s", args.node_id)
        await _leave(refs, args.leave_timeout + 1.0, hurry)
        dead = _dead_actor(refs)
        if dead is not None:
            logger.critical("actor %s died while leaving", dead.actor_urn)
            exit_code = EXIT_ACTOR_DIED
        await server.shutdown(grace_s=1.5)
    else:
        await server.shutdown(grace_s=0.2)
    if metrics is not None:
        await metrics[0].close()
    watch.cancel()
    gc_pacer.stop()
    links.close()
    await links.wait_closed(timeout=0.3)
    refs.stop()
    await asyncio.sleep(0)
    if trace is not None:
        trace.close()
    if disk is not None:
        disk.close()
    return exit_code


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.log_level, args.log_format, args.node_id)
    _raise_fd_limit(args.max_clients)
    return run_on(args.event_loop, serve(args))


if __name__ == "__main__":
    sys.exit(main())
