"""The clients of ``python -m sim.run SCENARIO --real``: the scenario's workload sent over
real TCP to real nodes, recorded into the simulator's :class:`~sim.history.History`.

The clients run on one asyncio loop in a thread of their own that has entered the run's
bridge namespace (``setns``: a thread's network namespace is its own), so they reach
every node at its namespace address while this process's other threads, and the machine,
stay where they were. Requests are the very messages the simulated clients send
(:meth:`sim.workload.Workload.next_request`: the same seed gives the same choices of
operation, key, value and TTL in the same order), encoded as JSON lines by
:func:`actors.protocol.codec.encode_request`; replies are decoded by
:func:`~actors.protocol.codec.decode_reply` and recorded by
:func:`sim.workload.record_reply`, as in the simulator. Like a simulated client, each
batch (``pipeline`` requests) goes over a fresh connection, and a client gives up on it
after ``client_timeout`` (its operations are then indefinite). A connection refused
before anything was sent fails its operations definitely (nothing was applied).

Times in the history are the run's (:class:`sim.real_host.RealEnv`: seconds on the
monotonic clock since the run began), the time base of the nodes' traces too.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import random
import threading
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

from actors.protocol.codec import decode_reply, encode_request
from actors.protocol.messages import Inspect, Locate, Reply, Request
from actors.protocol.record import Record
from sim.history import FAIL, INFO, History
from sim.real_host import RealEnv
from sim.workload import Workload, WorkloadSpec, record_reply

__all__ = ["ClientThread", "RealWorkload", "SnapshotError", "exchange", "snapshot"]

T = TypeVar("T")
_CLONE_NEWNET = 0x40000000


def _enter_netns(name: str) -> None:
    """Move the calling thread into network namespace ``name`` (``ip netns`` names it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"setns into {name}: {os.strerror(errno)}")
    finally:
        os.close(fd)


class ClientThread:
    """An asyncio loop in a thread inside network namespace ``netns``."""

    def __init__(self, netns: str) -> None:
        self.loop = asyncio.new_event_loop()
        ready: Future[None] = Future()

        def run() -> None:
            try:
                _enter_netns(netns)
            except OSError as exc:
                ready.set_exception(exc)
                return
            asyncio.set_event_loop(self.loop)
            self.loop.call_soon(ready.set_result, None)
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, name=f"clients-{netns}", daemon=True)
        self.thread.start()
        ready.result(timeout=10)

    def submit(self, coro: Coroutine[Any, Any, T]) -> Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return self.submit(coro).result(timeout)

    def close(self) -> None:
        """Cancel what still runs (an interrupted workload), then stop the loop."""
        if self.loop.is_running():
            try:
                self.submit(_cancel_others()).result(timeout=5)
            except Exception:  # noqa: BLE001 (stopping regardless)
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        if not self.loop.is_running():
            self.loop.close()


async def _cancel_others() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def exchange(
    address: str, requests: Sequence[Request], timeout: float, on_reply: Callable[[int, Reply], None] | None = None
) -> list[Reply | None]:
    """Send ``requests`` over a new connection to ``address`` and read their replies (in
    order); ``None`` for each reply that did not come within ``timeout``. Raises
    ``ConnectionRefusedError`` (or another ``OSError``) when nothing could be sent."""
    host, port = address.rsplit(":", 1)
    replies: list[Reply | None] = [None] * len(requests)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port), limit=1 << 22), timeout)
    try:
        writer.write(b"".join(json.dumps(encode_request(r)).encode() + b"\n" for r in requests))
        async with asyncio.timeout_at(deadline):
            for i, request in enumerate(requests):
                line = await reader.readline()
                if not line:
                    break  # closed: the rest stay unanswered
                reply = decode_reply(json.loads(line), request)
                replies[i] = reply
                if on_reply is not None:
                    on_reply(i, reply)
    except (TimeoutError, OSError, ValueError):
        pass  # unanswered replies stay None: indefinite
    finally:
        writer.close()
    return replies


class SnapshotError(RuntimeError):
    """A snapshot could not be taken (its locating node did not answer)."""


