"""The matcher against independent oracles: networkx max flow and min-cost max flow on the full
driver x package graph, built with the test's own reading of SPEC's rules table (tests/oracle.py)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from depot.core.matcher import greedy_first_fit, match
from depot.core.models import parse_drivers
from depot.core.rules import PackageColumns
from depot.ops.generator import generate_day
from oracle import best_objective, best_priority, driver_accepts, max_assignable

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# --- a generated day, with some packages already held ----------------------------------------------


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
        return match(self.columns(), self.drivers, self.cap, held_counts=dict(self.held_counts),
                     held=self.held.copy())

    def optimum(self) -> int:
        return max_assignable(self.raw_drivers, self.packages, self.cap, self.held_counts, self.holder)

    def __repr__(self) -> str:
        return (f"Case(drivers={[(d['driver_id'], [r['code'] for r in d['rules']]) for d in self.raw_drivers]}, "
                f"packages={len(self.packages)}, cap={self.cap}, held_counts={self.held_counts}, "
                f"held={sorted(self.holder)})")


@st.composite
def cases(draw, identical_drivers: bool = False, allow_holdings: bool = True, medium: bool = False):
    seed = draw(st.integers(0, 2**32 - 1))
    n_drivers = draw(st.integers(10, 40) if medium else st.integers(1, 8))
    others = draw(st.integers(0, 2))  # drivers of the day that are not requested but hold packages
    per_driver = draw(st.integers(3, 10) if medium else st.integers(0, 8))
    max_rules = draw(st.integers(0, 4))
    min_rules = draw(st.integers(0, max_rules))
    cap = draw(st.integers(0, 12) if medium else st.integers(0, 5))
    day = generate_day(seed=seed, drivers=n_drivers + others, packages_per_driver=per_driver,
                       min_rules=min_rules, max_rules=max_rules, with_destination=False)
    raw = day["drivers"]
    if identical_drivers:
        raw = [{"driver_id": d["driver_id"], "rules": raw[0]["rules"]} for d in raw]
    requested, all_ids = raw[:n_drivers], [d["driver_id"] for d in raw]
    holder = {}
    if allow_holdings and day["packages"]:
        owners = draw(st.lists(st.one_of(st.none(), st.sampled_from(all_ids)),
                               min_size=len(day["packages"]), max_size=len(day["packages"])))
        holder = {i: d for i, d in enumerate(owners) if d is not None}
    return Case(requested, day["packages"], cap, holder)


def objective(case: Case, result) -> tuple[int, int, int, int]:
    """(assigned, express, perishable, sum of squared loads of the requested drivers)."""
    taken = [i for idx in result.assignments.values() for i in idx]
    loads = [case.held_counts.get(d, 0) + len(idx) for d, idx in result.assignments.items()]
    return (len(taken), sum(case.packages[i]["is_express"] for i in taken),
            sum(case.packages[i]["is_perishable"] for i in taken), sum(x * x for x in loads))


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
        assert len(idx) == 0 or held + len(idx) <= case.cap, f"{d} holds {held} + {len(idx)} > {case.cap}"
    assert result.assigned == len(pairs)
    return pairs


# --- the properties ---------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(case=cases())
def test_matcher_is_valid_and_reaches_the_maximum_flow(case):
    result = case.run()
    check_valid(case, result)
    assert result.assigned == case.optimum()


@settings(PROPERTY_SETTINGS, max_examples=60)
@given(case=cases(medium=True))
def test_medium_days_reach_the_optimum_with_priority(case):
    result = case.run()
    pairs = check_valid(case, result)
    taken = [i for _, i in pairs]
    got = (len(taken),
           sum(case.packages[i]["is_express"] for i in taken),
           sum(case.packages[i]["is_perishable"] for i in taken))
    assert got == best_priority(case.raw_drivers, case.packages, case.cap, case.held_counts, case.holder)


@settings(PROPERTY_SETTINGS, max_examples=60)
@given(case=cases(medium=True) | cases(medium=True, identical_drivers=True))
def test_medium_days_reach_the_full_objective(case):
    """Count, express, perishable, then the least sum of squared loads (held packages included),
    against a min-cost flow on the full graph with each driver's convex cost per package."""
    result = case.run()
    check_valid(case, result)
    assert objective(case, result) == best_objective(case.raw_drivers, case.packages, case.cap,
                                                     case.held_counts, case.holder)


