"""``python -m runtime.cli top --node HOST:PORT [--interval 1] [--count N]``: the cluster, live.

Like ``redis-cli --stat``, but one row per member of the cluster. Every ``--interval``
seconds it asks ``--node`` for its ``stats`` (the member list: its view of ids, addresses,
status and liveness), then asks each member for its own ``stats`` and shows: status
(warming/ready/leaving/left), liveness (as the asked node sees it; ``down`` as well when
top itself cannot reach the member), keys, memory (of ``--max-memory`` when set), ops/s
(client requests the member coordinated, from two samples), p99 (of the requests between
two samples: the upper bound of the latency bucket holding it, from the ``request_latency``
histograms in its stats, all commands and levels together), hints pending and warming or
hand-off progress (the share of its partitions pulled, or the partitions left to hand
off).

A member that cannot be reached shows as ``down`` and the view goes on; when ``--node``
itself is gone, the members it listed are asked instead, so the view survives the loss of
the node it started from.

Output: on a terminal the table is redrawn in place (ANSI: cursor home, clear to the end
of each line and below it; no curses needed for a table this simple); otherwise each
refresh is printed as plain lines (a time header, then the table), for logs and pipes.

Sans-IO core: :func:`member_rows` (stats in, rows out; rates from the previous sample) and
:func:`render` (rows in, lines out). :class:`Top` does the asking.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from actors.kernel.latency import quantile
from runtime.client_errors import ClientTimeoutError, ConnectionLostError, ProtocolError

__all__ = ["Row", "Sample", "Top", "member_rows", "render"]

#: ANSI: hide / show the cursor, cursor home, clear to end of line, clear below.
HIDE, SHOW, HOME, EOL, BELOW = "\x1b[?25l", "\x1b[?25h", "\x1b[H", "\x1b[K", "\x1b[J"

COLUMNS = ("NODE", "ADDRESS", "STATUS", "LIVENESS", "KEYS", "MEMORY", "OPS/S", "P99", "HINTS", "WARMING")


class StatsSource(Protocol):
    def stats(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Sample:
    """One member's counters at one time (for the next refresh's rates)."""

    t: float
    requests: int
    uptime_s: float
    #: Per-bucket request latency counts, every command and level summed (None: not kept).
    latency: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Row:
    node: str
    addr: str
    status: str
    liveness: str
    keys: str = "-"
    memory: str = "-"
    ops: str = "-"
    p99: str = "-"
    hints: str = "-"
    warming: str = "-"

    def cells(self) -> tuple[str, ...]:
        return (self.node, self.addr, self.status, self.liveness, self.keys, self.memory, self.ops, self.p99,
                self.hints, self.warming)


def _size(n: Any) -> str:
    if type(n) is not int:
        return "-"
    for unit, shift in (("G", 30), ("M", 20), ("K", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f}{unit}"
    return f"{n}B"


def _progress(own: dict[str, Any]) -> str:
    cluster = own.get("cluster") if isinstance(own.get("cluster"), dict) else {}
    status = (cluster.get("members", {}).get(own.get("node_id"), {}) or {}).get("status")
    handing = cluster.get("partitions_handing_off")
    if status == "leaving" and type(handing) is int:
        return f"handoff {handing} left"
    pulling, owned = cluster.get("partitions_pulling"), cluster.get("partitions_owned")
    if status == "warming" and type(pulling) is int and type(owned) is int and owned:
        return f"{100 * max(0, owned - pulling) // owned}%"
    return "-"


def _latency_counts(stats: dict[str, Any]) -> tuple[int, ...] | None:
    """``stats``' ``request_latency`` histograms ({command: {level: {counts}}}) summed."""
    total: list[int] | None = None
    by_command = stats.get("request_latency")
    for levels in by_command.values() if isinstance(by_command, dict) else ():
        for histogram in levels.values() if isinstance(levels, dict) else ():
            counts = histogram.get("counts") if isinstance(histogram, dict) else None
            if not isinstance(counts, list) or not all(type(c) is int for c in counts):
                continue
            if total is None:
                total = list(counts)
            elif len(counts) == len(total):
                total = [a + b for a, b in zip(total, counts)]
    return tuple(total) if total is not None else None


def _p99(before: tuple[int, ...] | None, now: tuple[int, ...] | None, own_requests: int) -> str:
    """The p99 of the requests between two samples (``-``: no histogram, or no request but
    top's own ``own_requests``, whose latencies are in it too)."""
    if before is None or now is None or len(before) != len(now):
        return "-"
    delta = [b - a for a, b in zip(before, now)]
    if min(delta) < 0 or sum(delta) <= own_requests:
        return "-"
    bound = quantile(delta, 0.99)
    if bound is None:
        return "-"
    return f"{bound * 1000:g}ms" if bound != float("inf") else ">5s"


