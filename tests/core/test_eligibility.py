"""The rule engine against SPEC's rules table, reimplemented in plain Python in tests/oracle.py."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from depot.core.models import Rule, RuleCode, parse_drivers
from depot.core.rules import PREDICATES, PackageColumns, RuleMasks, eligibility_matrix
from depot.ops.generator import generate_day
from support.oracle import driver_accepts, rule_accepts

REGIONS = ["north", "east", "south", "west"]


def subsets(items):
    return [list(c) for k in range(1, len(items) + 1) for c in itertools.combinations(items, k)]


PARAM_VARIANTS = {
    "MAX_WEIGHT": [{"limit_kg": v} for v in (10, 10.0, 0.5, 20, 10.5, 3, 19.99)],
    "NO_PERISHABLE": [{}],
    "REGION_ONLY": [{"allowed_regions": s} for s in subsets(REGIONS)],
    "MAX_DISTANCE": [{"max_km": v} for v in (50, 1, 100, 49.99, 50.5)],
    "EXPRESS_ONLY": [{}],
    "FRAGILE_ONLY": [{}],
    "HAZMAT_ALLOWED": [{"allowed_classes": s} for s in subsets([1, 2, 3, 4])],
    "TEMP_CONTROL": [
        {"min_c": a, "max_c": b} for a, b in ((2, 8), (-5, 25), (0, 0), (2.5, 7.5), (8, 8), (-3, 2))
    ],
    "TIME_WINDOW": [
        {"start_hour": a, "end_hour": b}
        for a, b in ((8, 17), (0, 24), (0, 1), (23, 24), (16, 17), (9, 10))
    ],
    "OVERSIZED": [{"min_volume_m3": v} for v in (0.5, 0.1, 3.0, 0, 1.25)],
}


def base_package(i: int, **overrides) -> dict:
    p = {
        "package_id": f"edge-{i}",
        "weight_kg": 5.0,
        "is_perishable": False,
        "region": "north",
        "distance_km": 10.0,
        "is_express": False,
        "is_fragile": False,
        "hazmat_class": None,
        "temperature_c": 5.0,
        "delivery_hour": 12,
        "volume_m3": 1.0,
    }
    p.update(overrides)
    return p


def boundary_packages() -> list[dict]:
    """Values exactly at, just inside and just outside each generator threshold."""
    edits = []
    for w in (0.5, 3.0, 9.99, 10.0, 10.01, 10.5, 19.99, 20.0):
        edits.append({"weight_kg": w})
    for km in (1.0, 49.99, 50.0, 50.01, 50.5, 100.0):
        edits.append({"distance_km": km})
    for t in (-5.0, -3.0, 0.0, 1.99, 2.0, 2.5, 7.5, 8.0, 8.01, 25.0):
        edits.append({"temperature_c": t})
    for h in range(24):
        edits.append({"delivery_hour": h})
    for v in (0.1, 0.49, 0.5, 0.51, 1.25, 2.99, 3.0):
        edits.append({"volume_m3": v})
    for hz in (None, 1, 2, 3, 4):
        edits.append({"hazmat_class": hz})
    for r in REGIONS:
        edits.append({"region": r})
    for flags in itertools.product((False, True), repeat=3):
        edits.append(dict(zip(("is_perishable", "is_express", "is_fragile"), flags)))
    return [base_package(i, **e) for i, e in enumerate(edits)]


@pytest.fixture(scope="module")
def packages() -> list[dict]:
    generated = generate_day(seed=31, drivers=150, packages_per_driver=10)["packages"]
    records = boundary_packages() + generated
    # stored records leave out a null hazmat class (exclude_none): both spellings must work
    for p in records[::3]:
        if p.get("hazmat_class") is None:
            p.pop("hazmat_class", None)
    return records


@pytest.fixture(scope="module")
def columns(packages) -> PackageColumns:
    return PackageColumns.from_records(packages)


def test_every_code_has_a_predicate():
    assert set(PREDICATES) == set(RuleCode)
    assert {c.value for c in RuleCode} == set(PARAM_VARIANTS)


@pytest.mark.parametrize("code", sorted(PARAM_VARIANTS))
def test_vectorised_predicate_agrees_with_the_spec_table(code, packages, columns):
    splits = 0
    for raw_params in PARAM_VARIANTS[code]:
        rule = Rule.model_validate({"rule_id": "r", "code": code, "params": raw_params})
        got = np.asarray(PREDICATES[rule.code](columns, rule.params), dtype=bool)
        expected = np.array([rule_accepts(code, raw_params, p) for p in packages], dtype=bool)
        assert got.shape == (len(packages),)
        mismatches = [packages[i]["package_id"] for i in np.flatnonzero(got != expected)]
        assert not mismatches, f"{code} {raw_params}: disagrees on {mismatches[:10]}"
        splits += 0 < expected.sum() < len(packages)
    # a code whose variants all accept everything (or nothing) here would make the comparison weak
    assert splits >= min(2, len(PARAM_VARIANTS[code])), code


def one_rule_mask(code: str, params: dict, records: list[dict]) -> list[bool]:
    (driver,) = parse_drivers(
        [{"driver_id": "d", "rules": [{"rule_id": "r", "code": code, "params": params}]}]
    )
    return RuleMasks(PackageColumns.from_records(records)).driver_mask(driver).tolist()


@pytest.mark.parametrize(
    ("code", "params", "field", "values", "expected"),
    [
        ("MAX_WEIGHT", {"limit_kg": 10}, "weight_kg", [9.99, 10.0, 10.01], [True, True, False]),
        ("MAX_DISTANCE", {"max_km": 50}, "distance_km", [49.99, 50.0, 50.01], [True, True, False]),
        (
            "TEMP_CONTROL",
            {"min_c": 2, "max_c": 8},
            "temperature_c",
            [1.99, 2.0, 5.0, 8.0, 8.01],
            [False, True, True, True, False],
        ),
        (
            "TIME_WINDOW",
            {"start_hour": 8, "end_hour": 17},
            "delivery_hour",
            [7, 8, 16, 17, 23],
            [False, True, True, False, False],
        ),
        ("OVERSIZED", {"min_volume_m3": 0.5}, "volume_m3", [0.49, 0.5, 0.51], [False, True, True]),
        (
            "HAZMAT_ALLOWED",
            {"allowed_classes": [2]},
            "hazmat_class",
            [None, 1, 2, 3, 4],
            [True, False, True, False, False],
        ),
        (
            "REGION_ONLY",
            {"allowed_regions": ["north", "east"]},
            "region",
            REGIONS,
            [True, True, False, False],
        ),
        ("NO_PERISHABLE", {}, "is_perishable", [False, True], [True, False]),
        ("EXPRESS_ONLY", {}, "is_express", [False, True], [False, True]),
        ("FRAGILE_ONLY", {}, "is_fragile", [False, True], [False, True]),
    ],
)
def test_boundaries_written_out(code, params, field, values, expected):
    records = [base_package(i, **{field: v}) for i, v in enumerate(values)]
    assert one_rule_mask(code, params, records) == expected
    assert [rule_accepts(code, params, r) for r in records] == expected  # the oracle agrees too


def test_hazmat_absent_and_null_are_both_allowed():
    with_null = base_package(0, hazmat_class=None)
    without = base_package(1)
    del without["hazmat_class"]
    assert one_rule_mask("HAZMAT_ALLOWED", {"allowed_classes": [1]}, [with_null, without]) == [
        True,
        True,
    ]


def test_a_driver_with_no_rules_accepts_everything(columns):
    (driver,) = parse_drivers([{"driver_id": "free", "rules": []}])
    assert RuleMasks(columns).driver_mask(driver).all()
    assert eligibility_matrix([driver], columns).shape == (1, len(columns))
    assert eligibility_matrix([driver], columns).all()
    assert eligibility_matrix([], columns).shape == (0, len(columns))


def test_attributes_no_rule_mentions_are_ignored():
    """A driver without HAZMAT_ALLOWED may take hazmat packages (SPEC, as the brief says)."""
    (driver,) = parse_drivers(
        [
            {
                "driver_id": "d",
                "rules": [{"rule_id": "w", "code": "MAX_WEIGHT", "params": {"limit_kg": 10}}],
            }
        ]
    )
    records = [
        base_package(i, hazmat_class=hz, is_perishable=True) for i, hz in enumerate((1, 2, 3, 4))
    ]
    assert RuleMasks(PackageColumns.from_records(records)).driver_mask(driver).all()


def test_two_rules_with_the_same_code_must_both_hold():
    drivers = parse_drivers(
        [
            {
                "driver_id": "regions",
                "rules": [
                    {
                        "rule_id": "a",
                        "code": "REGION_ONLY",
                        "params": {"allowed_regions": ["north", "east"]},
                    },
                    {
                        "rule_id": "b",
                        "code": "REGION_ONLY",
                        "params": {"allowed_regions": ["east", "south"]},
                    },
                ],
            },
            {
                "driver_id": "weights",
                "rules": [
                    {"rule_id": "c", "code": "MAX_WEIGHT", "params": {"limit_kg": 10}},
                    {"rule_id": "d", "code": "MAX_WEIGHT", "params": {"limit_kg": 5}},
                ],
            },
            {
                "driver_id": "windows",
                "rules": [
                    {
                        "rule_id": "e",
                        "code": "TIME_WINDOW",
                        "params": {"start_hour": 8, "end_hour": 17},
                    },
                    {
                        "rule_id": "f",
                        "code": "TIME_WINDOW",
                        "params": {"start_hour": 12, "end_hour": 20},
                    },
                ],
            },
        ]
    )
    records = [
        base_package(0, region="north", weight_kg=4.0, delivery_hour=9),
        base_package(1, region="east", weight_kg=5.0, delivery_hour=12),
        base_package(2, region="south", weight_kg=7.0, delivery_hour=16),
        base_package(3, region="east", weight_kg=10.0, delivery_hour=17),
    ]
    m = eligibility_matrix(drivers, PackageColumns.from_records(records)).tolist()
    assert m[0] == [False, True, False, True]  # only east is in both region lists
    assert m[1] == [True, True, False, False]  # the tighter limit, 5 kg, decides
    assert m[2] == [False, True, True, False]  # 12 <= h < 17


def test_rule_masks_are_cached_per_distinct_rule(columns):
    """Two drivers sharing a rule (with different rule ids) evaluate it once, with the same
    result."""
    drivers = parse_drivers(
        [
            {
                "driver_id": "a",
                "rules": [{"rule_id": "x1", "code": "MAX_WEIGHT", "params": {"limit_kg": 10}}],
            },
            {
                "driver_id": "b",
                "rules": [
                    {"rule_id": "x2", "code": "MAX_WEIGHT", "params": {"limit_kg": 10.0}},
                    {"rule_id": "x3", "code": "EXPRESS_ONLY"},
                ],
            },
        ]
    )
    masks = RuleMasks(columns)
    a, b = masks.driver_mask(drivers[0]), masks.driver_mask(drivers[1])
    assert len(masks._cache) == 2
    assert not (b & ~a).any()
    assert (b == (a & columns.is_express)).all()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), max_rules=st.integers(0, 10))
def test_eligibility_matrix_agrees_with_the_oracle_on_generated_days(seed, max_rules):
    day = generate_day(
        seed=seed, drivers=12, packages_per_driver=15, min_rules=0, max_rules=max_rules
    )
    drivers = parse_drivers(day["drivers"])
    packages = day["packages"] + boundary_packages()
    got = eligibility_matrix(drivers, PackageColumns.from_records(packages))
    expected = np.array(
        [[driver_accepts(raw, p) for p in packages] for raw in day["drivers"]], dtype=bool
    )
    assert got.dtype == np.bool_
    assert (got == expected).all()


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["int8", "int16", "int64", "bool", "float64"]),
    st.lists(st.integers(-(2**62), 2**62), max_size=40),
    st.sampled_from([1, 3, 1 << 16, 1 << 40, 1 << 62]),
)
def test_a_columns_distinct_values_are_numpys(dtype, raw, spread):
    """``rules.distinct_values`` counts small integer ranges instead of sorting: the same values
    and inverse as ``np.unique`` at either end of a type's range and on both sides of the limit."""
    from depot.core.rules import distinct_values

    info = np.iinfo(dtype) if dtype.startswith("int") else None
    if info is not None:
        values = np.array([info.min + abs(v) % min(spread, info.max - info.min + 1) for v in raw])
        values = values.astype(dtype)
        if raw and raw[0] % 2:  # the top of the range too
            values = (info.max - (values.astype(np.int64) - info.min)).astype(dtype)
    else:
        values = np.array([v % spread for v in raw]).astype(dtype)
    uniq, inverse = distinct_values(values)
    expected, expected_inverse = np.unique(values, return_inverse=True)
    assert uniq.dtype == expected.dtype
    assert uniq.tolist() == expected.tolist()
    assert inverse.tolist() == expected_inverse.reshape(-1).tolist()