@PROPERTY_SETTINGS
@given(case=cases() | cases(identical_drivers=True))
def test_small_days_reach_the_full_objective(case):
    result = case.run()
    check_valid(case, result)
    assert objective(case, result) == best_objective(case.raw_drivers, case.packages, case.cap,
                                                     case.held_counts, case.holder)


@PROPERTY_SETTINGS
@given(case=cases())
def test_matcher_is_deterministic(case):
    first, second = case.run(), case.run()
    assert first.assignments == second.assignments
    for d in first.assignments:
        assert first.assignments[d] == sorted(first.assignments[d])


@PROPERTY_SETTINGS
@given(case=cases())
def test_among_maximum_answers_express_then_perishable_come_first(case):
    result = case.run()
    taken = [i for idx in result.assignments.values() for i in idx]
    got = (len(taken),
           sum(case.packages[i]["is_express"] for i in taken),
           sum(case.packages[i]["is_perishable"] for i in taken))
    assert got == best_priority(case.raw_drivers, case.packages, case.cap, case.held_counts, case.holder)


@PROPERTY_SETTINGS
@given(case=cases(identical_drivers=True))
def test_interchangeable_drivers_get_even_loads(case):
    """With identical rules, no driver that took new packages ends more than one above another
    driver (who could have taken one of them instead); without holdings, loads differ by <= 1."""
    result = case.run()
    check_valid(case, result)
    load = {d: case.held_counts.get(d, 0) + len(idx) for d, idx in result.assignments.items()}
    for d, idx in result.assignments.items():
        if idx:
            assert load[d] <= min(load.values()) + 1, load
    if not case.held_counts:
        assert max(load.values()) - min(load.values()) <= 1, load


# --- personalised and adversarial fleets ------------------------------------------------------------

REGION_NAMES = ["north", "east", "south", "west"]


def _rule(code: str, params: dict) -> dict:
    return {"code": code, "params": params}


def _num(low: float, high: float):
    """A float parameter; rounded, since a value like 1e-300 is refused (DynamoDB cannot store it)."""
    return st.floats(low, high).map(lambda v: round(v, 3))


@st.composite
def threshold_rule(draw):
    """One rule with its own parameters, biased to values that cut the generator's packages."""
    code = draw(st.sampled_from(["MAX_WEIGHT", "MAX_DISTANCE", "TIME_WINDOW", "REGION_ONLY", "TEMP_CONTROL",
                                 "OVERSIZED", "HAZMAT_ALLOWED", "NO_PERISHABLE", "EXPRESS_ONLY",
                                 "FRAGILE_ONLY"]))
    if code == "MAX_WEIGHT":
        return _rule(code, {"limit_kg": draw(st.sampled_from([5.0, 7.5, 10.0, 12.25, 20.0]) | _num(1, 21))})
    if code == "MAX_DISTANCE":
        return _rule(code, {"max_km": draw(st.sampled_from([30.0, 50.0, 99.5]) | _num(1, 101))})
    if code == "TIME_WINDOW":
        start = draw(st.integers(0, 22))
        return _rule(code, {"start_hour": start, "end_hour": draw(st.integers(start + 1, 24))})
    if code == "REGION_ONLY":
        return _rule(code, {"allowed_regions": draw(st.lists(st.sampled_from(REGION_NAMES), min_size=1,
                                                             max_size=4, unique=True))})
    if code == "TEMP_CONTROL":
        low = draw(_num(-6, 26))
        return _rule(code, {"min_c": low, "max_c": draw(_num(low, 26))})
    if code == "OVERSIZED":
        return _rule(code, {"min_volume_m3": draw(_num(0, 3.1))})
    if code == "HAZMAT_ALLOWED":
        return _rule(code, {"allowed_classes": draw(st.lists(st.integers(1, 4), min_size=1, max_size=4,
                                                             unique=True))})
    return _rule(code, {})


