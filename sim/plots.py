"""Figures of simulated and real runs (matplotlib), and ``python -m sim.plots [DIR]``.

``python -m sim.plots`` (``make plots``) renders the key figures to PNG files in
``docs/``; the notebooks (``notebooks/``) draw the same figures with the functions here.
Every figure has a title, axis labels with units and a legend. Without a backend chosen
(``MPLBACKEND``, or pyplot already imported, as ``%matplotlib inline`` does), drawing
uses Agg: files only, no window.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sim.convergence import lost_writes
from sim.experiments import lost_write_experiment, recovery_by_anti_entropy, recovery_by_duration, replication_experiment
from sim.history import OK
from sim.latency import cdf, percentiles
from sim.runs import SimRun, grouped, select

ROOT = Path(__file__).resolve().parent.parent

__all__ = [
    "fig_convergence_vs_duration",
    "fig_convergence_vs_interval",
    "fig_lost_writes",
    "fig_recovery",
    "fig_replication_cdfs",
    "fig_sim_vs_real",
    "fig_write_cdfs",
    "fig_write_p99",
    "main",
    "plot_cdf",
    "render_plots",
]


def _plt() -> Any:
    import matplotlib

    if "MPLBACKEND" not in os.environ and "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")  # a script rendering files needs no display
    import matplotlib.pyplot as plt

    return plt


def plot_cdf(ax: Any, values: Sequence[float], label: str, **style: Any) -> None:
    """One empirical CDF as a step line."""
    xs, ys = cdf(values)
    if xs:
        ax.step([xs[0], *xs], [0.0, *ys], where="post", label=label, **style)


def _link_panels(
    runs: Sequence[SimRun],
    draw: Callable[[Any, list[SimRun]], None],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    height: float = 3.8,
    legend: str = "lower right",
) -> Any:
    """One panel per link model (in the runs' order); ``draw(ax, runs of that link)``."""
    plt = _plt()
    links = list(dict.fromkeys(r.params["link"] for r in runs))
    fig, axes = plt.subplots(1, len(links), figsize=(5 * len(links), height), squeeze=False)
    for ax, link in zip(axes[0], links):
        draw(ax, select(runs, link=link))
        ax.set_title(link)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(loc=legend, fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def fig_replication_cdfs(runs: Sequence[SimRun], *, level: str = "quorum") -> Any:
    """Per-replica replication latency CDFs: one panel per link, one line per replica count."""

    def draw(ax: Any, link_runs: list[SimRun]) -> None:
        for run in select(link_runs, write_consistency=level):
            plot_cdf(ax, run.replication_latencies(), f"{run.params['replicas']} replica(s)")

    return _link_panels(
        runs, draw, xlabel="coordinator accept → replica apply (ms)", ylabel="fraction of replica copies",
        title=f"Replication latency per replica (simulated, 5 nodes, W={level})",
    )


def fig_write_cdfs(runs: Sequence[SimRun], *, replicas: int = 3) -> Any:
    """Client-visible write latency CDFs: one panel per link, one line per consistency level."""

    def draw(ax: Any, link_runs: list[SimRun]) -> None:
        for run in select(link_runs, replicas=replicas):
            plot_cdf(ax, run.write_latencies(), f"W={run.params['write_consistency']}")

    return _link_panels(
        runs, draw, xlabel="write latency at the coordinator (ms)", ylabel="fraction of acknowledged writes",
        title=f"Client-visible write latency (simulated, 5 nodes, {replicas} replicas)",
    )


def fig_write_p99(runs: Sequence[SimRun], *, point: str = "p99") -> Any:
    """A write latency percentile against the replica count: one panel per link, one line per level."""

    def draw(ax: Any, link_runs: list[SimRun]) -> None:
        for level in dict.fromkeys(r.params["write_consistency"] for r in link_runs):
            chosen = sorted(select(link_runs, write_consistency=level), key=lambda r: r.params["replicas"])
            ys = [percentiles(r.write_latencies())[point] for r in chosen]
            ax.plot([r.params["replicas"] for r in chosen], ys, marker="o", label=f"W={level}")
        ax.set_xticks(sorted({r.params["replicas"] for r in link_runs}))

    return _link_panels(
        runs, draw, xlabel="replicas (N)", ylabel=f"{point} write latency (ms)", height=3.6, legend="best",
        title=f"{point} client-visible write latency by replica count and level (simulated)",
    )


def _scatter_mean(ax: Any, data: dict[Any, dict[Any, list[float]]]) -> None:
    for label, points in data.items():
        xs = sorted(points)
        line = ax.plot(xs, [sum(points[x]) / len(points[x]) for x in xs], marker="o", label=f"{label} (mean)")[0]
        ax.scatter(
            [x for x in xs for _ in points[x]], [v for x in xs for v in points[x]],
            color=line.get_color(), alpha=0.35, s=14, label=f"{label} (each seed)",
        )


def plot_convergence(ax: Any, runs: Sequence[SimRun], x: str, *, xlabel: str, title: str) -> None:
    """Time to converge after heal against the param ``x``: hints on/off, mean and seeds."""
    _scatter_mean(ax, grouped(runs, x, "node.hint_limit", SimRun.convergence_time))
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("heal → last replica caught up (s)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def _recovery_panels(panels: Sequence[tuple[Sequence[SimRun], str]]) -> Any:
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), squeeze=False)
    for ax, (runs, x) in zip(axes[0], panels):
        if x == "partition_s":
            interval = runs[0].scenario.node.get("anti_entropy_interval_s", 1.0) if runs else 1.0
            plot_convergence(ax, runs, x, xlabel="partition duration (s)",
                             title=f"vs partition duration (anti-entropy every {interval:g} s)")
        else:
            partition = runs[0].scenario.duration - 1.0 if runs else 0.0
            plot_convergence(ax, runs, x, xlabel="anti-entropy interval (s)",
                             title=f"vs anti-entropy interval ({partition:g} s partition)")
    fig.suptitle("Time to converge after n5 is cut off under load and healed (simulated, 5 nodes, 3 replicas)")
    fig.tight_layout()
    return fig


def fig_convergence_vs_duration(runs: Sequence[SimRun]) -> Any:
    """Convergence time after heal against partition duration, hints on and off."""
    return _recovery_panels([(runs, "partition_s")])


def fig_convergence_vs_interval(runs: Sequence[SimRun]) -> Any:
    """Convergence time after heal against the anti-entropy interval, hints on and off."""
    return _recovery_panels([(runs, "node.anti_entropy_interval_s")])


def fig_recovery(by_duration: Sequence[SimRun], by_interval: Sequence[SimRun]) -> Any:
    """Both recovery panels side by side (``make plots``)."""
    return _recovery_panels([(by_duration, "partition_s"), (by_interval, "node.anti_entropy_interval_s")])


def fig_lost_writes(runs: Sequence[SimRun]) -> Any:
    """Keys with a lost acknowledged write, and writes not acknowledged, per level."""
    plt = _plt()
    levels = list(dict.fromkeys(r.params["write_consistency"] for r in runs))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    lost = {lv: [lost_writes(r) for r in select(runs, write_consistency=lv)] for lv in levels}
    unacked = {
        lv: [
            100.0 * sum(1 for op in r.history.ops if op.is_write and op.outcome != OK)
            / max(1, sum(1 for op in r.history.ops if op.is_write))
            for r in select(runs, write_consistency=lv)
        ]
        for lv in levels
    }
    for ax, data, ylabel, title in (
        (left, lost, "keys (per run)", "Acknowledged writes lost\n(lost-writes checker)"),
        (right, unacked, "% of writes (per run)", "Writes not acknowledged\n(unavailable or timeout)"),
    ):
        xs = range(len(levels))
        ax.bar(xs, [sum(v) / len(v) for v in data.values()], color=["tab:red", "tab:blue", "tab:green"][: len(levels)],
               alpha=0.6, label="mean over seeds")
        ax.scatter([x for x, v in zip(xs, data.values()) for _ in v], [y for v in data.values() for y in v],
                   color="black", s=12, zorder=3, label="one seed")
        ax.set_xticks(list(xs), [f"W={lv}" for lv in levels])
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8)
    fig.suptitle("n1 cut off for 5 s, then crashed (simulated, 3 nodes, 3 replicas)")
    fig.tight_layout()
    return fig


