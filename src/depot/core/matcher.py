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

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from ortools.graph.python import max_flow

from depot.core.models import Driver, gc_paused
from depot.core.rules import PackageColumns, column_coordinates


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


STAIRCASE_CLASSES_PER_CONTEXT = 8  # classes per context below which the staircase is not tried
CHUNK_CELLS = 1 << 24  # classes x types handled at once when listing arcs (bounds memory)


@dataclass
class _Types:
    """The requested drivers reduced to *types*: distinct acceptance boxes over the day's cells."""

    drivers: list[list[int]]  # type -> indices into the request's driver list, in request order
    accepts: list[np.ndarray]  # per cut column: (types x cells) bool
    order: list[int]  # types, every one before the less demanding types it may feed
    hasse_tail: np.ndarray  # a -> b: a accepts a strict subset of what b accepts, nothing between
    hasse_head: np.ndarray
    ordered: bool = False  # whether ``order`` and the Hasse arcs are filled in


@dataclass
class _Compressed:
    """The day reduced to classes: what the flow network is built from."""

    types: _Types
    class_bits: np.ndarray  # (classes x words) uint64: the class's eligible types, as bits
    group_class: np.ndarray  # (class, tier) group -> class
    group_tier: np.ndarray  # group -> tier value (2*express + perishable)
    grouped: np.ndarray  # the candidate packages by group, in manifest order within a group
    group_start: np.ndarray  # group -> its first position in ``grouped`` (and the end, last)
    # per cut column, each class's cell for one of its atoms (they all have the same types)
    class_cells: list[np.ndarray] = field(default_factory=list)

    @property
    def type_drivers(self) -> list[list[int]]:
        return self.types.drivers

    @property
    def group_sizes(self) -> np.ndarray:
        return np.diff(self.group_start)

    def class_eligible(self, classes: slice | None = None) -> np.ndarray:
        """(classes x types) bool, for a slice of the classes (the whole matrix may be large)."""
        bits = self.class_bits if classes is None else self.class_bits[classes]
        return _unpack(bits, len(self.types.drivers))


def _unpack(bits: np.ndarray, n: int) -> np.ndarray:
    return np.unpackbits(bits.view(np.uint8), axis=1, bitorder="little")[:, :n].astype(bool)


