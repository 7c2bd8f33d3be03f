"""``depot.core.explain.explain_unassigned`` against a plain-Python reading of the same contract,
with the rules re-implemented from SPEC's table (tests/oracle.py)."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from depot.core.explain import explain_unassigned
from depot.core.models import parse_drivers
from depot.core.rules import PackageColumns
from depot.ops.generator import generate_day
from support.fleets import fleet_cases
from support.oracle import driver_accepts, rule_accepts

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def expected(raw_drivers, packages, held, cap):
    """Per free package: some driver accepts it, or the three rules refusing it most often (count of
    drivers' rules with that code and params), ties in order of first appearance."""
    drivers = parse_drivers(raw_drivers)
    out = {}
    for i, p in enumerate(packages):
        if held[i]:
            continue
        if any(driver_accepts(d, p) for d in raw_drivers):
            out[p["package_id"]] = {
                "reason": "eligible_drivers_full",
                "message": f"every requested driver that accepts it already holds {cap}",
            }
            continue
        counts, labels = {}, {}
        for d in drivers:
            for rule in d.rules:
                key = rule.key()
                counts.setdefault(key, 0)
                labels[key] = f"{rule.code.value} {rule.params}" if rule.params else rule.code.value
                if not rule_accepts(rule.code.value, rule.params, p):
                    counts[key] += 1
        ranked = sorted(enumerate(counts.items()), key=lambda e: (-e[1][1], e[0]))
        top = [{"rule": labels[k], "drivers_refusing": n} for _, (k, n) in ranked[:3] if n]
        out[p["package_id"]] = {
            "reason": "no_eligible_driver",
            "message": "no requested driver's rules accept it",
            "rejected_by": top,
        }
    return out


def run(case):
    return explain_unassigned(
        PackageColumns.from_records(case.packages), case.drivers, case.held.copy(), case.cap
    )


@SETTINGS
@given(case=fleet_cases("adversarial") | fleet_cases("personalised"))
def test_explain_matches_the_plain_reading(case):
    got = run(case)
    want = expected(case.raw_drivers, case.packages, case.held, case.cap)
    assert got == want
    assert list(got) == list(want), "packages in manifest order"


def test_the_brief_day_with_nothing_held():
    day = generate_day(
        seed=4, drivers=30, packages_per_driver=10, min_rules=1, max_rules=4, with_destination=False
    )
    held = np.zeros(len(day["packages"]), dtype=bool)
    held[::3] = True
    got = explain_unassigned(
        PackageColumns.from_records(day["packages"]), parse_drivers(day["drivers"][:5]), held, 7
    )
    assert got == expected(day["drivers"][:5], day["packages"], held, 7)
    assert any(
        v["reason"] == "no_eligible_driver" and len(v["rejected_by"]) >= 2 for v in got.values()
    )


def test_no_drivers_and_no_free_packages():
    day = generate_day(seed=1, drivers=2, packages_per_driver=3, with_destination=False)
    columns = PackageColumns.from_records(day["packages"])
    held = np.zeros(len(columns), dtype=bool)
    none = explain_unassigned(columns, [], held, 3)
    assert set(none) == set(columns.package_ids)
    assert all(
        v == {"reason": "no_driver_named", "message": "no on-duty driver was requested"}
        for v in none.values()
    )
    assert explain_unassigned(columns, parse_drivers(day["drivers"]), ~held, 3) == {}


@SETTINGS
@given(st.integers(0, 2**16))
def test_drivers_without_rules_accept_everything(seed):
    day = generate_day(seed=seed, drivers=3, packages_per_driver=4, with_destination=False)
    raw = [{"driver_id": "free", "rules": []}, *day["drivers"]]
    held = np.zeros(len(day["packages"]), dtype=bool)
    got = explain_unassigned(
        PackageColumns.from_records(day["packages"]), parse_drivers(raw), held, 1
    )
    assert {v["reason"] for v in got.values()} == {"eligible_drivers_full"}
