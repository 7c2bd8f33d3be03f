"""The day's lists (SPEC section 1): what an import accepts, and what it refuses with a named
error."""

from __future__ import annotations

import copy

import pytest

from depot.core.models import Driver, InvalidManifest, parse_drivers, parse_packages

# The ten codes with the generator's params, written out from SPEC's rules table.
GENERATOR_RULES = {
    "MAX_WEIGHT": {"limit_kg": 10},
    "NO_PERISHABLE": {},
    "REGION_ONLY": {"allowed_regions": ["north", "east"]},
    "MAX_DISTANCE": {"max_km": 50},
    "EXPRESS_ONLY": {},
    "FRAGILE_ONLY": {},
    "HAZMAT_ALLOWED": {"allowed_classes": [1, 3]},
    "TEMP_CONTROL": {"min_c": 2, "max_c": 8},
    "TIME_WINDOW": {"start_hour": 8, "end_hour": 17},
    "OVERSIZED": {"min_volume_m3": 0.5},
}

from support.factories import driver_with, package


def refused(raw_drivers) -> list[dict]:
    with pytest.raises(InvalidManifest) as info:
        parse_drivers(raw_drivers)
    assert info.value.problems, "an InvalidManifest must list its problems"
    return info.value.problems


# --- accepted ---------------------------------------------------------------------------------


def test_ten_codes_cover_the_spec_table():
    from depot.core.models import RuleCode

    assert {c.value for c in RuleCode} == set(GENERATOR_RULES)


@pytest.mark.parametrize("code", sorted(GENERATOR_RULES))
def test_each_code_is_accepted_with_the_generators_params(code):
    params = GENERATOR_RULES[code]
    (driver,) = parse_drivers([driver_with(code, params)])
    assert driver.driver_id == "driver_7"
    (rule,) = driver.rules
    assert rule.code.value == code
    assert rule.rule_id == "rule-abc"
    assert set(rule.params) == set(params)
    for name, value in params.items():
        assert rule.params[name] == value


def test_all_ten_codes_on_one_driver():
    raw = {
        "driver_id": "driver_1",
        "rules": [
            {"rule_id": f"r{i}", "code": code, "params": params}
            for i, (code, params) in enumerate(sorted(GENERATOR_RULES.items()))
        ],
    }
    (driver,) = parse_drivers([raw])
    assert [r.code.value for r in driver.rules] == sorted(GENERATOR_RULES)


def test_id_is_an_alias_of_driver_id():
    (driver,) = parse_drivers([{"id": "driver_3", "rules": []}])
    assert driver.driver_id == "driver_3"
    assert Driver.model_validate({"id": "driver_4"}).driver_id == "driver_4"


def test_a_driver_may_have_zero_rules():
    drivers = parse_drivers([{"driver_id": "a", "rules": []}, {"driver_id": "b"}])
    assert [(d.driver_id, d.rules) for d in drivers] == [("a", []), ("b", [])]


def test_params_may_be_omitted_for_codes_without_params():
    (driver,) = parse_drivers(
        [{"driver_id": "d", "rules": [{"rule_id": "r", "code": "EXPRESS_ONLY"}]}]
    )
    assert driver.rules[0].params == {}


def test_a_valid_package_round_trips():
    (p,) = parse_packages(
        [
            package(
                destination={
                    "street": "1 High St",
                    "city": "Leeds",
                    "postcode": "LS1 1AA",
                    "lat": 53.8,
                    "lon": -1.55,
                }
            )
        ]
    )
    assert p.package_id == "0b6f7c1e-3d2a-4f5b-9c8d-7e6f5a4b3c2d"
    assert p.weight_kg == 4.25 and p.region == "north" and p.hazmat_class is None
    assert p.destination.city == "Leeds"


# --- refused, naming the driver and the rule --------------------------------------------------

