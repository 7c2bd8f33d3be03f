"""The PNG chart: time against day size for the matcher, the full-graph flow, greedy first-fit,
and /assign against the raw-write floor."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def draw(results: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results.get("matcher", [])
    e2e = results.get("service_sizes", [])
    fig, axes = plt.subplots(1, 2 if e2e else 1, figsize=(12 if e2e else 7, 4.8), squeeze=False)
    ax = axes[0][0]
    for key, label, style in (
        ("matcher", "Depot matcher (exact, incl. eligibility)", "o-"),
        ("full_graph", "OR-Tools max flow, full bipartite graph", "s--"),
        ("greedy", "greedy first-fit (not optimal)", "^:"),
    ):
        pts = [(r["packages"], r[key]["seconds"]) for r in rows if key in r and "seconds" in r[key]]
        if pts:
            ax.plot([p for p, _ in pts], [s for _, s in pts], style, label=label)
    _log_log(ax, "packages in the day (drivers = packages / 100, cap 100)", "Matcher alone")
    if e2e:
        ax = axes[0][1]
        xs = [r["packages"] for r in e2e]
        ax.plot(xs, [r["assign_s"] for r in e2e], "o-", label="POST /assign, end to end")
        ax.plot(
            xs,
            [r["raw_batch_write_s"] for r in e2e],
            "s--",
            label="raw BatchWriteItem, same item count",
        )
        _log_log(ax, "packages in the day", "/assign on the embedded emulator vs its write floor")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _log_log(ax, xlabel: str, title: str) -> None:
    """Seconds against day size, both on log scales, as every panel of the chart shows them."""
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("seconds")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)


COLOURS = ("C0", "C1", "C3", "C2", "C4", "C5", "C6", "C7")  # enough for every fleet


def draw_fleets(results: dict[str, Any], path: Path) -> Path:
    """``python -m bench.matcher_bench``: time and peak memory against day size, one colour per
    fleet, the matcher (solid) against the full-graph max flow (dashed), log-log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(12, 6.4))
    for (fleet, rows), colour in zip(results["fleets"].items(), COLOURS):
        for key, style, label in (
            ("matcher", "o-", "matcher"),
            ("full_graph", "s--", "full-graph max flow"),
        ):
            pts = [(r["packages"], r[key]) for r in rows if "seconds" in r.get(key, {})]
            if pts:
                xs = [p for p, _ in pts]
                ax_t.plot(
                    xs,
                    [m["seconds"] for _, m in pts],
                    style,
                    color=colour,
                    label=f"{fleet}: {label}",
                )
                ax_m.plot(
                    xs,
                    [m["peak_rss_mib"] for _, m in pts],
                    style,
                    color=colour,
                    label=f"{fleet}: {label}",
                )
    _log_log(ax_t, "packages in the day", "Matcher (exact, full objective) vs full-graph max flow")
    _log_log(ax_m, "packages in the day", "Peak RSS of the child process")
    ax_m.set_ylabel("MiB")
    for ax in (ax_t, ax_m):  # one legend for both, below them, where it hides no line
        legend = ax.get_legend()
        if legend is not None:
            legend.remove()
    handles, labels = ax_t.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8)
    fig.tight_layout(rect=(0, 0.18, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
