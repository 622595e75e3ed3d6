"""A 3-node cluster's Python per quorum set, in one process: the figure for callgrind.

``python -m bench.inproc_cluster [--conns 48] [--pipeline 16] [--rounds 200] [--repeats 3]``

Three real nodes (their actors, :class:`~runtime.server.CacheServer` and
:class:`~runtime.peers.PeerLinks`, the peer protocol over real TCP on 127.0.0.1) on one
event loop, ``--replicas 3``, quorum writes. The clients are ``--conns`` real
:class:`~runtime.connection.ClientConnection` objects on transports that only count what
is written, spread over the three nodes as ``bench.cluster_throughput`` spreads its
connections. Each round, every connection gets ``--pipeline`` sets in one
``data_received``, then the loop runs until every reply is written. The figure is CPU
time per acknowledged set over the three nodes together: every line of the coordinator,
both replicas, the peer wire and the stores, none of the client's system calls.

Time-driven work is scaled to the sets done, not to the wall clock, so that a run under
callgrind (50x slower) does as much of it per set as a real cluster does: each node's
``now`` (anti-entropy rounds, request metrics; never versions or TTLs, which use the
real wall clock) advances by one second per ``--rate`` sets acknowledged by the whole
cluster (default 20,000, about what the three nodes serve together on one core), and the
young generation is collected after every round (the node's pacer collects every 10 ms).

Instruction counts (the stable figure on a busy machine): run it under callgrind with
``--dump``, which asks callgrind (``callgrind_control -d``) for a dump after the cluster
formed and ``--warm`` rounds ran, and another after the measured rounds: the second
dump's total over the sets is the figure, without the start-up (whose gossip, warming and
polling follow the wall clock, so a loaded machine makes it longer)::

    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out python -m bench.inproc_cluster --rounds 20 --repeats 1 --dump
    grep totals /tmp/cg.out.2    # instructions over 20 x 48 x 16 sets
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import statistics
import subprocess
import time
from typing import Any

from actors.config import NodeConfig
from actors.kernel.ctx import Ctx
from actors.node.system import spawn_node
from actors.protocol.peer_codec import encode_hello, encode_peer
from runtime.event_loop import run_on
from runtime.framing import use_json_codec
from runtime.gc_pacer import tune_collector
from runtime.loop_scheduler import LoopScheduler
from runtime.peer_trust import PeerTrust
from runtime.peers import PeerLinks
from runtime.server import CacheServer

from bench.inproc_json import _Transport


class _Clock:
    """The nodes' ``now``: one second per ``rate`` sets done (see the module docstring)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.sets = 0
        #: None while the cluster forms (real time: warming, gossip), then where the load began.
        self.base: float | None = None

    def now(self) -> float:
        base = self.base
        return time.monotonic() if base is None else base + self.sets / self.rate


async def _start(node_id: str, scheduler: LoopScheduler, clock: _Clock, contacts: tuple[str, ...]) -> Any:
    loop = asyncio.get_running_loop()
    server = CacheServer(trust=PeerTrust(node_id=node_id))
    _, port = await server.start("127.0.0.1", 0, start_serving=False)
    address = f"127.0.0.1:{port}"
    server.trust = PeerTrust(node_id=node_id, addresses=frozenset({address}))
    # Generous timeouts and clock bound: under callgrind everything is ~50x slower, and a
    # write that timed out, a peer suspected or a clock judged off (by gossip round trips)
    # would measure another path.
    config = NodeConfig(
        address=address, contacts=contacts, replicas=3, write_consistency="quorum",
        request_timeout_s=60.0, down_after_s=600.0, suspect_phi=1e9, max_clock_skew_s=60.0,
    )
    links = PeerLinks(encode_hello(node_id, address, config.partitions), encode_peer, loop=loop)
    ctx = Ctx(node_id, scheduler, now=clock.now, wall=time.time, rng=random.Random(node_id), send=links.send)
    refs = spawn_node(ctx, config)
    server.attach(refs.node)
    await server.start_serving()
    return server, links, refs, address


