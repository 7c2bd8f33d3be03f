"""The class -> type part of the matcher's flow network, in three representations: *direct*
(an arc per eligible pair), *maximal* (arcs to the maximal eligible types, plus the types'
Hasse arcs) and the *staircase* for two threshold columns. Pure; see docs/design.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from depot.core.classes import Compressed
from depot.core.rules import distinct_values

CHUNK_CELLS = 1 << 24  # classes x types handled at once when listing arcs (bounds memory)


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


def class_arcs(
    comp: Compressed, class_sizes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """The class -> type arcs, and per type a bound on how many offered packages it may take.

    Two representations, chosen by their size: *direct* (an arc to every eligible type) or
    *maximal* (an arc only to the eligible types no more demanding eligible type covers, plus
    the Hasse arcs between types, which carry the flow on to the less demanding ones)."""
    types = comp.types
    n_types, n_classes = len(types.drivers), comp.n_classes
    assert comp.class_bits is not None, "the maximal and direct networks read the class bits"
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
class Staircase:
    """A class -> type network for prefix (threshold) columns: see ``staircase_arcs``."""

    c_idx: np.ndarray  # class -> node (a type, or a local node numbered from ``n_types``)
    t_idx: np.ndarray
    sub_tail: np.ndarray  # node -> node
    sub_head: np.ndarray
    n_local: int
    order: list[int]  # every node before those it feeds
    offered: np.ndarray  # per type, the packages of the classes it may take (exact)


def staircase_arcs(comp: Compressed, class_sizes: np.ndarray) -> Staircase | None:
    """A smaller class -> type network when some cut columns are thresholds (every type accepts
    a prefix of their cells, as MAX_WEIGHT and MAX_DISTANCE do) and the classes were made for it
    (``classes.Thresholds``; ``None`` otherwise).

    Take the two such columns with the most distinct thresholds; the other columns make a
    class's *context* (its cells there). Within a context, a type is one point (its thresholds
    on the two columns) and a class takes exactly the types of that context whose point lies in
    its quadrant. So per context there is one local node per distinct point, an arc from each
    to the points covering it in the 2-D dominance order and to its types, and a class needs an
    arc only to the minimal points of its quadrant: arcs grow with the points per context, not
    with classes x types."""
    thresholds = comp.thresholds
    if thresholds is None:
        return None
    types = comp.types
    n_types = len(types.drivers)
    lo1, lo2 = thresholds.class_thresholds(comp.class_cells)
    ctx_of = thresholds.class_context
    by_ctx = np.argsort(ctx_of, kind="stable")
    bounds = np.searchsorted(ctx_of[by_ctx], np.arange(len(thresholds.contexts) + 1))
    c_parts, t_parts, s_tails, s_heads = [], [], [], []
    order: list[int] = []
    offered = np.zeros(n_types, dtype=np.int64)
    n_local = 0
    for x, context in enumerate(thresholds.contexts):
        members = by_ctx[bounds[x] : bounds[x + 1]]
        tx, q1, q2, p_of = context.types, context.q1, context.q2, context.point_of
        base = n_types + n_local
        # a class takes the points after the last with q1 <= its cell, those with q2 above it;
        # a point is covered by points after it (sorted by (q1, q2)) with q2 at least its own
        start = np.searchsorted(q1, lo1[members], side="right")
        rows, cols, taken = _quadrant_minima(q2, start, lo2[members], class_sizes[members])
        c_parts.append(members[rows])
        t_parts.append(base + cols)
        a, b, _ = _quadrant_minima(q2, np.arange(1, len(q1) + 1), q2 - 1)
        s_tails += [base + a, base + p_of]
        s_heads += [base + b, tx]
        offered[tx] += taken[p_of]
        order += range(base, base + len(q1))
        n_local += len(q1)
    order += range(n_types)
    cat = np.concatenate
    empty = [np.zeros(0, np.int64)]
    return Staircase(
        cat(c_parts + empty).astype(np.int64),
        cat(t_parts + empty).astype(np.int64),
        cat(s_tails + empty).astype(np.int64),
        cat(s_heads + empty).astype(np.int64),
        n_local,
        order,
        offered,
    )


def _quadrant_minima(
    q2: np.ndarray, start: np.ndarray, floor: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per query row ``i``, the minimal points (2-D dominance) of those at positions ``j >=
    start[i]`` with ``q2[j] > floor[i]``; the points are distinct and sorted by (q1, q2), so such
    a point is minimal exactly when every earlier one of them has a larger ``q2``.

    Returns (row, point) pairs in row-major order and, with ``weights``, per point the sum of
    the weights of the rows that take it (minimal or not). A small matrix is read off densely
    (``_small_quadrant_minima``); past that the work follows the answer, not rows x points
    (``_tree_quadrant_minima``)."""
    if len(start) * len(q2) <= SMALL_QUADRANT_CELLS:
        return _small_quadrant_minima(q2, start, floor, weights)
    taken = (
        np.zeros(len(q2), dtype=np.int64)
        if weights is None
        else _quadrant_sums(q2, start, floor, weights)
    )
    return (*_tree_quadrant_minima(q2, start, floor), taken)


SMALL_QUADRANT_CELLS = 1 << 15  # rows x points below which one matrix does it all


