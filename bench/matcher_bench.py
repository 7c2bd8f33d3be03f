"""The matcher alone, against the full-graph max flow and greedy first-fit, by day size.

Each measurement runs in a child process that loads the day's columns from disk (no generator
objects around), so its peak RSS (``ru_maxrss``) is what the matcher itself needs.
"""

from __future__ import annotations

import json
import os
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


FLEETS = ("uniform", "personalised", "adversarial", "mixed")


def fleet_drivers(kind: str, n: int, seed: int) -> list[dict[str, Any]]:
    """``personalised``: each driver his own MAX_WEIGHT (5-20 kg, 0.1 kg), TIME_WINDOW (start 6-10,
    6-10 hours), two regions and MAX_DISTANCE (30-100 km, 0.1 km), as in issue 14;
    ``adversarial``: 50 rules each, drawn from 25 distinct rules of every code (many distinct
    parameters, repeated codes), and every other driver a duplicate of an earlier one;
    ``mixed``: 3-10 of the ten codes each, every parameter his own (nothing shared: almost every
    package is a class of its own, the case the compression cannot help)."""
    import random

    from depot.core.models import HAZMAT_CLASSES, REGIONS

    rng = random.Random(seed)

    def rule(code: str, params: dict) -> dict:
        return {"rule_id": f"r{rng.getrandbits(48):x}", "code": code, "params": params}

    if kind == "mixed":
        return [
            {"driver_id": f"driver_{i + 1}", "rules": _mixed_rules(rng, rule)} for i in range(n)
        ]
    if kind == "personalised":
        out = []
        for i in range(n):
            start = rng.randint(6, 10)
            out.append(
                {
                    "driver_id": f"driver_{i + 1}",
                    "rules": [
                        rule("MAX_WEIGHT", {"limit_kg": round(rng.uniform(5, 20), 1)}),
                        rule(
                            "TIME_WINDOW",
                            {"start_hour": start, "end_hour": start + rng.randint(6, 10)},
                        ),
                        rule("REGION_ONLY", {"allowed_regions": rng.sample(REGIONS, 2)}),
                        rule("MAX_DISTANCE", {"max_km": round(rng.uniform(30, 100), 1)}),
                    ],
                }
            )
        return out
    pool = []
    for _ in range(25):
        start = rng.randint(0, 12)
        low = round(rng.uniform(-5, 15), 1)
        pool += [
            rule("MAX_WEIGHT", {"limit_kg": round(rng.uniform(8, 40), 2)}),
            rule("MAX_DISTANCE", {"max_km": round(rng.uniform(50, 200), 2)}),
            rule("TIME_WINDOW", {"start_hour": start, "end_hour": rng.randint(start + 8, 24)}),
            rule("TEMP_CONTROL", {"min_c": low, "max_c": round(low + rng.uniform(10, 30), 1)}),
            rule("OVERSIZED", {"min_volume_m3": round(rng.uniform(0, 0.4), 2)}),
            rule("REGION_ONLY", {"allowed_regions": rng.sample(REGIONS, rng.randint(3, 4))}),
            rule(
                "HAZMAT_ALLOWED", {"allowed_classes": rng.sample(HAZMAT_CLASSES, rng.randint(2, 4))}
            ),
        ]
    out = []
    for i in range(n):
        rules = out[rng.randrange(len(out))]["rules"] if out and i % 2 else rng.sample(pool, 50)
        out.append({"driver_id": f"driver_{i + 1}", "rules": rules})
    return out


def _mixed_rules(rng, rule) -> list[dict]:
    from depot.core.models import HAZMAT_CLASSES, REGIONS

    start, low = rng.randint(0, 14), round(rng.uniform(-10, 15), 1)
    candidates = [
        rule("MAX_WEIGHT", {"limit_kg": round(rng.uniform(3, 40), 2)}),
        rule("MAX_DISTANCE", {"max_km": round(rng.uniform(20, 200), 2)}),
        rule("TIME_WINDOW", {"start_hour": start, "end_hour": rng.randint(start + 4, 24)}),
        rule("TEMP_CONTROL", {"min_c": low, "max_c": round(low + rng.uniform(5, 30), 1)}),
        rule("OVERSIZED", {"min_volume_m3": round(rng.uniform(0, 0.5), 3)}),
        rule("REGION_ONLY", {"allowed_regions": rng.sample(REGIONS, rng.randint(1, len(REGIONS)))}),
        rule(
            "HAZMAT_ALLOWED",
            {"allowed_classes": rng.sample(HAZMAT_CLASSES, rng.randint(1, len(HAZMAT_CLASSES)))},
        ),
        rule("NO_PERISHABLE", {}),
        rule("EXPRESS_ONLY", {}),
        rule("FRAGILE_ONLY", {}),
    ]
    return rng.sample(candidates, rng.randint(3, 10))


