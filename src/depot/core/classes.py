"""The day reduced to classes (used by ``core/matcher.py`` and ``core/explain.py``). Pure.

Every distinct rule of the requested drivers is evaluated once per cell of its cut column
(``rules.column_coordinates``); drivers with the same acceptance box form a *type*; packages
with the same cells (an *atom*) and then the same set of eligible types form a *class*. See
docs/design.md, "The matcher".
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise

import numpy as np

from depot.core.models import Driver
from depot.core.rules import PackageColumns, column_coordinates, distinct_values


@dataclass
class Types:
    """The requested drivers reduced to *types*: distinct acceptance boxes over the day's cells."""

    drivers: list[list[int]]  # type -> indices into the request's driver list, in request order
    accepts: list[np.ndarray]  # per cut column: (types x cells) bool
    order: list[int]  # types, every one before the less demanding types it may feed
    hasse_tail: np.ndarray  # a -> b: a accepts a strict subset of what b accepts, nothing between
    hasse_head: np.ndarray
    ordered: bool = False  # whether ``order`` and the Hasse arcs are filled in


@dataclass(frozen=True)
class Context:
    """One staircase context: its types and their distinct points (k1, k2), sorted."""

    types: np.ndarray
    q1: np.ndarray
    q2: np.ndarray
    point_of: np.ndarray  # each of ``types``'s point


