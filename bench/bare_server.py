"""A bare dict server speaking the same JSON-lines protocol: for comparison only.

No actors, no TTL index, no stats, no error taxonomy beyond the minimum: what it costs to
parse, look up and answer. The ratio of our node's throughput to this one's is the cost
of the actors and features. ``python -m bench.bare_server NAME PORT [--loop asyncio|uvloop]
[--json stdlib|orjson]`` (PORT 0: any free port; defaults asyncio and stdlib), as a node is
started: it prints the node's start-up line, so the one launcher
(:class:`runtime.local_cluster.NodeProcess`) starts it as it starts a node. The loop and
codec are choices so that the node can be compared with a bare server on the same stack
(``bench/stack.py``); the replies are the same bytes with either codec for the string
values the benchmarks store.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any

from runtime.event_loop import run_on

_ACK = b'{"type":"ack","success":true}\n'
_MISS = b'{"type":"response","value":null,"success":false}\n'
_UNKNOWN = b'{"type":"error","success":false,"error":"unknown_type","message":""}\n'
_BAD = b'{"type":"error","success":false,"error":"bad_request","message":""}\n'


def codec(name: str) -> tuple[Callable[[bytes], Any], Callable[[Any], bytes]]:
    """(loads, dumps) of the named JSON library; dumps returns compact UTF-8 bytes."""
    if name == "orjson":
        import orjson

        return orjson.loads, orjson.dumps
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    return json.loads, lambda obj: encode(obj).encode()


class BareProtocol(asyncio.Protocol):
    def __init__(self, data: dict[str, object], loads: Callable[[bytes], Any], dumps: Callable[[Any], bytes]) -> None:
        self.data = data
        self.loads = loads
        self.dumps = dumps
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, chunk: bytes) -> None:
        lines = (self.buf + chunk).split(b"\n")
        self.buf = lines.pop()
        out = []
        data = self.data
        loads, dumps = self.loads, self.dumps
        for line in lines:
            if not line.strip():
                continue
            try:
                req = loads(line)
                kind = req["type"]
                if kind == "get":
                    key = req["key"]
                    if key in data:
                        out.append(b'{"type":"response","value":' + dumps(data[key]) + b',"success":true}\n')
                    else:
                        out.append(_MISS)
                elif kind == "set":
                    data[req["key"]] = req["value"]
                    out.append(_ACK)
                else:
                    out.append(_UNKNOWN)
            except Exception:  # noqa: BLE001 - comparison server: any failure is a bad request
                out.append(_BAD)
        if out:
            self.transport.write(b"".join(out))  # type: ignore[attr-defined]


async def serve(name: str, port: int, json_name: str) -> None:
    loop = asyncio.get_running_loop()
    data: dict[str, object] = {}
    loads, dumps = codec(json_name)
    server = await loop.create_server(lambda: BareProtocol(data, loads, dumps), "127.0.0.1", port, backlog=1024)
    print(f"actorcache node {name} listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.bare_server")
    p.add_argument("name", nargs="?", default="bare")
    p.add_argument("port", nargs="?", type=int, default=0)
    p.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    p.add_argument("--json", choices=["stdlib", "orjson"], default="stdlib")
    args = p.parse_args(argv)
    try:
        run_on(args.loop, serve(args.name, args.port, args.json))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
