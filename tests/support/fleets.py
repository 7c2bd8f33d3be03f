"""Days for the matcher's property tests: a ``Case`` (drivers, packages, cap, holdings) and the
strategies that draw them, from the brief's generator to personalised and adversarial fleets."""

from __future__ import annotations

from collections import Counter

import numpy as np
from hypothesis import strategies as st

from depot.core.matcher import match
from depot.core.models import parse_drivers
from depot.core.rules import PackageColumns
from depot.ops.generator import generate_day
from support.oracle import driver_accepts, max_assignable


class Case:
    """A matcher input: requested drivers, the day's packages, the cap, and what is already held."""

    def __init__(self, raw_drivers, packages, cap, holder):
        self.raw_drivers = raw_drivers  # requested drivers, raw JSON
        self.drivers = parse_drivers(raw_drivers)
        self.packages = packages
        self.cap = cap
        self.holder = holder  # package index -> driver id, for packages already held by anyone
        ids = {d["driver_id"] for d in raw_drivers}
        self.held_counts = dict(Counter(d for d in holder.values() if d in ids))
        self.held = np.zeros(len(packages), dtype=bool)
        self.held[list(holder)] = True

    def columns(self) -> PackageColumns:
        return PackageColumns.from_records(self.packages)

    def run(self):
        return match(
            self.columns(),
            self.drivers,
            self.cap,
            held_counts=dict(self.held_counts),
            held=self.held.copy(),
        )

    def optimum(self) -> int:
        return max_assignable(
            self.raw_drivers, self.packages, self.cap, self.held_counts, self.holder
        )

    def __repr__(self) -> str:
        return (
            "Case(drivers="
            f"{[(d['driver_id'], [r['code'] for r in d['rules']]) for d in self.raw_drivers]}, "
            f"packages={len(self.packages)}, cap={self.cap}, held_counts={self.held_counts}, "
            f"held={sorted(self.holder)})"
        )


@st.composite
def cases(draw, identical_drivers: bool = False, allow_holdings: bool = True, medium: bool = False):
    seed = draw(st.integers(0, 2**32 - 1))
    n_drivers = draw(st.integers(10, 40) if medium else st.integers(1, 8))
    others = draw(st.integers(0, 2))  # drivers of the day that are not requested but hold packages
    per_driver = draw(st.integers(3, 10) if medium else st.integers(0, 8))
    max_rules = draw(st.integers(0, 4))
    min_rules = draw(st.integers(0, max_rules))
    cap = draw(st.integers(0, 12) if medium else st.integers(0, 5))
    day = generate_day(
        seed=seed,
        drivers=n_drivers + others,
        packages_per_driver=per_driver,
        min_rules=min_rules,
        max_rules=max_rules,
        with_destination=False,
    )
    raw = day["drivers"]
    if identical_drivers:
        raw = [{"driver_id": d["driver_id"], "rules": raw[0]["rules"]} for d in raw]
    requested, all_ids = raw[:n_drivers], [d["driver_id"] for d in raw]
    holder = {}
    if allow_holdings and day["packages"]:
        owners = draw(
            st.lists(
                st.one_of(st.none(), st.sampled_from(all_ids)),
                min_size=len(day["packages"]),
                max_size=len(day["packages"]),
            )
        )
        holder = {i: d for i, d in enumerate(owners) if d is not None}
    return Case(requested, day["packages"], cap, holder)


def objective(case: Case, result) -> tuple[int, int, int, int]:
    """(assigned, express, perishable, sum of squared loads of the requested drivers)."""
    taken = [i for idx in result.assignments.values() for i in idx]
    loads = [case.held_counts.get(d, 0) + len(idx) for d, idx in result.assignments.items()]
    return (
        len(taken),
        sum(case.packages[i]["is_express"] for i in taken),
        sum(case.packages[i]["is_perishable"] for i in taken),
        sum(x * x for x in loads),
    )


def check_valid(case: Case, result) -> list[tuple[str, int]]:
    """Every invariant of a single answer; returns the (driver, package index) pairs."""
    ids = [d["driver_id"] for d in case.raw_drivers]
    assert list(result.assignments) == ids, "every requested driver is listed, in order"
    pairs = [(d, i) for d, idx in result.assignments.items() for i in idx]
    indices = [i for _, i in pairs]
    assert len(indices) == len(set(indices)), "a package was assigned twice"
    assert all(isinstance(i, int) and 0 <= i < len(case.packages) for i in indices)
    assert not any(case.held[i] for i in indices), "an already-held package was assigned again"
    raw = {d["driver_id"]: d for d in case.raw_drivers}
    for d, i in pairs:
        assert driver_accepts(raw[d], case.packages[i]), f"{d} takes package {i} against its rules"
    for d, idx in result.assignments.items():
        held = case.held_counts.get(d, 0)
        assert len(idx) == 0 or held + len(idx) <= case.cap, (
            f"{d} holds {held} + {len(idx)} > {case.cap}"
        )
    assert result.assigned == len(pairs)
    return pairs