def _pack(matrix: np.ndarray) -> np.ndarray:
    """(rows x n) bool -> (rows x words) uint64, bit ``j`` of a row for column ``j``."""
    words = max(1, (matrix.shape[1] + 63) // 64)
    padded = np.zeros((matrix.shape[0], words * 64), dtype=bool)
    padded[:, : matrix.shape[1]] = matrix
    return np.packbits(padded, axis=1, bitorder="little").view(np.uint64)


@dataclass
class _RuleTable:
    """The distinct rules of some drivers (in order of first appearance) and each driver's rules
    as indices into them."""

    rules: list[tuple]  # (code, params)
    flat: np.ndarray  # every driver's rules in turn, as indices into ``rules``
    counts: np.ndarray  # per driver, how many of ``flat`` are its
    spelling: list  # per distinct rule, its last occurrence (a ``Rule``)

    def multiplicity(self) -> np.ndarray:
        """How many of the drivers' rules are each distinct rule."""
        return np.bincount(self.flat, minlength=len(self.rules))


_TABLES_KEPT = 4
_tables: dict[tuple[int, ...], tuple[list[Driver], _RuleTable]] = {}
_tables_lock = threading.Lock()


def _rule_table(drivers: Sequence[Driver]) -> _RuleTable:
    """The drivers' rule table, remembered for the last few lists of the same driver objects
    (``match`` and then ``explain`` on one request, or the board's reads of one version of the
    day, look up the same drivers: 100,000 rule keys are ~20 ms of hashing). The memo keeps the
    drivers alive, so their ``id`` cannot be reused while it holds them; a table is never
    modified after it is built."""
    key = tuple(map(id, drivers))
    with _tables_lock:
        hit = _tables.get(key)
    if hit is not None:
        return hit[1]
    table = _build_rule_table(drivers)
    with _tables_lock:
        _tables[key] = (list(drivers), table)
        while len(_tables) > _TABLES_KEPT:
            del _tables[next(iter(_tables))]
    return table


def _build_rule_table(drivers: Sequence[Driver]) -> _RuleTable:
    keys: dict[tuple, int] = {}
    # a new key gets the next index (``len`` is read before ``setdefault`` inserts it)
    flat_list = [keys.setdefault(k, len(keys)) for d in drivers for k in d.rule_keys]
    every = [rule for d in drivers for rule in d.rules]
    flat = np.array(flat_list, dtype=np.int64)
    counts = np.fromiter((len(d.rules) for d in drivers), dtype=np.int64, count=len(drivers))
    first = np.full(len(keys), len(flat), dtype=np.int64)
    np.minimum.at(first, flat, np.arange(len(flat)))
    last = np.zeros(len(keys), dtype=np.int64)
    np.maximum.at(last, flat, np.arange(len(flat)))
    rules = [(every[i].code, every[i].params) for i in first.tolist()]
    return _RuleTable(rules, flat, counts, [every[i] for i in last.tolist()])


def _unique_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the first occurrence of each distinct row, and each row's distinct index (the
    distinct rows numbered in order of first occurrence, so the result follows the input)."""
    rows = np.ascontiguousarray(rows)
    if rows.ndim == 1:
        key = rows
    elif rows.shape[1] == 1 and rows.dtype.itemsize == 8:
        key = rows[:, 0]
    else:
        key = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).reshape(-1)
        hashed = _row_hashes(rows)
        if hashed is not None:
            # sorting 64-bit hashes is much cheaper than sorting wide rows; rows that share a
            # hash without being equal (rare) are told apart by their bytes
            _, first, labels = np.unique(hashed, return_index=True, return_inverse=True)
            labels = labels.reshape(-1)
            clash = ~(rows == rows[first[labels]]).all(axis=1)
            if clash.any():
                tangled = np.flatnonzero(np.isin(labels, labels[clash]))
                _, apart = np.unique(key[tangled], return_inverse=True)
                labels[tangled] = len(first) + apart.reshape(-1)
            key = labels
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return _by_first_occurrence(first, inverse.reshape(-1))


def _by_first_occurrence(first: np.ndarray, inverse: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rank = np.empty(len(first), dtype=np.int64)  # renumber by first occurrence
    order = np.argsort(first, kind="stable")
    rank[order] = np.arange(len(first))
    return first[order], rank[inverse]


_HASH_WORDS = np.random.default_rng(20261202).integers(1, 2**63, size=4096, dtype=np.uint64) | 1


def _row_hashes(rows: np.ndarray) -> np.ndarray | None:
    """A 64-bit hash of each row of a wide array (``None`` when it is not made of 32-bit
    words)."""
    if rows.dtype.itemsize * rows.shape[1] % 4 or rows.shape[1] * rows.dtype.itemsize > 4 * 4096:
        return None
    # multilinear over 32-bit words with odd 64-bit multipliers, wrapping at 2**64 (over 64-bit
    # words, differences in the top bit alone would cancel out)
    return rows.view(np.uint32) @ _HASH_WORDS[: rows.shape[1] * rows.dtype.itemsize // 4]


def _types(table: _RuleTable, active: Sequence[int], coords, ordered: bool = True) -> _Types:
    """Each active driver's box (per cut column, the cells all its rules accept); equal boxes
    form one type. A type that accepts no cell of some column takes nothing and is dropped.
    ``table`` lists the rules of the active drivers, in that order; without ``ordered`` the
    subset order (``order``, the Hasse arcs) is left empty."""
    n = len(active)
    column_of = np.zeros(len(table.rules), dtype=np.int64)
    row_of = np.zeros(len(table.rules), dtype=np.int64)
    for c, col in enumerate(coords):
        column_of[col.rules] = c
        row_of[col.rules] = np.arange(len(col.rules))
    counts, flat = table.counts, table.flat
    owner = np.repeat(np.arange(n), counts)  # driver position of each (driver, rule) pair
    boxes = []
    for c, col in enumerate(coords):
        box = np.ones((n, col.accepts.shape[1]), dtype=bool)
        mine = column_of[flat] == c
        who, rows = owner[mine], row_of[flat[mine]]
        if len(who):
            firsts, starts = np.unique(who, return_index=True)  # ``who`` is sorted
            box[firsts] = np.logical_and.reduceat(col.accepts[rows], starts, axis=0)
        boxes.append(box)
    nonempty = np.ones(n, dtype=bool)
    for box in boxes:
        nonempty &= box.any(axis=1)
    keep = np.flatnonzero(nonempty)
    if coords:
        signature = np.hstack([_pack(box[keep]) for box in boxes])
        first, type_of = _unique_rows(signature)
    else:
        first, type_of = (
            np.zeros(min(1, len(keep)), dtype=np.int64),
            np.zeros(len(keep), dtype=np.int64),
        )
    members: list[list[int]] = [[] for _ in first]
    for k, t in zip(keep.tolist(), type_of.tolist()):
        members[t].append(active[k])
    accepts = [box[keep[first]] for box in boxes]
    empty = np.zeros(0, dtype=np.int64)
    types = _Types(members, accepts, [], empty, empty)
    if ordered:
        _order_types(types)
    return types


def _order_types(types: _Types) -> None:
    """Fill in the subset order of the types (``order`` and the Hasse arcs)."""
    n = len(types.drivers)
    types.hasse_tail, types.hasse_head = _hasse(types.accepts, n)
    size = sum((a.sum(axis=1) for a in types.accepts), np.zeros(n, dtype=np.int64))
    types.order = np.lexsort((np.arange(n), size)).tolist()  # a strict subset is smaller
    types.ordered = True


def _subset_matrix(accepts: list[np.ndarray], n: int) -> np.ndarray:
    """``inc[a, b]``: type ``a`` accepts a strict subset of what type ``b`` accepts."""
    inc = np.ones((n, n), dtype=bool)
    for acc in accepts:
        cells = acc.shape[1]
        if cells <= 64:
            mask = _pack(acc)[:, 0]
            inc &= (mask[:, None] & ~mask[None, :]) == 0
            continue
        lo = acc.argmax(axis=1)
        hi = cells - 1 - acc[:, ::-1].argmax(axis=1)
        if np.array_equal(acc.sum(axis=1), hi - lo + 1):  # every box is an interval of cells
            inc &= (lo[:, None] >= lo[None, :]) & (hi[:, None] <= hi[None, :])
            continue
        packed = _pack(acc)
        for a in range(n):
            inc[a] &= ((packed[a][None, :] & ~packed) == 0).all(axis=1)
    np.fill_diagonal(inc, False)  # distinct types have distinct boxes: inclusion is strict
    return inc


def _hasse(accepts: list[np.ndarray], n: int) -> tuple[np.ndarray, np.ndarray]:
    """The covering pairs of the subset order (its transitive reduction)."""
    empty = np.zeros(0, dtype=np.int64)
    if n <= 1:
        return empty, empty
    inc = _subset_matrix(accepts, n)
    if not inc.any():
        return empty, empty
    packed = _pack(inc)
    tails, heads = [], []
    for a in np.flatnonzero(inc.any(axis=1)).tolist():
        up = np.flatnonzero(inc[a])
        if len(up) > 1:
            beyond = np.bitwise_or.reduce(packed[up], axis=0)
            covered = ((beyond[up >> 6] >> (up & 63).astype(np.uint64)) & np.uint64(1)).astype(bool)
            up = up[~covered]
        tails.append(np.full(len(up), a))
        heads.append(up)
    return np.concatenate(tails).astype(np.int64), np.concatenate(heads).astype(np.int64)


def _classify(
    packages: PackageColumns,
    drivers: Sequence[Driver],
    active: Sequence[int],
    candidates: np.ndarray,
    classes: bool = True,
    cells_out: list[np.ndarray] | None = None,
    ordered: bool | None = None,
    coords_out: list | None = None,
):
    """Types of the active drivers, and for each candidate package its class and tier.

    Returns ``(types, class_bits, class_of, tier, table)``; ``class_of`` and ``tier`` are per
    candidate, ``table`` the active drivers' rules. Without ``classes`` (who may take a package,
    not how to route it: ``explain``), the "classes" are the atoms and types are not ordered.
    ``cells_out``, if given, receives per cut column each class's cell for one of its atoms;
    ``ordered`` (default: ``classes``) whether the types' subset order is computed now;
    ``coords_out``, if given, receives the cut columns (``rules.column_coordinates``).
    """
    table = _rule_table([drivers[i] for i in active])
    coords = column_coordinates(packages, table.rules, candidates)
    if coords_out is not None:
        coords_out.extend(coords)
    types = _types(table, active, coords, ordered=classes if ordered is None else ordered)
    tier = (packages.is_express[candidates].astype(np.int64) << 1) | packages.is_perishable[
        candidates
    ]
    n_types = len(types.drivers)
    if not coords:
        class_of = np.zeros(len(candidates), dtype=np.int64)
        bits = _pack(np.ones((1, n_types), dtype=bool))
        return types, bits, class_of, tier, table

    # a package's atom: its cell in every cut column, as one integer when it fits
    cells = [col.accepts.shape[1] for col in coords]
    if np.prod(np.array(cells, dtype=np.float64)) < 2.0**62:
        key = np.zeros(len(candidates), dtype=np.int64)
        for col, k in zip(coords, cells):
            key = key * k + col.coord
        atom_first, atom_of = _unique_rows(key)
    else:
        atom_first, atom_of = _unique_rows(np.column_stack([col.coord for col in coords]))

    # an atom's eligible types: the AND over columns of the types accepting its cell there,
    # (atoms x words), in place (a stack of every column's bits would be large)
    bits = _pack(types.accepts[0].T)[coords[0].coord[atom_first]]
    for col, acc in zip(coords[1:], types.accepts[1:]):
        bits &= _pack(acc.T)[col.coord[atom_first]]
    if not classes:
        return types, bits, atom_of, tier, table
    class_first, class_of_atom = _unique_rows(bits)
    if cells_out is not None:
        cells_out.extend(col.coord[atom_first[class_first]] for col in coords)
    return types, bits[class_first], class_of_atom[atom_of], tier, table


def compress(
    packages: PackageColumns,
    drivers: Sequence[Driver],
    active: Sequence[int],
    available: np.ndarray,
) -> _Compressed:
    candidates = np.flatnonzero(available)
    cells: list[np.ndarray] = []
    types, class_bits, class_of, tier, _ = _classify(
        packages, drivers, active, candidates, cells_out=cells, ordered=False
    )
    usable = class_bits.any(axis=1)
    keep = usable[class_of]
    group_key = class_of[keep].astype(np.int64) * 4 + tier[keep]
    kept = candidates[keep]
    order = np.argsort(group_key, kind="stable")
    sorted_groups = group_key[order]
    group_ids, starts = np.unique(sorted_groups, return_index=True)
    group_start = np.append(starts, len(sorted_groups)).astype(np.int64)
    return _Compressed(
        types=types,
        class_bits=class_bits,
        group_class=(group_ids // 4).astype(np.int64),
        group_tier=(group_ids % 4).astype(np.int64),
        grouped=kept[order],
        group_start=group_start,
        class_cells=cells,
    )


def _bit_positions(
    bits: np.ndarray, count: int, bitorder: str = "big"
) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of every set bit of a packed (rows x bytes) bit matrix, row-major, columns
    below ``count``: only the nonzero bytes are unpacked (the matrices here are sparse)."""
    bits = np.ascontiguousarray(bits).view(np.uint8)
    width = bits.shape[1]
    flat = bits.reshape(-1)
    nz = np.flatnonzero(flat)
    r, b = np.nonzero(np.unpackbits(flat[nz][:, None], axis=1, bitorder=bitorder))  # type: ignore[call-overload]
    pos = nz[r]
    row, col = pos // width, (pos % width) * 8 + b
    keep = col < count
    return row[keep].astype(np.int64), col[keep].astype(np.int64)