def fig_sim_vs_real(
    real: Sequence[float],
    sims: Mapping[str, Sequence[float]],
    *,
    title: str = "",
    writes: tuple[Sequence[float], Mapping[str, Sequence[float]]] | None = None,
) -> Any:
    """The real replication-latency CDF with simulated ones over it (log time axis); with
    ``writes`` (real, {label: simulated}), the client-visible write latency CDFs beside it."""
    plt = _plt()
    panels = [(real, sims, "coordinator accept → replica apply (ms, log scale)", "fraction of replica copies",
               "Replication latency")]
    if writes is not None:
        panels.append((writes[0], writes[1], "client sends → client has the reply (ms, log scale)",
                       "fraction of acknowledged writes", "Client-visible write latency"))
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 4.2), squeeze=False)
    for ax, (real_ms, sim_ms, xlabel, ylabel, name) in zip(axes[0], panels):
        plot_cdf(ax, real_ms, "real cluster (loopback)", color="black", linewidth=2)
        for label, values in sim_ms.items():
            plot_cdf(ax, values, label)
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(f"{name}: real 3-node cluster vs simulator" if len(panels) > 1 or not title else title)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="lower right")
    if title and len(panels) > 1:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# --- make plots ----------------------------------------------------------------------------------


def render_plots(out_dir: str | os.PathLike[str], *, ops: int = 600) -> list[Path]:
    """The key figures as PNG files in ``out_dir`` (``make plots``); returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plt = _plt()
    runs = replication_experiment(ops=ops)
    figures = {
        "replication_latency.png": fig_replication_cdfs(runs),
        "write_latency_p99.png": fig_write_p99(runs),
        "partition_recovery.png": fig_recovery(recovery_by_duration(), recovery_by_anti_entropy()),
        "lost_writes.png": fig_lost_writes(lost_write_experiment()),
    }
    paths = []
    for name, fig in figures.items():
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        paths.append(out / name)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.plots", description="Render the key figures to PNG files.")
    parser.add_argument("out_dir", nargs="?", default=str(ROOT / "docs"), help="default: docs/")
    parser.add_argument("--ops", type=int, default=600, help="operations per simulated latency run (default 600)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    for path in render_plots(args.out_dir, ops=args.ops):
        print(path)
    print(f"rendered in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
