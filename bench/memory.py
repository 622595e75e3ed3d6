"""Bytes per key at a million keys of 32 B values: our node vs ``redis-server``, same run.

``python -m bench.memory [--keys 1000000] [--record]`` loads the same keys (``key:N``,
32-byte values) into our node and into a throwaway ``redis-server`` (free loopback port,
persistence off) through pipelined RESP ``SET``s in batches, then reports bytes per key
by each measure:

- ours: the node's own accounting (``stats.memory_bytes``, what ``--max-memory`` bounds)
  and the growth of the process's RSS (``VmRSS`` in /proc/PID/status) over the empty
  node's;
- redis: ``INFO memory`` ``used_memory`` growth and RSS growth;
- for reference, a plain Python ``dict`` of ``str`` keys to ``bytes`` values built in a
  fresh interpreter (RSS growth): the floor for a Python store.

The ratio ours/redis by RSS is the target's figure; ``memory_bytes`` / RSS growth says
how honest our accounting is (1.0: exact; below 1: we under-count).
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from pathlib import Path

from bench.results import RESULTS, machine, record
from bench.servers import RedisServer, conditions, need_redis_tools, node_server, resp_command, rss_bytes
from runtime.client import Client

HEADING = "Memory: bytes per key, ours vs redis-server (`bench/memory.py`)"

_DICT_SCRIPT = """
import sys
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) * 1024
n, size = int(sys.argv[1]), int(sys.argv[2])
before = rss()
d = {}
for i in range(n):
    d['key:%d' % i] = b'%0*d' % (size, i)
print(rss() - before)
"""


class Resp:
    """A bare pipelining RESP connection (replies to SET/INFO/DBSIZE only)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exactly(self, n: int) -> bytes:
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2 :]
        return data

    def reply(self) -> bytes | int | None:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exactly(n)
        raise RuntimeError(f"unexpected reply {line[:200]!r}")

    def pipeline(self, commands: list[bytes]) -> list[bytes | int | None]:
        self.sock.sendall(b"".join(commands))
        return [self.reply() for _ in commands]

    def call(self, *args: str) -> bytes | int | None:
        return self.pipeline([resp_command(*args)])[0]

    def close(self) -> None:
        self.sock.close()


def load(port: int, keys: int, value_size: int, batch: int) -> float:
    """SET key:0..key:N-1 to 32 B values (distinct per key), ``batch`` per write; seconds taken."""
    conn = Resp(port)
    t0 = time.perf_counter()
    for start in range(0, keys, batch):
        commands = [resp_command("SET", f"key:{i}", b"%0*d" % (value_size, i)) for i in range(start, min(keys, start + batch))]
        replies = conn.pipeline(commands)
        if any(r != b"OK" for r in replies):
            raise RuntimeError(f"SET failed: {next(r for r in replies if r != b'OK')!r}")
    seconds = time.perf_counter() - t0
    conn.close()
    return seconds


def settle(pid: int, seconds: float = 1.0) -> int:
    """RSS once it stops moving (or after ``seconds``)."""
    last = rss_bytes(pid)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = rss_bytes(pid)
        if now == last:
            break
        last = now
    return last