def member_rows(
    members: dict[str, dict[str, Any]],
    own_stats: dict[str, dict[str, Any] | None],
    previous: dict[str, Sample],
    now: float,
    own_requests: int = 1,
) -> tuple[list[Row], dict[str, Sample]]:
    """The table's rows (sorted by id) for ``members`` (the asked node's view) and each
    member's own stats (None: not reached), and the samples for the next refresh.
    ``own_requests``: the requests top itself sent each member since the last sample
    (its stats ask), left out of ops/s."""
    rows, samples = [], {}
    for node in sorted(members):
        view = members[node] if isinstance(members[node], dict) else {}
        liveness = str(view.get("state", "-")).replace("self", "alive")
        own = own_stats.get(node)
        if own is None:
            rows.append(Row(node, str(view.get("addr", "-")), str(view.get("status", "-")), "down"))
            continue
        cluster = own.get("cluster") if isinstance(own.get("cluster"), dict) else {}
        status = (cluster.get("members", {}).get(node, {}) or {}).get("status", view.get("status", "-"))
        requests, uptime = own.get("requests"), own.get("uptime_s")
        ops = p99 = "-"
        if type(requests) is int and isinstance(uptime, (int, float)):
            latency = _latency_counts(own)
            samples[node] = Sample(now, requests, float(uptime), latency)
            before = previous.get(node)
            # A restarted member (uptime went back) starts its rate afresh.
            if before is not None and now > before.t and uptime >= before.uptime_s and requests >= before.requests:
                ops = f"{max(0, requests - before.requests - own_requests) / (now - before.t):.0f}"
                p99 = _p99(before.latency, latency, own_requests)
        limit = own.get("max_memory")
        memory = _size(own.get("memory_bytes")) + (f"/{_size(limit)}" if type(limit) is int and limit else "")
        rows.append(Row(
            node,
            str(view.get("addr", "-")),
            str(status),
            liveness,
            keys=str(own.get("keys", "-")),
            memory=memory,
            ops=ops,
            p99=p99,
            hints=str(cluster.get("hints_pending", "-")),
            warming=_progress(own),
        ))
    return rows, samples


def render(rows: Sequence[Row], header: str) -> list[str]:
    """The header, the column titles and one aligned line per row."""
    table = [COLUMNS, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    lines = [header, ""]
    for line in table:
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
    return lines


class Top:
    """Asks the cluster through ``seed``; ``connect(addr)`` opens a stats source (a
    :class:`~runtime.client.Client` with the command line's options)."""

    def __init__(self, seed: str, connect: Callable[[str], StatsSource]) -> None:
        self.seed = seed
        self.connect = connect
        self.sources: dict[str, StatsSource] = {}
        self.members: dict[str, dict[str, Any]] = {}
        self.samples: dict[str, Sample] = {}
        self.asked_via = seed

    def _stats(self, addr: str) -> dict[str, Any] | None:
        source = self.sources.get(addr)
        if source is None:
            source = self.sources[addr] = self.connect(addr)
        try:
            return source.stats()
        except (ConnectionLostError, ClientTimeoutError, ProtocolError, OSError):
            source.close()
            del self.sources[addr]
            return None

    def refresh(self) -> list[Row]:
        """Ask the cluster once; the rows to show."""
        known = [m.get("addr") for _, m in sorted(self.members.items()) if isinstance(m, dict)]
        candidates = list(dict.fromkeys([self.seed, *(a for a in known if isinstance(a, str))]))
        seed_stats, own = None, {}
        failed = set()  # asked once this refresh and not reached: not asked again
        for addr in candidates:  # the first member that answers gives the member list
            seed_stats = self._stats(addr)
            if seed_stats is not None:
                self.asked_via = addr
                break
            failed.add(addr)
        if seed_stats is not None:
            members = (seed_stats.get("cluster") or {}).get("members")
            if isinstance(members, dict):
                self.members = members
            own[str(seed_stats.get("node_id"))] = seed_stats
        for node, member in sorted(self.members.items()):
            addr = member.get("addr") if isinstance(member, dict) else None
            if node not in own and isinstance(addr, str):
                own[node] = None if addr in failed else self._stats(addr)
        if seed_stats is None:  # nobody answered: every member is unreachable
            self.asked_via = "-"
        rows, self.samples = member_rows(self.members, own, self.samples, time.monotonic())
        return rows

    def close(self) -> None:
        for source in self.sources.values():
            source.close()
        self.sources.clear()

    def run(self, out: TextIO, interval: float, count: int | None = None, tty: bool = False) -> None:
        """Refresh every ``interval`` seconds, ``count`` times (None: until interrupted)."""
        shown = 0
        if tty:
            out.write(HIDE)
        try:
            while count is None or shown < count:
                started = time.monotonic()
                rows = self.refresh()
                down = sum(row.liveness == "down" for row in rows)
                header = (
                    f"actorcache top  {time.strftime('%H:%M:%S')}  via {self.asked_via}  "
                    f"{len(rows)} members, {len(rows) - down} up, {down} down  (every {interval:g}s)"
                )
                lines = render(rows, header)
                if tty:
                    out.write(HOME + "".join(line + EOL + "\n" for line in lines) + BELOW)
                else:
                    out.write("\n".join(lines) + "\n\n")
                out.flush()
                shown += 1
                if count is None or shown < count:
                    time.sleep(max(0.0, interval - (time.monotonic() - started)))
        finally:
            if tty:
                out.write(SHOW)
                out.flush()
            self.close()