@st.composite
def personalised_driver_rules(draw):
    """The issue's personalised fleet: a weight limit, a shift, two regions, a distance limit."""
    start = draw(st.integers(6, 10))
    return [_rule("MAX_WEIGHT", {"limit_kg": draw(_num(5, 20))}),
            _rule("TIME_WINDOW", {"start_hour": start, "end_hour": start + draw(st.integers(6, 10))}),
            _rule("REGION_ONLY", {"allowed_regions": draw(st.lists(st.sampled_from(REGION_NAMES), min_size=2,
                                                                   max_size=2, unique=True))}),
            _rule("MAX_DISTANCE", {"max_km": draw(_num(30, 100))})]


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
    raw = [{"driver_id": f"d{i}", "rules": [{"rule_id": f"d{i}-{k}", **r} for k, r in enumerate(rules)]}
           for i, rules in enumerate(fleet)]
    seed = draw(st.integers(0, 2**32 - 1))
    per_driver = draw(st.integers(3, 10) if medium else st.integers(0, 8))
    packages = generate_day(seed=seed, drivers=n, packages_per_driver=per_driver, with_destination=False)["packages"]
    cap = draw(st.integers(0, 12) if medium else st.integers(0, 5))
    holder = {}
    if packages and draw(st.booleans()):
        owners = draw(st.lists(st.one_of(st.none(), st.sampled_from([d["driver_id"] for d in raw] + ["other"])),
                               min_size=len(packages), max_size=len(packages)))
        holder = {i: d for i, d in enumerate(owners) if d is not None}
    return Case(raw, packages, cap, holder)


@PROPERTY_SETTINGS
@given(case=fleet_cases("personalised") | fleet_cases("adversarial"))
def test_personalised_and_adversarial_fleets_reach_the_maximum_flow(case):
    result = case.run()
    check_valid(case, result)
    assert result.assigned == case.optimum()


@settings(PROPERTY_SETTINGS, max_examples=80)
@given(case=fleet_cases("personalised", medium=True) | fleet_cases("adversarial", medium=True))
def test_personalised_and_adversarial_fleets_reach_the_optimum_with_priority(case):
    result = case.run()
    pairs = check_valid(case, result)
    taken = [i for _, i in pairs]
    got = (len(taken),
           sum(case.packages[i]["is_express"] for i in taken),
           sum(case.packages[i]["is_perishable"] for i in taken))
    assert got == best_priority(case.raw_drivers, case.packages, case.cap, case.held_counts, case.holder)
    assert case.run().assignments == result.assignments  # deterministic


@settings(PROPERTY_SETTINGS, max_examples=100)
@given(case=fleet_cases("personalised", medium=True) | fleet_cases("adversarial", medium=True)
       | fleet_cases("personalised") | fleet_cases("adversarial"))
def test_personalised_and_adversarial_fleets_reach_the_full_objective(case):
    result = case.run()
    check_valid(case, result)
    assert objective(case, result) == best_objective(case.raw_drivers, case.packages, case.cap,
                                                     case.held_counts, case.holder)


@PROPERTY_SETTINGS
@given(rules=personalised_driver_rules(), n=st.integers(2, 6), seed=st.integers(0, 2**16),
       cap=st.integers(1, 6))
def test_drivers_with_equal_rules_written_differently_share_the_load_evenly(rules, n, seed, cap):
    """Equal boxes are one type however the rules are written (duplicated, reordered): loads of
    such drivers differ by at most one."""
    raw = []
    for i in range(n):
        mine = list(rules) if i % 2 == 0 else list(reversed(rules)) + [rules[0]]
        raw.append({"driver_id": f"d{i}", "rules": [{"rule_id": f"d{i}-{k}", **r} for k, r in enumerate(mine)]})
    packages = generate_day(seed=seed, drivers=n, packages_per_driver=6, with_destination=False)["packages"]
    case = Case(raw, packages, cap, {})
    result = case.run()
    check_valid(case, result)
    loads = [len(v) for v in result.assignments.values()]
    assert max(loads) - min(loads) <= 1, loads
    assert result.assigned == case.optimum()


