"""The day reduced to classes (used by ``core/matcher.py`` and ``core/explain.py``). Pure.

Every distinct rule of the requested drivers is evaluated once per cell of its cut column
(``rules.column_coordinates``); drivers with the same acceptance box form a *type*; packages
with the same cells (an *atom*) and then the same set of eligible types form a *class*. See
docs/design.md, "The matcher".
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from depot.core.models import Driver
from depot.core.rules import PackageColumns, column_coordinates


@dataclass
class Types:
    """The requested drivers reduced to *types*: distinct acceptance boxes over the day's cells."""

    drivers: list[list[int]]  # type -> indices into the request's driver list, in request order
    accepts: list[np.ndarray]  # per cut column: (types x cells) bool
    order: list[int]  # types, every one before the less demanding types it may feed
    hasse_tail: np.ndarray  # a -> b: a accepts a strict subset of what b accepts, nothing between
    hasse_head: np.ndarray
    ordered: bool = False  # whether ``order`` and the Hasse arcs are filled in


@dataclass
class Compressed:
    """The day reduced to classes: what the flow network is built from."""

    types: Types
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
        return unpack(bits, len(self.types.drivers))


def unpack(bits: np.ndarray, n: int) -> np.ndarray:
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
    # each distinct rule's first and last occurrence (rules are numbered 0.. in key order)
    first = np.unique(flat, return_index=True)[1]
    last = len(flat) - 1 - np.unique(flat[::-1], return_index=True)[1]
    rules = [(every[i].code, every[i].params) for i in first.tolist()]
    return _RuleTable(rules, flat, counts, [every[i] for i in last.tolist()])


def unique_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
    rank = np.empty(len(first), dtype=np.int64)  # renumber by first occurrence
    order = np.argsort(first, kind="stable")
    rank[order] = np.arange(len(first))
    return first[order], rank[inverse.reshape(-1)]


_HASH_WORDS = np.random.default_rng(20261202).integers(1, 2**63, size=4096, dtype=np.uint64) | 1


def _row_hashes(rows: np.ndarray) -> np.ndarray | None:
    """A 64-bit hash of each row of a wide array (``None`` when it is not made of 32-bit
    words)."""
    if rows.dtype.itemsize * rows.shape[1] % 4 or rows.shape[1] * rows.dtype.itemsize > 4 * 4096:
        return None
    # multilinear over 32-bit words with odd 64-bit multipliers, wrapping at 2**64 (over 64-bit
    # words, differences in the top bit alone would cancel out)
    return rows.view(np.uint32) @ _HASH_WORDS[: rows.shape[1] * rows.dtype.itemsize // 4]


def _types(table: _RuleTable, active: Sequence[int], coords, ordered: bool = True) -> Types:
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
        first, type_of = unique_rows(signature)
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
    types = Types(members, accepts, [], empty, empty)
    if ordered:
        order_types(types)
    return types


def order_types(types: Types) -> None:
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


def classify(
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
        atom_first, atom_of = unique_rows(key)
    else:
        atom_first, atom_of = unique_rows(np.column_stack([col.coord for col in coords]))

    # an atom's eligible types: the AND over columns of the types accepting its cell there,
    # (atoms x words), in place (a stack of every column's bits would be large)
    bits = _pack(types.accepts[0].T)[coords[0].coord[atom_first]]
    for col, acc in zip(coords[1:], types.accepts[1:]):
        bits &= _pack(acc.T)[col.coord[atom_first]]
    if not classes:
        return types, bits, atom_of, tier, table
    class_first, class_of_atom = unique_rows(bits)
    if cells_out is not None:
        cells_out.extend(col.coord[atom_first[class_first]] for col in coords)
    return types, bits[class_first], class_of_atom[atom_of], tier, table


def compress(
    packages: PackageColumns,
    drivers: Sequence[Driver],
    active: Sequence[int],
    available: np.ndarray,
) -> Compressed:
    candidates = np.flatnonzero(available)
    cells: list[np.ndarray] = []
    types, class_bits, class_of, tier, _ = classify(
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
    return Compressed(
        types=types,
        class_bits=class_bits,
        group_class=(group_ids // 4).astype(np.int64),
        group_tier=(group_ids % 4).astype(np.int64),
        grouped=kept[order],
        group_start=group_start,
        class_cells=cells,
    )
