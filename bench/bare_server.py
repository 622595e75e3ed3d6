"""A bare asyncio dict server speaking the same JSON-lines protocol: for comparison only.

No actors, no TTL index, no stats, no error taxonomy beyond the minimum: what it costs to
parse, look up and answer. The ratio of our node's throughput to this one's is the cost
of the actors and features. ``python -m bench.bare_server NAME PORT`` (PORT 0: any free
port), as a node is started: it prints the node's start-up line, so the one launcher
(:class:`runtime.local_cluster.NodeProcess`) starts it as it starts a node.
"""

from __future__ import annotations

import asyncio
import json
import sys

_ACK = b'{"type":"ack","success":true}\n'
_MISS = b'{"type":"response","value":null,"success":false}\n'
_dumps = json.JSONEncoder(separators=(",", ":")).encode


class BareProtocol(asyncio.Protocol):
    def __init__(self, data: dict[str, object]) -> None:
        self.data = data
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, chunk: bytes) -> None:
        lines = (self.buf + chunk).split(b"\n")
        self.buf = lines.pop()
        out = []
        data = self.data
        for line in lines:
            if not line.strip():
                continue
            try:
                req = json.loads(line)
                kind = req["type"]
                if kind == "get":
                    key = req["key"]
                    if key in data:
                        out.append(_dumps({"type": "response", "value": data[key], "success": True}).encode() + b"\n")
                    else:
                        out.append(_MISS)
                elif kind == "set":
                    data[req["key"]] = req["value"]
                    out.append(_ACK)
                else:
                    out.append(b'{"type":"error","success":false,"error":"unknown_type","message":""}\n')
            except Exception:  # noqa: BLE001 - comparison server: any failure is a bad request
                out.append(b'{"type":"error","success":false,"error":"bad_request","message":""}\n')
        if out:
            self.transport.write(b"".join(out))  # type: ignore[attr-defined]


async def main(name: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    data: dict[str, object] = {}
    server = await loop.create_server(lambda: BareProtocol(data), "127.0.0.1", port, backlog=1024)
    print(f"actorcache node {name} listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "bare", int(sys.argv[2]) if len(sys.argv) > 2 else 0))
    except KeyboardInterrupt:
        pass