# --- greedy is not enough ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_first_fit_falls_short_where_the_matcher_reaches_the_optimum(seed):
    """The brief's generator with 2-4 rules per driver, 99 drivers x 990 packages, cap 10."""
    day = generate_day(seed=seed, drivers=99, packages_per_driver=10, min_rules=2, max_rules=4,
                       with_destination=False)
    drivers, columns = parse_drivers(day["drivers"]), PackageColumns.from_records(day["packages"])
    optimum = max_assignable(day["drivers"], day["packages"], 10)
    result = match(columns, drivers, 10)
    greedy = greedy_first_fit(columns, drivers, 10)
    greedy_count = sum(len(v) for v in greedy.values())
    case = Case(day["drivers"], day["packages"], 10, {})
    check_valid(case, result)
    assert result.assigned == optimum
    assert greedy_count < optimum, (greedy_count, optimum)
    # greedy's answer is itself valid, just not maximal
    greedy_pairs = [i for idx in greedy.values() for i in idx]
    assert len(greedy_pairs) == len(set(greedy_pairs))
    assert all(len(v) <= 10 for v in greedy.values())


def test_priority_on_the_full_brief_day():
    day = generate_day(seed=5, drivers=99, packages_per_driver=10, min_rules=2, max_rules=4,
                       with_destination=False)
    result = match(PackageColumns.from_records(day["packages"]), parse_drivers(day["drivers"]), 10)
    taken = [i for idx in result.assignments.values() for i in idx]
    got = (len(taken), sum(day["packages"][i]["is_express"] for i in taken),
           sum(day["packages"][i]["is_perishable"] for i in taken))
    assert got == best_priority(day["drivers"], day["packages"], 10)


# --- small cases written out ------------------------------------------------------------------------


def pkg(i: int, express=False, perishable=False, **kw) -> dict:
    p = {"package_id": f"p{i}", "weight_kg": 1.0, "is_perishable": perishable, "region": "north",
         "distance_km": 5.0, "is_express": express, "is_fragile": False, "hazmat_class": None,
         "temperature_c": 5.0, "delivery_hour": 10, "volume_m3": 1.0}
    p.update(kw)
    return p


def free_driver(driver_id: str, *rules) -> dict:
    return {"driver_id": driver_id, "rules": [
        {"rule_id": f"{driver_id}-{k}", "code": code, "params": params} for k, (code, params) in enumerate(rules)]}


def run_small(raw_drivers, packages, cap, held_counts=None, held=None):
    held_mask = None
    if held is not None:
        held_mask = np.zeros(len(packages), dtype=bool)
        held_mask[list(held)] = True
    return match(PackageColumns.from_records(packages), parse_drivers(raw_drivers), cap,
                 held_counts=held_counts, held=held_mask)


def test_express_is_preferred_then_perishable():
    packages = [pkg(0), pkg(1, perishable=True), pkg(2, express=True), pkg(3, express=True, perishable=True)]
    assert run_small([free_driver("a")], packages, 1).assignments == {"a": [3]}
    assert run_small([free_driver("a")], packages, 2).assignments == {"a": [2, 3]}
    assert run_small([free_driver("a")], packages, 3).assignments == {"a": [1, 2, 3]}
    assert run_small([free_driver("a")], packages, 9).assignments == {"a": [0, 1, 2, 3]}


def test_priority_never_costs_a_package():
    """Only 'picky' can take the express package; the flexible driver takes the other one. Sending
    express to the flexible driver first (as a greedy would) leaves picky empty."""
    packages = [pkg(0, express=True), pkg(1, express=False)]
    drivers = [free_driver("flexible"), free_driver("picky", ("EXPRESS_ONLY", {}))]
    result = run_small(drivers, packages, 1)
    assert result.assignments == {"flexible": [1], "picky": [0]}


def test_spare_capacity_is_spread_evenly():
    packages = [pkg(i) for i in range(20)]
    result = run_small([free_driver("a"), free_driver("b"), free_driver("c")], packages, 10)
    assert sorted(len(v) for v in result.assignments.values()) == [6, 7, 7]
    assert result.assigned == 20


