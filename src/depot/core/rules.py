"""The rule engine: which packages each driver may take (SPEC section 1, the rules table).

One vectorised predicate per rule code, in ``PREDICATES``: adding a code is one entry there and
one params model in ``depot.core.models``. Packages are held column-wise (``PackageColumns``) so a
predicate evaluates a whole day at once with NumPy instead of a Python loop per pair.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from depot.core.models import REGIONS, Driver, RuleCode

REGION_INDEX = {name: i for i, name in enumerate(REGIONS)}
NO_HAZMAT = 0


@dataclass(frozen=True)
class PackageColumns:
    """A day's packages as NumPy columns, in the order of ``package_ids``."""

    package_ids: tuple[str, ...]
    weight_kg: np.ndarray
    is_perishable: np.ndarray
    region: np.ndarray
    distance_km: np.ndarray
    is_express: np.ndarray
    is_fragile: np.ndarray
    hazmat_class: np.ndarray  # 0 for none, else 1..4
    temperature_c: np.ndarray
    delivery_hour: np.ndarray
    volume_m3: np.ndarray

    def __len__(self) -> int:
        return len(self.package_ids)

    @classmethod
    def from_records(cls, records: Sequence[Mapping[str, Any]]) -> PackageColumns:
        """Build columns from package dicts (validated ``Package`` dumps or stored JSON)."""

        def column(name: str, dtype) -> np.ndarray:
            return np.fromiter((r[name] for r in records), dtype=dtype, count=len(records))

        return cls(
            package_ids=tuple(r["package_id"] for r in records),
            weight_kg=column("weight_kg", np.float64),
            is_perishable=column("is_perishable", np.bool_),
            region=np.fromiter(
                (REGION_INDEX[r["region"]] for r in records), dtype=np.int8, count=len(records)
            ),
            distance_km=column("distance_km", np.float64),
            is_express=column("is_express", np.bool_),
            is_fragile=column("is_fragile", np.bool_),
            hazmat_class=np.fromiter(
                (r.get("hazmat_class") or NO_HAZMAT for r in records),
                dtype=np.int8,
                count=len(records),
            ),
            temperature_c=column("temperature_c", np.float64),
            delivery_hour=column("delivery_hour", np.int16),
            volume_m3=column("volume_m3", np.float64),
        )


Predicate = Callable[[PackageColumns, Mapping[str, Any]], np.ndarray]


def _regions(p: PackageColumns, params: Mapping[str, Any]) -> np.ndarray:
    allowed = np.zeros(len(REGION_INDEX), dtype=np.bool_)  # a lookup table: faster than np.isin
    allowed[[REGION_INDEX[r] for r in params["allowed_regions"]]] = True
    return allowed[p.region]


def _hazmat(p: PackageColumns, params: Mapping[str, Any]) -> np.ndarray:
    allowed = np.zeros(5, dtype=np.bool_)
    allowed[NO_HAZMAT] = True
    allowed[list(params["allowed_classes"])] = True
    return allowed[p.hazmat_class]


PREDICATES: dict[RuleCode, Predicate] = {
    RuleCode.MAX_WEIGHT: lambda p, q: p.weight_kg <= q["limit_kg"],
    RuleCode.NO_PERISHABLE: lambda p, q: ~p.is_perishable,
    RuleCode.REGION_ONLY: _regions,
    RuleCode.MAX_DISTANCE: lambda p, q: p.distance_km <= q["max_km"],
    RuleCode.EXPRESS_ONLY: lambda p, q: p.is_express.copy(),
    RuleCode.FRAGILE_ONLY: lambda p, q: p.is_fragile.copy(),
    RuleCode.HAZMAT_ALLOWED: _hazmat,
    RuleCode.TEMP_CONTROL: lambda p, q: (
        (q["min_c"] <= p.temperature_c) & (p.temperature_c <= q["max_c"])
    ),
    RuleCode.TIME_WINDOW: lambda p, q: (
        (q["start_hour"] <= p.delivery_hour) & (p.delivery_hour < q["end_hour"])
    ),
    RuleCode.OVERSIZED: lambda p, q: p.volume_m3 >= q["min_volume_m3"],
}


class RuleMasks:
    """Evaluates each distinct rule once per day and combines them per driver."""

    def __init__(self, packages: PackageColumns):
        self.packages = packages
        self._cache: dict[tuple, np.ndarray] = {}

    def rule_mask(self, code: RuleCode, params: Mapping[str, Any], key: tuple) -> np.ndarray:
        mask = self._cache.get(key)
        if mask is None:
            mask = np.asarray(PREDICATES[code](self.packages, params), dtype=np.bool_)
            self._cache[key] = mask
        return mask

    def driver_mask(self, driver: Driver) -> np.ndarray:
        """Packages that satisfy all of the driver's rules (all of them if it has none)."""
        mask = np.ones(len(self.packages), dtype=np.bool_)
        for rule in driver.rules:
            mask &= self.rule_mask(rule.code, rule.params, rule.key())
        return mask