BAD_RULES = [
    pytest.param("NOT_A_CODE", {}, id="unknown-code"),
    pytest.param("MAX_WEIGHT", {}, id="missing-param"),
    pytest.param("TEMP_CONTROL", {"min_c": 2}, id="missing-one-of-two-params"),
    pytest.param("MAX_WEIGHT", {"limit_kg": "10"}, id="string-for-number"),
    pytest.param("MAX_WEIGHT", {"limit_kg": True}, id="bool-for-number"),
    pytest.param("MAX_DISTANCE", {"max_km": False}, id="bool-for-distance"),
    pytest.param("TIME_WINDOW", {"start_hour": "8", "end_hour": 17}, id="string-for-hour"),
    pytest.param("TIME_WINDOW", {"start_hour": 8.5, "end_hour": 17}, id="float-for-hour"),
    pytest.param("REGION_ONLY", {"allowed_regions": "north"}, id="string-for-list"),
    pytest.param("MAX_WEIGHT", {"limit_kg": -1}, id="negative-limit"),
    pytest.param("MAX_DISTANCE", {"max_km": -5}, id="negative-distance"),
    pytest.param("OVERSIZED", {"min_volume_m3": -0.5}, id="negative-volume"),
    pytest.param("TEMP_CONTROL", {"min_c": 9, "max_c": 8}, id="min-above-max"),
    pytest.param("TIME_WINDOW", {"start_hour": 17, "end_hour": 17}, id="empty-window"),
    pytest.param("TIME_WINDOW", {"start_hour": 18, "end_hour": 8}, id="reversed-window"),
    pytest.param("TIME_WINDOW", {"start_hour": 8, "end_hour": 25}, id="hour-out-of-range"),
    pytest.param("REGION_ONLY", {"allowed_regions": []}, id="empty-regions"),
    pytest.param("REGION_ONLY", {"allowed_regions": ["north", "north"]}, id="duplicate-regions"),
    pytest.param("REGION_ONLY", {"allowed_regions": ["north", "up"]}, id="unknown-region"),
    pytest.param("HAZMAT_ALLOWED", {"allowed_classes": [5]}, id="hazmat-class-5"),
    pytest.param("HAZMAT_ALLOWED", {"allowed_classes": []}, id="empty-classes"),
    pytest.param("HAZMAT_ALLOWED", {"allowed_classes": [2, 2]}, id="duplicate-classes"),
    pytest.param("MAX_WEIGHT", {"limit_kg": 10, "unit": "kg"}, id="extra-param"),
    pytest.param("EXPRESS_ONLY", {"strict": True}, id="param-on-paramless-code"),
]


@pytest.mark.parametrize(("code", "params"), BAD_RULES)
def test_a_bad_rule_is_refused_naming_driver_and_rule(code, params):
    problems = refused([driver_with(code, params, driver_id="driver_42", rule_id="rule-9f3")])
    assert len(problems) >= 1
    for problem in problems:
        assert problem["driver_id"] == "driver_42"
        assert problem["rule_id"] == "rule-9f3"
        assert "driver_42" in problem["message"]
        assert "rule-9f3" in problem["message"]


def test_unknown_field_on_a_rule_is_refused():
    raw = driver_with("MAX_WEIGHT", {"limit_kg": 10}, driver_id="driver_5", rule_id="r-5")
    raw["rules"][0]["severity"] = "high"
    (problem,) = refused([raw])
    assert problem["driver_id"] == "driver_5" and problem["rule_id"] == "r-5"
    assert "severity" in problem["message"]


def test_unknown_field_on_a_driver_is_refused_naming_the_driver():
    problems = refused([{"driver_id": "driver_8", "rules": [], "vehicle": "van"}])
    assert [p["driver_id"] for p in problems] == ["driver_8"]
    assert "vehicle" in problems[0]["message"]


def test_the_bad_rule_is_named_among_good_ones():
    raw = {
        "id": "driver_9",
        "rules": [
            {"rule_id": "good", "code": "EXPRESS_ONLY", "params": {}},
            {"rule_id": "bad", "code": "MAX_WEIGHT", "params": {"limit_kg": "heavy"}},
        ],
    }
    (problem,) = refused([raw])
    assert problem["driver_id"] == "driver_9" and problem["rule_id"] == "bad"
    assert problem["code"] == "MAX_WEIGHT"


