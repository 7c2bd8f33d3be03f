"""The matcher: an exact, deterministic assignment of packages to drivers. Pure, no I/O.

Objective, in this order (see ``docs/design.md``):

1. the largest number of packages assigned, each driver holding at most ``max_per_driver`` for
   the day (what it already holds counts) - a b-matching, solved as a maximum flow;
2. among those, the most express packages, then the most perishable ones;
3. then the most even load across the requested drivers (least sum of squared loads);
4. the same input always gives the same answer.

It is one min-cost maximum flow (OR-Tools), made small by compressing the day:

* every distinct rule is evaluated once over all packages (``RuleMasks``); a package's vector of
  rule outcomes (its *atom*) decides which drivers may take it;
* drivers with the same rule set form a *type*; atoms with the same set of eligible types form a
  *class*, split by priority tier (express, perishable).

The network is ``source -> (class, tier) -> class -> type -> driver -> sink``; the arcs into the
sink are unit arcs of rising cost, which is what makes the load even. Its size depends on the
number of classes and types, not on the number of packages.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from ortools.graph.python import min_cost_flow

from depot.eligibility import PREDICATES, PackageColumns
from depot.models import Driver


@dataclass(frozen=True)
class MatchResult:
    """New assignments by driver id, as package indices into ``PackageColumns``."""

    assignments: dict[str, list[int]]
    eligible_types: int = 0
    classes: int = 0
    arcs: int = 0

    @property
    def assigned(self) -> int:
        return sum(len(v) for v in self.assignments.values())


@dataclass
class _Compressed:
    """The day reduced to classes: what the flow network is built from."""

    type_drivers: list[list[int]]  # type -> indices into the request's driver list
    class_types: list[np.ndarray]  # class -> eligible type indices
    group_class: np.ndarray  # (class, tier) group -> class
    group_tier: np.ndarray  # group -> tier value (2*express + perishable)
    group_packages: list[np.ndarray]  # group -> package indices, in manifest order
    type_eligible_count: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def _rule_table(drivers: Sequence[Driver]) -> tuple[list[tuple], dict[tuple, int]]:
    keys: dict[tuple, int] = {}
    rules: list[tuple] = []
    for driver in drivers:
        for rule in driver.rules:
            key = rule.key()
            if key not in keys:
                keys[key] = len(rules)
                rules.append((rule.code, rule.params))
    return rules, keys


def _atom_codes(packages: PackageColumns, rules: list[tuple], candidates: np.ndarray) -> np.ndarray:
    """Per candidate package, its rule outcomes packed into uint64 words (one row each)."""
    words = max(1, (len(rules) + 63) // 64)
    codes = np.zeros((len(candidates), words), dtype=np.uint64)
    for r, (code, params) in enumerate(rules):
        mask = np.asarray(PREDICATES[code](packages, params), dtype=bool)[candidates]
        codes[:, r // 64] |= mask.astype(np.uint64) << np.uint64(r % 64)
    return codes


def _type_needs(
    drivers: Sequence[Driver], active: Sequence[int], keys: dict[tuple, int], words: int
) -> tuple[list[list[int]], np.ndarray]:
    """Group active drivers by rule set; each type's required rule bits, one row per type."""
    by_rule_set: dict[tuple, list[int]] = {}
    for i in active:
        by_rule_set.setdefault(drivers[i].rule_set_key(), []).append(i)
    type_drivers = list(by_rule_set.values())
    needs = np.zeros((len(type_drivers), words), dtype=np.uint64)
    for t, members in enumerate(type_drivers):
        for rule in drivers[members[0]].rules:
            r = keys[rule.key()]
            needs[t, r // 64] |= np.uint64(1) << np.uint64(r % 64)
    return type_drivers, needs


def compress(
    packages: PackageColumns,
    drivers: Sequence[Driver],
    active: Sequence[int],
    available: np.ndarray,
) -> _Compressed:
    rules, keys = _rule_table([drivers[i] for i in active])
    candidates = np.flatnonzero(available)
    words = max(1, (len(rules) + 63) // 64)
    type_drivers, needs = _type_needs(drivers, active, keys, words)
    tier = (packages.is_express[candidates].astype(np.uint64) << np.uint64(1)) | packages.is_perishable[
        candidates
    ].astype(np.uint64)
    codes = _atom_codes(packages, rules, candidates)
    keyed = np.concatenate([codes, tier[:, None]], axis=1)
    atoms, atom_of = np.unique(keyed, axis=0, return_inverse=True)
    atom_of = atom_of.reshape(-1)
    atom_codes, atom_tier = atoms[:, :-1], atoms[:, -1]

    # eligible[a, t]: the atom satisfies every rule of type t
    eligible = np.ones((len(atoms), len(type_drivers)), dtype=bool)
    for w in range(words):
        eligible &= (atom_codes[:, w : w + 1] & needs[None, :, w]) == needs[None, :, w]

    classes, class_of_atom = np.unique(eligible, axis=0, return_inverse=True)
    class_of_atom = class_of_atom.reshape(-1)
    usable_class = classes.any(axis=1)

    group_key = class_of_atom.astype(np.int64) * 4 + atom_tier.astype(np.int64)
    package_group = group_key[atom_of]
    keep = usable_class[class_of_atom[atom_of]]
    package_group, kept = package_group[keep], candidates[keep]
    order = np.argsort(package_group, kind="stable")
    sorted_groups = package_group[order]
    group_ids, starts = np.unique(sorted_groups, return_index=True)
    bounds = list(starts[1:]) + [len(sorted_groups)]
    group_packages = [kept[order[s:e]] for s, e in zip(starts, bounds)]

    class_types = [np.flatnonzero(row) for row in classes]
    counts_per_class = np.bincount(group_ids // 4, weights=[len(g) for g in group_packages], minlength=len(classes))
    type_eligible = (classes.T.astype(np.int64) @ counts_per_class.astype(np.int64)) if len(classes) else np.zeros(
        len(type_drivers), dtype=np.int64
    )
    return _Compressed(
        type_drivers=type_drivers,
        class_types=class_types,
        group_class=(group_ids // 4).astype(np.int64),
        group_tier=(group_ids % 4).astype(np.int64),
        group_packages=group_packages,
        type_eligible_count=type_eligible,
    )


def _tier_costs(max_load: int) -> np.ndarray:
    """Per tier (2*express + perishable), a cost that ranks tiers before any load balancing.

    A cycle in the residual network changes the balancing cost by at most ``2 * max_load`` per
    unit, so weights above that make the priority lexicographic.
    """
    perishable = 2 * max_load + 1
    express = 2 * perishable + 2 * max_load + 1
    worth = np.array([0, perishable, express, express + perishable], dtype=np.int64)
    return worth.max() - worth


def match(
    packages: PackageColumns,
    drivers: Sequence[Driver],
    max_per_driver: int,
    held_counts: Mapping[str, int] | None = None,
    held: np.ndarray | None = None,
) -> MatchResult:
    """Assign the day's free packages to ``drivers``; see the module docstring for the objective.

    ``held_counts`` is how many packages each driver already holds for the day; ``held`` marks
    packages held by anyone (they are not offered again).
    """
    held_counts = held_counts or {}
    available = np.ones(len(packages), dtype=bool) if held is None else ~held
    remaining = [max(0, max_per_driver - held_counts.get(d.driver_id, 0)) for d in drivers]
    active = [i for i, r in enumerate(remaining) if r > 0]
    empty = {d.driver_id: [] for d in drivers}
    if not active or not available.any():
        return MatchResult(empty)

    comp = compress(packages, drivers, active, available)
    if not comp.group_packages:
        return MatchResult(empty, eligible_types=len(comp.type_drivers))

    flow, arcs, n = _solve(comp, drivers, remaining, held_counts, max_per_driver)
    assignments = _decompose(comp, drivers, flow, arcs, n)
    return MatchResult(
        {d.driver_id: assignments.get(i, []) for i, d in enumerate(drivers)},
        eligible_types=len(comp.type_drivers),
        classes=len(comp.class_types),
        arcs=len(arcs["tail"]),
    )


def _solve(comp: _Compressed, drivers, remaining, held_counts, max_per_driver):
    n_groups, n_classes, n_types = len(comp.group_packages), len(comp.class_types), len(comp.type_drivers)
    source, sink = 0, 1
    group0 = 2
    class0 = group0 + n_groups
    type0 = class0 + n_classes
    driver0 = type0 + n_types
    tail: list[np.ndarray] = []
    head: list[np.ndarray] = []
    cap: list[np.ndarray] = []
    cost: list[np.ndarray] = []

    def add(t, h, c, w):
        tail.append(np.asarray(t, dtype=np.int32))
        head.append(np.asarray(h, dtype=np.int32))
        cap.append(np.asarray(c, dtype=np.int64))
        cost.append(np.asarray(w, dtype=np.int64))

    sizes = np.array([len(g) for g in comp.group_packages], dtype=np.int64)
    total = int(sizes.sum())
    add(np.full(n_groups, source), group0 + np.arange(n_groups), sizes, _tier_costs(max_per_driver)[comp.group_tier])
    add(group0 + np.arange(n_groups), class0 + comp.group_class, sizes, np.zeros(n_groups))
    for c, types in enumerate(comp.class_types):
        add(np.full(len(types), class0 + c), type0 + types, np.full(len(types), total), np.zeros(len(types)))

    driver_index: list[int] = []
    for t, members in enumerate(comp.type_drivers):
        for i in members:
            driver_index.append(i)
            node = driver0 + len(driver_index) - 1
            add([type0 + t], [node], [total], [0])
            held = held_counts.get(drivers[i].driver_id, 0)
            steps = int(min(remaining[i], comp.type_eligible_count[t]))
            add(np.full(steps, node), np.full(steps, sink), np.ones(steps), held + 1 + np.arange(steps))

    arcs = {
        "tail": np.concatenate(tail),
        "head": np.concatenate(head),
        "cap": np.concatenate(cap),
        "cost": np.concatenate(cost),
    }
    solver = min_cost_flow.SimpleMinCostFlow()
    solver.add_arcs_with_capacity_and_unit_cost(arcs["tail"], arcs["head"], arcs["cap"], arcs["cost"])
    solver.set_node_supply(source, total)
    solver.set_node_supply(sink, -total)
    status = solver.solve_max_flow_with_min_cost()
    if status != solver.OPTIMAL:
        raise RuntimeError(f"min-cost flow failed with status {status}")
    flow = solver.flows(np.arange(len(arcs["tail"])))
    layout = {"group0": group0, "class0": class0, "type0": type0, "driver0": driver0, "drivers": driver_index}
    return flow, arcs, layout


def _decompose(comp: _Compressed, drivers, flow, arcs, n) -> dict[int, list[int]]:
    """Turn class-level flows into concrete packages, deterministically (manifest order)."""
    tail, head = arcs["tail"], arcs["head"]
    used = flow > 0
    group0, class0, type0, driver0 = n["group0"], n["class0"], n["type0"], n["driver0"]
    n_groups = len(comp.group_packages)

    class_pool: dict[int, list[np.ndarray]] = defaultdict(list)
    source_arcs = np.flatnonzero(used[:n_groups])
    for a in source_arcs:
        g = int(head[a]) - group0
        class_pool[int(comp.group_class[g])].append(comp.group_packages[g][: int(flow[a])])

    type_pool: dict[int, list[np.ndarray]] = defaultdict(list)
    driver_take: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for a in np.flatnonzero(used):
        t_node, h_node = int(tail[a]), int(head[a])
        if class0 <= t_node < type0 and type0 <= h_node < driver0:
            type_pool[h_node - type0].append((t_node - class0, int(flow[a])))
        elif type0 <= t_node < driver0 and h_node >= driver0:
            driver_take[t_node - type0].append((n["drivers"][h_node - driver0], int(flow[a])))

    class_cursor: dict[int, np.ndarray] = {c: np.concatenate(p) for c, p in class_pool.items()}
    class_offset: Counter = Counter()
    result: dict[int, list[int]] = {}
    for t in sorted(driver_take):
        received = []
        for c, amount in sorted(type_pool[t]):
            start = class_offset[c]
            received.append(class_cursor[c][start : start + amount])
            class_offset[c] += amount
        pool = np.concatenate(received) if received else np.zeros(0, dtype=np.int64)
        offset = 0
        for driver_i, amount in sorted(driver_take[t]):
            result[driver_i] = sorted(int(x) for x in pool[offset : offset + amount])
            offset += amount
    return result


def greedy_first_fit(
    packages: PackageColumns, drivers: Sequence[Driver], max_per_driver: int
) -> dict[str, list[int]]:
    """The naive baseline: each package, in order, to the first eligible driver with room."""
    from depot.eligibility import RuleMasks

    masks = RuleMasks(packages)
    eligible = [masks.driver_mask(d) for d in drivers]
    load = [0] * len(drivers)
    out: dict[str, list[int]] = {d.driver_id: [] for d in drivers}
    for p in range(len(packages)):
        for i, d in enumerate(drivers):
            if load[i] < max_per_driver and eligible[i][p]:
                out[d.driver_id].append(p)
                load[i] += 1
                break
    return out
