"""The matcher against independent oracles: networkx max flow and min-cost max flow on the full
driver x package graph, built with the test's own reading of SPEC's rules table
(tests/oracle.py)."""

from __future__ import annotations

import random
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from depot.core import classes, networks
from depot.core.matcher import greedy_first_fit, match
from depot.core.models import parse_drivers
from depot.core.rules import PackageColumns
from depot.ops.generator import generate_day
from support.fleets import (
    REGION_NAMES,
    Case,
    cases,
    check_valid,
    fleet_cases,
    objective,
    personalised_driver_rules,
)
from support.oracle import best_objective, best_priority, max_assignable

PROPERTY_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# --- a generated day, with some packages already held ---------------------------------------------


@PROPERTY_SETTINGS
@given(case=cases())
def test_matcher_is_valid_and_reaches_the_maximum_flow(case):
    result = case.run()
    check_valid(case, result)
    assert result.assigned == case.optimum()


def check_priority(case: Case, result) -> None:
    """A valid answer with the oracle's count, then express, then perishable packages."""
    taken = [i for _, i in check_valid(case, result)]
    got = (
        len(taken),
        sum(case.packages[i]["is_express"] for i in taken),
        sum(case.packages[i]["is_perishable"] for i in taken),
    )
    assert got == best_priority(
        case.raw_drivers, case.packages, case.cap, case.held_counts, case.holder
    )


@settings(PROPERTY_SETTINGS, max_examples=60)
@given(case=cases(medium=True))
def test_medium_days_reach_the_optimum_with_priority(case):
    result = case.run()
    check_priority(case, result)


@settings(PROPERTY_SETTINGS, max_examples=60)
@given(case=cases(medium=True) | cases(medium=True, identical_drivers=True))
def test_medium_days_reach_the_full_objective(case):
    """Count, express, perishable, then the least sum of squared loads (held packages included),
    against a min-cost flow on the full graph with each driver's convex cost per package."""
    result = case.run()
    check_valid(case, result)
    assert objective(case, result) == best_objective(
        case.raw_drivers, case.packages, case.cap, case.held_counts, case.holder
    )


@PROPERTY_SETTINGS
@given(case=cases() | cases(identical_drivers=True))
def test_small_days_reach_the_full_objective(case):
    result = case.run()
    check_valid(case, result)
    assert objective(case, result) == best_objective(
        case.raw_drivers, case.packages, case.cap, case.held_counts, case.holder
    )


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
    got = (
        len(taken),
        sum(case.packages[i]["is_express"] for i in taken),
        sum(case.packages[i]["is_perishable"] for i in taken),
    )
    assert got == best_priority(
        case.raw_drivers, case.packages, case.cap, case.held_counts, case.holder
    )


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


# --- personalised and adversarial fleets ----------------------------------------------------------


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
    check_priority(case, result)
    assert case.run().assignments == result.assignments  # deterministic


@settings(PROPERTY_SETTINGS, max_examples=100)
@given(
    case=fleet_cases("personalised", medium=True)
    | fleet_cases("adversarial", medium=True)
    | fleet_cases("personalised")
    | fleet_cases("adversarial")
)
def test_personalised_and_adversarial_fleets_reach_the_full_objective(case):
    result = case.run()
    check_valid(case, result)
    assert objective(case, result) == best_objective(
        case.raw_drivers, case.packages, case.cap, case.held_counts, case.holder
    )


@PROPERTY_SETTINGS
@given(
    rules=personalised_driver_rules(),
    n=st.integers(2, 6),
    seed=st.integers(0, 2**16),
    cap=st.integers(1, 6),
)
def test_drivers_with_equal_rules_written_differently_share_the_load_evenly(rules, n, seed, cap):
    """Equal boxes are one type however the rules are written (duplicated, reordered): loads of
    such drivers differ by at most one."""
    raw = []
    for i in range(n):
        mine = list(rules) if i % 2 == 0 else list(reversed(rules)) + [rules[0]]
        raw.append(
            {
                "driver_id": f"d{i}",
                "rules": [{"rule_id": f"d{i}-{k}", **r} for k, r in enumerate(mine)],
            }
        )
    packages = generate_day(seed=seed, drivers=n, packages_per_driver=6, with_destination=False)[
        "packages"
    ]
    case = Case(raw, packages, cap, {})
    result = case.run()
    check_valid(case, result)
    loads = [len(v) for v in result.assignments.values()]
    assert max(loads) - min(loads) <= 1, loads
    assert result.assigned == case.optimum()