def eligibility_matrix(drivers: Iterable[Driver], packages: PackageColumns) -> np.ndarray:
    """A (drivers x packages) boolean matrix; for tests and small days."""
    masks = RuleMasks(packages)
    rows = [masks.driver_mask(d) for d in drivers]
    if not rows:
        return np.zeros((0, len(packages)), dtype=np.bool_)
    return np.vstack(rows)


# --- threshold coordinates (the matcher's and explain's compression) ---------------------------

RULE_COLUMN: dict[RuleCode, str] = {
    RuleCode.MAX_WEIGHT: "weight_kg",
    RuleCode.NO_PERISHABLE: "is_perishable",
    RuleCode.REGION_ONLY: "region",
    RuleCode.MAX_DISTANCE: "distance_km",
    RuleCode.EXPRESS_ONLY: "is_express",
    RuleCode.FRAGILE_ONLY: "is_fragile",
    RuleCode.HAZMAT_ALLOWED: "hazmat_class",
    RuleCode.TEMP_CONTROL: "temperature_c",
    RuleCode.TIME_WINDOW: "delivery_hour",
    RuleCode.OVERSIZED: "volume_m3",
}
"""The one column each rule code reads: every rule is a predicate on a single attribute."""


@dataclass
class ColumnCoordinates:
    """One column cut at the distinct thresholds of the rules that read it.

    ``coord[i]`` is package ``i``'s cell: the run of adjacent distinct values (in value order)
    on which every one of those rules answers the same; ``accepts[r, k]`` is rule ``r``'s answer
    on cell ``k``. A package's outcome on a rule is ``accepts[r, coord[i]]``, so a rule is decided
    once per cell instead of once per package.
    """

    column: str
    rules: list[int]  # indices into the caller's rule list
    coord: np.ndarray  # per package (of the rows given), int32
    accepts: np.ndarray  # (len(rules), cells) bool


def column_coordinates(
    packages: PackageColumns,
    rules: Sequence[tuple[RuleCode, Mapping[str, Any]]],
    rows: np.ndarray | None = None,
) -> list[ColumnCoordinates]:
    """Cut each column that some rule reads (see ``ColumnCoordinates``); ``rows`` selects packages.

    Exact: each predicate of ``PREDICATES`` is evaluated on the column's distinct values, and
    values are merged only when every rule answers the same on them.
    """
    by_column: dict[str, list[int]] = {}
    for r, (code, _) in enumerate(rules):
        by_column.setdefault(RULE_COLUMN[code], []).append(r)
    out = []
    for column, members in by_column.items():
        values = getattr(packages, column)
        if rows is not None:
            values = values[rows]
        uniq, inverse = distinct_values(values)
        view = _OneColumn(column, uniq)
        answers = np.vstack(
            [
                np.asarray(
                    PREDICATES[rules[r][0]](cast(PackageColumns, view), rules[r][1]), dtype=np.bool_
                )
                for r in members
            ]
        )  # (rules x distinct values), value order
        if answers.shape[1] > 1:
            change = (answers[:, 1:] != answers[:, :-1]).any(axis=0)
            run_of_value = np.concatenate([[0], np.cumsum(change)]).astype(np.int32)
            starts = np.concatenate([[0], np.flatnonzero(change) + 1])
            answers = answers[:, starts]
        else:
            run_of_value = np.zeros(answers.shape[1], dtype=np.int32)
        out.append(ColumnCoordinates(column, members, run_of_value[inverse], answers))
    return out


SMALL_RANGE = 1 << 16  # integer columns spanning fewer values are counted, not sorted


def distinct_values(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` of a 1-D array; for integers or booleans of a
    small range (hours, regions, hazmat classes, flags) by a table of the values present instead
    of a sort (at 500,000 packages ~3 against ~20 ms a column). Never a bare ``np.unique``: it
    asks whether its input is masked, which imports ``numpy.ma`` (~1.3 MiB of RSS, more than a
    small day's classification)."""
    if values.dtype.kind in "iub" and len(values):
        low, high = int(values.min()), int(values.max())
        if high - low < SMALL_RANGE:
            shifted = values.astype(np.intp) - low  # in the platform's width: no wrap-around
            present = np.zeros(high - low + 1, dtype=bool)
            present[shifted] = True
            rank = np.cumsum(present, dtype=np.int64) - 1
            uniq = (np.flatnonzero(present) + low).astype(values.dtype)
            return uniq, rank[shifted]
    uniq, inverse = np.unique(values, return_inverse=True)
    return uniq, inverse.reshape(-1)


class _OneColumn:
    """Stands in for ``PackageColumns`` with one column set, so ``PREDICATES`` run on its values."""

    def __init__(self, column: str, values: np.ndarray):
        setattr(self, column, values)
        self._n = len(values)

    def __len__(self) -> int:
        return self._n
