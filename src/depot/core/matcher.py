"""The matcher: an exact, deterministic assignment of packages to drivers. Pure, no I/O.

Objective, in this order (see ``docs/design.md``):

1. the largest number of packages assigned, each driver holding at most ``max_per_driver`` for
   the day (what it already holds counts) - a b-matching, solved as a maximum flow;
2. among those, the most express packages, then the most perishable ones;
3. then the most even load across the requested drivers (least sum of squared loads);
4. the same input always gives the same answer.

It is one min-cost maximum flow (OR-Tools), made small by compressing the day:

* every distinct rule is evaluated once over all packages; a package's vector of rule outcomes
  plus its priority tier (its *atom*, one integer) decides which drivers may take it;
* drivers with the same rule set form a *type*; atoms with the same set of eligible types form a
  *class*, split by priority tier (express, perishable) into *groups*;
* types are ordered by their rule sets: a package a type accepts is accepted by every type whose
  rule set is a subset, so flow that reaches a type may go on to those less demanding types
  (zero-cost arcs). A class then needs an arc only to the *maximal* types it may feed instead of
  to all of them (docs/performance.md: this is what made the network ~5x smaller);
* drivers of one type that already hold the same number of packages are interchangeable: they
  share one ladder of arcs into the sink, step ``k`` of capacity "number of such drivers" and cost
  ``held + k``; filling a ladder from the bottom is the even split, which is what makes the load
  even at the least sum of squares.

The network is ``source -> group -> class -> maximal types -> (subset types) -> sink``; its size
depends on the number of classes and types, not on the number of packages.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from ortools.graph.python import min_cost_flow

from depot.core.models import Driver
from depot.core.rules import PREDICATES, PackageColumns


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
    type_needs: list[int]  # type -> its rule set, as a bit mask over the distinct rules
    class_eligible: np.ndarray  # (classes x types) bool: the class's packages satisfy the type
    group_class: np.ndarray  # (class, tier) group -> class
    group_tier: np.ndarray  # group -> tier value (2*express + perishable)
    group_packages: list[np.ndarray]  # group -> package indices, in manifest order

    @property
    def class_types(self) -> list[np.ndarray]:
        return [np.flatnonzero(row) for row in self.class_eligible]

    @property
    def type_eligible_count(self) -> np.ndarray:
        """Per type, how many of the offered packages it may take."""
        sizes = np.array([len(g) for g in self.group_packages], dtype=np.int64)
        per_class = np.bincount(self.group_class, weights=sizes, minlength=len(self.class_eligible))
        return (self.class_eligible.T.astype(np.float64) @ per_class).round().astype(np.int64)


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


def _unique_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(rows, axis=0, return_inverse=True)``, fast: rows compared as opaque bytes."""
    rows = np.ascontiguousarray(rows)
    if rows.shape[1] == 1 and rows.dtype.itemsize == 8:
        flat = rows[:, 0]
        uniq, inverse = np.unique(flat, return_inverse=True)
        return uniq[:, None], inverse.reshape(-1)
    void = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).reshape(-1)
    _, first, inverse = np.unique(void, return_index=True, return_inverse=True)
    return rows[first], inverse.reshape(-1)


