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

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain

import numpy as np
from ortools.graph.python import max_flow

from depot.core.classes import Compressed, classify, compress, order_types, unpack
from depot.core.models import Driver, gc_paused
from depot.core.networks import class_arcs, staircase_arcs
from depot.core.rules import PackageColumns

RESIDUAL_CHECK_ARCS = 20_000  # sub-networks from which a failed leaf's flow is checked for reuse


@dataclass(frozen=True)
class MatchResult:
    """New assignments by driver id, as package indices into ``PackageColumns``."""

    assignments: dict[str, list[int]]
    eligible_types: int = 0
    classes: int = 0
    arcs: int = 0
    # which class -> type network was solved: "maximal", "direct" or "staircase"
    representation: str = ""
    flows: int = 0  # maximum-flow solves
    seconds: dict[str, float] = field(default_factory=dict)  # per stage (classify, network, ...)

    @property
    def assigned(self) -> int:
        return sum(len(v) for v in self.assignments.values())


def match(
    packages: PackageColumns,
    drivers: Sequence[Driver],
    max_per_driver: int,
    held_counts: Mapping[str, int] | None = None,
    held: np.ndarray | None = None,
) -> MatchResult:
    """Assign the day's free packages to ``drivers``; see the module docstring for the objective.

    ``held_counts`` is how many packages each driver already holds for the day; ``held`` marks
    packages held by anyone (they are not offered again). The cyclic collector is paused: the
    decomposition allocates tens of thousands of small lists and tuples, none in cycles, and
    each collection they trigger walks the whole heap (the day's records included).
    """
    with gc_paused():
        return _match(packages, drivers, max_per_driver, held_counts, held)


def _match(
    packages: PackageColumns,
    drivers: Sequence[Driver],
    max_per_driver: int,
    held_counts: Mapping[str, int] | None,
    held: np.ndarray | None,
) -> MatchResult:
    held_counts = held_counts or {}
    available = np.ones(len(packages), dtype=bool) if held is None else ~held
    remaining = [max(0, max_per_driver - held_counts.get(d.driver_id, 0)) for d in drivers]
    active = [i for i, r in enumerate(remaining) if r > 0]
    empty: dict[str, list[int]] = {d.driver_id: [] for d in drivers}
    if not active or not available.any():
        return MatchResult(empty)

    clock = _Clock()
    comp = compress(packages, drivers, active, available)
    clock.lap("classify")
    if not len(comp.grouped):
        return MatchResult(empty, eligible_types=len(comp.type_drivers), seconds=clock.laps)

    net = _Network(comp, drivers, remaining, held_counts, max_per_driver)
    clock.lap("network")
    flow = net.solve()
    clock.lap("flow")
    assignments = net.decompose(flow)
    clock.lap("decompose")
    return MatchResult(
        {d.driver_id: assignments.get(i, []) for i, d in enumerate(drivers)},
        eligible_types=len(comp.type_drivers),
        classes=comp.n_classes,
        arcs=len(net.tail),
        representation=net.representation,
        flows=net.flow_solves,
        seconds=clock.laps,
    )


class _Clock:
    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = now - self.last
        self.last = now