@dataclass(frozen=True)
class Thresholds:
    """Cut columns every type accepts a prefix of (as MAX_WEIGHT and MAX_DISTANCE give): the
    two with the most distinct prefixes, and the others, which make a package's *context*."""

    dims: tuple[int, ...]  # one or two columns
    k1: np.ndarray  # per type, how many cells of ``dims[0]`` it accepts
    k2: np.ndarray  # the same for ``dims[1]`` (zeros with one column)
    context: tuple[int, ...]
    # once the classes are made: each class's context (-1: none), and the contexts
    class_context: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    contexts: list[Context] = field(default_factory=list)

    def class_thresholds(self, cells: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Per class (or atom), its cell in ``dims[0]`` and in ``dims[1]`` (-1 with one)."""
        lo1 = cells[self.dims[0]].astype(np.int64)
        if len(self.dims) > 1:
            return lo1, cells[self.dims[1]].astype(np.int64)
        return lo1, np.full(len(lo1), -1, np.int64)

    def contexts_of(self, member: np.ndarray) -> list[Context]:
        """The contexts of a (contexts x types) membership matrix, with their distinct points:
        one sort of every (context, point) pair, each context a slice of it."""
        ctx, tx = np.nonzero(member)  # by context, its types in order
        width = int(self.k2.max()) + 1
        span = (int(self.k1.max()) + 1) * width  # cells x cells: far from int64's range
        key = ctx * span + self.k1[tx] * width + self.k2[tx]
        points, p_of = np.unique(key, return_inverse=True)
        p_of = p_of.reshape(-1)
        local = points % span
        p_bounds = np.searchsorted(points // span, np.arange(len(member) + 1)).tolist()
        t_bounds = np.searchsorted(ctx, np.arange(len(member) + 1)).tolist()
        out = []
        for x in range(len(member)):
            p0, p1, t0, t1 = p_bounds[x], p_bounds[x + 1], t_bounds[x], t_bounds[x + 1]
            pts = local[p0:p1]
            out.append(Context(tx[t0:t1], pts // width, pts % width, p_of[t0:t1] - p0))
        return out


def threshold_columns(types: Types) -> Thresholds | None:
    """The threshold layout of the types' cut columns, ``None`` when no column is one."""
    prefix = []
    for c, acc in enumerate(types.accepts):
        k = acc.sum(axis=1)
        if acc.shape[1] > 1 and np.array_equal(acc, np.arange(acc.shape[1])[None, :] < k[:, None]):
            prefix.append((-len(distinct_values(k)[0]), c, k.astype(np.int64)))
    if not prefix or not len(types.drivers):
        return None
    prefix.sort(key=lambda x: (x[0], x[1]))
    dims = tuple(c for _, c, _ in prefix[:2])
    k2 = prefix[1][2] if len(dims) > 1 else np.zeros(len(types.drivers), np.int64)
    context = tuple(c for c in range(len(types.accepts)) if c not in dims)
    return Thresholds(dims, prefix[0][2], k2, context)


@dataclass
class Compressed:
    """The day reduced to classes: what the flow network is built from."""

    types: Types
    class_bits: np.ndarray | None  # (classes x words) uint64: eligible types as bits (not kept
    # when ``thresholds`` made the classes: the staircase reads them off their cells)
    group_class: np.ndarray  # (class, tier) group -> class
    group_tier: np.ndarray  # group -> tier value (2*express + perishable)
    grouped: np.ndarray  # the candidate packages by group, in manifest order within a group
    group_start: np.ndarray  # group -> its first position in ``grouped`` (and the end, last)
    # per cut column, each class's cell for one of its atoms (they all have the same types)
    class_cells: list[np.ndarray] = field(default_factory=list)
    n_classes: int = 0
    thresholds: Thresholds | None = None  # with the classes' contexts, when the staircase pays

    @property
    def type_drivers(self) -> list[list[int]]:
        return self.types.drivers

    @property
    def group_sizes(self) -> np.ndarray:
        return np.diff(self.group_start)

    def class_eligible(self, classes: slice | None = None) -> np.ndarray:
        """(classes x types) bool, for a slice of the classes (the whole matrix may be large)."""
        assert self.class_bits is not None, "staircase classes keep no bits"
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
    # drivers with the same set of rules: each set once (numbered as first seen), its rules
    # as indices into ``rules``, and each driver's set
    set_flat: np.ndarray
    set_counts: np.ndarray
    set_of: np.ndarray

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
    flat_list = [keys.setdefault(k, len(keys)) for d in drivers for k in d.rule_keys()]
    every = [rule for d in drivers for rule in d.rules]
    flat = np.array(flat_list, dtype=np.int64)
    counts = np.fromiter((len(d.rules) for d in drivers), dtype=np.int64, count=len(drivers))
    # each distinct rule's first and last occurrence (rules are numbered 0.. in key order)
    first = np.unique(flat, return_index=True)[1]
    last = len(flat) - 1 - np.unique(flat[::-1], return_index=True)[1]
    rules = [(every[i].code, every[i].params) for i in first.tolist()]
    bounds = np.concatenate([[0], np.cumsum(counts)]).tolist()
    sets: dict[tuple[int, ...], int] = {}
    set_of = np.fromiter(
        (
            sets.setdefault(tuple(sorted(set(flat_list[a:b]))), len(sets))
            for a, b in pairwise(bounds)
        ),
        dtype=np.int64,
        count=len(drivers),
    )
    set_counts = np.fromiter(map(len, sets), dtype=np.int64, count=len(sets))
    set_flat = np.fromiter(
        (r for rule_set in sets for r in rule_set), dtype=np.int64, count=int(set_counts.sum())
    )
    spelling = [every[i] for i in last.tolist()]
    return _RuleTable(rules, flat, counts, spelling, set_flat, set_counts, set_of)


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
    if key.dtype.kind in "iu" and len(key) and 0 <= key.min() and key.max() < 8 * len(key) + 1024:
        return _unique_small_keys(key)
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)  # renumber by first occurrence
    order = np.argsort(first, kind="stable")
    rank[order] = np.arange(len(first))
    return first[order], rank[inverse.reshape(-1)]


