"""What TLS and client authentication cost: the same node plain, over TLS, and with a password, same run.

``python -m bench.tls [--rounds 3] [--duration 3] [-n 100000] [--record]`` starts three
nodes (each with ``--resp-port``), all pinned to CPU 0: ``plain``; ``tls``
(``--tls-cert-file``/``--tls-key-file``/``--tls-ca-cert-file``, ``--tls-auth-clients no``:
the cost of encryption, not of client certificates; throw-away certificates made with
trustme); ``auth`` (plaintext, ``--requirepass``: every request passes the permission
check after one ``auth``). The load runs on CPU 1, one node at a time, in alternating
order (plain, tls, auth, then auth, tls, plain, ...), so neighbouring runs see the same
machine:

- JSON lines: :mod:`bench.loadgen` (``--tls-cafile``, ``--password``), ``mix`` workload,
  pipeline 1 and 16, ``--duration`` seconds a run;
- RESP: ``redis-benchmark -c 50 -d 32 -n N -t set,get -P 1|16`` (``--tls --cacert``,
  ``-a``; Debian's redis-tools 7 speak TLS).

Each cell reports the median ops/s of each node and the median over rounds of the
per-round ratios tls/plain and auth/plain. The load generator is shown not to be the
bottleneck by the CPU it used: the node's CPU seconds (from /proc) and the load's (its
processes' rusage) divided by the run's wall time; a node near 100% of its core with the
load below 100% of its own is the node's limit, not the load's.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.loadgen import parser as load_parser, run_load
from bench.resp_redis import parse_csv
from bench.results import RESULTS, machine, record
from bench.servers import conditions, cpu_seconds, need_redis_tools, node_server, pin_prefix

HEADING = "TLS and client authentication: the same node plain, over TLS, with a password (`bench/tls.py`)"
MODES = ("plain", "tls", "auth")
PASSWORD = "bench-password-0123456789"


@dataclass
class Run:
    ops_per_s: float
    server_cpu: float  # the node's CPU seconds / wall seconds
    load_cpu: float  # the load generator's CPU seconds / wall seconds
    server_us: float  # the node's CPU microseconds per request
    load_us: float  # the load generator's CPU microseconds per request


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _measured(pid: int, work: object) -> tuple[object, float, float, float]:
    """Run ``work()``; its result, wall seconds, the node's and our children's CPU seconds."""
    cpu0, load0, t0 = cpu_seconds(pid), _children_cpu(), time.perf_counter()
    result = work()  # type: ignore[operator]
    wall = time.perf_counter() - t0
    return result, wall, cpu_seconds(pid) - cpu0, _children_cpu() - load0


def json_run(port: int, pid: int, mode: str, pipeline: int, args: argparse.Namespace, ca: str) -> Run:
    argv = [
        "--addr", f"127.0.0.1:{port}", "--conns", str(args.conns), "--pipeline", str(pipeline),
        "--workload", "mix", "--value-size", "32", "--duration", str(args.duration), "--procs", "1",
    ]
    if mode == "tls":
        argv += ["--tls-cafile", ca]
    if mode == "auth":
        argv += ["--password", PASSWORD]
    load_args = load_parser().parse_args(argv)
    result, wall, node_cpu, load_cpu = _measured(pid, lambda: run_load(load_args))
    if result.errors:  # type: ignore[attr-defined]
        raise RuntimeError(f"{mode}: {result.errors} error replies")  # type: ignore[attr-defined]
    ops = max(1, result.ops)  # type: ignore[attr-defined]
    rate = result.ops_per_s  # type: ignore[attr-defined]
    return Run(rate, node_cpu / wall, load_cpu / wall, node_cpu / ops * 1e6, load_cpu / ops * 1e6)


def resp_run(
    tool: str, port: int, pid: int, mode: str, test: str, pipeline: int,
    args: argparse.Namespace, ca: str, cpu: int | None,
) -> Run:
    argv = [
        *pin_prefix(cpu), tool, "-h", "127.0.0.1", "-p", str(port), "-c", "50", "-d", "32",
        "-n", str(args.requests), "-t", test, "-P", str(pipeline), "-q", "--csv",
    ]
    if mode == "tls":
        argv += ["--tls", "--cacert", ca]
    if mode == "auth":
        argv += ["-a", PASSWORD]

    def work() -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, capture_output=True, text=True, timeout=120 + args.requests / 1000, check=False)

    out, wall, node_cpu, load_cpu = _measured(pid, work)
    assert isinstance(out, subprocess.CompletedProcess)
    if out.returncode != 0 or "error" in out.stdout.lower():
        raise RuntimeError(f"{' '.join(argv)} exited {out.returncode}: {(out.stderr or out.stdout).strip()[-500:]}")
    rps = parse_csv(out.stdout)[test.upper()]["rps"]
    n = args.requests
    return Run(rps, node_cpu / wall, load_cpu / wall, node_cpu / n * 1e6, load_cpu / n * 1e6)


def _certificates(root: Path) -> tuple[str, str, str]:
    import trustme  # a dev dependency, as the tests' certificates

    ca = trustme.CA()
    cert = ca.issue_cert("bench", "localhost", "127.0.0.1")
    paths = (root / "ca.pem", root / "node.pem", root / "node.key")
    ca.cert_pem.write_to_path(str(paths[0]))
    cert.cert_chain_pems[0].write_to_path(str(paths[1]))
    cert.private_key_pem.write_to_path(str(paths[2]))
    return str(paths[0]), str(paths[1]), str(paths[2])


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.tls")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians are reported")
    p.add_argument("--duration", type=float, default=3.0, help="seconds per JSON-lines run")
    p.add_argument("--conns", type=int, default=50, help="JSON-lines connections")
    p.add_argument("-n", "--requests", type=int, default=100_000, help="requests per redis-benchmark run")
    p.add_argument("--pipelines", default="1,16")
    p.add_argument("--protocols", default="json,resp")
    p.add_argument("--no-pin", action="store_true", help="do not pin nodes and load to CPUs")
    p.add_argument("--record", action="store_true", help="append the figures to bench/RESULTS.md")
    p.add_argument("--results", type=Path, default=RESULTS, help=argparse.SUPPRESS)  # tests record elsewhere
    args = p.parse_args(argv)
    load_note = conditions()
    protocols = args.protocols.split(",")
    tool = need_redis_tools("redis-benchmark")["redis-benchmark"] if "resp" in protocols else ""
    pinned = not args.no_pin and bool(pin_prefix(1))
    node_cpu, load_cpu = (0, 1) if pinned else (None, None)
    if pinned:
        os.sched_setaffinity(0, {1})  # the JSON load generator's processes inherit it
    pipelines = [int(x) for x in args.pipelines.split(",")]
    cells = [("json", "mix", pp) for pp in pipelines] if "json" in protocols else []
    cells += [("resp", test, pp) for pp in pipelines for test in ("set", "get")] if "resp" in protocols else []
    runs: dict[tuple[str, str, int, str], list[Run]] = {}
    with tempfile.TemporaryDirectory(prefix="actorcache-bench-tls-") as tmp:
        ca, cert, key = _certificates(Path(tmp))
        tls_flags = [
            "--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", ca, "--tls-auth-clients", "no"
        ]
        flags = {"plain": [], "tls": tls_flags, "auth": ["--requirepass", PASSWORD]}
        nodes = {}
        try:
            for mode in MODES:
                nodes[mode] = node_server(f"bench-{mode}", *flags[mode], cpu=node_cpu)
            for r in range(args.rounds):
                order = MODES if r % 2 == 0 else tuple(reversed(MODES))
                for protocol, test, pipeline in cells:
                    for mode in order:
                        node = nodes[mode]
                        if protocol == "json":
                            run = json_run(node.port, node.pid, mode, pipeline, args, ca)
                        else:
                            assert node.resp_port is not None
                            run = resp_run(tool, node.resp_port, node.pid, mode, test, pipeline, args, ca, load_cpu)
                        runs.setdefault((protocol, test, pipeline, mode), []).append(run)
                        print(
                            f"  round {r + 1} {protocol} {test} -P {pipeline} {mode:5}: {run.ops_per_s:,.0f} ops/s, "
                            f"node CPU {_pct(run.server_cpu)} ({run.server_us:.1f} us/req), "
                            f"load CPU {_pct(run.load_cpu)} ({run.load_us:.1f} us/req)",
                            file=sys.stderr, flush=True,
                        )
        finally:
            for node in nodes.values():
                node.terminate()

    table = [
        "| protocol | test | -P | plain ops/s | TLS ops/s | TLS / plain | auth ops/s | auth / plain "
        "| node CPU us/req plain / TLS / auth | node CPU TLS / plain | node CPU auth / plain "
        "| load CPU us/req plain / TLS / auth | busy node / load (TLS) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for protocol, test, pipeline in cells:
        by_mode = {mode: runs[(protocol, test, pipeline, mode)] for mode in MODES}
        med = {mode: statistics.median(r.ops_per_s for r in rs) for mode, rs in by_mode.items()}
        ratio = {
            mode: statistics.median(a.ops_per_s / b.ops_per_s for a, b in zip(by_mode[mode], by_mode["plain"]))
            for mode in ("tls", "auth")
        }
        cpu_ratio = {
            mode: statistics.median(a.server_us / b.server_us for a, b in zip(by_mode[mode], by_mode["plain"]))
            for mode in ("tls", "auth")
        }
        node_us = " / ".join(f"{statistics.median(r.server_us for r in by_mode[m]):.1f}" for m in MODES)
        load_us = " / ".join(f"{statistics.median(r.load_us for r in by_mode[m]):.1f}" for m in MODES)
        busy = (
            f"{_pct(statistics.median(r.server_cpu for r in by_mode['tls']))} / "
            f"{_pct(statistics.median(r.load_cpu for r in by_mode['tls']))}"
        )
        table.append(
            f"| {'JSON lines' if protocol == 'json' else 'RESP'} | {test.upper()} | {pipeline} | {med['plain']:,.0f} "
            f"| {med['tls']:,.0f} | {ratio['tls']:.2f} | {med['auth']:,.0f} | {ratio['auth']:.2f} | {node_us} "
            f"| {cpu_ratio['tls']:.2f} | {cpu_ratio['auth']:.2f} | {load_us} | {busy} |"
        )
    print("\n".join(table), flush=True)
    if args.record:
        pin_text = (
            "the three nodes pinned to CPU 0 and the load (bench/loadgen.py, redis-benchmark) to CPU 1 with `taskset`"
            if pinned
            else "no CPU pinning"
        )
        record(
            HEADING,
            "python -m bench.tls " + " ".join(argv if argv is not None else sys.argv[1:]),
            f"{machine()}; {load_note}; {pin_text}. Nodes: default options plus, for `tls`, "
            "`--tls-cert-file/--tls-key-file/--tls-ca-cert-file --tls-auth-clients no` (TLS 1.3, trustme's "
            "certificates), for `auth`, `--requirepass` (one `auth` per connection, then every request is "
            f"checked). JSON lines: bench/loadgen.py `--conns {args.conns} --workload mix --value-size 32 "
            f"--duration {args.duration:g}`; RESP: `redis-benchmark -c 50 -d 32 -n {args.requests:,} -t TEST -P P` "
            f"(`--tls --cacert`, `-a`). {args.rounds} round(s) in alternating order; ops/s are medians, ratios "
            "the median of per-round ratios. CPU: the node's CPU time (from /proc) and the load generator's "
            "(rusage of its processes) per request, and per wall second (busy: 100% is one core); CPU per "
            "request is the overhead figure least moved by other work on the machine.\n\n" + "\n".join(table),
            path=args.results,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