# --- greedy is not enough -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_first_fit_falls_short_where_the_matcher_reaches_the_optimum(seed):
    """The brief's generator with 2-4 rules per driver, 99 drivers x 990 packages, cap 10."""
    day = generate_day(
        seed=seed,
        drivers=99,
        packages_per_driver=10,
        min_rules=2,
        max_rules=4,
        with_destination=False,
    )
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
    day = generate_day(
        seed=5, drivers=99, packages_per_driver=10, min_rules=2, max_rules=4, with_destination=False
    )
    result = match(PackageColumns.from_records(day["packages"]), parse_drivers(day["drivers"]), 10)
    taken = [i for idx in result.assignments.values() for i in idx]
    got = (
        len(taken),
        sum(day["packages"][i]["is_express"] for i in taken),
        sum(day["packages"][i]["is_perishable"] for i in taken),
    )
    assert got == best_priority(day["drivers"], day["packages"], 10)


# --- small cases written out ----------------------------------------------------------------------


def pkg(i: int, express=False, perishable=False, **kw) -> dict:
    p = {
        "package_id": f"p{i}",
        "weight_kg": 1.0,
        "is_perishable": perishable,
        "region": "north",
        "distance_km": 5.0,
        "is_express": express,
        "is_fragile": False,
        "hazmat_class": None,
        "temperature_c": 5.0,
        "delivery_hour": 10,
        "volume_m3": 1.0,
    }
    p.update(kw)
    return p


def free_driver(driver_id: str, *rules) -> dict:
    return {
        "driver_id": driver_id,
        "rules": [
            {"rule_id": f"{driver_id}-{k}", "code": code, "params": params}
            for k, (code, params) in enumerate(rules)
        ],
    }


def run_small(raw_drivers, packages, cap, held_counts=None, held=None):
    held_mask = None
    if held is not None:
        held_mask = np.zeros(len(packages), dtype=bool)
        held_mask[list(held)] = True
    return match(
        PackageColumns.from_records(packages),
        parse_drivers(raw_drivers),
        cap,
        held_counts=held_counts,
        held=held_mask,
    )


def test_express_is_preferred_then_perishable():
    packages = [
        pkg(0),
        pkg(1, perishable=True),
        pkg(2, express=True),
        pkg(3, express=True, perishable=True),
    ]
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


def test_tiers_are_ranked_where_drivers_are_short_and_the_rest_is_taken_whole():
    """The north driver is wanted by four packages and takes two: the express ones. The south
    packages lie beyond the count flow's minimal cut (their drivers have room), so they are all
    taken, split evenly, whatever their tiers; the tier ranks are flows on the north part only."""
    north = [
        pkg(0),
        pkg(1, perishable=True),
        pkg(2, express=True),
        pkg(3, express=True, perishable=True),
    ]
    south = [pkg(4 + i, region="south", express=i == 0) for i in range(3)]
    drivers = [
        free_driver("north", ("REGION_ONLY", {"allowed_regions": ["north"]})),
        free_driver("s1", ("REGION_ONLY", {"allowed_regions": ["south"]})),
        free_driver("s2", ("REGION_ONLY", {"allowed_regions": ["south"]})),
    ]
    result = run_small(drivers, north + south, 2)
    assert result.assignments["north"] == [2, 3]
    assert sorted(result.assignments["s1"] + result.assignments["s2"]) == [4, 5, 6]
    assert sorted(len(result.assignments[d]) for d in ("s1", "s2")) == [1, 2]


def test_spare_capacity_is_spread_evenly():
    packages = [pkg(i) for i in range(20)]
    result = run_small([free_driver("a"), free_driver("b"), free_driver("c")], packages, 10)
    assert sorted(len(v) for v in result.assignments.values()) == [6, 7, 7]
    assert result.assigned == 20


def test_existing_holdings_count_towards_the_cap_and_the_balance():
    packages = [pkg(i) for i in range(12)]
    held = {0, 1, 2, 3}  # held by "a"
    result = run_small(
        [free_driver("a"), free_driver("b"), free_driver("c")],
        packages,
        5,
        held_counts={"a": 4},
        held=held,
    )
    loads = {
        "a": 4 + len(result.assignments["a"]),
        "b": len(result.assignments["b"]),
        "c": len(result.assignments["c"]),
    }
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
    packages = generate_day(seed=9, drivers=4, packages_per_driver=8, with_destination=False)[
        "packages"
    ]
    rules = [
        ("MAX_WEIGHT", {"limit_kg": 10}),
        ("REGION_ONLY", {"allowed_regions": ["north", "east"]}),
    ]
    a = run_small([free_driver("x", *rules), free_driver("y")], packages, 4)
    b = run_small([free_driver("x", *reversed(rules)), free_driver("y")], packages, 4)
    assert a.assignments == b.assignments