class _Network:
    """``source -> tier -> class -> types (-> less demanding types) -> sink``, one sink arc per
    *bucket* (the drivers of one type holding the same number already), no costs: every stage is
    an OR-Tools maximum flow (see ``solve``)."""

    def __init__(self, comp: Compressed, drivers, remaining, held_counts, max_per_driver):
        self.comp = comp
        self.max_per_driver = max_per_driver
        n_groups, n_classes = len(comp.group_start) - 1, comp.n_classes
        self.source, self.sink = 0, 1
        self.tier0 = 2
        self.class0 = self.tier0 + 4
        self.type0 = self.class0 + n_classes
        n_types = len(comp.type_drivers)
        self.n_nodes = self.type0 + n_types
        sizes = comp.group_sizes
        self.total = total = int(sizes.sum())
        self.tier_sizes = np.bincount(comp.group_tier, weights=sizes, minlength=4).astype(np.int64)

        class_sizes = np.bincount(comp.group_class, weights=sizes, minlength=n_classes).astype(
            np.int64
        )
        stair = staircase_arcs(comp, class_sizes)
        if stair is not None:
            c_idx, t_idx, type_eligible = stair.c_idx, stair.t_idx, stair.offered
            sub_tail, sub_head = stair.sub_tail, stair.sub_head
            self.representation = "staircase"
            self.n_nodes += stair.n_local
            self.node_order = stair.order
        else:
            if not comp.types.ordered:
                order_types(comp.types)
            c_idx, t_idx, type_eligible, nested = class_arcs(comp, class_sizes)
            sub_tail = comp.types.hasse_tail if nested else np.zeros(0, np.int64)
            sub_head = comp.types.hasse_head if nested else np.zeros(0, np.int64)
            self.representation = "maximal" if nested else "direct"
            self.node_order = comp.types.order

        # buckets: per type, per number already held; one arc into the sink each
        self.group_arc0 = 4
        self.class_arc0 = 4 + n_groups
        self.sub_arc0 = self.class_arc0 + len(c_idx)
        self.bucket_arc0 = self.sub_arc0 + len(sub_tail)
        self.buckets: list[list[tuple[int, list[int], int]]] = []  # type -> (held, drivers, arc)
        b_type: list[int] = []
        b_held: list[int] = []
        b_count: list[int] = []
        b_room: list[int] = []
        for t, members in enumerate(comp.type_drivers):
            by_held: dict[int, list[int]] = {}
            for i in members:
                by_held.setdefault(held_counts.get(drivers[i].driver_id, 0), []).append(i)
            rows = []
            for h in sorted(by_held):
                ids = by_held[h]
                rows.append((h, ids, self.bucket_arc0 + len(b_type)))
                b_type.append(t)
                b_held.append(h)
                b_count.append(len(ids))
                # a driver never takes more than its type is offered: a tighter, equivalent cap
                b_room.append(min(remaining[ids[0]], int(type_eligible[t])))
            self.buckets.append(rows)
        self.b_held = np.array(b_held, dtype=np.int64)
        self.b_count = np.array(b_count, dtype=np.int64)
        self.b_room = np.array(b_room, dtype=np.int64)
        n_b = len(b_type)
        self.c_idx, self.t_idx = c_idx.astype(np.int32), t_idx.astype(np.int32)  # kept: 4 B an arc
        self.sub_tail, self.sub_head = sub_tail, sub_head
        self.tail = np.concatenate(
            [
                np.full(4, self.source),
                self.tier0 + comp.group_tier,
                self.class0 + c_idx,
                self.type0 + sub_tail,
                self.type0 + np.array(b_type, dtype=np.int64),
            ]
        ).astype(np.int32)
        self.head = np.concatenate(
            [
                self.tier0 + np.arange(4),
                self.class0 + comp.group_class,
                self.type0 + t_idx,
                self.type0 + sub_head,
                np.full(n_b, self.sink),
            ]
        ).astype(np.int32)
        self.cap = np.concatenate(
            [
                self.tier_sizes,
                sizes,
                np.full(len(c_idx) + len(sub_tail), total + 1),
                self.b_count * self.b_room,
            ]
        ).astype(np.int64)
        self.flow_solves = 0

    def _flows(self, solver, n: int) -> np.ndarray:
        return solver.flows(np.arange(n, dtype=np.int64))

    def level_caps(self, level: int, buckets: np.ndarray) -> np.ndarray:
        """Per bucket, what its drivers may hold in all when no driver ends above ``level``."""
        return self.b_count[buckets] * np.clip(
            level - self.b_held[buckets], 0, self.b_room[buckets]
        )

    def least_level(self, first: int, last: int, buckets: np.ndarray, total: int) -> int:
        """The least level in ``first..last - 1`` whose caps hold ``total``, else ``last``: a
        binary search (the caps grow with the level; a level is one pass over the buckets)."""
        below, above = first, max(first, last)
        while below < above:
            mid = (below + above) // 2
            if int(self.level_caps(mid, buckets).sum()) >= total:
                above = mid
            else:
                below = mid + 1
        return below

    def _max_flow(self, tail, head, cap, sink=1):
        solver = max_flow.SimpleMaxFlow()
        solver.add_arcs_with_capacity(tail, head, cap)
        status = solver.solve(self.source, sink)
        self.flow_solves += 1
        if status != solver.OPTIMAL:
            raise RuntimeError(f"max flow failed with status {status}")
        return solver

    def priority_caps(self) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
        """How many packages of each tier an optimal answer takes, and, when not every package
        fits, the count flow's minimal cut (source side, flow per arc) for ``solve``.

        The sets of packages that can be assigned together are the independent sets of a
        (transversal) matroid, so the greedy order - express and perishable, express, perishable,
        the rest - gives the lexicographic optimum: tier counts are differences of the ranks of
        the nested unions of tiers, each rank a maximum flow with only those tiers' sources open.

        Those flows need only the *contested part*: the source side S of the count flow's
        minimal cut. Every maximum flow saturates the arcs leaving S (the groups of the classes
        beyond it, the sink arcs of its types) and sends nothing back; a class of S reaches only
        types of S (its arcs are uncapacitated, so none crosses a finite cut). So the classes
        beyond S are taken whole in every answer, and a union of tiers' rank is its packages
        beyond S plus the maximum flow of S with only those tiers open. S is where drivers are
        short: often a few hundred of a day's arcs (docs/design.md).
        """
        solver = self._max_flow(self.tail, self.head, self.cap)
        best = int(solver.optimal_flow())
        if best == self.total:
            return self.tier_sizes.copy(), None
        cut = solver.get_source_side_min_cut(), self._flows(solver, len(self.tail))
        side = np.zeros(self.n_nodes + 1, dtype=bool)
        side[cut[0]] = True
        contested = side[self.tail] & (side[self.head] | (self.head == self.sink))
        comp, sizes = self.comp, self.comp.group_sizes
        beyond = ~side[self.class0 + comp.group_class]
        taken_whole = np.bincount(comp.group_tier[beyond], weights=sizes[beyond], minlength=4)
        taken_whole = taken_whole.astype(np.int64)
        s_sizes = self.tier_sizes - taken_whole
        class_tier = np.zeros((comp.n_classes, 4), dtype=bool)
        class_tier[comp.group_class[~beyond], comp.group_tier[~beyond]] = True
        group_arcs = slice(self.group_arc0, self.class_arc0)
        class_arcs = slice(self.class_arc0, self.sub_arc0)

        def nonempty(tiers: tuple[int, ...]) -> tuple[int, ...]:
            return tuple(t for t in tiers if s_sizes[t] > 0)

        known: dict[tuple[int, ...], int] = {
            (): 0,
            nonempty((3, 2, 1, 0)): best - int(taken_whole.sum()),
        }

        def rank(open_tiers: tuple[int, ...]) -> int:
            """The most packages of these tiers S can take: a maximum flow on the part of S they
            reach. A flow that takes every S package of some of the higher tiers proves their
            ranks too (they cannot exceed their sizes)."""
            open_tiers = nonempty(open_tiers)
            if open_tiers in known:
                return known[open_tiers]
            is_open = np.zeros(4, dtype=bool)
            is_open[list(open_tiers)] = True
            mask = contested.copy()
            mask[:4] &= is_open
            mask[group_arcs] &= is_open[comp.group_tier]
            offered = np.asarray(class_tier[:, is_open].any(axis=1))
            mask[class_arcs] &= offered[self.c_idx]
            arcs = np.flatnonzero(mask)
            cap = self.cap[arcs]
            n_sources = int(np.count_nonzero(arcs < 4))  # the source arcs come first
            cap[:n_sources] = s_sizes[arcs[:n_sources]]
            solver = self._max_flow(self.tail[arcs], self.head[arcs], cap)
            taken = np.zeros(4, dtype=np.int64)
            taken[arcs[:n_sources]] = self._flows(solver, n_sources)
            for k in (1, 2, 3):  # the unions of the k highest tiers: (3,), (3, 2), (3, 2, 1)
                top = (3, 2, 1)[:k]
                if set(top) <= set(open_tiers) and all(taken[t] == s_sizes[t] for t in top):
                    known.setdefault(nonempty(top), int(s_sizes[list(top)].sum()))
            known[open_tiers] = int(solver.optimal_flow())
            return known[open_tiers]

        caps = np.zeros(4, dtype=np.int64)
        ranks = {}
        for k in (3, 2, 1):  # widest union first: its flow may settle the narrower ones
            ranks[k] = rank((3, 2, 1)[:k])
        taken = 0
        for k, t in ((1, 3), (2, 2), (3, 1)):
            caps[t] = taken_whole[t] + ranks[k] - taken
            taken = ranks[k]
        caps[0] = best - int(caps[1:].sum())
        return caps, cut

    def solve(self) -> np.ndarray:
        """Per arc, the flow of an optimal answer.

        Balance, exactly: the least sum of squared loads among the answers with the optimal tier
        counts. Those answers' load vectors are the bases of a polymatroid; the least sum of squares
        is the *water-filling* one, which maximises ``sum_i min(load_i, L)`` for every level ``L``
        at once (``sum load^2`` is a positive combination of ``total - sum_i min(load_i, L)``).
        Capping every driver at level ``L`` and taking a maximum flow, the drivers on the sink side
        of the minimal cut are final (no later augmenting path reaches them) and end at or below
        ``L``, the others at or above it; the two sides are independent sub-networks (the only
        arcs crossing from source side to sink side are saturated group arcs, those back carry
        nothing). So each sub-problem is split again at its own level (the least level whose
        caps could hold its total), until its drivers' loads are known to within one; that last
        flow, with lower bounds, is any maximum flow between the two level caps.
        """
        flow = np.zeros(len(self.tail), dtype=np.int64)
        cap = self.cap.copy()
        cap[:4], count_cut = self.priority_caps()
        best = int(cap[:4].sum())
        if best == 0:
            return flow
        gid = np.arange(len(self.tail), dtype=np.int64)
        # (arcs, capacities, global arc ids, level bounds, total, whether to try the last flow
        # first: not on the whole, which is seldom one block, and a leaf's flow is the dearer)
        whole = (self.tail, self.head, cap, gid, 0, self.max_per_driver, best, False)
        if count_cut is None:
            stack = [whole]
        else:  # the contested part's drivers all end at their caps; the rest is balanced alone
            contested, rest = self._split(flow, whole, self.max_per_driver, cap, count_cut)
            stack = [contested, rest[:-1] + (False,)]
            del contested, rest, count_cut
        del whole, cap, gid  # the sub-problems hold what they need (a day's memory is in them)
        while stack:
            problem = stack.pop()
            tail, head, cap, gid, lo, hi, total, hopeful = problem
            is_bucket = gid >= self.bucket_arc0  # the sink arcs come last (re-rooted groups: -1)
            buckets = gid[is_bucket] - self.bucket_arc0
            if total == 0:
                continue
            low, high = self.level_caps(lo, buckets), self.level_caps(hi, buckets)
            if hi - lo <= 1 or int(low.sum()) == total or int(high.sum()) == total:
                if int(high.sum()) == total:
                    low = high
                elif int(low.sum()) == total:
                    high = low
                if self._leaf(flow, tail, head, cap, gid, is_bucket, low, high, total) is not True:
                    raise RuntimeError("the balanced flow does not route every package")
                continue
            level = self.least_level(lo + 1, hi - 1, buckets, total)
            at_level = self.level_caps(level, buckets)
            holds = int(at_level.sum()) >= total
            sub_cap = cap.copy()
            sub_cap[is_bucket] = at_level
            cut = None
            if hopeful and level - 1 >= lo and holds:
                # a sub-problem is often one block: every load within one of the least level
                # that can hold its total; if a flow between those two levels routes it, it is
                # optimal (every truncated sum is at its maximum)
                low, high = self.level_caps(level - 1, buckets), at_level
                leaf = self._leaf(flow, tail, head, cap, gid, is_bucket, low, high, total)
                if leaf is True:
                    continue
                cut = leaf  # the failed leaf's flow, when it is also a maximum flow at ``level``
            elif hopeful and not holds:
                # only ``hi`` holds the total: every load is at most ``hi`` and some are ``hi``;
                # when the rest can all be at ``hi - 1`` that is the answer, one flow instead of
                # a level flow that would put them all on its source side (and then this one).
                # A failed try is no maximum flow at ``hi - 1``: its flow is lost.
                low, high = self.level_caps(hi - 1, buckets), self.level_caps(hi, buckets)
                if self._leaf(flow, tail, head, cap, gid, is_bucket, low, high, total) is True:
                    continue
            if cut is None:
                solver = self._max_flow(tail, head, sub_cap)
                reached = int(solver.optimal_flow())
                if reached == total:  # nobody needs to end above ``level``
                    stack.append((tail, head, cap, gid, lo, level, total, not hopeful))
                    continue
                cut = solver.get_source_side_min_cut(), self._flows(solver, len(tail))
            stack.extend(self._split(flow, problem, level, sub_cap, cut))
        return flow

    def _split(self, flow, problem, level, sub_cap, cut):
        """A sub-problem cut in two by a maximum flow at ``level`` (``sub_cap``, its capacities
        then): ``cut`` is that flow's (source side of the minimal cut, flow per arc). The arcs
        crossing the cut are saturated source or group arcs (their flow is final, and each group
        becomes a source arc of the sink side); those back carry nothing. Returns the source
        side's sub-problem (its drivers at or above ``level``), then the sink side's."""
        tail, head, cap, gid, lo, hi, total, _hopeful = problem
        source_side, arc_flow = cut
        side = np.zeros(self.n_nodes + 1, dtype=bool)
        side[source_side] = True
        in_s, to_s = side[tail], side[head]
        to_sink = head == self.sink
        s_arcs = in_s & (to_s | to_sink)
        t_arcs = ~in_s & ~to_s  # an arc back into the source side is a dead end there
        crossing = np.flatnonzero(in_s & ~to_s & ~to_sink)  # saturated: source or group arcs
        if np.any(arc_flow[crossing] != sub_cap[crossing]):
            raise RuntimeError("a cut arc is not saturated")
        from_source = crossing[tail[crossing] == self.source]
        groups = crossing[tail[crossing] != self.source]
        # the sink side: its own sources, and a source arc for each group cut off from its tier
        t_idx = np.concatenate([np.flatnonzero(t_arcs), from_source, groups])
        t_tail = tail[t_idx]
        t_tail[len(t_idx) - len(groups) :] = self.source
        t_gid = gid[t_idx]
        t_gid[len(t_idx) - len(groups) :] = -1
        flow[gid[groups]] += cap[groups]
        # the source side: each tier gives up what it sends across
        s_idx = np.flatnonzero(s_arcs)
        s_cap = cap[s_idx].copy()
        if len(groups):
            sent = np.bincount(tail[groups], weights=cap[groups], minlength=self.n_nodes).astype(
                np.int64
            )
            tier_arcs = np.flatnonzero((tail[s_idx] == self.source) & (sent[head[s_idx]] > 0))
            s_cap[tier_arcs] -= sent[head[s_idx][tier_arcs]]
            flow[gid[s_idx][tier_arcs]] += sent[head[s_idx][tier_arcs]]
        t_total = int(arc_flow[t_arcs & to_sink].sum())
        return [
            (tail[s_idx], head[s_idx], s_cap, gid[s_idx], level, hi, total - t_total, True),
            (t_tail, head[t_idx], cap[t_idx], t_gid, lo, level, t_total, True),
        ]

    def _leaf(self, flow, tail, head, cap, gid, is_bucket, low, high, total):
        """A maximum flow with every bucket between ``low`` and ``high``, of value ``total``:
        each bucket arc splits into one of capacity ``low`` to a new sink and one of
        ``high - low`` to the old sink, which passes ``total - sum(low)`` on to the new one; a
        flow of value ``total`` saturates every arc into the new sink.

        ``True`` when it routes ``total`` (its flow is added to ``flow``). Otherwise its flow,
        the two sinks merged, is a flow of the network with every bucket capped at ``high``;
        when it is a maximum flow there, the answer is ``(source side of the minimal cut, flow
        per arc)``, so the caller need not solve that network again. It is one when the old
        sink's arc to the new one is not saturated (the leaf's residual source side then holds
        neither sink and is a cut of the same capacity), or else when the merged network's
        residual graph does not reach the sink. ``None`` when it is not."""
        end = self.n_nodes
        b_arcs = np.flatnonzero(is_bucket)
        leaf_cap = cap.copy()
        leaf_cap[b_arcs] = high - low
        x_tail = np.concatenate([tail, tail[b_arcs], np.array([self.sink], dtype=tail.dtype)])
        x_head = np.concatenate([head, np.full(len(b_arcs) + 1, end, dtype=head.dtype)])
        spill = total - int(low.sum())
        x_cap = np.concatenate([leaf_cap, low, np.array([spill], dtype=np.int64)])
        solver = self._max_flow(x_tail, x_head, x_cap, sink=end)
        arc_flow = self._flows(solver, len(x_tail))
        sub = arc_flow[: len(tail)]
        sub[b_arcs] += arc_flow[len(tail) : len(tail) + len(b_arcs)]
        if int(solver.optimal_flow()) != total:
            if int(arc_flow[-1]) < spill:
                return solver.get_source_side_min_cut(), sub
            if len(tail) < RESIDUAL_CHECK_ARCS:
                return None  # solving the level's flow costs no more than the check
            leaf_cap[b_arcs] = high
            reached = self._residual_reach(tail, head, leaf_cap, sub)
            return None if reached is None else (reached, sub)
        own = gid >= 0
        flow[gid[own]] += sub[own]
        return True

    def _residual_reach(self, tail, head, cap, arc_flow) -> np.ndarray | None:
        """The nodes the source reaches in the residual graph of ``arc_flow`` (arcs with room
        forwards, arcs with flow backwards), or ``None`` when the sink is among them (the flow
        is not maximum). For a maximum flow that set is the source side of the minimal cut,
        whichever maximum flow it is. SciPy is imported here, on the first sub-network large
        enough to need it: it adds ~20 MiB to a process, more than a small day's whole match."""
        from scipy.sparse import csr_array
        from scipy.sparse.csgraph import breadth_first_order

        room, used = arc_flow < cap, arc_flow > 0
        rows = np.concatenate([tail[room], head[used]])
        cols = np.concatenate([head[room], tail[used]])
        size = self.n_nodes + 1
        graph = csr_array((np.ones(len(rows), dtype=np.int32), (rows, cols)), shape=(size, size))
        reached = breadth_first_order(graph, self.source, directed=True, return_predecessors=False)
        return None if np.any(reached == self.sink) else reached

    def decompose(self, flow: np.ndarray) -> dict[int, list[int]]:
        """Turn class-level flows into concrete packages, deterministically (manifest order).

        The flow is followed node by node as (class, amount) segments; each driver ends with a
        list of (class, amount) takes, turned into packages at the end in one pass: a class
        hands out its offered packages (the first ``flow`` of each of its groups, in group
        order) in the order its takes were made."""
        comp = self.comp
        n_groups = len(comp.group_start) - 1
        group_flow = flow[self.group_arc0 : self.group_arc0 + n_groups]
        n_classes = comp.n_classes
        # the offered packages, by class (groups are numbered class-major)
        position = np.arange(len(comp.grouped)) - np.repeat(comp.group_start[:-1], comp.group_sizes)
        offered = comp.grouped[position < np.repeat(group_flow, comp.group_sizes)]
        class_start = np.zeros(n_classes + 1, dtype=np.int64)
        np.add.at(class_start, comp.group_class + 1, group_flow)
        class_start = np.cumsum(class_start)

        # what flows into each node (types, then any local nodes): (class, amount) segments
        n_nodes = self.n_nodes - self.type0
        inflow: list[list[tuple[int, int]]] = [[] for _ in range(n_nodes)]
        class_flow = flow[self.class_arc0 : self.sub_arc0]
        used = np.flatnonzero(class_flow > 0)
        for t, c, x in zip(
            self.t_idx[used].tolist(), self.c_idx[used].tolist(), class_flow[used].tolist()
        ):
            inflow[t].append((c, x))
        children: list[list[tuple[int, int]]] = [[] for _ in range(n_nodes)]
        sub_flow = flow[self.sub_arc0 : self.sub_arc0 + len(self.sub_tail)]
        used = np.flatnonzero(sub_flow > 0)
        for a, b, x in zip(
            self.sub_tail[used].tolist(), self.sub_head[used].tolist(), sub_flow[used].tolist()
        ):
            children[a].append((b, x))

        takers: list[int] = []  # per take, in the order taken: the driver, its (class, amount)s
        takes: list[list[tuple[int, int]]] = []
        n_types = len(comp.type_drivers)
        for t in self.node_order:  # every node before the nodes it feeds
            if not inflow[t]:
                continue  # nothing in, nothing out (most local nodes of a sparse day)
            segments = _Segments(inflow[t])
            take = segments.take
            for _h, ids, arc in self.buckets[t] if t < n_types else ():
                x = int(flow[arc])
                if x == 0:
                    continue
                base, extra = divmod(x, len(ids))
                for k, i in enumerate(ids):
                    n = base + (1 if k < extra else 0)
                    if n:
                        takers.append(i)
                        takes.append(take(n))
            out = children[t]
            for child, amount in out[:-1]:
                inflow[child].extend(take(amount))
            if out:  # the last one takes what is left (the flow is conserved at every node)
                last = out[-1][0]
                if inflow[last]:
                    inflow[last].extend(segments.rest())
                else:  # handed over, not copied (flow runs down long chains of local nodes)
                    inflow[last] = segments.rest()
        if not takes:
            return {}
        lengths = [len(t) for t in takes]
        pieces = np.fromiter(  # flat ints: numpy reads them far faster than tuples
            chain.from_iterable(chain.from_iterable(takes)), dtype=np.int64, count=2 * sum(lengths)
        ).reshape(-1, 2)
        drivers = np.repeat(np.array(takers, dtype=np.int64), lengths)
        return _packages_of_takes(drivers, pieces[:, 0], pieces[:, 1], offered, class_start)


