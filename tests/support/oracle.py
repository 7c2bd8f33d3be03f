"""Independent oracles for the core tests: SPEC's rules table in plain Python, and networkx flows.

Nothing here imports Depot's rule engine or matcher: the tests compare Depot against this.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import networkx as nx


def rule_accepts(code: str, params: Mapping[str, Any], pkg: Mapping[str, Any]) -> bool:
    """SPEC section 1, "the package must satisfy", one row per code, written out by hand."""
    if code == "MAX_WEIGHT":
        return pkg["weight_kg"] <= params["limit_kg"]
    if code == "NO_PERISHABLE":
        return pkg["is_perishable"] is False
    if code == "REGION_ONLY":
        return pkg["region"] in params["allowed_regions"]
    if code == "MAX_DISTANCE":
        return pkg["distance_km"] <= params["max_km"]
    if code == "EXPRESS_ONLY":
        return pkg["is_express"] is True
    if code == "FRAGILE_ONLY":
        return pkg["is_fragile"] is True
    if code == "HAZMAT_ALLOWED":
        hz = pkg.get("hazmat_class")
        return hz is None or hz in params["allowed_classes"]
    if code == "TEMP_CONTROL":
        return params["min_c"] <= pkg["temperature_c"] <= params["max_c"]
    if code == "TIME_WINDOW":
        return params["start_hour"] <= pkg["delivery_hour"] < params["end_hour"]
    if code == "OVERSIZED":
        return pkg["volume_m3"] >= params["min_volume_m3"]
    raise AssertionError(f"the oracle does not know code {code!r}")


def _rules_of(driver: Any) -> list[tuple[str, Mapping[str, Any]]]:
    """(code, params) pairs of a driver given as a dict (raw JSON) or a
    ``depot.core.models.Driver``."""
    if isinstance(driver, Mapping):
        return [(r["code"], r.get("params", {})) for r in driver.get("rules", [])]
    return [(str(getattr(r.code, "value", r.code)), r.params) for r in driver.rules]


def driver_accepts(driver: Any, pkg: Mapping[str, Any]) -> bool:
    return all(rule_accepts(code, params, pkg) for code, params in _rules_of(driver))


def driver_id_of(driver: Any) -> str:
    if isinstance(driver, Mapping):
        return driver.get("driver_id", driver.get("id"))
    return driver.driver_id


def flow_network(
    drivers: Sequence[Any],
    packages: Sequence[Mapping[str, Any]],
    max_per_driver: int,
    held_counts: Mapping[str, int] | None = None,
    held: Iterable[int] = (),
    package_weight=None,
) -> nx.DiGraph:
    """The full driver x package bipartite network: source -> driver -> package -> sink."""
    held_counts = held_counts or {}
    held = set(held)
    g = nx.DiGraph()
    g.add_node("s")
    g.add_node("t")
    for i, d in enumerate(drivers):
        room = max(0, max_per_driver - held_counts.get(driver_id_of(d), 0))
        g.add_edge("s", ("d", i), capacity=room, weight=0)
        for j, p in enumerate(packages):
            if j not in held and driver_accepts(d, p):
                g.add_edge(("d", i), ("p", j), capacity=1, weight=0)
    for j, p in enumerate(packages):
        if j not in held:
            w = package_weight(p) if package_weight else 0
            g.add_edge(("p", j), "t", capacity=1, weight=w)
    return g


def max_assignable(drivers, packages, max_per_driver, held_counts=None, held=()) -> int:
    """The optimum number of packages that can be assigned: a max flow on the full graph."""
    g = flow_network(drivers, packages, max_per_driver, held_counts, held)
    return int(nx.maximum_flow_value(g, "s", "t"))


def best_priority(
    drivers, packages, max_per_driver, held_counts=None, held=()
) -> tuple[int, int, int]:
    """(assigned, express, perishable), lexicographically best, by networkx min-cost max flow."""
    big = len(packages) + 1

    def weight(p):
        return -(big * int(p["is_express"]) + int(p["is_perishable"]))

    g = flow_network(drivers, packages, max_per_driver, held_counts, held, package_weight=weight)
    flow = nx.max_flow_min_cost(g, "s", "t")
    taken = [
        j
        for node, out in flow.items()
        if isinstance(node, tuple) and node[0] == "p"
        for _, j in [node]
        if out.get("t", 0) > 0
    ]
    return (
        len(taken),
        sum(bool(packages[j]["is_express"]) for j in taken),
        sum(bool(packages[j]["is_perishable"]) for j in taken),
    )


def objective_arcs(
    drivers, packages, max_per_driver, held_counts=None, held=()
) -> tuple[list[int], list[tuple[Any, Any, int]]]:
    """The drivers' held counts and the (tail, head, cost) unit arcs of the full graph whose
    min-cost max flow from "s" to "t" is the matcher's whole objective: each driver's k-th new
    package costs ``2 * (held + k) - 1`` (so a driver's costs add up to its squared load)
    through its own unit arc, and each express or perishable package earns more than any
    balancing can cost."""
    held_counts = held_counts or {}
    held = set(held)
    rooms = [max(0, max_per_driver - held_counts.get(driver_id_of(d), 0)) for d in drivers]
    base = [held_counts.get(driver_id_of(d), 0) for d in drivers]
    perishable = 2 * sum((b + r) ** 2 for b, r in zip(base, rooms)) + 1
    express = perishable * (len(packages) + 1)
    arcs: list[tuple[Any, Any, int]] = []
    for i, d in enumerate(drivers):
        for k in range(1, rooms[i] + 1):
            arcs.append(("s", ("u", i, k), 2 * (base[i] + k) - 1))
            arcs.append((("u", i, k), ("d", i), 0))
        for j, p in enumerate(packages):
            if j not in held and driver_accepts(d, p):
                arcs.append((("d", i), ("p", j), 0))
    for j, p in enumerate(packages):
        if j not in held:
            reward = express * int(p["is_express"]) + perishable * int(p["is_perishable"])
            arcs.append((("p", j), "t", -reward))
    return base, arcs


def objective_of(packages, base, arc_flows) -> tuple[int, int, int, int]:
    """(assigned, express, perishable, sum of squared loads) of a flow on ``objective_arcs``,
    given as ((tail, head), flow) pairs."""
    taken, loads = [], list(base)
    for (tail, head), x in arc_flows:
        if x > 0 and head == "t":
            taken.append(tail[1])
        elif x > 0 and isinstance(tail, tuple) and tail[0] == "d":
            loads[tail[1]] += x
    return (
        len(taken),
        sum(bool(packages[j]["is_express"]) for j in taken),
        sum(bool(packages[j]["is_perishable"]) for j in taken),
        sum(x * x for x in loads),
    )


def best_objective(
    drivers, packages, max_per_driver, held_counts=None, held=()
) -> tuple[int, int, int, int]:
    """The matcher's whole objective on the full graph (``objective_arcs``), by a networkx
    min-cost max flow."""
    base, arcs = objective_arcs(drivers, packages, max_per_driver, held_counts, held)
    g = nx.DiGraph()
    g.add_nodes_from(["s", "t"])
    g.add_edges_from((a, b, {"capacity": 1, "weight": w}) for a, b, w in arcs)
    flow = nx.max_flow_min_cost(g, "s", "t")
    return objective_of(
        packages, base, (((a, b), x) for a, out in flow.items() for b, x in out.items())
    )
