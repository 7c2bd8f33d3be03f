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
    rules = table.rules
    labels = [
        f"{rule.code.value} {rule.params}" if rule.params else rule.code.value
        for rule in table.spelling
    ]  # the last driver's spelling, as before

    bad = np.flatnonzero(~eligible)
    top_rule = np.full((len(bad), TOP_RULES), -1, dtype=np.int64)
    top_count = np.zeros((len(bad), TOP_RULES), dtype=np.int64)
    if len(bad) and rules:
        multiplicity = table.multiplicity()  # per rule: how many of the drivers' rules have it
        cand_rule, cand_score = [], []
        for col in coords:  # each rule decided once per cell; the cells of ``bad`` read off
            members = np.array(col.rules, dtype=np.int64)
            counts = multiplicity[members][:, None] * ~col.accepts  # (rules x cells)
            # per cell, this column's best rules: more refusals first, then first appearance
            score = counts * (len(rules) + 1) + (len(rules) - members)[:, None] * (counts > 0)
            best = np.argsort(-score, axis=0, kind="stable")[:TOP_RULES]  # (<=3 x cells)
            cells = col.coord[bad]
            cand_rule.append(members[best][:, cells].T)
            cand_score.append(np.take_along_axis(score, best, axis=0)[:, cells].T)
        rule_c, score_c = np.hstack(cand_rule), np.hstack(cand_score)
        pick = np.argsort(-score_c, axis=1, kind="stable")[:, :TOP_RULES]
        chosen = np.take_along_axis(score_c, pick, axis=1)
        width = pick.shape[1]
        top_rule[:, :width] = np.where(chosen > 0, np.take_along_axis(rule_c, pick, axis=1), -1)
        top_count[:, :width] = chosen // (len(rules) + 1)

    # distinct answers are few: each is built once and shared by the packages that have it
    # (read-only: callers copy before adding to an answer)
    answer = np.full(len(free), -1, dtype=np.int64)
    answers: list[dict[str, Any]] = []
    refused = "no requested driver's rules accept it"
    if len(bad):
        tops = np.hstack([top_rule, top_count])
        first, which = unique_rows(tops)
        distinct = tops[first]
        answer[bad] = which
        answers = [
            {
                "reason": "no_eligible_driver",
                "message": refused,
                "rejected_by": [
                    {"rule": labels[r], "drivers_refusing": n}
                    for r, n in zip(row[:TOP_RULES], row[TOP_RULES:])
                    if r >= 0
                ],
            }
            for row in distinct.tolist()
        ]
    full = f"every requested driver that accepts it already holds {max_per_driver}"
    answers.append({"reason": "eligible_drivers_full", "message": full})  # answer -1
    ids = packages.package_ids
    return {ids[i]: answers[a] for i, a in zip(free.tolist(), answer.tolist())}
