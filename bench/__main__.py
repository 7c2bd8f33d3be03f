"""``python -m bench`` (``make bench``): Depot's benchmark suite (issue 6).

Modes: the default is the full suite (matcher 10k-500k packages, the service end to end on the
1,000 x 100,000 day with a 60 s /update load); ``--quick`` is smaller and shorter; ``--tiny`` is
the smoke test's (seconds). Prints a table, writes ``bench/results/<mode>-<time>.json`` and
``latest-<mode>.json``, and draws ``bench/results/<mode>.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results"

MODES: dict[str, dict[str, Any]] = {
    "full": {
        "sizes": [10_000, 20_000, 50_000, 100_000, 200_000, 500_000],
        "repeats": 3,
        "service": {
            "drivers": 1000,
            "packages_per_driver": 100,
            "update_seconds": 60,
            "reads": 200,
        },
        "service_sizes": [20, 50],
    },
    "quick": {
        "sizes": [10_000, 50_000, 100_000],
        "repeats": 3,
        "service": {
            "drivers": 1000,
            "packages_per_driver": 100,
            "update_seconds": 15,
            "reads": 100,
        },
        "service_sizes": [],
    },
    "tiny": {
        "sizes": [500, 2_000],
        "repeats": 1,
        "full_graph_max": 2_000,
        "service": {
            "drivers": 10,
            "packages_per_driver": 10,
            "update_seconds": 1,
            "reads": 5,
            "update_rate": 20,
        },
        "service_sizes": [],
    },
}


def _machine() -> dict[str, Any]:
    git = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        check=False,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "load_average_at_start": os.getloadavg(),
        "commit": git.stdout.strip(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="smaller sizes, 15 s /update load")
    mode.add_argument("--tiny", action="store_true", help="a tiny day, for the smoke test")
    parser.add_argument("--only", choices=["matcher", "service"], help="run one section")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write JSON and PNG")
    args = parser.parse_args(argv)
    name = "tiny" if args.tiny else "quick" if args.quick else "full"
    cfg = MODES[name]
    console = Console(stderr=True)
    log = (lambda msg: console.print(f"[dim]{msg}[/dim]")) if not args.tiny else (lambda msg: None)

    results: dict[str, Any] = {
        "mode": name,
        "started": datetime.now(UTC).isoformat(),
        "machine": _machine(),
    }
    if args.only in (None, "matcher"):
        from bench import matcher_bench

        results["matcher"] = matcher_bench.run(
            cfg["sizes"],
            repeats=cfg["repeats"],
            full_graph_max=cfg.get("full_graph_max", matcher_bench.FULL_GRAPH_MAX_PACKAGES),
            log=log,
        )
    if args.only in (None, "service"):
        from bench import service_bench

        results["service"] = service_bench.run(**cfg["service"], log=log)
        sizes = []
        for per_driver in cfg["service_sizes"]:  # /assign vs floor at more day sizes, no load test
            if per_driver == cfg["service"]["packages_per_driver"]:
                continue
            sizes.append(
                service_bench.run(
                    drivers=1000,
                    packages_per_driver=per_driver,
                    update_seconds=0,
                    reads=0,
                    import_rounds_n=1,
                    log=log,
                )
            )
        if sizes or cfg["service_sizes"]:
            sizes.append(results["service"])
            results["service_sizes"] = sorted(
                [
                    {
                        k: s[k]
                        for k in (
                            "packages",
                            "assign_s",
                            "raw_batch_write_s",
                            "assign_vs_raw_write",
                        )
                    }
                    for s in sizes
                ],
                key=lambda s: s["packages"],
            )
    results["finished"] = datetime.now(UTC).isoformat()
    results["load_average_at_end"] = os.getloadavg()

    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = args.out / f"{name}-{stamp}.json"
    path.write_text(json.dumps(results, indent=1))
    (args.out / f"latest-{name}.json").write_text(json.dumps(results, indent=1))
    chart = None
    if "matcher" in results:
        from bench.chart import draw

        chart = draw(results, args.out / f"{name}.png")
    Console().print(table(results))
    console.print(f"wrote {path}" + (f" and {chart}" if chart else ""))
    return 0


def _s(v: Any, unit: str = "s") -> str:
    if v is None:
        return "-"
    return f"{v:.3f} {unit}" if unit == "s" else f"{v:.1f} {unit}"


def table(results: dict[str, Any]) -> Table:
    t = Table(
        title=f"Depot benchmarks ({results['mode']}, load at start "
        f"{results['machine']['load_average_at_start'][0]:.2f})"
    )
    t.add_column("measure")
    t.add_column("figure", justify="right")
    t.add_column("target / peer", justify="right")
    for row in results.get("matcher", []):
        m, fg, g = row.get("matcher", {}), row.get("full_graph", {}), row.get("greedy", {})
        label = f"matcher {row['drivers']:,} x {row['packages']:,}"
        t.add_row(
            label,
            f"{_s(m.get('seconds'))}, {m.get('peak_rss_mib', 0):.0f} MiB peak",
            f"{m.get('assigned')} assigned, {m.get('classes')} classes, {m.get('arcs')} arcs",
        )
        if fg:
            t.add_row(
                "  full-graph max flow",
                _s(fg.get("seconds")),
                f"x{row.get('speedup_vs_full_graph', 0):.1f} (solve only x"
                f"{row.get('speedup_vs_full_graph_solve_only', 0):.1f}), equal optimum: "
                f"{row.get('equal_to_full_graph_optimum')}",
            )
        if g:
            t.add_row("  greedy first-fit", _s(g.get("seconds")), f"{g.get('assigned')} assigned")
    s = results.get("service")
    if s:
        if "parse_s" in s:
            t.add_row(
                f"parse + validate {s['packages']:,} packages",
                _s(s["parse_s"]),
                f"< 1 s; the models' path {_s(s['parse_checked_s'])}",
            )
        t.add_row(
            f"import {s['packages']:,} packages ({s['manifest_bytes'] / 1e6:.0f} MB)",
            _s(s["import_s"]),
            f"raw S3 PUT {_s(s['raw_s3_put_s'])}: x{s['import_vs_s3_put']:.2f} (<= 1.5); "
            "raw BatchWriteItem "
            f"{_s(s.get('raw_batch_write_packages_s'))} (x{s.get('import_vs_raw_write') or 0:.2f})",
        )
        t.add_row(
            f"POST /assign ({s['assigned']:,} items)",
            _s(s["assign_s"]),
            f"raw BatchWriteItem {_s(s['raw_batch_write_s'])}: "
            f"x{s['assign_vs_raw_write']:.2f} (<= 1.5)",
        )
        t.add_row("POST /assign repeated", _s(s["assign_repeat_s"]), "< 2 s")
        if "read_p95_ms" in s:
            t.add_row("GET /drivers/{id}/assignments p95", _s(s["read_p95_ms"], "ms"), "< 50 ms")
        u = s.get("update")
        if u:
            t.add_row(
                f"POST /update @ {u['rate']:.0f}/s x {u['seconds']:.0f} s",
                f"p95 {u['p95_ms']:.1f} ms, p99 {u['p99_ms']:.1f} ms",
                f"< 25 / < 50 ms; {u['errors']} errors; achieved {u['achieved_rate']:.1f}/s",
            )
    for row in results.get("service_sizes", []):
        t.add_row(
            f"  /assign at {row['packages']:,} packages",
            _s(row["assign_s"]),
            f"floor {_s(row['raw_batch_write_s'])}: x{row['assign_vs_raw_write']:.2f}",
        )
    return t


if __name__ == "__main__":
    sys.exit(main())