def _packages_of_takes(
    drivers: np.ndarray,
    classes: np.ndarray,
    amounts: np.ndarray,
    offered: np.ndarray,
    class_start: np.ndarray,
) -> dict[int, list[int]]:
    """Each driver's packages, sorted: take ``k`` (driver, class ``c``, amount) gets the next
    ``amount`` of the class's offered packages (a cursor per class, moved in take order)."""
    order = np.argsort(classes, kind="stable")  # per class, in the order taken
    before = np.cumsum(amounts[order]) - amounts[order]  # units taken before, over all classes
    first_of_class = np.searchsorted(classes[order], classes[order])  # its class's first take
    within = before - before[first_of_class]  # the class's cursor when the take is made
    start = np.empty_like(before)
    start[order] = class_start[classes[order]] + within
    units = int(amounts.sum())
    offset = np.repeat(start - (np.cumsum(amounts) - amounts), amounts)
    packages = offered[offset + np.arange(units)]
    owner = np.repeat(drivers, amounts)
    by = np.lexsort((packages, owner))
    packages, owner = packages[by], owner[by]
    cuts = np.flatnonzero(np.diff(owner)) + 1
    starts = np.concatenate([[0], cuts]).tolist()
    ends = np.concatenate([cuts, [units]]).tolist()
    return {int(owner[s]): packages[s:e].tolist() for s, e in zip(starts, ends)}


class _Segments:
    """A queue of (class, amount) segments that hands out units in order (tuples: the collector
    untracks them, lists would all pile up for its full collections)."""

    def __init__(self, segments: list[tuple[int, int]]):
        self.segments, self.at = segments, 0

    def rest(self) -> list[tuple[int, int]]:
        """What is left; the queue is not used after this."""
        return self.segments if self.at == 0 else self.segments[self.at :]

    def take(self, amount: int) -> list[tuple[int, int]]:
        out = []
        segments = self.segments
        while amount > 0:
            c, left = segments[self.at]
            if left <= amount:
                out.append((c, left))
                amount -= left
                self.at += 1
            else:
                out.append((c, amount))
                segments[self.at] = (c, left - amount)
                amount = 0
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
    types, class_bits, class_of, _, _ = classify(
        packages, drivers, list(range(len(drivers))), candidates
    )
    eligible_drivers = []
    for row in unpack(class_bits, len(types.drivers)):
        ids = [i for t in np.flatnonzero(row).tolist() for i in types.drivers[t]]
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