def _classify(packages: PackageColumns, drivers: Sequence[Driver], active: Sequence[int],
              candidates: np.ndarray):
    """Types of the active drivers, and for each candidate package its class and tier.

    Returns ``(type_drivers, type_needs, class_eligible, class_of, tier)`` where ``class_of`` and
    ``tier`` are per candidate and ``class_eligible`` is (classes x types).
    """
    rules, keys = _rule_table([drivers[i] for i in active])
    by_rule_set: dict[frozenset, list[int]] = {}
    for i in active:
        need = frozenset(keys[rule.key()] for rule in drivers[i].rules)
        by_rule_set.setdefault(need, []).append(i)
    type_drivers = list(by_rule_set.values())
    type_needs = [sum(1 << r for r in need) for need in by_rule_set]

    words = max(1, (len(rules) + 2 + 63) // 64)  # two more bits for the tier
    codes = np.zeros((len(candidates), words), dtype=np.uint64)
    tier = (packages.is_express[candidates].astype(np.uint64) << np.uint64(1)) | packages.is_perishable[
        candidates
    ].astype(np.uint64)
    codes[:, 0] = tier
    for r, (code, params) in enumerate(rules):
        bit = r + 2
        mask = np.asarray(PREDICATES[code](packages, params), dtype=bool)[candidates]
        codes[:, bit // 64] |= mask.astype(np.uint64) << np.uint64(bit % 64)
    atoms, atom_of = _unique_rows(codes)
    atom_tier = (atoms[:, 0] & np.uint64(3)).astype(np.int64)

    # eligible[a, t]: the atom satisfies every rule of type t
    needs = np.zeros((len(type_needs), words), dtype=np.uint64)
    for t, need in enumerate(type_needs):
        shifted = need << 2
        for w in range(words):
            needs[t, w] = (shifted >> (64 * w)) & ((1 << 64) - 1)
    eligible = np.ones((len(atoms), len(type_needs)), dtype=bool)
    for w in range(words):
        eligible &= (atoms[:, w : w + 1] & needs[None, :, w]) == needs[None, :, w]

    packed = np.packbits(eligible, axis=1) if eligible.shape[1] else np.zeros((len(atoms), 1), np.uint8)
    first, class_of_atom = _unique_rows_first(packed)
    class_eligible = eligible[first]
    return type_drivers, type_needs, class_eligible, class_of_atom[atom_of], atom_tier[atom_of]


def _unique_rows_first(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = np.ascontiguousarray(rows)
    void = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).reshape(-1)
    _, first, inverse = np.unique(void, return_index=True, return_inverse=True)
    return first, inverse.reshape(-1)


def compress(
    packages: PackageColumns,
    drivers: Sequence[Driver],
    active: Sequence[int],
    available: np.ndarray,
) -> _Compressed:
    candidates = np.flatnonzero(available)
    type_drivers, type_needs, class_eligible, class_of, tier = _classify(packages, drivers, active, candidates)
    usable = class_eligible.any(axis=1)
    keep = usable[class_of]
    group_key = class_of[keep].astype(np.int64) * 4 + tier[keep]
    kept = candidates[keep]
    order = np.argsort(group_key, kind="stable")
    sorted_groups = group_key[order]
    group_ids, starts = np.unique(sorted_groups, return_index=True)
    bounds = np.append(starts[1:], len(sorted_groups))
    ordered = kept[order]
    group_packages = [ordered[s:e] for s, e in zip(starts.tolist(), bounds.tolist())]
    return _Compressed(
        type_drivers=type_drivers,
        type_needs=type_needs,
        class_eligible=class_eligible,
        group_class=(group_ids // 4).astype(np.int64),
        group_tier=(group_ids % 4).astype(np.int64),
        group_packages=group_packages,
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

    net = _Network(comp, drivers, remaining, held_counts, max_per_driver)
    flow = net.solve()
    assignments = net.decompose(flow)
    return MatchResult(
        {d.driver_id: assignments.get(i, []) for i, d in enumerate(drivers)},
        eligible_types=len(comp.type_drivers),
        classes=len(comp.class_eligible),
        arcs=len(net.tail),
    )


def _supersets(needs: list[int]) -> list[list[int]]:
    """For each type, the types whose rule set strictly contains its own."""
    n = len(needs)
    if n <= 1:
        return [[] for _ in range(n)]
    if max(needs).bit_length() <= 64:
        bits = np.array(needs, dtype=np.uint64)
        contains = (bits[None, :] & bits[:, None]) == bits[:, None]  # [t, u]: u demands all t does
        np.fill_diagonal(contains, False)
        rows, cols = np.nonzero(contains)
        split = np.searchsorted(rows, np.arange(1, n))
        return [c.tolist() for c in np.split(cols, split)]
    return [[u for u in range(n) if u != t and needs[u] & needs[t] == needs[t]] for t in range(n)]


class _Network:
    """``source -> group -> class -> maximal types -> subset types -> sink ladders``."""

    def __init__(self, comp: _Compressed, drivers, remaining, held_counts, max_per_driver):
        self.comp = comp
        n_groups, n_classes, n_types = len(comp.group_packages), len(comp.class_eligible), len(comp.type_drivers)
        self.source, self.sink = 0, 1
        self.group0 = 2
        self.class0 = self.group0 + n_groups
        self.type0 = self.class0 + n_classes
        sizes = np.fromiter((len(g) for g in comp.group_packages), dtype=np.int64, count=n_groups)
        self.total = total = int(sizes.sum())

        # a type's "supersets": the types that demand strictly more (so take a subset of packages)
        needs = comp.type_needs
        order = sorted(range(n_types), key=lambda t: (-needs[t].bit_count(), t))  # parents first
        self.type_order = order
        supersets = _supersets(needs)
        eligible = comp.class_eligible
        dominated = np.zeros_like(eligible)
        eligible_t = np.ascontiguousarray(eligible.T)
        for t, sup in enumerate(supersets):
            if sup:
                dominated[:, t] = np.logical_or.reduce(eligible_t[sup], axis=0)
        maximal = eligible & ~dominated
        c_idx, t_idx = np.nonzero(maximal)

        sub_tail = [u for t, sup in enumerate(supersets) for u in sup]
        sub_head = [t for t, sup in enumerate(supersets) for _ in sup]

        # ladders into the sink: per type, per number already held
        per_class = np.bincount(comp.group_class, weights=sizes, minlength=n_classes)
        type_eligible = (eligible_t.astype(np.float64) @ per_class).round().astype(np.int64)
        self.buckets: list[list[tuple[int, list[int], int, int]]] = []  # type -> (held, drivers, first arc, steps)
        lad_tail, lad_cap, lad_cost = [], [], []
        ladder_start = 2 * n_groups + len(c_idx) + len(sub_tail)
        arc = ladder_start
        for t, members in enumerate(comp.type_drivers):
            by_held: dict[int, list[int]] = {}
            for i in members:
                by_held.setdefault(held_counts.get(drivers[i].driver_id, 0), []).append(i)
            rows = []
            for h in sorted(by_held):
                ids = by_held[h]
                m = len(ids)
                steps = int(min(remaining[ids[0]], -(-int(type_eligible[t]) // m)))
                rows.append((h, ids, arc, steps))
                lad_tail.append(np.full(steps, self.type0 + t))
                lad_cap.append(np.full(steps, m))
                lad_cost.append(h + 1 + np.arange(steps))
                arc += steps
            self.buckets.append(rows)

        g = np.arange(n_groups)
        self.class_arc0 = 2 * n_groups
        self.sub_arc0 = self.class_arc0 + len(c_idx)
        self.c_idx, self.t_idx = c_idx, t_idx
        self.sub_tail, self.sub_head = np.array(sub_tail, dtype=np.int64), np.array(sub_head, dtype=np.int64)
        n_lad = arc - ladder_start
        self.tail = np.concatenate([
            np.full(n_groups, self.source), self.group0 + g, self.class0 + c_idx,
            self.type0 + self.sub_tail, *lad_tail]).astype(np.int32)
        self.head = np.concatenate([
            self.group0 + g, self.class0 + comp.group_class, self.type0 + t_idx,
            self.type0 + self.sub_head, np.full(n_lad, self.sink)]).astype(np.int32)
        self.cap = np.concatenate([
            sizes, sizes, np.full(len(c_idx) + len(sub_tail), total), *lad_cap]).astype(np.int64)
        self.cost = np.concatenate([
            _tier_costs(max_per_driver)[comp.group_tier], np.zeros(n_groups + len(c_idx) + len(sub_tail)),
            *lad_cost]).astype(np.int64)

    def solve(self) -> np.ndarray:
        solver = min_cost_flow.SimpleMinCostFlow()
        solver.add_arcs_with_capacity_and_unit_cost(self.tail, self.head, self.cap, self.cost)
        solver.set_node_supply(self.source, self.total)
        solver.set_node_supply(self.sink, -self.total)
        status = solver.solve_max_flow_with_min_cost()
        if status != solver.OPTIMAL:
            raise RuntimeError(f"min-cost flow failed with status {status}")
        return solver.flows(np.arange(len(self.tail)))

    def decompose(self, flow: np.ndarray) -> dict[int, list[int]]:
        """Turn class-level flows into concrete packages, deterministically (manifest order)."""
        comp = self.comp
        n_groups = len(comp.group_packages)
        # each class's offered packages: the first ``flow`` of each of its groups
        class_pool: dict[int, list[np.ndarray]] = defaultdict(list)
        for g in np.flatnonzero(flow[:n_groups] > 0).tolist():
            class_pool[int(comp.group_class[g])].append(comp.group_packages[g][: int(flow[g])])
        pools = {c: np.concatenate(p) for c, p in class_pool.items()}
        cursor: dict[int, int] = defaultdict(int)

        # what flows into each type: (class, amount) segments
        inflow: list[list[list[int]]] = [[] for _ in comp.type_drivers]
        class_flow = flow[self.class_arc0 : self.sub_arc0]
        for a in np.flatnonzero(class_flow > 0).tolist():
            inflow[int(self.t_idx[a])].append([int(self.c_idx[a]), int(class_flow[a])])
        children: list[list[tuple[int, int]]] = [[] for _ in comp.type_drivers]
        sub_flow = flow[self.sub_arc0 : self.sub_arc0 + len(self.sub_tail)]
        for a in np.flatnonzero(sub_flow > 0).tolist():
            children[int(self.sub_tail[a])].append((int(self.sub_head[a]), int(sub_flow[a])))

        result: dict[int, list[int]] = {}
        for t in self.type_order:  # every type before the less demanding types it feeds
            take = _Segments(inflow[t]).take
            for h, ids, arc0, steps in self.buckets[t]:
                x = int(flow[arc0 : arc0 + steps].sum())
                if x == 0:
                    continue
                base, extra = divmod(x, len(ids))
                for k, i in enumerate(ids):
                    n = base + (1 if k < extra else 0)
                    if n == 0:
                        continue
                    picked = []
                    for c, amount in take(n):
                        s = cursor[c]
                        picked.append(pools[c][s : s + amount])
                        cursor[c] = s + amount
                    result[i] = sorted(np.concatenate(picked).tolist())
            for child, amount in children[t]:
                inflow[child].extend(take(amount))
        return result


class _Segments:
    """A queue of (class, amount) segments that hands out units in order."""

    def __init__(self, segments: list[list[int]]):
        self.segments, self.at = segments, 0

    def take(self, amount: int) -> list[list[int]]:
        out = []
        while amount > 0:
            c, left = self.segments[self.at]
            n = min(left, amount)
            out.append([c, n])
            amount -= n
            if n == left:
                self.at += 1
            else:
                self.segments[self.at][1] = left - n
        return out


def greedy_first_fit(
    packages: PackageColumns, drivers: Sequence[Driver], max_per_driver: int
) -> dict[str, list[int]]:
    """The naive baseline: each package, in order, to the first eligible driver with room.

    Same answer as the double loop over packages and drivers, computed per class: a class keeps
    a cursor into its eligible drivers (in request order) that only moves past full drivers.
    """
    out: dict[str, list[int]] = {d.driver_id: [] for d in drivers}
    if max_per_driver <= 0 or not drivers or not len(packages):
        return out
    candidates = np.arange(len(packages))
    type_drivers, _, class_eligible, class_of, _ = _classify(
        packages, drivers, list(range(len(drivers))), candidates)
    eligible_drivers = []
    for row in class_eligible:
        ids = [i for t in np.flatnonzero(row).tolist() for i in type_drivers[t]]
        eligible_drivers.append(sorted(ids))
    cursor = [0] * len(eligible_drivers)
    load = [0] * len(drivers)
    taken: list[list[int]] = [[] for _ in drivers]
    for p, c in enumerate(class_of.tolist()):
        ids, k = eligible_drivers[c], cursor[c]
        while k < len(ids) and load[ids[k]] >= max_per_driver:
            k += 1
        cursor[c] = k
        if k < len(ids):
            i = ids[k]
            taken[i].append(p)
            load[i] += 1
    for i, d in enumerate(drivers):
        out[d.driver_id] = taken[i]
    return out
