"""Why packages stay unassigned (``?explain=true``). Pure, no I/O.

The answer per free package is the one ``Service.explain_unassigned`` gave: either some requested
driver accepts it (so every such driver is full), or none does, with the three rules that refuse
it most often (counted over the requested drivers' rules). It is computed on the matcher's cut
columns (``rules.column_coordinates``): a rule is decided once per cell of its column, never per
package, and packages are only visited to write the answer, so it costs less than ``match``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from depot.core.classes import classify, unique_rows
from depot.core.models import Driver
from depot.core.rules import PackageColumns

TOP_RULES = 3


def explain_unassigned(
    packages: PackageColumns,
    drivers: Sequence[Driver],
    held: np.ndarray | None,
    max_per_driver: int,
) -> dict[str, Any]:
    """For each package not marked in ``held``: ``eligible_drivers_full`` or ``no_eligible_driver``
    (with ``rejected_by``: up to three rules, most refusing drivers first, ties in the order the
    rules first appear among ``drivers``)."""
    free = np.flatnonzero(~held) if held is not None else np.arange(len(packages))
    if not len(free):
        return {}
    if not drivers:  # nobody to take them (no /assign yet, or every named driver is off duty)
        message = "no on-duty driver was requested"
        return {
            packages.package_ids[i]: {"reason": "no_driver_named", "message": message} for i in free
        }
    coords: list = []
    types, class_bits, class_of, _, table = classify(
        packages, drivers, list(range(len(drivers))), free, classes=False, coords_out=coords
    )
    eligible = (
        class_bits.any(axis=1)[class_of] if types.drivers else np.zeros(len(free), dtype=bool)
    )
    bad = np.flatnonzero(~eligible)
    # distinct answers are few: each is built once and shared by the packages that have it
    # (read-only: callers copy before adding to an answer)
    answer = np.full(len(free), -1, dtype=np.int64)
    answers: list[dict[str, Any]] = []
    if len(bad):
        tops = np.hstack(_top_refusals(coords, table.multiplicity(), len(table.rules), bad))
        first, which = unique_rows(tops)
        answer[bad] = which
        answers = _refusal_answers(tops[first], table.spelling)
    full = f"every requested driver that accepts it already holds {max_per_driver}"
    answers.append({"reason": "eligible_drivers_full", "message": full})  # answer -1
    ids = packages.package_ids
    return dict(zip([ids[i] for i in free.tolist()], [answers[a] for a in answer.tolist()]))


def _top_refusals(
    coords: list, multiplicity: np.ndarray, n_rules: int, bad: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per package of ``bad`` (rows of the cut columns), up to ``TOP_RULES`` rules refusing it,
    most refusing drivers first, ties in the order the rules first appear (-1 and 0 past its
    last): each column's best rules found once per cell, then merged per package."""
    per_column = TOP_RULES * len(coords)
    rule_c = np.empty((len(bad), per_column), dtype=np.int64)
    score_c = np.zeros((len(bad), per_column), dtype=np.int64)
    for k, col in enumerate(coords):
        members = np.array(col.rules, dtype=np.int64)
        counts = multiplicity[members][:, None] * ~col.accepts  # (rules x cells)
        # a positive score names its rule: more refusals first, then first appearance
        score = counts * (n_rules + 1) + (n_rules - members)[:, None] * (counts > 0)
        best = np.argsort(-score, axis=0, kind="stable")[:TOP_RULES]  # (<=3 x cells)
        cells = col.coord[bad]
        span = slice(k * TOP_RULES, k * TOP_RULES + len(best))
        rule_c[:, span] = members[best].T[cells]
        score_c[:, span] = np.take_along_axis(score, best, axis=0).T[cells]
    pick = np.argsort(-score_c, axis=1, kind="stable")[:, :TOP_RULES]
    chosen = np.take_along_axis(score_c, pick, axis=1)
    top_rule = np.full((len(bad), TOP_RULES), -1, dtype=np.int64)
    top_count = np.zeros((len(bad), TOP_RULES), dtype=np.int64)
    width = pick.shape[1]
    top_rule[:, :width] = np.where(chosen > 0, np.take_along_axis(rule_c, pick, axis=1), -1)
    top_count[:, :width] = chosen // (n_rules + 1)
    return top_rule, top_count


def _refusal_answers(distinct: np.ndarray, spelling: list) -> list[dict[str, Any]]:
    """One ``no_eligible_driver`` answer per distinct row of (top rules, their counts); a rule is
    labelled (the last driver's spelling, as before) and each (rule, count) entry built once."""
    labels: dict[int, str] = {}
    entries: dict[tuple[int, int], dict[str, Any]] = {}

    def entry(r: int, n: int) -> dict[str, Any]:
        if (r, n) not in entries:
            if r not in labels:
                rule = spelling[r]
                labels[r] = f"{rule.code.value} {rule.params}" if rule.params else rule.code.value
            entries[r, n] = {"rule": labels[r], "drivers_refusing": n}
        return entries[r, n]

    refused = "no requested driver's rules accept it"
    return [
        {
            "reason": "no_eligible_driver",
            "message": refused,
            "rejected_by": [
                entry(r, n) for r, n in zip(row[:TOP_RULES], row[TOP_RULES:]) if r >= 0
            ],
        }
        for row in distinct.tolist()
    ]