def _unique_small_keys(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``unique_rows`` of non-negative integers below a few times their count: a table indexed
    by the key instead of a sort."""
    first_at = np.full(int(key.max()) + 1, len(key), dtype=np.int64)
    np.minimum.at(first_at, key, np.arange(len(key), dtype=np.int64))
    first = np.sort(first_at[first_at < len(key)])
    label = np.empty(len(first_at), dtype=np.int64)
    label[key[first]] = np.arange(len(first))
    return first, label[key]


def _splitmix64(n: int, seed: int) -> np.ndarray:
    """``n`` well-mixed 64-bit words (SplitMix64), in NumPy's wrapping uint64 arithmetic: the
    hash's multipliers without importing ``numpy.random`` (~7 MiB, more than a small day's
    whole match)."""
    x = np.uint64(seed) + np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


_HASH_WORDS = _splitmix64(4096, 20261202) | np.uint64(1)


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
    ``table`` lists the rules of the active drivers, in that order; a box is computed once per
    distinct set of rules (an adversarial fleet repeats its drivers' sets). Without ``ordered``
    the subset order (``order``, the Hasse arcs) is left empty."""
    n_sets = len(table.set_counts)
    column_of = np.zeros(len(table.rules), dtype=np.int64)
    row_of = np.zeros(len(table.rules), dtype=np.int64)
    for c, col in enumerate(coords):
        column_of[col.rules] = c
        row_of[col.rules] = np.arange(len(col.rules))
    flat = table.set_flat
    owner = np.repeat(np.arange(n_sets), table.set_counts)  # the set of each (set, rule) pair
    by_column = np.argsort(column_of[flat], kind="stable")  # by column, then by set
    bounds = np.searchsorted(column_of[flat][by_column], np.arange(len(coords) + 1)).tolist()
    boxes = []
    for c, col in enumerate(coords):
        box = np.ones((n_sets, col.accepts.shape[1]), dtype=bool)
        pairs = by_column[bounds[c] : bounds[c + 1]]
        who, rows = owner[pairs], row_of[flat[pairs]]
        if len(who):
            starts = np.flatnonzero(np.diff(who, prepend=-1))  # ``who`` is sorted
            box[who[starts]] = np.logical_and.reduceat(col.accepts[rows], starts, axis=0)
        boxes.append(box)
    nonempty = np.ones(n_sets, dtype=bool)
    for box in boxes:
        nonempty &= box.any(axis=1)
    keep = np.flatnonzero(nonempty)
    if coords:
        signature = np.hstack([_pack(box[keep]) for box in boxes])
        first, type_of_kept = unique_rows(signature)
    else:
        first, type_of_kept = (
            np.zeros(min(1, len(keep)), dtype=np.int64),
            np.zeros(len(keep), dtype=np.int64),
        )
    # sets are numbered as first seen among the drivers, so types are too
    type_of_set = np.full(n_sets, -1, dtype=np.int64)
    type_of_set[keep] = type_of_kept
    members: list[list[int]] = [[] for _ in first]
    for i, t in zip(active, type_of_set[table.set_of].tolist()):
        if t >= 0:
            members[t].append(i)
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


@dataclass
class _Atoms:
    """The candidates cut into atoms (the same cell in every cut column)."""

    types: Types
    coords: list  # per cut column, ``rules.ColumnCoordinates``
    first: np.ndarray  # atom -> its first candidate
    of: np.ndarray  # candidate -> its atom
    tier: np.ndarray  # candidate -> 2*express + perishable
    table: _RuleTable

    def cells(self, atoms: np.ndarray) -> list[np.ndarray]:
        """Per cut column, the cell of each of ``atoms``."""
        return [col.coord[self.first[atoms]] for col in self.coords]


def _atoms(packages, drivers, active, candidates, ordered: bool) -> _Atoms:
    table = _rule_table([drivers[i] for i in active])
    coords = column_coordinates(packages, table.rules, candidates)
    types = _types(table, active, coords, ordered=ordered)
    tier = (packages.is_express[candidates].astype(np.int64) << 1) | packages.is_perishable[
        candidates
    ]
    if not coords:
        first, of = np.zeros(min(1, len(candidates)), np.int64), np.zeros(len(candidates), np.int64)
        return _Atoms(types, coords, first, of, tier, table)
    first, of = unique_rows(_cell_key([col.coord for col in coords]))  # a package's atom
    return _Atoms(types, coords, first, of, tier, table)


def _cell_key(cells: list[np.ndarray]) -> np.ndarray:
    """Rows of cells (one array per column) as one integer each when they fit, else as rows."""
    sizes = [int(c.max()) + 1 if len(c) else 1 for c in cells]
    if np.prod(np.array(sizes, dtype=np.float64)) >= 2.0**62:
        return np.column_stack(cells)
    key = np.zeros(len(cells[0]), dtype=np.int64)
    for c, k in zip(cells, sizes):
        key = key * k + c
    return key