# --- the properties -------------------------------------------------------------------------------


REGION_NAMES = ["north", "east", "south", "west"]


def _rule(code: str, params: dict) -> dict:
    return {"code": code, "params": params}


def _num(low: float, high: float):
    """A float parameter; rounded, since a value like 1e-300 is refused (DynamoDB cannot store
    it)."""
    return st.floats(low, high).map(lambda v: round(v, 3))


@st.composite
def threshold_rule(draw):
    """One rule with its own parameters, biased to values that cut the generator's packages."""
    code = draw(
        st.sampled_from(
            [
                "MAX_WEIGHT",
                "MAX_DISTANCE",
                "TIME_WINDOW",
                "REGION_ONLY",
                "TEMP_CONTROL",
                "OVERSIZED",
                "HAZMAT_ALLOWED",
                "NO_PERISHABLE",
                "EXPRESS_ONLY",
                "FRAGILE_ONLY",
            ]
        )
    )
    if code == "MAX_WEIGHT":
        return _rule(
            code, {"limit_kg": draw(st.sampled_from([5.0, 7.5, 10.0, 12.25, 20.0]) | _num(1, 21))}
        )
    if code == "MAX_DISTANCE":
        return _rule(code, {"max_km": draw(st.sampled_from([30.0, 50.0, 99.5]) | _num(1, 101))})
    if code == "TIME_WINDOW":
        start = draw(st.integers(0, 22))
        return _rule(code, {"start_hour": start, "end_hour": draw(st.integers(start + 1, 24))})
    if code == "REGION_ONLY":
        return _rule(
            code,
            {
                "allowed_regions": draw(
                    st.lists(st.sampled_from(REGION_NAMES), min_size=1, max_size=4, unique=True)
                )
            },
        )
    if code == "TEMP_CONTROL":
        low = draw(_num(-6, 26))
        return _rule(code, {"min_c": low, "max_c": draw(_num(low, 26))})
    if code == "OVERSIZED":
        return _rule(code, {"min_volume_m3": draw(_num(0, 3.1))})
    if code == "HAZMAT_ALLOWED":
        return _rule(
            code,
            {
                "allowed_classes": draw(
                    st.lists(st.integers(1, 4), min_size=1, max_size=4, unique=True)
                )
            },
        )
    return _rule(code, {})


@st.composite
def personalised_driver_rules(draw):
    """The issue's personalised fleet: a weight limit, a shift, two regions, a distance limit."""
    start = draw(st.integers(6, 10))
    return [
        _rule("MAX_WEIGHT", {"limit_kg": draw(_num(5, 20))}),
        _rule("TIME_WINDOW", {"start_hour": start, "end_hour": start + draw(st.integers(6, 10))}),
        _rule(
            "REGION_ONLY",
            {
                "allowed_regions": draw(
                    st.lists(st.sampled_from(REGION_NAMES), min_size=2, max_size=2, unique=True)
                )
            },
        ),
        _rule("MAX_DISTANCE", {"max_km": draw(_num(30, 100))}),
    ]


@st.composite
def fleet_cases(draw, kind: str, medium: bool = False):
    """A ``Case`` whose drivers are personalised (each his own thresholds) or adversarial (up to ten
    rules each, repeated codes, duplicated rules and duplicated drivers)."""
    n = draw(st.integers(5, 25) if medium else st.integers(1, 10))
    fleet: list[list[dict]] = []
    for _ in range(n):
        if fleet and draw(st.integers(0, 4)) == 0:
            rules = list(draw(st.sampled_from(fleet)))  # a duplicated driver
        elif kind == "personalised":
            rules = draw(personalised_driver_rules())
        else:
            rules = draw(st.lists(threshold_rule(), min_size=0, max_size=10))
            if rules and draw(st.booleans()):
                rules.append(draw(st.sampled_from(rules)))  # a duplicated rule
        fleet.append(rules)
    raw = [
        {
            "driver_id": f"d{i}",
            "rules": [{"rule_id": f"d{i}-{k}", **r} for k, r in enumerate(rules)],
        }
        for i, rules in enumerate(fleet)
    ]
    seed = draw(st.integers(0, 2**32 - 1))
    per_driver = draw(st.integers(3, 10) if medium else st.integers(0, 8))
    packages = generate_day(
        seed=seed, drivers=n, packages_per_driver=per_driver, with_destination=False
    )["packages"]
    cap = draw(st.integers(0, 12) if medium else st.integers(0, 5))
    holder = {}
    if packages and draw(st.booleans()):
        owners = draw(
            st.lists(
                st.one_of(st.none(), st.sampled_from([d["driver_id"] for d in raw] + ["other"])),
                min_size=len(packages),
                max_size=len(packages),
            )
        )
        holder = {i: d for i, d in enumerate(owners) if d is not None}
    return Case(raw, packages, cap, holder)