def _small_quadrant_minima(
    q2: np.ndarray, start: np.ndarray, floor: np.ndarray, weights: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``_quadrant_minima`` of a small matrix in one piece (a small day's contexts have a few
    dozen points; the tree's fixed cost, ~0.2 ms, is then most of its time)."""
    n = len(q2)
    marked = (np.arange(n)[:, None] >= start[None, :]) & (q2[:, None] > floor[None, :])
    taken = np.zeros(n, np.int64) if weights is None else marked.astype(np.int64) @ weights
    big = np.iinfo(np.int64).max
    running = np.minimum.accumulate(np.where(marked, q2[:, None], big), axis=0)
    minimal = np.empty(running.shape, dtype=bool)
    minimal[:1] = running[:1] < big
    np.less(running[1:], running[:-1], out=minimal[1:])
    rows, cols = np.nonzero(minimal.T)  # row-major: each row's points in order
    return rows.astype(np.int64), cols.astype(np.int64), taken


def _tree_quadrant_minima(
    q2: np.ndarray, start: np.ndarray, floor: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The (row, point) pairs of ``_quadrant_minima`` from a segment tree over the ranks of
    ``q2``, in time that follows the pairs (about 4 a row here) instead of rows x points.

    A row's quadrant is the points at or after its start in the tree's canonical nodes of the
    ranks above its floor, lowest ranks first. A point of one of those nodes is minimal exactly
    when it is a strict running minimum of its node from the start (the node's *next strictly
    smaller* chain from its first point there) and lies before the first points of the lower
    nodes (those are all smaller). A point's next smaller in a node is the least, over the
    levels below where it lies in a right child, of the left sibling's first point after it."""
    n, m = len(q2), len(start)
    empty = np.zeros(0, np.int64)
    if n == 0 or m == 0:
        return empty, empty
    values, rank = np.unique(q2, return_inverse=True)
    levels = (len(values) - 1).bit_length() + 1  # the top level is one node of every rank
    top, wide = 1 << (levels - 1), n + 1
    span = top * wide  # keys: level * span + node * wide + point, sorted, and a sentinel
    point = np.arange(n, dtype=np.int64)
    level = np.arange(levels, dtype=np.int64)[:, None]
    node = rank[None, :] >> level  # (levels x points)
    keys = np.append(np.sort((level * span + node * wide + point).ravel()), levels * span)

    child, below = node[:-1], level[:-1]
    hit = keys[np.searchsorted(keys, below * span + (child - 1) * wide + point + 1)]
    in_right = (child & 1) == 1
    sibling_next = np.where(in_right & (hit // wide == below * top + child - 1), hit % wide, n)
    smaller = np.empty((levels, n + 1), dtype=np.int64)  # per level; n: none
    smaller[:, n] = n
    smaller[0, :n] = n
    np.minimum.accumulate(sibling_next, axis=0, out=smaller[1:, :n])

    lowest = np.searchsorted(values, floor, side="right")  # the quadrant's ranks: [lowest, top)
    rest = top - lowest  # its canonical nodes: the set bits of this, low first
    at = np.minimum(start, n)
    row, lv = np.nonzero(((rest[:, None] >> level.T) & 1 == 1) & (lowest < len(values))[:, None])
    qnode = (lowest[row] + (rest[row] & ((1 << lv) - 1))) >> lv
    hit = keys[np.searchsorted(keys, lv * span + qnode * wide + at[row])]
    first = np.full((m, levels), n, dtype=np.int64)
    first[row, lv] = np.where(hit // wide == lv * top + qnode, hit % wide, n)
    before = np.empty_like(first)  # the least first point of the lower nodes
    before[:, 0] = n
    np.minimum.accumulate(first[:, :-1], axis=1, out=before[:, 1:])

    row, lv = np.nonzero(first < before)
    p, end = first[row, lv], before[row, lv]
    rows_out, points_out = [], []
    while len(p):
        rows_out.append(row)
        points_out.append(p)
        p = smaller[lv, p]
        go_on = p < end
        row, lv, p, end = row[go_on], lv[go_on], p[go_on], end[go_on]
    if not rows_out:
        return empty, empty
    rows, points = np.concatenate(rows_out), np.concatenate(points_out)
    by = np.argsort(rows * wide + points)
    return rows[by], points[by]


def _quadrant_sums(
    q2: np.ndarray, start: np.ndarray, floor: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """Per point ``j``, the sum of ``weights[i]`` over the rows with ``start[i] <= j`` and
    ``floor[i] < q2[j]``: a 2-D prefix sum over (start, rank of the floor among the values)."""
    n = len(q2)
    values = distinct_values(q2)[0]
    rank = np.searchsorted(values, q2)  # q2[j] > floor[i]  <=>  rank[j] >= at_least[i]
    at_least = np.searchsorted(values, floor, side="right")
    shape = (n + 1, len(values) + 1)
    grid = np.bincount(
        np.minimum(start, n) * shape[1] + at_least,
        weights=weights,
        minlength=shape[0] * shape[1],
    )
    grid = grid.reshape(shape).cumsum(axis=0).cumsum(axis=1)
    return np.rint(grid[np.arange(n), rank]).astype(np.int64)


def _direct_arcs(comp: Compressed) -> tuple[np.ndarray, np.ndarray]:
    assert comp.class_bits is not None
    return _bit_positions(comp.class_bits, len(comp.types.drivers), bitorder="little")
