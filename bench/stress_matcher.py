"""Random days against an independent optimum, for as long as you give it.

``python -m bench.stress_matcher [--seed N] [--seconds S] [--out DIR]`` draws days of every
fleet (the generator's, personalised, adversarial, mixed, and fleets of duplicated rules), 2-120
drivers with 1-60 packages each, a random cap and, on half of them, packages already held by
drivers (some by a driver outside the request), and compares the matcher's whole objective
(assigned, express, perishable, sum of squared loads) with an OR-Tools min-cost max flow of the
tests' full (driver, package) graph, whose costs encode the same lexicographic order; every
answer is also checked against each driver's rules (``tests/support/fleets.check_valid``). A
day that differs or fails is pickled to ``--out``. Larger and faster than the hypothesis
tests, which shrink; this one searches. Results in docs/performance.md.
"""

from __future__ import annotations

import argparse
import pickle
import random
import sys
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from ortools.graph.python import min_cost_flow

from bench.matcher_bench import fleet_drivers
from depot.ops.generator import generate_day
from support.fleets import Case, check_valid, objective
from support.oracle import objective_arcs, objective_of

FLEETS = ("uniform", "personalised", "adversarial", "mixed", "duplicated")


def full_graph_optimum(case: Case) -> tuple[int, int, int, int]:
    """The whole objective by an OR-Tools min-cost max flow of the tests' full graph
    (``support.oracle.objective_arcs``: networkx would take minutes on these days)."""
    base, arcs = objective_arcs(
        case.raw_drivers, case.packages, case.cap, case.held_counts, case.holder
    )
    ids: dict[Any, int] = {"s": 0, "t": 1}
    flow = min_cost_flow.SimpleMinCostFlow()
    for tail, head, cost in arcs:
        flow.add_arc_with_capacity_and_unit_cost(
            ids.setdefault(tail, len(ids)), ids.setdefault(head, len(ids)), 1, cost
        )
    most = max(1, sum(head == "t" for _, head, _ in arcs))
    flow.set_node_supply(0, most)
    flow.set_node_supply(1, -most)
    status = flow.solve_max_flow_with_min_cost()
    if status != flow.OPTIMAL:
        raise RuntimeError(f"the oracle's flow ended {status}")
    return objective_of(
        case.packages, base, ((arc[:2], flow.flow(k)) for k, arc in enumerate(arcs))
    )


def random_case(rng: random.Random) -> tuple[str, Case]:
    fleet = rng.choice(FLEETS)
    n = rng.randint(2, 120)
    per_driver = rng.randint(1, 60)
    seed = rng.getrandbits(32)
    day = generate_day(
        seed=seed,
        drivers=n + 2,
        packages_per_driver=per_driver,
        min_rules=rng.randint(0, 2),
        max_rules=rng.randint(2, 4),
        with_destination=False,
    )
    raw: list[dict[str, Any]] = day["drivers"][:n]
    if fleet in ("personalised", "adversarial", "mixed"):
        raw = fleet_drivers(fleet, n, seed)
    if fleet == "duplicated":
        pool = raw[: max(1, n // 8)]
        raw = [
            {"driver_id": f"driver_{i + 1}", "rules": rng.choice(pool)["rules"]} for i in range(n)
        ]
    packages = day["packages"]
    cap = rng.choice(
        [rng.randint(0, 3), rng.randint(1, per_driver * 2 + 1), per_driver, per_driver // 2 + 1]
    )
    holders = [d["driver_id"] for d in raw] + ["someone-else"]
    holder: dict[int, str] = {}
    if rng.random() < 0.5:
        share = rng.random() * 0.5
        holder = {j: rng.choice(holders) for j in range(len(packages)) if rng.random() < share}
    return fleet, Case(raw, packages, cap, holder)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stress_matcher")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--out", type=Path, default=Path("stress-failures"))
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    deadline = time.monotonic() + args.seconds
    cases = packages = bad = 0
    while time.monotonic() < deadline:
        fleet, case = random_case(rng)
        problem = None
        try:
            result = case.run()
            check_valid(case, result)
            got, best = objective(case, result), full_graph_optimum(case)
            if got != best:
                problem = f"MISMATCH {fleet}: matcher {got}, optimum {best}"
        except Exception:  # noqa: BLE001 - a failure is a finding: keep the day, go on
            problem = f"ERROR {fleet}: {traceback.format_exc()[-800:]}"
        if problem:
            bad += 1
            args.out.mkdir(parents=True, exist_ok=True)
            path = args.out / f"case-{args.seed}-{cases}.pkl"
            path.write_bytes(pickle.dumps(case))
            print(problem, path, flush=True)
        cases += 1
        packages += len(case.packages)
        if cases % 50 == 0:
            print(f"{cases} days, {packages:,} packages", flush=True)
    print(f"END seed {args.seed}: {cases} days, {packages:,} packages, {bad} differ or fail")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