def _atom_bits(atoms: _Atoms) -> np.ndarray:
    """An atom's eligible types: the AND over columns of the types accepting its cell there,
    (atoms x words), in place (a stack of every column's bits would be large)."""
    coords, first = atoms.coords, atoms.first
    bits = _pack(atoms.types.accepts[0].T)[coords[0].coord[first]]
    for col, acc in zip(coords[1:], atoms.types.accepts[1:]):
        bits &= _pack(acc.T)[col.coord[first]]
    return bits


def classify(
    packages: PackageColumns,
    drivers: Sequence[Driver],
    active: Sequence[int],
    candidates: np.ndarray,
    classes: bool = True,
    coords_out: list | None = None,
):
    """Types of the active drivers, and for each candidate package its class and tier.

    Returns ``(types, class_bits, class_of, tier, table)``; ``class_of`` and ``tier`` are per
    candidate, ``table`` the active drivers' rules. Without ``classes`` (who may take a package,
    not how to route it: ``explain``), the "classes" are the atoms and types are not ordered.
    ``coords_out``, if given, receives the cut columns (``rules.column_coordinates``).
    """
    atoms = _atoms(packages, drivers, active, candidates, ordered=classes)
    if coords_out is not None:
        coords_out.extend(atoms.coords)
    if not classes and atoms.coords:
        return atoms.types, _atom_bits(atoms), atoms.of, atoms.tier, atoms.table
    _, class_of_atom, bits = _bit_classes(atoms)
    return atoms.types, bits, class_of_atom[atoms.of], atoms.tier, atoms.table


