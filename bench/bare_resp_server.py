"""A bare dict server speaking RESP (GET, SET, PING): for comparison only.

No actors, no expiry, no ACL: what it costs to parse RESP, look up and answer, on the
node's own parsers (:mod:`runtime.resp`: ``--parser python`` is :class:`RespParser`, the
node's pure one, ``--parser hiredis`` its :class:`HiredisRespParser`), so the node's
throughput over this one's is the cost of what the node adds on the same stack.
``python -m bench.bare_resp_server NAME PORT [--loop asyncio|uvloop] [--parser python|hiredis]``
prints ``actorcache node NAME listening on 127.0.0.1:PORT`` (the port it speaks RESP on),
so :class:`runtime.local_cluster.NodeProcess` starts it as it starts a node.
Any other command gets ``-ERR unknown command`` (redis-benchmark's start-up ``CONFIG
GET`` included, which it tolerates); a protocol error is answered and the connection closed.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable

from runtime.event_loop import run_on
from runtime.resp import HiredisRespParser, RespParser

_OK = b"+OK\r\n"
_PONG = b"+PONG\r\n"
_NIL = b"$-1\r\n"


class BareResp(asyncio.Protocol):
    def __init__(self, data: dict[bytes, bytes], parser: Callable[[], RespParser | HiredisRespParser]) -> None:
        self.data = data
        self.parser = parser()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, chunk: bytes) -> None:
        data = self.data
        out = []
        for cmd in self.parser.feed(chunk):
            name = cmd[0].upper()
            if name == b"GET" and len(cmd) == 2:
                value = data.get(cmd[1])
                out.append(_NIL if value is None else b"$%d\r\n%s\r\n" % (len(value), value))
            elif name == b"SET" and len(cmd) == 3:
                data[cmd[1]] = cmd[2]
                out.append(_OK)
            elif name == b"PING":
                out.append(_PONG)
            else:
                out.append(b"-ERR unknown command '%s'\r\n" % name[:64])
        if self.parser.error is not None:
            out.append(b"-ERR %s\r\n" % self.parser.error.encode())
            self.transport.write(b"".join(out))  # type: ignore[attr-defined]
            self.transport.close()
        elif out:
            self.transport.write(b"".join(out))  # type: ignore[attr-defined]


async def serve(name: str, port: int, parser: Callable[[], RespParser | HiredisRespParser]) -> None:
    loop = asyncio.get_running_loop()
    data: dict[bytes, bytes] = {}
    server = await loop.create_server(lambda: BareResp(data, parser), "127.0.0.1", port, backlog=1024)
    print(f"actorcache node {name} listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.bare_resp_server")
    p.add_argument("name", nargs="?", default="bare-resp")
    p.add_argument("port", nargs="?", type=int, default=0)
    p.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    p.add_argument("--parser", choices=["python", "hiredis"], default="python")
    args = p.parse_args(argv)
    try:
        run_on(args.loop, serve(args.name, args.port, HiredisRespParser if args.parser == "hiredis" else RespParser))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
