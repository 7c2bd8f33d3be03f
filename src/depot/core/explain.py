"""Why each free package is unassigned: no requested driver accepts it, or all that do are full."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from depot.core.models import Driver
from depot.core.rules import PackageColumns, RuleMasks


def explain_unassigned(columns: PackageColumns, drivers: Sequence[Driver], held: np.ndarray,
                       max_per_driver: int) -> dict[str, Any]:
    masks = RuleMasks(columns)
    free = np.flatnonzero(~held)
    eligible_any = np.zeros(len(columns), dtype=bool)
    rejections: dict[tuple, Any] = {}
    labels: dict[tuple, str] = {}
    for driver in drivers:
        eligible_any |= masks.driver_mask(driver)
        for rule in driver.rules:
            key = rule.key()
            refused = ~masks.rule_mask(rule.code, rule.params, key)
            rejections[key] = rejections.get(key, 0) + refused.astype(np.int32)
            labels[key] = f"{rule.code.value} {rule.params}" if rule.params else rule.code.value
    out: dict[str, Any] = {}
    keys = list(rejections)
    counts = np.vstack([rejections[k] for k in keys]) if keys else None
    for i in free:
        pid = columns.package_ids[i]
        if not drivers:
            out[pid] = {"reason": "no_driver_named", "message": "no on-duty driver was requested"}
            continue
        if eligible_any[i]:
            out[pid] = {"reason": "eligible_drivers_full",
                        "message": f"every requested driver that accepts it already holds {max_per_driver}"}
            continue
        top = []
        if counts is not None:
            order = np.argsort(-counts[:, i], kind="stable")[:3]
            top = [{"rule": labels[keys[k]], "drivers_refusing": int(counts[k, i])} for k in order if counts[k, i]]
        out[pid] = {"reason": "no_eligible_driver",
                    "message": "no requested driver's rules accept it", "rejected_by": top}
    return out
