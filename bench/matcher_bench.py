"""The matcher alone, against the full-graph max flow and greedy first-fit, by day size.

Each measurement runs in a child process that loads the day's columns from disk (no generator
objects around), so its peak RSS (``ru_maxrss``) is what the matcher itself needs.
"""

from __future__ import annotations

import json
import pickle
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

FULL_GRAPH_MAX_PACKAGES = 100_000  # beyond this the full graph needs several GiB


def make_day(packages: int, path: Path, seed: int = 6, per_driver: int = 100) -> None:
    """Generate a day (drivers = packages / per_driver, 2-4 rules) and store it for the children."""
    from depot.core.models import parse_drivers
    from depot.core.rules import PackageColumns
    from depot.ops.generator import generate_day

    drivers = max(1, packages // per_driver)
    day = generate_day(seed=seed, drivers=drivers, packages_per_driver=per_driver, min_rules=2, max_rules=4,
                       with_destination=False)
    columns = PackageColumns.from_records(day["packages"])
    with path.open("wb") as f:
        pickle.dump((parse_drivers(day["drivers"]), columns), f, protocol=pickle.HIGHEST_PROTOCOL)


def _load(path: str):
    with open(path, "rb") as f:
        return pickle.load(f)


def full_graph_max_flow(columns, drivers, cap: int) -> tuple[int, float, int]:
    """OR-Tools max flow on source -> driver -> package -> sink with an arc per eligible pair.

    Returns (flow, seconds spent in the solver alone, arcs)."""
    from ortools.graph.python import max_flow

    from depot.core.rules import RuleMasks

    masks = RuleMasks(columns)
    n_d, n_p = len(drivers), len(columns)
    source, sink, d0, p0 = 0, 1, 2, 2 + n_d
    tails, heads = [], []
    for i, d in enumerate(drivers):
        eligible = np.flatnonzero(masks.driver_mask(d)).astype(np.int32)
        tails.append(np.full(len(eligible), d0 + i, dtype=np.int32))
        heads.append(p0 + eligible)
    tail = np.concatenate([np.full(n_d, source, np.int32), *tails, p0 + np.arange(n_p, dtype=np.int32)])
    head = np.concatenate([d0 + np.arange(n_d, dtype=np.int32), *heads, np.full(n_p, sink, np.int32)])
    capacity = np.ones(len(tail), dtype=np.int64)
    capacity[:n_d] = cap
    del tails, heads
    solver = max_flow.SimpleMaxFlow()
    solver.add_arcs_with_capacity(tail, head, capacity)
    start = time.perf_counter()
    status = solver.solve(source, sink)
    solve_s = time.perf_counter() - start
    if status != solver.OPTIMAL:
        raise RuntimeError(f"max flow status {status}")
    return int(solver.optimal_flow()), solve_s, len(tail)


def child(kind: str, path: str, cap: int, repeats: int) -> dict[str, Any]:
    """Runs in a subprocess: load the day, time ``kind``, report time and peak RSS."""
    drivers, columns = _load(path)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times, out = [], {}
    for _ in range(repeats):
        start = time.perf_counter()
        if kind == "matcher":
            from depot.core.matcher import match

            result = match(columns, drivers, cap)
            out.update(assigned=result.assigned, classes=result.classes, arcs=result.arcs,
                       types=result.eligible_types)
        elif kind == "full_graph":
            flow, solve_s, arcs = full_graph_max_flow(columns, drivers, cap)
            out.update(assigned=flow, arcs=arcs, solve_s=solve_s)
        elif kind == "greedy":
            from depot.core.matcher import greedy_first_fit

            result = greedy_first_fit(columns, drivers, cap)
            out.update(assigned=sum(len(v) for v in result.values()))
        else:
            raise ValueError(kind)
        times.append(time.perf_counter() - start)
    out.update(seconds=statistics.median(times), seconds_all=times,
               peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               loaded_rss_mib=base_rss / 1024)
    return out


def _run_child(kind: str, path: Path, cap: int, repeats: int) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "bench.matcher_bench", kind, str(path), str(cap), str(repeats)],
                          check=False, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout)


def run(sizes: list[int], cap: int = 100, repeats: int = 3, full_graph_max: int = FULL_GRAPH_MAX_PACKAGES,
        log=print) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="depot-bench-") as tmp:
        for packages in sizes:
            path = Path(tmp) / f"day-{packages}.pkl"
            make_day(packages, path)
            row: dict[str, Any] = {"packages": packages, "drivers": max(1, packages // 100), "cap": cap}
            reps = repeats if packages <= 100_000 else max(1, repeats - 1)
            row["matcher"] = _run_child("matcher", path, cap, reps)
            row["greedy"] = _run_child("greedy", path, cap, 1)
            if packages <= full_graph_max:
                row["full_graph"] = _run_child("full_graph", path, cap, 1)
                fg = row["full_graph"]
                if "seconds" in fg and "seconds" in row["matcher"]:
                    row["speedup_vs_full_graph"] = fg["seconds"] / row["matcher"]["seconds"]
                    row["speedup_vs_full_graph_solve_only"] = fg["solve_s"] / row["matcher"]["seconds"]
                    row["equal_to_full_graph_optimum"] = fg["assigned"] == row["matcher"]["assigned"]
            log(f"matcher {packages:>7,} packages: " + json.dumps(
                {k: (v.get("seconds"), v.get("assigned")) if isinstance(v, dict) else v for k, v in row.items()}))
            rows.append(row)
            path.unlink()
    return rows


if __name__ == "__main__":
    kind, path, cap, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    print(json.dumps(child(kind, path, cap, repeats)))