def test_every_bad_driver_is_reported_not_only_the_first():
    raws = [
        driver_with("MAX_WEIGHT", {"limit_kg": 10}, driver_id="ok"),
        driver_with("NOPE", {}, driver_id="d1", rule_id="r1"),
        driver_with("TEMP_CONTROL", {"min_c": 10, "max_c": 0}, driver_id="d2", rule_id="r2"),
    ]
    problems = refused(raws)
    assert {(p["driver_id"], p["rule_id"]) for p in problems} == {("d1", "r1"), ("d2", "r2")}


def test_a_driver_listed_twice_is_refused():
    problems = refused([{"driver_id": "d", "rules": []}, {"id": "d", "rules": []}])
    assert [p["driver_id"] for p in problems] == ["d"]


def test_drivers_must_be_a_list():
    with pytest.raises(InvalidManifest):
        parse_drivers({"driver_id": "d"})


def test_refusing_leaves_the_callers_data_unchanged():
    """Validation is pure: refusing one list leaves the caller's data as it was."""
    raws = [driver_with("REGION_ONLY", {"allowed_regions": ["north", "north"]})]
    before = copy.deepcopy(raws)
    refused(raws)
    assert raws == before


# --- packages -----------------------------------------------------------------------------------


def test_duplicate_package_ids_are_refused_naming_the_package():
    pid = "11111111-2222-4333-8444-555555555555"
    with pytest.raises(InvalidManifest) as info:
        parse_packages(
            [
                package(package_id=pid),
                package(package_id=pid, weight_kg=1.0),
                package(package_id="other"),
            ]
        )
    assert [p["package_id"] for p in info.value.problems] == [pid]
    assert pid in info.value.problems[0]["message"]


BAD_PACKAGE_FIELDS = [
    pytest.param({"weight_kg": "heavy"}, "weight_kg", id="string-weight"),
    pytest.param({"weight_kg": True}, "weight_kg", id="bool-weight"),
    pytest.param({"weight_kg": -1.0}, "weight_kg", id="negative-weight"),
    pytest.param({"region": "up"}, "region", id="unknown-region"),
    pytest.param({"is_express": "yes"}, "is_express", id="string-bool"),
    pytest.param({"is_perishable": 1}, "is_perishable", id="int-bool"),
    pytest.param({"hazmat_class": 5}, "hazmat_class", id="hazmat-5"),
    pytest.param({"delivery_hour": 24}, "delivery_hour", id="hour-24"),
    pytest.param({"delivery_hour": 9.5}, "delivery_hour", id="fractional-hour"),
    pytest.param({"volume_m3": 0}, "volume_m3", id="zero-volume"),
    pytest.param({"temperature_c": "cold"}, "temperature_c", id="string-temp"),
    pytest.param({"distance_km": -3.0}, "distance_km", id="negative-distance"),
    pytest.param({"colour": "red"}, "colour", id="unknown-field"),
    pytest.param({"destination": {"city": "Leeds", "lat": 123.0}}, "lat", id="bad-latitude"),
]


@pytest.mark.parametrize(("override", "field"), BAD_PACKAGE_FIELDS)
def test_a_bad_package_field_is_refused_naming_the_package(override, field):
    good = package(package_id="good-one")
    bad = package(package_id="bad-one", **override)
    with pytest.raises(InvalidManifest) as info:
        parse_packages([good, bad])
    problems = info.value.problems
    assert problems and all(p["package_id"] == "bad-one" for p in problems)
    assert any(field in p["message"] and "bad-one" in p["message"] for p in problems)


@pytest.mark.parametrize(
    "missing", ["weight_kg", "region", "is_express", "delivery_hour", "package_id"]
)
def test_a_missing_package_field_is_refused(missing):
    bad = package(package_id="p-missing")
    del bad[missing]
    with pytest.raises(InvalidManifest) as info:
        parse_packages([bad])
    (problem,) = info.value.problems
    assert missing in problem["message"]
    if missing != "package_id":
        assert problem["package_id"] == "p-missing"
    else:
        assert problem["index"] == 0


def test_int_values_are_accepted_for_float_fields():
    (p,) = parse_packages([package(weight_kg=10, distance_km=50, temperature_c=2, volume_m3=1)])
    assert (p.weight_kg, p.distance_km, p.temperature_c, p.volume_m3) == (10, 50, 2, 1)