def make_day(
    packages: int, path: Path, seed: int = 6, per_driver: int = 100, fleet: str = "uniform"
) -> None:
    """Generate a day (drivers = packages / per_driver) and store it for the children. ``uniform``
    is the brief's generator (2-4 rules); the other fleets keep its packages (``fleet_drivers``)."""
    from depot.core.models import parse_drivers
    from depot.core.rules import PackageColumns
    from depot.ops.generator import generate_day

    drivers = max(1, packages // per_driver)
    day = generate_day(
        seed=seed,
        drivers=drivers,
        packages_per_driver=per_driver,
        min_rules=2,
        max_rules=4,
        with_destination=False,
    )
    if fleet != "uniform":
        day["drivers"] = fleet_drivers(fleet, drivers, seed)
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
    tail = np.concatenate(
        [np.full(n_d, source, np.int32), *tails, p0 + np.arange(n_p, dtype=np.int32)]
    )
    head = np.concatenate(
        [d0 + np.arange(n_d, dtype=np.int32), *heads, np.full(n_p, sink, np.int32)]
    )
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


def _peak_rss_mib() -> float:
    """This process's peak RSS. ``ru_maxrss`` survives ``execve`` on Linux (a child would report
    its parent's peak, e.g. the bench's after generating a 500k day); ``VmHWM`` does not."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(kind: str, path: str, cap: int, repeats: int) -> dict[str, Any]:
    """Runs in a subprocess: load the day, time ``kind``, report time and peak RSS."""
    drivers, columns = _load(path)
    base_rss = _peak_rss_mib()
    times, out = [], {}
    for _ in range(repeats):
        start = time.perf_counter()
        if kind == "matcher":
            from depot.core.matcher import match

            result = match(columns, drivers, cap)
            loads = np.array([len(v) for v in result.assignments.values()], dtype=np.int64)
            out.update(
                assigned=result.assigned,
                classes=result.classes,
                arcs=result.arcs,
                types=result.eligible_types,
                flows=result.flows,
                sum_squares=int((loads**2).sum()),
                stages={k: round(v, 4) for k, v in result.seconds.items()},
            )
        elif kind == "full_graph":
            flow, solve_s, arcs = full_graph_max_flow(columns, drivers, cap)
            out.update(assigned=flow, arcs=arcs, solve_s=solve_s)
        elif kind == "explain":
            from depot.core.explain import explain_unassigned
            from depot.core.matcher import match

            result = match(columns, drivers, cap)
            held = np.zeros(len(columns), dtype=bool)
            for picked in result.assignments.values():
                held[picked] = True
            start = time.perf_counter()  # explain alone, on the day after the match
            out.update(unassigned=len(explain_unassigned(columns, drivers, held, cap)))
        elif kind == "greedy":
            from depot.core.matcher import greedy_first_fit

            result = greedy_first_fit(columns, drivers, cap)
            out.update(assigned=sum(len(v) for v in result.values()))
        else:
            raise ValueError(kind)
        times.append(time.perf_counter() - start)
    out.update(
        seconds=statistics.median(times),
        seconds_all=times,
        peak_rss_mib=_peak_rss_mib(),
        loaded_rss_mib=base_rss,
    )
    return out


def _child_env(tmp: str) -> dict[str, str]:
    """The children's environment: bytecode compiled once into ``tmp`` (as an installed package
    has it) and read from there. A shell with ``PYTHONDONTWRITEBYTECODE`` set (as this machine's
    is) made every child compile its modules from source, and the compiler's memory counted in
    its peak RSS: ~2.4 MiB more for the matcher's modules than for the full graph's."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
    warm = (
        "import bench.matcher_bench, depot.core.explain, depot.core.matcher, scipy.sparse.csgraph"
    )
    subprocess.run([sys.executable, "-c", warm], check=True, env=env, timeout=600)
    return env


def _run_child(
    kind: str, path: Path, cap: int, repeats: int, env: dict[str, str] | None = None
) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.matcher_bench", kind, str(path), str(cap), str(repeats)],
        check=False,
        capture_output=True,
        text=True,
        timeout=1800,
        env=env,
    )
    if proc.returncode != 0:
        return {
            "error": proc.stderr.strip().splitlines()[-1]
            if proc.stderr.strip()
            else f"exit {proc.returncode}"
        }
    return json.loads(proc.stdout)