def _formed(nodes: list[Any]) -> bool:
    """Every node ready and seeing all of them alive."""
    for _, _, refs, _ in nodes:
        node = refs.node._actor_weakref()  # noqa: SLF001 - a benchmark looking in, never a node's logic
        if node is None or not node.life.ready or node.life.clock_off is not None:
            return False
        view = node.life.view
        if len(view.members) != len(nodes) or any(s not in ("alive", "self") for s in view.states.values()):
            return False
    return True


async def _run(args: argparse.Namespace) -> list[float]:
    scheduler = LoopScheduler(asyncio.get_running_loop())
    scheduler.bind_thread()
    clock = _Clock(args.rate)
    nodes: list[Any] = []
    deadline = time.monotonic() + args.form_timeout
    for name in ("node1", "node2", "node3"):  # one at a time, as a real cluster is started
        nodes.append(await _start(name, scheduler, clock, tuple(n[3] for n in nodes[:1])))
        while not _formed(nodes):
            if time.monotonic() > deadline:
                raise SystemExit("the three nodes did not form a ready cluster in time")
            await asyncio.sleep(0.05)
    conns = []
    for c in range(args.conns):
        server = nodes[c % 3][0]
        conn = server._new_connection()  # noqa: SLF001 - the server's own factory, without a listener
        transport = _Transport()
        conn.connection_made(transport)  # type: ignore[arg-type]
        conns.append(conn)
    value = "v" * args.value_size
    payloads = [
        [
            b"".join(
                b'{"type":"set","key":"key:%d","value":"%s"}\n'
                % ((r * 7919 + c * 131 + i * 17) % args.keys, value.encode())
                for i in range(args.pipeline)
            )
            for c in range(args.conns)
        ]
        for r in range(16)
    ]
    per_set = args.conns * args.pipeline
    clock.base = time.monotonic()
    tune_collector()

    async def rounds(n: int) -> None:
        expected = _Transport.written
        for r in range(n):
            for conn, data in zip(conns, payloads[r % 16]):
                conn.data_received(data)
            expected += per_set
            while _Transport.written < expected:
                await asyncio.sleep(0)
            clock.sets += per_set
            gc.collect(0)

    await rounds(args.warm)
    results: list[float] = []
    for _ in range(args.repeats):
        if args.dump:
            _dump("formed")
        start = time.process_time()
        await rounds(args.rounds)
        results.append((time.process_time() - start) / (args.rounds * per_set) * 1e6)
        if args.dump:
            _dump("measured")
    for server, links, refs, _ in nodes:
        refs.stop()
        links.close()
        server.close_listener()
    await asyncio.sleep(0.05)
    return results


def _dump(label: str) -> None:
    """Ask the callgrind this process runs under to dump (and reset) its counts now."""
    subprocess.run(["callgrind_control", "-d", label, str(os.getpid())], check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conns", type=int, default=48, help="client connections, spread over the three nodes")
    parser.add_argument("--pipeline", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--value-size", type=int, default=32)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=20_000.0, help="acknowledged sets per second of the nodes' clock")
    parser.add_argument("--form-timeout", type=float, default=60.0)
    parser.add_argument("--warm", type=int, default=4, help="rounds before the measured ones")
    parser.add_argument("--dump", action="store_true", help="under callgrind: dump counts before and after each repeat")
    parser.add_argument("--event-loop", default="auto")
    args = parser.parse_args()
    use_json_codec("auto")
    results = run_on(args.event_loop, _run(args))
    print(
        f"set P{args.pipeline}, {args.conns} connections over 3 nodes: "
        f"{statistics.median(results):.2f} us per set, all nodes (median of {len(results)}; "
        f"min {min(results):.2f}, max {max(results):.2f})"
    )


if __name__ == "__main__":
    main()
