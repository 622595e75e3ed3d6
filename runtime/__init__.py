"""The real world: asyncio TCP server, framing, wall clock, entry point, client and CLI."""