def run(
    sizes: list[int],
    cap: int = 100,
    repeats: int = 3,
    full_graph_max: int = FULL_GRAPH_MAX_PACKAGES,
    log=print,
    fleet: str = "uniform",
    per_driver: int = 100,
    explain: bool = False,
) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="depot-bench-") as tmp:
        env = _child_env(tmp)
        for packages in sizes:
            path = Path(tmp) / f"day-{packages}.pkl"
            make_day(packages, path, per_driver=per_driver, fleet=fleet)
            row: dict[str, Any] = {
                "fleet": fleet,
                "packages": packages,
                "drivers": max(1, packages // per_driver),
                "cap": cap,
                "load_average_at_start": os.getloadavg()[0],
            }
            reps = repeats
            row["matcher"] = _run_child("matcher", path, cap, reps, env)
            row["greedy"] = _run_child("greedy", path, cap, 1, env)
            if explain:
                row["explain"] = _run_child("explain", path, cap, reps, env)
                if "seconds" in row["explain"] and "seconds" in row["matcher"]:
                    row["explain_vs_matcher"] = (
                        row["explain"]["seconds"] / row["matcher"]["seconds"]
                    )
            if packages <= full_graph_max:
                row["full_graph"] = _run_child("full_graph", path, cap, reps, env)
                fg = row["full_graph"]
                if "seconds" in fg and "seconds" in row["matcher"]:
                    row["speedup_vs_full_graph"] = fg["seconds"] / row["matcher"]["seconds"]
                    row["speedup_vs_full_graph_solve_only"] = (
                        fg["solve_s"] / row["matcher"]["seconds"]
                    )
                    row["equal_to_full_graph_optimum"] = (
                        fg["assigned"] == row["matcher"]["assigned"]
                    )
                    row["time_vs_full_graph"] = row["matcher"]["seconds"] / fg["seconds"]
                    row["memory_vs_full_graph"] = (
                        row["matcher"]["peak_rss_mib"] / fg["peak_rss_mib"]
                    )
            row["load_average_at_end"] = os.getloadavg()[0]
            log(
                f"matcher {fleet} {packages:>7,} packages: "
                + json.dumps(
                    {
                        k: (v.get("seconds"), v.get("assigned")) if isinstance(v, dict) else v
                        for k, v in row.items()
                    }
                )
            )
            rows.append(row)
            path.unlink()
    return rows


# ``python -m bench.matcher_bench``: every fleet, its own JSON and chart
SHAPES = {
    "uniform": {"sizes": [10_000, 30_000, 100_000, 500_000]},
    "personalised": {"sizes": [10_000, 30_000, 100_000, 500_000]},
    "adversarial": {"sizes": [1_000, 2_000, 5_000, 10_000], "per_driver": 5, "cap": 10},
    # no 500k: its eligible pairs (~150 M) are beyond this machine for the full graph and the
    # matcher alike (docs/performance.md)
    "mixed": {"sizes": [10_000, 30_000, 100_000]},
    # crowded: many drivers with a few packages each (a driver's own rules, few shared)
    "personalised-crowded": {
        "fleet": "personalised",
        "sizes": [5_000, 10_000, 20_000],
        "per_driver": 4,
        "cap": 10,
    },
    "mixed-crowded": {"fleet": "mixed", "sizes": [5_000, 10_000], "per_driver": 5, "cap": 10},
}


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.matcher_bench")
    parser.add_argument("--max-packages", type=int, default=500_000, help="skip bigger days")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--fleets", default=",".join(SHAPES), help="comma-separated: " + ", ".join(SHAPES)
    )
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "fleets": {}}
    results["load_average_at_start"] = os.getloadavg()
    for name in args.fleets.split(","):
        shape = SHAPES[name]
        sizes = [s for s in shape["sizes"] if s <= args.max_packages]
        results["fleets"][name] = run(
            sizes,
            cap=shape.get("cap", 100),
            repeats=args.repeats,
            fleet=shape.get("fleet", name),
            per_driver=shape.get("per_driver", 100),
            explain=True,
        )
    results["load_average_at_end"] = os.getloadavg()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"matcher-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=1))
    from bench.chart import draw_fleets

    print(f"wrote {path} and {draw_fleets(results, args.out / 'matcher.png')}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] in ("matcher", "full_graph", "greedy", "explain"):
        kind, path, cap, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        print(json.dumps(child(kind, path, cap, repeats)))
    else:
        sys.exit(main(sys.argv[1:]))