class _Host:
    """What :class:`sim.workload.Workload` reads of a host: ``env`` (for ``now``)."""

    def __init__(self, env: RealEnv) -> None:
        self.env = env


class RealWorkload:
    """The scenario's clients against real nodes (see the module docstring)."""

    def __init__(
        self,
        clients: ClientThread,
        env: RealEnv,
        spec: WorkloadSpec,
        rng: random.Random,
        history: History,
        addresses: Callable[[], dict[str, str]],
    ) -> None:
        self.clients = clients
        self.env = env
        self.spec = spec
        self.rng = rng
        self.history = history
        #: The running nodes now: id -> address (read on the clients' thread).
        self.addresses = addresses
        self.requests = Workload(_Host(env), spec, rng, history)
        self._tasks: Future[Any] | None = None

    def start(self) -> None:
        async def all_clients() -> None:
            await asyncio.gather(*(self._client(c) for c in range(self.spec.clients)))

        self._tasks = self.clients.submit(all_clients())

    def stop(self) -> None:
        self.requests.stop()

    def wait(self, timeout: float) -> None:
        """Until every client has finished its last batch (answered or given up)."""
        if self._tasks is not None:
            self._tasks.result(timeout)

    async def _client(self, client: int) -> None:
        spec, rng, w = self.spec, self.rng, self.requests
        per_client_rate = spec.rate / spec.clients
        while not w.stopped and w.issued < spec.ops:
            await asyncio.sleep(rng.expovariate(per_client_rate / spec.pipeline))
            running = self.addresses()
            if w.stopped or w.issued >= spec.ops or not running:
                continue
            node = rng.choice(sorted(running))
            requests, ops = [], []
            for _ in range(min(spec.pipeline, spec.ops - w.issued)):
                w.issued += 1
                request, op = w.next_request(client, node)
                requests.append(request)
                ops.append(op)
            try:
                replies = await exchange(
                    running[node], requests, spec.client_timeout,
                    lambda i, reply: record_reply(ops[i], reply, self.env.now),
                )
            except (OSError, TimeoutError) as exc:
                # Not connected: nothing was sent (refused: definite) or it may be (timeout).
                outcome = FAIL if isinstance(exc, ConnectionRefusedError) else INFO
                for op in ops:
                    History.complete(op, outcome, self.env.now, error=f"connect: {type(exc).__name__}")
                continue
            for op, reply in zip(ops, replies):
                if reply is None:
                    History.complete(op, INFO, self.env.now, error="client timeout")


async def snapshot(
    addresses: dict[str, str], keys: Sequence[str], timeout: float = 10.0
) -> dict[str, dict[str, Record | None]]:
    """Every owner's own record of every key (``Locate`` at the first running node, then
    ``Inspect`` at each owner, no coordination), as :meth:`sim.runner.Runner.snapshot`.
    An owner that is not running, or does not answer, holds None; raises
    :class:`SnapshotError` (or ``OSError``) when the locating node does not answer."""
    live = sorted(addresses)
    if not keys or not live:
        return {}
    located = await exchange(addresses[live[0]], [Locate(k) for k in keys], timeout)
    if any(reply is None or not hasattr(reply, "owners") for reply in located):
        raise SnapshotError(f"{live[0]} did not say where every key lives")
    by_owner: dict[str, list[str]] = {}
    for key, reply in zip(keys, located):
        for owner in getattr(reply, "owners", ()):
            by_owner.setdefault(owner, []).append(key)
    final: dict[str, dict[str, Record | None]] = {key: {} for key in keys}

    async def inspect(owner: str, owner_keys: list[str]) -> None:
        replies: list[Any] = [None] * len(owner_keys)
        if owner in addresses:
            try:
                replies = await exchange(addresses[owner], [Inspect(k) for k in owner_keys], timeout)
            except OSError:
                pass
        for key, reply in zip(owner_keys, replies):
            final[key][owner] = getattr(reply, "record", None)

    await asyncio.gather(*(inspect(o, ks) for o, ks in sorted(by_owner.items())))
    return final