def compress(
    packages: PackageColumns,
    drivers: Sequence[Driver],
    active: Sequence[int],
    available: np.ndarray,
) -> Compressed:
    """The day's free packages as classes, grouped by (class, tier) for the flow network.

    With threshold columns and few enough contexts the staircase's layout is kept with them; past
    ``BIT_CLASS_WORDS`` the classes are then made from the cells alone (``_staircase_classes``):
    no per-class bitset of the types is built, which on a fleet of personal limits is most of
    the classification's time and memory."""
    candidates = np.flatnonzero(available)
    atoms = _atoms(packages, drivers, active, candidates, ordered=False)
    thresholds = threshold_columns(atoms.types) if atoms.coords else None
    words = (len(atoms.types.drivers) + 63) // 64
    staircase = None
    if thresholds is not None and len(atoms.first) * words > BIT_CLASS_WORDS:
        staircase = _staircase_classes(atoms, thresholds)
    class_bits: np.ndarray | None = None
    if staircase is not None:
        class_of_atom, thresholds = staircase.class_of_atom, staircase.thresholds
        usable_atom = class_of_atom >= 0
        cells, n_classes = atoms.cells(staircase.first_atom), len(staircase.first_atom)
    else:
        class_first, class_of_atom, class_bits = _bit_classes(atoms)
        usable_atom = np.asarray(class_bits.any(axis=1))[class_of_atom]
        cells, n_classes = atoms.cells(class_first), len(class_bits)
        if thresholds is not None:
            thresholds = _staircase_layout(atoms.types, thresholds, cells)
    class_of = class_of_atom[atoms.of]
    keep = usable_atom[atoms.of]
    group_key = class_of[keep].astype(np.int64) * 4 + atoms.tier[keep]
    kept = candidates[keep]
    order = np.argsort(group_key, kind="stable")
    sorted_groups = group_key[order]
    group_ids, starts = np.unique(sorted_groups, return_index=True)
    group_start = np.append(starts, len(sorted_groups)).astype(np.int64)
    return Compressed(
        types=atoms.types,
        class_bits=class_bits,
        group_class=(group_ids // 4).astype(np.int64),
        group_tier=(group_ids % 4).astype(np.int64),
        grouped=kept[order],
        group_start=group_start,
        class_cells=cells,
        n_classes=n_classes,
        thresholds=thresholds,
    )


def _bit_classes(atoms: _Atoms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Atoms with the same eligible types as one class: (each class's first atom, the class of
    each atom, each class's eligible types as bits). Without cut columns, one class that every
    type may take."""
    if not atoms.coords:
        bits = _pack(np.ones((1, len(atoms.types.drivers)), dtype=bool))
        return atoms.first[:1], np.zeros(len(atoms.first), np.int64), bits
    bits = _atom_bits(atoms)
    class_first, class_of_atom = unique_rows(bits)
    return class_first, class_of_atom, bits[class_first]


# atoms x 64-bit words of types beyond which a threshold fleet's classes are the staircase's
# (cheaper than the bitsets there: personalised 500k, 303k atoms x 79 words, 1.6 s -> 0.4 s)
BIT_CLASS_WORDS = 1 << 21
STAIRCASE_CLASSES_PER_CONTEXT = 8  # classes per context below which the staircase is not tried
CONTEXT_BLOCK = 1 << 22  # context cells x types held as booleans at a time


def _contexts(
    types: Types, thresholds: Thresholds, cells: list[np.ndarray]
) -> tuple[np.ndarray, list[Context]] | None:
    """Each row's *context* (the set of types that accept its cells in the context columns:
    cells accepted by the same types are one context; -1 when no type accepts them) and the
    contexts. ``None`` when there are already too many distinct context cells for the rows (a
    uniform or a mixed fleet: ``STAIRCASE_CLASSES_PER_CONTEXT``)."""
    n = len(cells[0])
    if thresholds.context:
        cell_first, cell_ctx = unique_rows(_cell_key([cells[c] for c in thresholds.context]))
    else:
        cell_first, cell_ctx = np.zeros(1, np.int64), np.zeros(n, np.int64)
    if len(cell_first) * STAIRCASE_CLASSES_PER_CONTEXT > n:
        return None
    n_types = len(types.drivers)
    inside = np.zeros((len(cell_first), max(1, (n_types + 63) // 64)), dtype=np.uint64)
    step = max(1, CONTEXT_BLOCK // max(1, n_types))
    for a in range(0, len(cell_first), step):  # per cell, the types accepting it, as bits
        block = np.ones((len(cell_first[a : a + step]), n_types), dtype=bool)
        for c in thresholds.context:
            block &= types.accepts[c][:, cells[c][cell_first[a : a + step]]].T
        inside[a : a + step] = _pack(block)
    some = np.flatnonzero(inside.any(axis=1))
    ctx_of_cells = np.full(len(cell_first), -1, dtype=np.int64)
    if not len(some):
        return ctx_of_cells[cell_ctx], []
    first, ctx_of_cells[some] = unique_rows(inside[some])  # numbered as first seen
    return ctx_of_cells[cell_ctx], thresholds.contexts_of(unpack(inside[some[first]], n_types))


def _staircase_classes(atoms: _Atoms, thresholds: Thresholds) -> _StaircaseClasses | None:
    """Classes for the staircase network from the atoms' cells alone (no bitset of types):
    within its context, the types an atom may take are those whose point lies in its quadrant,
    and that set depends only on how many points come before the quadrant in the (q1, q2) order
    and how many distinct q2 values lie below it. Named exactly (``_quadrant_keys``), atoms with
    the same (context, quadrant) form a class, numbered in order of first occurrence; atoms whose
    quadrant holds no point are in none.

    Two classes of different contexts may still have the same types (the network is as exact
    with both). ``None`` when there are too many contexts for the staircase to pay."""
    every = np.arange(len(atoms.first))
    cells = atoms.cells(every)
    found = _contexts(atoms.types, thresholds, cells)
    if found is None:
        return None
    ctx_of, contexts = found
    lo1, lo2 = thresholds.class_thresholds(cells)
    key = np.full(len(every), -1, dtype=np.int64)
    by_ctx = np.argsort(ctx_of, kind="stable")
    bounds = np.searchsorted(ctx_of[by_ctx], np.arange(len(contexts) + 1))
    offset = 0
    for x, context in enumerate(contexts):
        members = by_ctx[bounds[x] : bounds[x + 1]]
        q1, q2 = context.q1, context.q2
        levels, rank = np.unique(q2, return_inverse=True)
        start = np.searchsorted(q1, lo1[members], side="right")
        above = np.searchsorted(levels, lo2[members], side="right")  # q2 > lo2: rank >= above
        first_point, least = _quadrant_keys(rank.reshape(-1), len(levels), start, above)
        inside = first_point < len(q1)
        key[members[inside]] = offset + first_point[inside] * (len(levels) + 1) + least[inside]
        offset += (len(q1) + 1) * (len(levels) + 1)
    usable = np.flatnonzero(key >= 0)
    class_first, class_of_usable = unique_rows(key[usable])
    first_atom = usable[class_first]
    layout = _with_contexts(thresholds, ctx_of[first_atom], contexts)
    if layout is None:
        return None
    class_of = np.full(len(every), -1, dtype=np.int64)
    class_of[usable] = class_of_usable
    return _StaircaseClasses(class_of, first_atom, layout)


def _staircase_layout(
    types: Types, thresholds: Thresholds, class_cells: list[np.ndarray]
) -> Thresholds | None:
    """The staircase's layout over classes made from bits (each class's context and each
    context's types), ``None`` when there are too many contexts for it to pay."""
    found = _contexts(types, thresholds, class_cells)
    return None if found is None else _with_contexts(thresholds, *found)


def _with_contexts(
    thresholds: Thresholds, class_context: np.ndarray, contexts: list[Context]
) -> Thresholds | None:
    """The layout with the classes' contexts, ``None`` when the classes average fewer than
    ``STAIRCASE_CLASSES_PER_CONTEXT`` a context (the local networks would not pay)."""
    if len(contexts) * STAIRCASE_CLASSES_PER_CONTEXT > len(class_context):
        return None
    return replace(thresholds, class_context=class_context, contexts=contexts)


QUADRANT_KEY_CELLS = 1 << 23  # points x levels of a context beyond which quadrants stay uncanonical


def _quadrant_keys(
    rank: np.ndarray, n_levels: int, start: np.ndarray, above: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per quadrant {points j >= start with rank[j] >= above} (points in (q1, q2) order, ``rank``
    their q2's rank), a key that names its set of points: its first point and its least rank
    (the set is then every point from the first on with at least that rank). The first point is
    ``len(rank)`` for an empty quadrant. Read off two (points x levels) tables, the first point
    from ``j`` with rank at least ``l`` and the least rank at least ``l`` from ``j`` on; on a
    context too large for them, (start, above) itself (a key that may name a set twice)."""
    n = len(rank)
    if (n + 1) * (n_levels + 1) > QUADRANT_KEY_CELLS:
        reach = np.append(np.maximum.accumulate(rank[::-1])[::-1], -1)  # the most rank from j
        empty = reach[np.minimum(start, n)] < above
        return np.where(empty, n, start), np.where(empty, 0, above)
    small = np.int16 if max(n, n_levels) < 32767 else np.int64
    at_least = rank[:, None] >= np.arange(n_levels + 1)[None, :]
    first = np.full((n + 1, n_levels + 1), n, dtype=small)  # a last row: nothing from ``n`` on
    smallest = np.full((n + 1, n_levels + 1), n_levels, dtype=small)
    np.copyto(first[:n], np.arange(n, dtype=small)[:, None], where=at_least)
    np.copyto(smallest[:n], rank.astype(small)[:, None], where=at_least)
    np.minimum.accumulate(first[::-1], axis=0, out=first[::-1])
    np.minimum.accumulate(smallest[::-1], axis=0, out=smallest[::-1])
    first_point = first[start, above].astype(np.int64)
    return first_point, smallest[np.minimum(first_point, n), above].astype(np.int64)


@dataclass
class _StaircaseClasses:
    class_of_atom: np.ndarray  # -1: no type may take the atom
    first_atom: np.ndarray  # class -> its first atom
    thresholds: Thresholds  # with each class's context and the contexts