def test_rules_that_accept_the_same_packages_make_one_type():
    """Types are acceptance boxes, not rule lists: a looser second limit, a repeated rule or a
    window cut by a second window that changes nothing leave one type (old code: three)."""
    packages = generate_day(seed=3, drivers=3, packages_per_driver=10, with_destination=False)[
        "packages"
    ]
    drivers = [
        free_driver(
            "a",
            ("MAX_WEIGHT", {"limit_kg": 10}),
            ("TIME_WINDOW", {"start_hour": 8, "end_hour": 17}),
        ),
        free_driver(
            "b",
            ("MAX_WEIGHT", {"limit_kg": 10}),
            ("MAX_WEIGHT", {"limit_kg": 15}),
            ("TIME_WINDOW", {"start_hour": 8, "end_hour": 17}),
        ),
        free_driver(
            "c",
            ("TIME_WINDOW", {"start_hour": 8, "end_hour": 20}),
            ("MAX_WEIGHT", {"limit_kg": 10}),
            ("TIME_WINDOW", {"start_hour": 0, "end_hour": 17}),
        ),
    ]
    result = run_small(drivers, packages, 2)
    assert result.eligible_types == 1
    assert sorted(len(v) for v in result.assignments.values()) == [2, 2, 2]


def test_balance_is_exact_across_blocks_and_holdings():
    """Loads end on several levels at once: 'solo' alone accepts 8 packages (heavy ones), 'b' and
    'c' share 6 light ones, 'b' already holds 4. Least sum of squares: solo 8, b 4 + 1, c 5."""
    heavy = [pkg(i, weight_kg=30.0) for i in range(8)]
    light = [pkg(8 + i, weight_kg=1.0) for i in range(6)]
    drivers = [
        free_driver("solo"),
        free_driver("b", ("MAX_WEIGHT", {"limit_kg": 5})),
        free_driver("c", ("MAX_WEIGHT", {"limit_kg": 5})),
    ]
    result = run_small(drivers, heavy + light + [pkg(99)], 10, held_counts={"b": 4}, held={14})
    loads = {d: len(v) for d, v in result.assignments.items()}
    assert result.assigned == 14
    assert loads == {"solo": 8, "b": 1, "c": 5}, loads


# --- the staircase network (threshold columns chained per context) -------------------------------


@settings(PROPERTY_SETTINGS, max_examples=120)
@given(
    case=fleet_cases("personalised", medium=True)
    | fleet_cases("personalised")
    | fleet_cases("adversarial", medium=True)
    | cases(medium=True)
    | cases(identical_drivers=True),
    bit_words=st.sampled_from([0, classes.BIT_CLASS_WORDS]),
    key_cells=st.sampled_from([0, classes.QUADRANT_KEY_CELLS]),
    context_block=st.sampled_from([1, 5, classes.CONTEXT_BLOCK]),
)
def test_the_staircase_network_reaches_the_full_objective(
    case, bit_words, key_cells, context_block
):
    """With the staircase tried on every day with a threshold column (not only the large ones it
    is chosen for), its classes made from bitsets or from the cells alone, their quadrants named
    exactly or not, the contexts found a few cells at a time or at once, every answer is still
    valid, optimal on the whole objective, deterministic."""
    with (
        mock.patch.object(classes, "STAIRCASE_CLASSES_PER_CONTEXT", 0),
        mock.patch.object(classes, "BIT_CLASS_WORDS", bit_words),
        mock.patch.object(classes, "QUADRANT_KEY_CELLS", key_cells),
        mock.patch.object(classes, "CONTEXT_BLOCK", context_block),
    ):
        result = case.run()
        check_valid(case, result)
        assert objective(case, result) == best_objective(
            case.raw_drivers, case.packages, case.cap, case.held_counts, case.holder
        )
        assert case.run().assignments == result.assignments


