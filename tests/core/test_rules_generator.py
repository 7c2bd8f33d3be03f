"""The generator of each day's lists (SPEC section 1, "The generator"): codes, params,
distributions, determinism, and the `depot generate` command."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest

from depot.core.models import parse_drivers, parse_packages
from depot.ops.generator import generate_day

CODES = {
    "MAX_WEIGHT",
    "NO_PERISHABLE",
    "REGION_ONLY",
    "MAX_DISTANCE",
    "EXPRESS_ONLY",
    "FRAGILE_ONLY",
    "HAZMAT_ALLOWED",
    "TEMP_CONTROL",
    "TIME_WINDOW",
    "OVERSIZED",
}
REGIONS = {"north", "east", "south", "west"}
PACKAGE_FIELDS = {
    "package_id",
    "weight_kg",
    "is_perishable",
    "region",
    "distance_km",
    "is_express",
    "is_fragile",
    "hazmat_class",
    "temperature_c",
    "delivery_hour",
    "volume_m3",
}


@pytest.fixture(scope="module")
def default_day():
    return generate_day(seed=20240607)


@pytest.fixture(scope="module")
def big_day():
    """Enough drivers and packages that every value of every distribution shows up."""
    return generate_day(seed=7, drivers=400, packages_per_driver=15, min_rules=0, max_rules=4)


def is_uuid4(value: str) -> bool:
    try:
        parsed = uuid.UUID(value)
    except (ValueError, TypeError):
        return False
    return parsed.version == 4 and str(parsed) == value


def has_two_decimals(x: float) -> bool:
    return round(x, 2) == x


# --- determinism ---------------------------------------------------------------------------------


def test_same_seed_gives_the_same_day():
    assert generate_day(seed=123) == generate_day(seed=123)
    a = generate_day(seed=5, drivers=30, packages_per_driver=4, min_rules=2, max_rules=4)
    b = generate_day(seed=5, drivers=30, packages_per_driver=4, min_rules=2, max_rules=4)
    assert json.dumps(a) == json.dumps(b)


def test_different_seeds_give_different_days():
    a, b = generate_day(seed=1), generate_day(seed=2)
    assert a["drivers"] != b["drivers"]
    assert {p["package_id"] for p in a["packages"]}.isdisjoint(
        {p["package_id"] for p in b["packages"]}
    )


def test_the_global_random_state_is_neither_used_nor_touched():
    random.seed(99)
    before = random.getstate()
    first = generate_day(seed=11, drivers=20, packages_per_driver=5)
    assert random.getstate() == before, "generate_day advanced the global random generator"
    random.seed(12345)  # a different global state must not change a seeded day
    assert generate_day(seed=11, drivers=20, packages_per_driver=5) == first
    generate_day(seed=None, drivers=3, packages_per_driver=2)
    random.seed(12345)
    expected_next = random.random()
    random.seed(12345)
    generate_day(seed=None, drivers=3, packages_per_driver=2)
    assert random.random() == expected_next


def test_unseeded_days_differ():
    a = generate_day(drivers=5, packages_per_driver=2)
    b = generate_day(drivers=5, packages_per_driver=2)
    assert [p["package_id"] for p in a["packages"]] != [p["package_id"] for p in b["packages"]]


# --- the default day ------------------------------------------------------------------------------


def test_default_day_is_the_briefs(default_day):
    drivers, packages = default_day["drivers"], default_day["packages"]
    assert [d["driver_id"] for d in drivers] == [f"driver_{i}" for i in range(1, 100)]
    assert len(packages) == 990
    assert all(0 <= len(d["rules"]) <= 2 for d in drivers)


def test_default_day_draws_zero_one_and_two_rules(default_day):
    counts = Counter(len(d["rules"]) for d in default_day["drivers"])
    assert set(counts) == {0, 1, 2}
    for k in (0, 1, 2):  # k uniform in [0, 2]: 33 expected each of 99
        assert 15 <= counts[k] <= 55, counts


def test_default_day_passes_validation(default_day):
    assert len(parse_drivers(default_day["drivers"])) == 99
    assert len(parse_packages(default_day["packages"])) == 990


@pytest.mark.parametrize(("lo", "hi"), [(0, 0), (2, 4), (3, 3), (10, 10)])
def test_rule_counts_follow_min_and_max(lo, hi):
    day = generate_day(
        seed=lo * 10 + hi, drivers=60, packages_per_driver=1, min_rules=lo, max_rules=hi
    )
    counts = {len(d["rules"]) for d in day["drivers"]}
    assert counts <= set(range(lo, hi + 1))
    assert counts == set(range(lo, hi + 1)), (
        "every k in [min_rules, max_rules] should occur in 60 drivers"
    )


@pytest.mark.parametrize(("lo", "hi"), [(3, 2), (-1, 2), (0, 11)])
def test_impossible_rule_counts_are_refused(lo, hi):
    with pytest.raises(ValueError):
        generate_day(seed=1, drivers=2, min_rules=lo, max_rules=hi)


def test_sizes_follow_the_arguments():
    day = generate_day(seed=3, drivers=7, packages_per_driver=4)
    assert [d["driver_id"] for d in day["drivers"]] == [f"driver_{i}" for i in range(1, 8)]
    assert len(day["packages"]) == 28
    assert generate_day(seed=3, drivers=0, packages_per_driver=4) == {"drivers": [], "packages": []}


# --- rules --------------------------------------------------------------------------------------


def test_rule_codes_are_drawn_without_repetition(big_day):
    for d in big_day["drivers"]:
        codes = [r["code"] for r in d["rules"]]
        assert len(codes) == len(set(codes)), d
    ten = generate_day(seed=4, drivers=5, packages_per_driver=0, min_rules=10, max_rules=10)
    for d in ten["drivers"]:
        assert sorted(r["code"] for r in d["rules"]) == sorted(CODES)


def test_every_code_is_drawn(big_day):
    assert {r["code"] for d in big_day["drivers"] for r in d["rules"]} == CODES


def test_params_are_the_specs(big_day):
    region_pairs, class_sets = set(), Counter()
    for d in big_day["drivers"]:
        for r in d["rules"]:
            code, params = r["code"], r["params"]
            assert is_uuid4(r["rule_id"]), r
            if code == "MAX_WEIGHT":
                assert params == {"limit_kg": 10}
            elif code == "MAX_DISTANCE":
                assert params == {"max_km": 50}
            elif code == "TEMP_CONTROL":
                assert params == {"min_c": 2, "max_c": 8}
            elif code == "TIME_WINDOW":
                assert params == {"start_hour": 8, "end_hour": 17}
            elif code == "OVERSIZED":
                assert params == {"min_volume_m3": 0.5}
            elif code == "REGION_ONLY":
                assert set(params) == {"allowed_regions"}
                regions = params["allowed_regions"]
                assert len(regions) == 2 and len(set(regions)) == 2 and set(regions) <= REGIONS
                region_pairs.add(frozenset(regions))
            elif code == "HAZMAT_ALLOWED":
                assert set(params) == {"allowed_classes"}
                classes = params["allowed_classes"]
                assert 1 <= len(classes) <= 2 and len(set(classes)) == len(classes)
                assert set(classes) <= {1, 2, 3, 4}
                class_sets[frozenset(classes)] += 1
            else:
                assert code in {"NO_PERISHABLE", "EXPRESS_ONLY", "FRAGILE_ONLY"}
                assert params == {}
    assert len(region_pairs) == 6, "2 of 4 regions: all six pairs should be drawn"
    assert {len(s) for s in class_sets} == {1, 2}
    assert len(class_sets) == 4 + 6, "1 or 2 of 4 classes: all ten sets should be drawn"


def test_rule_ids_are_unique(big_day):
    ids = [r["rule_id"] for d in big_day["drivers"] for r in d["rules"]]
    assert len(ids) == len(set(ids))


# --- packages -----------------------------------------------------------------------------------


def test_package_fields_and_ranges(big_day):
    packages = big_day["packages"]
    assert len(packages) == 6000
    for p in packages:
        assert PACKAGE_FIELDS <= set(p) <= PACKAGE_FIELDS | {"destination"}
        assert is_uuid4(p["package_id"]), p["package_id"]
        assert isinstance(p["weight_kg"], float) and 0.5 <= p["weight_kg"] <= 20
        assert has_two_decimals(p["weight_kg"])
        assert isinstance(p["distance_km"], float) and 1 <= p["distance_km"] <= 100
        assert has_two_decimals(p["distance_km"])
        assert isinstance(p["temperature_c"], float) and -5 <= p["temperature_c"] <= 25
        assert has_two_decimals(p["temperature_c"])
        assert isinstance(p["volume_m3"], float) and 0.1 <= p["volume_m3"] <= 3.0
        assert has_two_decimals(p["volume_m3"])
        assert type(p["delivery_hour"]) is int and 0 <= p["delivery_hour"] <= 23
        assert p["region"] in REGIONS
        assert p["hazmat_class"] in (1, 2, 3, 4, None)
        for flag in ("is_perishable", "is_express", "is_fragile"):
            assert type(p[flag]) is bool
    assert len({p["package_id"] for p in packages}) == len(packages)


def test_package_distributions(big_day):
    packages = big_day["packages"]
    n = len(packages)
    assert {p["delivery_hour"] for p in packages} == set(range(24))
    assert {p["region"] for p in packages} == REGIONS
    hazmat = Counter(p["hazmat_class"] for p in packages)
    assert set(hazmat) == {1, 2, 3, 4, None}
    assert all(0.15 * n <= c <= 0.25 * n for c in hazmat.values()), hazmat  # uniform over five
    regions = Counter(p["region"] for p in packages)
    assert all(0.2 * n <= c <= 0.3 * n for c in regions.values()), regions
    for flag in ("is_perishable", "is_express", "is_fragile"):  # 50/50
        share = sum(p[flag] for p in packages) / n
        assert 0.45 <= share <= 0.55, (flag, share)
    for field, lo, hi in (
        ("weight_kg", 0.5, 20),
        ("distance_km", 1, 100),
        ("temperature_c", -5, 25),
        ("volume_m3", 0.1, 3.0),
    ):
        values = [p[field] for p in packages]
        mean = sum(values) / n
        span = hi - lo
        assert abs(mean - (lo + hi) / 2) < 0.03 * span, (field, mean)
        assert min(values) < lo + 0.02 * span and max(values) > hi - 0.02 * span, field
        # uniform: each quarter of the range holds about a quarter of the values
        quarters = Counter(min(3, int((v - lo) / span * 4)) for v in values)
        assert all(0.2 * n <= quarters[q] <= 0.3 * n for q in range(4)), (field, quarters)


def test_destinations(big_day):
    for p in big_day["packages"][:500]:
        dest = p["destination"]
        assert set(dest) == {"street", "city", "postcode", "lat", "lon"}
        assert all(isinstance(dest[k], str) and dest[k] for k in ("street", "city", "postcode"))
        assert -90 <= dest["lat"] <= 90 and -180 <= dest["lon"] <= 180
    plain = generate_day(seed=1, drivers=2, packages_per_driver=3, with_destination=False)
    assert all("destination" not in p for p in plain["packages"])


def test_progress_reports_every_package():
    seen: list[int] = []
    generate_day(seed=1, drivers=3, packages_per_driver=7, progress=seen.append)
    assert sum(seen) == 21


# --- the CLI ------------------------------------------------------------------------------------


def run_generate(tmp_path: Path, name: str) -> Path:
    out = tmp_path / name
    depot = Path(sys.executable).with_name("depot")
    proc = subprocess.run(
        [
            str(depot),
            "generate",
            "--seed",
            "1",
            "--drivers",
            "5",
            "--packages-per-driver",
            "3",
            "--min-rules",
            "2",
            "--max-rules",
            "4",
            "-o",
            str(out),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return out


def test_cli_generate_writes_a_valid_day(tmp_path):
    out = run_generate(tmp_path, "day.json")
    payload = json.loads(out.read_text())
    drivers, packages = payload["drivers"], payload["packages"]
    assert [d["driver_id"] for d in drivers] == [f"driver_{i}" for i in range(1, 6)]
    assert all(2 <= len(d["rules"]) <= 4 for d in drivers)
    assert len(packages) == 15
    assert len(parse_drivers(drivers)) == 5 and len(parse_packages(packages)) == 15
    assert payload == generate_day(
        seed=1, drivers=5, packages_per_driver=3, min_rules=2, max_rules=4
    )
    again = run_generate(tmp_path, "again.json")
    assert again.read_bytes() == out.read_bytes()


def test_cli_generate_refuses_min_above_max(tmp_path):
    depot = Path(sys.executable).with_name("depot")
    proc = subprocess.run(
        [
            str(depot),
            "generate",
            "--min-rules",
            "3",
            "--max-rules",
            "1",
            "-o",
            str(tmp_path / "x.json"),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert not (tmp_path / "x.json").exists()