def _class_arcs(
    comp: _Compressed, class_sizes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """The class -> type arcs, and per type a bound on how many offered packages it may take.

    Two representations, chosen by their size: *direct* (an arc to every eligible type) or
    *maximal* (an arc only to the eligible types no more demanding eligible type covers, plus
    the Hasse arcs between types, which carry the flow on to the less demanding ones)."""
    types = comp.types
    n_types, n_classes = len(types.drivers), len(comp.class_bits)
    direct_arcs = int(np.bitwise_count(comp.class_bits).sum())
    per_class = [(np.zeros(0, np.int64), np.zeros(0, np.int64))]
    order = np.argsort(types.hasse_head, kind="stable")
    tails, heads = types.hasse_tail[order], types.hasse_head[order]
    if direct_arcs > len(tails):
        has_pred, starts = np.unique(heads, return_index=True)
        step = max(8, (CHUNK_CELLS // max(1, n_types, len(tails))) // 8 * 8)
        for lo in range(0, n_classes, step):
            part = slice(lo, min(n_classes, lo + step))
            eligible = comp.class_eligible(part)
            by_type = np.packbits(eligible.T, axis=1)  # (types x classes/8): type-major bits
            if len(tails):
                dominated = np.zeros_like(by_type)
                dominated[has_pred] = np.bitwise_or.reduceat(by_type[tails], starts, axis=0)
                by_type &= ~dominated
            t_idx, c_idx = _bit_positions(by_type, eligible.shape[0])
            per_class.append((c_idx + lo, t_idx))
            if sum(len(c) for c, _ in per_class) + len(tails) >= direct_arcs:
                break  # the maximal network is no smaller
        else:
            c_idx = np.concatenate([c for c, _ in per_class])
            t_idx = np.concatenate([t for _, t in per_class])
            # an upper bound of what each type is offered: its own arcs plus, along the Hasse
            # arcs, what its predecessors are offered (a class may be counted more than once)
            bound = np.bincount(t_idx, weights=class_sizes[c_idx], minlength=n_types)
            preds: list[list[int]] = [[] for _ in range(n_types)]
            for a, b in zip(types.hasse_tail.tolist(), types.hasse_head.tolist()):
                preds[b].append(a)
            for t in types.order:
                for a in preds[t]:
                    bound[t] += bound[a]
            return c_idx, t_idx, np.minimum(bound, class_sizes.sum()).astype(np.int64), True
    c_idx, t_idx = _direct_arcs(comp)
    return (
        c_idx,
        t_idx,
        np.bincount(t_idx, weights=class_sizes[c_idx], minlength=n_types).astype(np.int64),
        False,
    )


@dataclass
class _Staircase:
    """A class -> type network for prefix (threshold) columns: see ``_staircase_arcs``."""

    c_idx: np.ndarray  # class -> node (a type, or a local node numbered from ``n_types``)
    t_idx: np.ndarray
    sub_tail: np.ndarray  # node -> node
    sub_head: np.ndarray
    n_local: int
    order: list[int]  # every node before those it feeds
    offered: np.ndarray  # per type, the packages of the classes it may take (exact)


def _staircase_arcs(comp: _Compressed, class_sizes: np.ndarray) -> _Staircase | None:
    """A smaller class -> type network when some cut columns are thresholds (every type accepts
    a prefix of their cells, as MAX_WEIGHT and MAX_DISTANCE do).

    Take the two such columns with the most distinct thresholds; the other columns make a
    class's *context* (its cells there). Within a context, a type is one point (its thresholds
    on the two columns) and a class takes exactly the types of that context whose point lies in
    its quadrant. So per context there is one local node per distinct point, an arc from each
    to the points covering it in the 2-D dominance order and to its types, and a class needs an
    arc only to the minimal points of its quadrant: arcs grow with the points per context, not
    with classes x types. ``None`` when no column is a threshold column."""
    types = comp.types
    accepts = types.accepts
    n_types, n_classes = len(types.drivers), len(comp.class_bits)
    if not comp.class_cells or n_types == 0:
        return None
    prefix = []
    for c, acc in enumerate(accepts):
        k = acc.sum(axis=1)
        if acc.shape[1] > 1 and np.array_equal(acc, np.arange(acc.shape[1])[None, :] < k[:, None]):
            prefix.append((-len(np.unique(k)), c, k.astype(np.int64)))
    if not prefix:
        return None
    prefix.sort(key=lambda x: (x[0], x[1]))
    dims = [c for _, c, _ in prefix[:2]]
    k1 = prefix[0][2]
    lo1 = comp.class_cells[dims[0]].astype(np.int64)
    if len(dims) > 1:
        k2, lo2 = prefix[1][2], comp.class_cells[dims[1]].astype(np.int64)
    else:
        k2, lo2 = np.zeros(n_types, np.int64), np.full(n_classes, -1, np.int64)
    context = [c for c in range(len(accepts)) if c not in dims]
    if context:
        ctx_first, ctx_of = _unique_rows(np.column_stack([comp.class_cells[c] for c in context]))
    else:
        ctx_first, ctx_of = np.zeros(1, np.int64), np.zeros(n_classes, np.int64)
    if len(ctx_first) * STAIRCASE_CLASSES_PER_CONTEXT > n_classes:
        return None  # too many contexts for the local networks to pay
    width = int(k2.max()) + 1
    by_ctx = np.argsort(ctx_of, kind="stable")
    bounds = np.searchsorted(ctx_of[by_ctx], np.arange(len(ctx_first) + 1))
    c_parts, t_parts, s_tails, s_heads = [], [], [], []
    order: list[int] = []
    offered = np.zeros(n_types, dtype=np.int64)
    n_local = 0
    for x, first in enumerate(ctx_first.tolist()):
        members = by_ctx[bounds[x] : bounds[x + 1]]
        inside = np.ones(n_types, dtype=bool)
        for c in context:
            inside &= accepts[c][:, comp.class_cells[c][first]]
        tx = np.flatnonzero(inside)
        if not len(tx):
            continue
        points, p_of = np.unique(k1[tx] * width + k2[tx], return_inverse=True)  # (k1, k2) order
        q1, q2 = points // width, points % width
        base = n_types + n_local
        # a class takes the points after the last with q1 <= its cell, those with q2 above it;
        # a point is covered by points after it (sorted by (q1, q2)) with q2 at least its own
        start = np.searchsorted(q1, lo1[members], side="right")
        rows, cols, taken = _quadrant_minima(q2, start, lo2[members], class_sizes[members])
        c_parts.append(members[rows])
        t_parts.append(base + cols)
        a, b, _ = _quadrant_minima(q2, np.arange(1, len(points) + 1), q2 - 1)
        s_tails += [base + a, base + p_of]
        s_heads += [base + b, tx]
        offered[tx] += taken[p_of]
        order += range(base, base + len(points))
        n_local += len(points)
    order += range(n_types)
    cat = np.concatenate
    empty = [np.zeros(0, np.int64)]
    return _Staircase(
        cat(c_parts + empty).astype(np.int64),
        cat(t_parts + empty).astype(np.int64),
        cat(s_tails + empty).astype(np.int64),
        cat(s_heads + empty).astype(np.int64),
        n_local,
        order,
        offered,
    )


QUADRANT_CELLS = 1 << 22  # rows x columns of one block of ``_quadrant_minima``


def _quadrant_minima(
    q2: np.ndarray, start: np.ndarray, floor: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per query row ``i``, the minimal points (2-D dominance) of those at positions ``j >=
    start[i]`` with ``q2[j] > floor[i]``; the points are distinct and sorted by (q1, q2), so such
    a point is minimal exactly when every earlier one of them has a larger ``q2``.

    Returns (row, point) pairs in row-major order and, with ``weights``, per point the sum of
    the weights of the rows that take it (minimal or not). Rows are handled in blocks of
    similar ``start``, each over the columns from its least start only (about half the cells
    of the whole matrix)."""
    n = len(q2)
    small = np.int16 if n == 0 or int(q2.max()) < 32767 else np.int64
    big = np.iinfo(small).max
    values = q2.astype(small)
    order = np.argsort(start, kind="stable")
    taken = np.zeros(n, dtype=np.int64)
    rows_out, cols_out = [], []
    lo = 0
    while lo < len(order):
        s0 = int(start[order[lo]])
        width = max(1, n - s0)
        hi = min(len(order), lo + max(1, QUADRANT_CELLS // width))
        block = order[lo:hi]
        lo = hi
        if s0 >= n:
            continue
        cols = np.arange(s0, n)
        marked = (cols[None, :] >= start[block][:, None]) & (
            q2[s0:][None, :] > floor[block][:, None]
        )
        if weights is not None:
            taken[s0:] += weights[block] @ marked
        running = np.minimum.accumulate(np.where(marked, values[s0:][None, :], small(big)), axis=1)
        minimal = np.empty(marked.shape, dtype=bool)  # where the running minimum drops
        minimal[:, 0] = running[:, 0] < big
        np.less(running[:, 1:], running[:, :-1], out=minimal[:, 1:])
        r, c = np.nonzero(minimal)
        rows_out.append(block[r])
        cols_out.append(c + s0)
    if not rows_out:
        empty = np.zeros(0, np.int64)
        return empty, empty, taken
    rows, cols = np.concatenate(rows_out), np.concatenate(cols_out)
    by = np.lexsort((cols, rows))
    return rows[by].astype(np.int64), cols[by].astype(np.int64), taken


def _direct_arcs(comp: _Compressed) -> tuple[np.ndarray, np.ndarray]:
    return _bit_positions(comp.class_bits, len(comp.types.drivers), bitorder="little")


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
        classes=len(comp.class_bits),
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

    def __init__(self, comp: _Compressed, drivers, remaining, held_counts, max_per_driver):
        self.comp = comp
        self.max_per_driver = max_per_driver
        n_groups, n_classes = len(comp.group_start) - 1, len(comp.class_bits)
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
        stair = _staircase_arcs(comp, class_sizes)
        if stair is not None:
            c_idx, t_idx, type_eligible = stair.c_idx, stair.t_idx, stair.offered
            sub_tail, sub_head = stair.sub_tail, stair.sub_head
            self.representation = "staircase"
            self.n_nodes += stair.n_local
            self.node_order = stair.order
        else:
            if not comp.types.ordered:
                _order_types(comp.types)
            c_idx, t_idx, type_eligible, nested = _class_arcs(comp, class_sizes)
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
        self.c_idx, self.t_idx = c_idx, t_idx
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
        self.bucket_of_arc = np.full(len(self.tail), -1, dtype=np.int64)
        self.bucket_of_arc[self.bucket_arc0 :] = np.arange(n_b)
        self.flow_solves = 0
        self._arange = np.arange(len(self.tail) + len(self.buckets_flat()) + 1, dtype=np.int64)

    def buckets_flat(self) -> list[tuple[int, list[int], int]]:
        return [b for rows in self.buckets for b in rows]

    def _flows(self, solver, n: int) -> np.ndarray:
        return solver.flows(self._arange[:n])

    def level_caps(self, level: int, buckets: np.ndarray) -> np.ndarray:
        """Per bucket, what its drivers may hold in all when no driver ends above ``level``."""
        return self.b_count[buckets] * np.clip(
            level - self.b_held[buckets], 0, self.b_room[buckets]
        )

    def _max_flow(self, tail, head, cap, sink=1):
        solver = max_flow.SimpleMaxFlow()
        solver.add_arcs_with_capacity(tail, head, cap)
        status = solver.solve(self.source, sink)
        self.flow_solves += 1
        if status != solver.OPTIMAL:
            raise RuntimeError(f"max flow failed with status {status}")
        return solver

    def priority_caps(self) -> np.ndarray:
        """How many packages of each tier an optimal answer takes.

        The sets of packages that can be assigned together are the independent sets of a
        (transversal) matroid, so the greedy order - express and perishable, express, perishable,
        the rest - gives the lexicographic optimum: tier counts are differences of the ranks of
        the nested unions of tiers, each rank a maximum flow with only those tiers' sources open.
        """
        group_arcs = np.arange(self.group_arc0, self.class_arc0)
        class_arcs = np.arange(self.class_arc0, self.sub_arc0)
        rest = np.arange(self.sub_arc0, len(self.tail))
        class_tier = np.zeros((len(self.comp.class_bits), 4), dtype=bool)
        class_tier[self.comp.group_class, self.comp.group_tier] = True

        known: dict[tuple[int, ...], int] = {(): 0}  # a union of non-empty tiers -> its rank

        def nonempty(tiers: tuple[int, ...]) -> tuple[int, ...]:
            return tuple(t for t in tiers if self.tier_sizes[t] > 0)

        def rank(open_tiers: tuple[int, ...]) -> int:
            """The most packages of these tiers that can be assigned together: a maximum flow on
            the part of the network they reach. A flow that takes every package of some of the
            higher tiers proves their ranks too (they cannot exceed their sizes)."""
            open_tiers = nonempty(open_tiers)
            if open_tiers in known:
                return known[open_tiers]
            caps = np.zeros(4, dtype=np.int64)
            caps[list(open_tiers)] = self.tier_sizes[list(open_tiers)]
            if len(open_tiers) == int(np.count_nonzero(self.tier_sizes)):
                tail, head, cap = self.tail, self.head, self.cap.copy()
            else:
                offered = class_tier[:, list(open_tiers)].any(axis=1)
                arcs = np.concatenate(
                    [
                        np.arange(4),
                        group_arcs[np.isin(self.comp.group_tier, open_tiers)],
                        class_arcs[np.asarray(offered)[self.c_idx]],
                        rest,
                    ]
                )
                tail, head, cap = self.tail[arcs], self.head[arcs], self.cap[arcs]
            cap[:4] = caps
            solver = self._max_flow(tail, head, cap)
            taken = self._flows(solver, 4)
            for k in (1, 2, 3):  # the unions of the k highest tiers: (3,), (3, 2), (3, 2, 1)
                top = (3, 2, 1)[:k]
                if set(top) <= set(open_tiers) and all(taken[t] == self.tier_sizes[t] for t in top):
                    known.setdefault(nonempty(top), int(self.tier_sizes[list(top)].sum()))
            known[open_tiers] = int(solver.optimal_flow())
            return known[open_tiers]

        best = rank((3, 2, 1, 0))
        if best == self.total:
            return self.tier_sizes.copy()
        caps = np.zeros(4, dtype=np.int64)
        ranks = {}
        for k in (3, 2, 1):  # widest union first: its flow may settle the narrower ones
            ranks[k] = rank((3, 2, 1)[:k])
        taken = 0
        for k, t in ((1, 3), (2, 2), (3, 1)):
            caps[t] = ranks[k] - taken
            taken = ranks[k]
        caps[0] = best - taken
        return caps

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
        cap[:4] = self.priority_caps()
        best = int(cap[:4].sum())
        if best == 0:
            return flow
        gid = np.arange(len(self.tail), dtype=np.int64)
        # (arcs, capacities, global arc ids, level bounds, total, whether to try the last flow
        # first)
        stack = [(self.tail, self.head, cap, gid, 0, self.max_per_driver, best, False)]
        while stack:
            tail, head, cap, gid, lo, hi, total, hopeful = stack.pop()
            sub_buckets = self.bucket_of_arc[np.maximum(gid, 0)]
            is_bucket = (gid >= 0) & (sub_buckets >= 0)
            buckets = sub_buckets[is_bucket]
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
            level = lo + 1
            while level < hi - 1 and int(self.level_caps(level, buckets).sum()) < total:
                level += 1
            sub_cap = cap.copy()
            sub_cap[is_bucket] = self.level_caps(level, buckets)
            cut = None
            if hopeful and level - 1 >= lo and int(self.level_caps(level, buckets).sum()) >= total:
                # a sub-problem is often one block: every load within one of the least level
                # that can hold its total; if a flow between those two levels routes it, it is
                # optimal (every truncated sum is at its maximum)
                low, high = self.level_caps(level - 1, buckets), self.level_caps(level, buckets)
                leaf = self._leaf(flow, tail, head, cap, gid, is_bucket, low, high, total)
                if leaf is True:
                    continue
                cut = leaf  # the failed leaf's flow, when it is also a maximum flow at ``level``
            if cut is None:
                solver = self._max_flow(tail, head, sub_cap)
                reached = int(solver.optimal_flow())
                if reached == total:  # nobody needs to end above ``level``
                    stack.append((tail, head, cap, gid, lo, level, total, not hopeful))
                    continue
                cut = solver.get_source_side_min_cut(), self._flows(solver, len(tail))
            source_side, arc_flow = cut
            side = np.zeros(self.n_nodes + 1, dtype=bool)
            side[source_side] = True
            in_s, to_s = side[tail], side[head]
            to_sink = head == self.sink
            s_arcs = in_s & (to_s | to_sink)
            t_arcs = ~in_s
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
                sent = np.bincount(
                    tail[groups], weights=cap[groups], minlength=self.n_nodes
                ).astype(np.int64)
                tier_arcs = np.flatnonzero((tail[s_idx] == self.source) & (sent[head[s_idx]] > 0))
                s_cap[tier_arcs] -= sent[head[s_idx][tier_arcs]]
                flow[gid[s_idx][tier_arcs]] += sent[head[s_idx][tier_arcs]]
            t_total = int(arc_flow[t_arcs & to_sink].sum())
            stack.append(
                (tail[s_idx], head[s_idx], s_cap, gid[s_idx], level, hi, total - t_total, True)
            )
            stack.append((t_tail, head[t_idx], cap[t_idx], t_gid, lo, level, t_total, True))
        return flow

    def _leaf(self, flow, tail, head, cap, gid, is_bucket, low, high, total):
        """A maximum flow with every bucket between ``low`` and ``high``, of value ``total``:
        each bucket arc splits into one of capacity ``low`` to a new sink and one of
        ``high - low`` to the old sink, which passes ``total - sum(low)`` on to the new one; a
        flow of value ``total`` saturates every arc into the new sink.

        ``True`` when it routes ``total`` (its flow is added to ``flow``). Otherwise, when the
        old sink's arc to the new one is not saturated, the flow is also a maximum flow of the
        network with every bucket capped at ``high`` (merge the two sinks: the flow stays
        feasible, and the residual graph's source side, which then holds neither sink, is a cut
        of the same capacity): its ``(source side, flow per arc)``, so the caller need not solve
        that network again. ``None`` when neither holds."""
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
            return None
        own = gid >= 0
        flow[gid[own]] += sub[own]
        return True

    def decompose(self, flow: np.ndarray) -> dict[int, list[int]]:
        """Turn class-level flows into concrete packages, deterministically (manifest order).

        The flow is followed node by node as (class, amount) segments; each driver ends with a
        list of (class, amount) takes, turned into packages at the end in one pass: a class
        hands out its offered packages (the first ``flow`` of each of its groups, in group
        order) in the order its takes were made."""
        comp = self.comp
        n_groups = len(comp.group_start) - 1
        group_flow = flow[self.group_arc0 : self.group_arc0 + n_groups]
        n_classes = len(comp.class_bits)
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

        takes: list[tuple[int, int, int]] = []  # (driver, class, amount), in the order taken
        n_types = len(comp.type_drivers)
        for t in self.node_order:  # every node before the nodes it feeds
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
                        takes.extend((i, c, amount) for c, amount in take(n))
            out = children[t]
            for child, amount in out[:-1]:
                inflow[child].extend(take(amount))
            if out:  # the last one takes what is left (the flow is conserved at every node)
                last = out[-1][0]
                if inflow[last]:
                    inflow[last].extend(segments.rest())
                else:  # handed over, not copied (flow runs down long chains of local nodes)
                    inflow[last] = segments.rest()
        return _packages_of_takes(takes, offered, class_start)


def _packages_of_takes(
    takes: list[tuple[int, int, int]], offered: np.ndarray, class_start: np.ndarray
) -> dict[int, list[int]]:
    """Each driver's packages, sorted: take ``k`` of class ``c`` gets the next ``amount`` of the
    class's offered packages (a cursor per class, moved in the order of ``takes``)."""
    if not takes:
        return {}
    drivers, classes, amounts = np.array(takes, dtype=np.int64).T
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
    types, class_bits, class_of, _, _ = _classify(
        packages, drivers, list(range(len(drivers))), candidates
    )
    eligible_drivers = []
    for row in _unpack(class_bits, len(types.drivers)):
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
