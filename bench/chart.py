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
    for key, label, style in (("matcher", "Depot matcher (exact, incl. eligibility)", "o-"),
                              ("full_graph", "OR-Tools max flow, full bipartite graph", "s--"),
                              ("greedy", "greedy first-fit (not optimal)", "^:")):
        pts = [(r["packages"], r[key]["seconds"]) for r in rows if key in r and "seconds" in r[key]]
        if pts:
            ax.plot([p for p, _ in pts], [s for _, s in pts], style, label=label)
    _log_log(ax, "packages in the day (drivers = packages / 100, cap 100)", "Matcher alone")
    if e2e:
        ax = axes[0][1]
        xs = [r["packages"] for r in e2e]
        ax.plot(xs, [r["assign_s"] for r in e2e], "o-", label="POST /assign, end to end")
        ax.plot(xs, [r["raw_batch_write_s"] for r in e2e], "s--", label="raw BatchWriteItem, same item count")
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
