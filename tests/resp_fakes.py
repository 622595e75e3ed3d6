"""In-process fakes for a RESP connection's tests: a node that records what it is told,
a transport that records what is written, and a connection made with them."""

from __future__ import annotations

import asyncio
from typing import Any

from actors.protocol.edge import ClientConnected
from runtime.resp_connection import RespConnection
from runtime.resp_session import RespServerInfo

__all__ = ["FakeNode", "FakeTransport", "connection"]


class FakeNode:
    def __init__(self) -> None:
        self.told: list[Any] = []

    def tell(self, message: Any) -> None:
        self.told.append(message)

    def is_alive(self) -> bool:
        return True


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closed = False
        self.reading = True

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def get_write_buffer_size(self) -> int:
        return 0  # everything written went out at once

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 5555)


def connection(info: RespServerInfo | None = None) -> tuple[RespConnection, FakeNode, FakeTransport]:
    node, transport = FakeNode(), FakeTransport()
    closed: list[RespConnection] = []
    conn = RespConnection(3, node, 1 << 20, closed.append, info)  # type: ignore[arg-type]
    conn.connection_made(transport)
    assert isinstance(node.told.pop(0), ClientConnected)
    return conn, node, transport