def redis_used_memory(conn: Resp) -> int:
    info = conn.call("INFO", "memory")
    assert isinstance(info, bytes)
    for line in info.decode().splitlines():
        if line.startswith("used_memory:"):
            return int(line.split(":", 1)[1])
    raise RuntimeError("no used_memory in INFO memory")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.memory")
    p.add_argument("--keys", type=int, default=1_000_000)
    p.add_argument("--value-size", type=int, default=32)
    p.add_argument("--batch", type=int, default=1000, help="SETs per pipelined write")
    p.add_argument("--record", action="store_true", help="append the figures to bench/RESULTS.md")
    p.add_argument("--results", type=Path, default=RESULTS, help=argparse.SUPPRESS)  # tests record elsewhere
    args = p.parse_args(argv)
    load_note = conditions()  # before we load the machine ourselves
    tools = need_redis_tools("redis-server")

    # Ours.
    with node_server("memory") as node:
        assert node.resp_port is not None
        client = Client(f"127.0.0.1:{node.port}", timeout=60)
        client.ping()
        ours_rss0 = settle(node.pid)
        ours_acct0 = int(client.stats()["memory_bytes"])
        ours_load_s = load(node.resp_port, args.keys, args.value_size, args.batch)
        ours_rss1 = settle(node.pid)
        stats = client.stats()
        ours_acct1 = int(stats["memory_bytes"])
        ours_keys = int(stats["keys"])
        client.close()
    # Redis.
    with RedisServer(tools["redis-server"]) as redis:
        conn = Resp(redis.port)
        conn.call("PING")
        redis_rss0 = settle(redis.pid)
        redis_used0 = redis_used_memory(conn)
        redis_load_s = load(redis.port, args.keys, args.value_size, args.batch)
        redis_rss1 = settle(redis.pid)
        redis_used1 = redis_used_memory(conn)
        redis_keys = conn.call("DBSIZE")
        conn.close()
    # A plain dict in a fresh interpreter.
    out = subprocess.run(
        [sys.executable, "-c", _DICT_SCRIPT, str(args.keys), str(args.value_size)],
        capture_output=True, text=True, check=True, timeout=600,
    )
    dict_rss = int(out.stdout.strip())

    if ours_keys != args.keys or redis_keys != args.keys:
        raise RuntimeError(f"keys stored: ours {ours_keys}, redis {redis_keys}, expected {args.keys}")
    n = args.keys
    ours_acct = (ours_acct1 - ours_acct0) / n
    ours_rss = (ours_rss1 - ours_rss0) / n
    redis_info = (redis_used1 - redis_used0) / n
    redis_rss = (redis_rss1 - redis_rss0) / n
    dict_per_key = dict_rss / n
    honesty = (ours_acct1 - ours_acct0) / (ours_rss1 - ours_rss0)
    table = "\n".join(
        [
            "| store | bytes/key, own accounting | bytes/key, RSS growth | RSS empty -> loaded | load time |",
            "|---|---|---|---|---|",
            f"| ours (`stats.memory_bytes`) | {ours_acct:.1f} | {ours_rss:.1f} | {ours_rss0 / 2**20:.1f} -> {ours_rss1 / 2**20:.1f} MiB | {ours_load_s:.1f} s |",
            f"| redis-server (`INFO memory` used_memory) | {redis_info:.1f} | {redis_rss:.1f} | {redis_rss0 / 2**20:.1f} -> {redis_rss1 / 2**20:.1f} MiB | {redis_load_s:.1f} s |",
            f"| Python dict of str -> bytes (reference) | | {dict_per_key:.1f} | | |",
        ]
    )
    ratios = (
        f"ours / redis by RSS: {ours_rss / redis_rss:.2f}; by each one's own accounting: {ours_acct / redis_info:.2f}; "
        f"ours / plain dict by RSS: {ours_rss / dict_per_key:.2f}. "
        f"Accounting honesty, ours `memory_bytes` / RSS growth: {honesty:.2f}"
        + (" (under-counts)" if honesty < 0.95 else " (over-counts)" if honesty > 1.05 else "")
        + "."
    )
    print(table)
    print(ratios)
    if args.record:
        record(
            HEADING,
            "python -m bench.memory " + " ".join(argv if argv is not None else sys.argv[1:]),
            f"{machine()}; {load_note}; {n:,} keys (`key:N`), {args.value_size} B values distinct per key, loaded through "
            f"pipelined RESP `SET`s, {args.batch} per write, one connection; our node with default options; "
            f"redis-server with `--save '' --appendonly no`. Growth over each empty process, measured after the "
            f"load (RSS from /proc/PID/status VmRSS).\n\n" + table + "\n\n" + ratios,
            path=args.results,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