def test_existing_holdings_count_towards_the_cap_and_the_balance():
    packages = [pkg(i) for i in range(12)]
    held = {0, 1, 2, 3}  # held by "a"
    result = run_small([free_driver("a"), free_driver("b"), free_driver("c")], packages, 5,
                       held_counts={"a": 4}, held=held)
    loads = {"a": 4 + len(result.assignments["a"]), "b": len(result.assignments["b"]),
             "c": len(result.assignments["c"])}
    assert result.assigned == 8
    assert loads["a"] <= 5 and max(loads.values()) - min(loads.values()) <= 1, loads
    assert not set(held) & {i for v in result.assignments.values() for i in v}


def test_a_driver_over_the_cap_takes_nothing():
    packages = [pkg(i) for i in range(5)]
    result = run_small([free_driver("a"), free_driver("b")], packages, 2, held_counts={"a": 7})
    assert result.assignments["a"] == []
    assert len(result.assignments["b"]) == 2


@pytest.mark.parametrize(
    ("drivers", "packages", "cap", "held"),
    [
        ([], [pkg(0)], 3, None),
        ([free_driver("a")], [], 3, None),
        ([free_driver("a")], [pkg(0)], 0, None),
        ([free_driver("a")], [pkg(0), pkg(1)], 3, {0, 1}),
        ([free_driver("a", ("EXPRESS_ONLY", {}))], [pkg(0), pkg(1)], 3, None),
    ],
    ids=["no-drivers", "no-packages", "cap-zero", "all-held", "none-eligible"],
)
def test_nothing_to_assign(drivers, packages, cap, held):
    result = run_small(drivers, packages, cap, held=held)
    assert result.assigned == 0
    assert result.assignments == {d["driver_id"]: [] for d in drivers}


def test_the_answer_does_not_depend_on_rule_ids_or_rule_order():
    packages = generate_day(seed=9, drivers=4, packages_per_driver=8, with_destination=False)["packages"]
    rules = [("MAX_WEIGHT", {"limit_kg": 10}), ("REGION_ONLY", {"allowed_regions": ["north", "east"]})]
    a = run_small([free_driver("x", *rules), free_driver("y")], packages, 4)
    b = run_small([free_driver("x", *reversed(rules)), free_driver("y")], packages, 4)
    assert a.assignments == b.assignments


def test_rules_that_accept_the_same_packages_make_one_type():
    """Types are acceptance boxes, not rule lists: a looser second limit, a repeated rule or a
    window cut by a second window that changes nothing leave one type (old code: three)."""
    packages = generate_day(seed=3, drivers=3, packages_per_driver=10, with_destination=False)["packages"]
    drivers = [free_driver("a", ("MAX_WEIGHT", {"limit_kg": 10}), ("TIME_WINDOW", {"start_hour": 8, "end_hour": 17})),
               free_driver("b", ("MAX_WEIGHT", {"limit_kg": 10}), ("MAX_WEIGHT", {"limit_kg": 15}),
                           ("TIME_WINDOW", {"start_hour": 8, "end_hour": 17})),
               free_driver("c", ("TIME_WINDOW", {"start_hour": 8, "end_hour": 20}), ("MAX_WEIGHT", {"limit_kg": 10}),
                           ("TIME_WINDOW", {"start_hour": 0, "end_hour": 17}))]
    result = run_small(drivers, packages, 2)
    assert result.eligible_types == 1
    assert sorted(len(v) for v in result.assignments.values()) == [2, 2, 2]


def test_balance_is_exact_across_blocks_and_holdings():
    """Loads end on several levels at once: 'solo' alone accepts 8 packages (heavy ones), 'b' and
    'c' share 6 light ones, 'b' already holds 4. Least sum of squares: solo 8, b 4 + 1, c 5."""
    heavy = [pkg(i, weight_kg=30.0) for i in range(8)]
    light = [pkg(8 + i, weight_kg=1.0) for i in range(6)]
    drivers = [free_driver("solo"), free_driver("b", ("MAX_WEIGHT", {"limit_kg": 5})),
               free_driver("c", ("MAX_WEIGHT", {"limit_kg": 5}))]
    result = run_small(drivers, heavy + light + [pkg(99)], 10, held_counts={"b": 4}, held={14})
    loads = {d: len(v) for d, v in result.assignments.items()}
    assert result.assigned == 14
    assert loads == {"solo": 8, "b": 1, "c": 5}, loads