@settings(PROPERTY_SETTINGS, max_examples=150)
@given(
    points=st.sets(st.tuples(st.integers(0, 9), st.integers(0, 30)), max_size=60),
    rows=st.lists(
        st.tuples(st.integers(0, 61), st.integers(-1, 31), st.integers(1, 5)), max_size=30
    ),
    small=st.sampled_from([0, networks.SMALL_QUADRANT_CELLS]),
)
def test_quadrant_minima_are_the_minimal_points_of_each_quadrant(points, rows, small):
    """The staircase's kernel against its definition, densely or from its tree: per row, the
    points at or after ``start`` with ``q2`` above ``floor`` that no other such point dominates,
    and per point the weight of the rows whose quadrant holds it."""
    pts = sorted(points)
    q2 = np.array([b for _, b in pts], dtype=np.int64)
    # every start from the first point to one past the end
    start = np.array([s % (len(pts) + 2) for s, _, _ in rows], dtype=np.int64)
    floor = np.array([f for _, f, _ in rows], dtype=np.int64)
    weights = np.array([w for _, _, w in rows], dtype=np.int64)
    expected_pairs, expected_taken = [], [0] * len(pts)
    for i, (s, f, w) in enumerate(zip(start.tolist(), floor.tolist(), weights.tolist())):
        inside = [j for j in range(s, len(pts)) if pts[j][1] > f]
        for j in inside:
            expected_taken[j] += w
            if not any(pts[k][0] <= pts[j][0] and pts[k][1] <= pts[j][1] for k in inside if k != j):
                expected_pairs.append((i, j))
    with mock.patch.object(networks, "SMALL_QUADRANT_CELLS", small):
        got_rows, got_cols, taken = networks._quadrant_minima(q2, start, floor, weights)
    assert list(zip(got_rows.tolist(), got_cols.tolist())) == expected_pairs
    assert taken.tolist() == expected_taken


def test_the_staircase_network_is_used_on_a_personalised_day():
    """On a personalised fleet (weight and distance limits per driver) the staircase network is
    chosen, is smaller than the maximal-types one and reaches the same objective."""
    rng = random.Random(14)
    n_drivers = 120
    raw = []
    for i in range(n_drivers):
        start = rng.randint(6, 10)
        rules = [
            ("MAX_WEIGHT", {"limit_kg": round(rng.uniform(5, 20), 1)}),
            ("TIME_WINDOW", {"start_hour": start, "end_hour": start + rng.randint(6, 10)}),
            ("REGION_ONLY", {"allowed_regions": rng.sample(REGION_NAMES, 2)}),
            ("MAX_DISTANCE", {"max_km": round(rng.uniform(30, 100), 1)}),
        ]
        raw.append(
            {
                "driver_id": f"d{i}",
                "rules": [
                    {"rule_id": f"d{i}-{k}", "code": c, "params": p}
                    for k, (c, p) in enumerate(rules)
                ],
            }
        )
    day = generate_day(seed=14, drivers=n_drivers, packages_per_driver=50, with_destination=False)
    packages = day["packages"]
    case = Case(raw, packages, 30, {})
    result = case.run()
    assert result.representation == "staircase"
    with mock.patch.object(classes, "STAIRCASE_CLASSES_PER_CONTEXT", 10**9):
        maximal = case.run()
    assert maximal.representation != "staircase"
    assert result.arcs < maximal.arcs
    check_valid(case, result)
    assert objective(case, result) == objective(case, maximal)
    assert result.assigned == case.optimum()


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 3), min_size=4, max_size=4), min_size=1, max_size=60),
    st.sampled_from(["real", "every row clashes", "none"]),
)
def test_distinct_rows_are_found_exactly_whatever_the_hashes_say(values, hashes):
    """``unique_rows`` sorts 64-bit hashes of wide rows; rows that share a hash but differ
    must still come out apart (forced here by a hash that is the same for every row)."""
    rows = np.array(values, dtype=np.uint64) << np.uint64(62)  # differences in the top bits
    expected = {}
    labels = [expected.setdefault(tuple(r), len(expected)) for r in values]
    firsts = [labels.index(k) for k in range(len(expected))]
    fake = {
        "every row clashes": lambda r: np.zeros(len(r), dtype=np.uint64),
        "none": lambda r: None,
    }
    with mock.patch.object(classes, "_row_hashes", fake.get(hashes, classes._row_hashes)):
        first, of_row = classes.unique_rows(rows)
    assert first.tolist() == firsts
    assert of_row.tolist() == labels
