"""Issue 10, import validation: every value an import accepts can be stored and used as sent
(SPEC 1). Numbers DynamoDB cannot hold, implausible values and coerced types are refused, by both
readers of a body (``parse_manifest`` tries the fast decoder, then the models), naming the package
or the rule and the field."""

from __future__ import annotations

import json

import httpx
import pytest

from depot.core.manifest import _decode_checked, _decode_fast, parse_manifest
from depot.core.models import InvalidManifest
from support.apiproc import provision, start_api
from support.factories import driver_with, package

BAD_PACKAGES = [
    pytest.param({"volume_m3": 2.4e-267}, "volume_m3", id="volume-under-dynamodb-magnitude"),
    pytest.param({"weight_kg": 1e-131}, "weight_kg", id="weight-under-dynamodb-magnitude"),
    pytest.param({"temperature_c": -1e-200}, "temperature_c", id="temperature-under-magnitude"),
    pytest.param({"distance_km": 5e-324}, "distance_km", id="denormal-distance"),
    pytest.param({"destination": {"lat": 1e-140}}, "lat", id="latitude-under-magnitude"),
    pytest.param({"destination": {"lon": -3e-300}}, "lon", id="longitude-under-magnitude"),
    pytest.param({"weight_kg": 1000.01}, "weight_kg", id="weight-over-1000"),
    pytest.param({"volume_m3": 100.5}, "volume_m3", id="volume-over-100"),
    pytest.param({"distance_km": 20_000.5}, "distance_km", id="distance-over-20000"),
    pytest.param({"temperature_c": 1e120}, "temperature_c", id="huge-temperature"),
    pytest.param({"hazmat_class": True}, "hazmat_class", id="bool-hazmat"),
    pytest.param({"hazmat_class": 3.0}, "hazmat_class", id="float-hazmat"),
    pytest.param({"hazmat_class": "3"}, "hazmat_class", id="string-hazmat"),
    pytest.param({"delivery_hour": 9.0}, "delivery_hour", id="float-hour"),
    pytest.param({"delivery_hour": True}, "delivery_hour", id="bool-hour"),
    pytest.param({"destination": {"lat": "12.5"}}, "lat", id="string-latitude"),
    pytest.param({"destination": {"lon": True}}, "lon", id="bool-longitude"),
    pytest.param({"destination": {"city": 7}}, "city", id="number-city"),
]


def body(packages=(), drivers=()) -> bytes:
    return json.dumps(
        {"day": "2031-03-04", "drivers": list(drivers), "packages": list(packages)}
    ).encode()


@pytest.mark.parametrize(("override", "field"), BAD_PACKAGES)
def test_a_package_field_that_cannot_be_stored_as_sent_is_refused_by_both_readers(override, field):
    raw = body([package(package_id="good-one"), package(package_id="bad-one", **override)])
    assert _decode_fast(raw) is None
    for read in (parse_manifest, _decode_checked):
        with pytest.raises(InvalidManifest) as info:
            read(raw)
        messages = [p["message"] for p in info.value.problems]
        assert any("bad-one" in m and field in m for m in messages), messages


@pytest.mark.parametrize("value", [1e-130, -1e-130, 0.0, -0.0, 0])
def test_zero_and_the_smallest_storable_magnitude_are_accepted(value):
    raw = body(
        [
            package(
                package_id="p-edge",
                temperature_c=value,
                distance_km=abs(value),
                destination={"lat": value, "lon": value},
            )
        ]
    )
    fast, checked = _decode_fast(raw), _decode_checked(raw)
    assert fast is not None
    assert fast.records() == checked.records()


BAD_RULES = [
    pytest.param("MAX_WEIGHT", {"limit_kg": 2.4e-267}, id="tiny-limit"),
    pytest.param("MAX_WEIGHT", {"limit_kg": 1000.5}, id="limit-over-1000"),
    pytest.param("MAX_DISTANCE", {"max_km": 20_001}, id="max-km-over-20000"),
    pytest.param("MAX_DISTANCE", {"max_km": 1e-200}, id="tiny-max-km"),
    pytest.param("TEMP_CONTROL", {"min_c": -1e-300, "max_c": 8}, id="tiny-min-c"),
    pytest.param("TEMP_CONTROL", {"min_c": "2", "max_c": 8}, id="string-min-c"),
    pytest.param("OVERSIZED", {"min_volume_m3": 1e-150}, id="tiny-min-volume"),
    pytest.param("OVERSIZED", {"min_volume_m3": 101}, id="min-volume-over-100"),
    pytest.param("TIME_WINDOW", {"start_hour": 8.0, "end_hour": 17}, id="float-start-hour"),
    pytest.param("TIME_WINDOW", {"start_hour": True, "end_hour": 17}, id="bool-start-hour"),
    pytest.param("HAZMAT_ALLOWED", {"allowed_classes": [True]}, id="bool-class"),
    pytest.param("HAZMAT_ALLOWED", {"allowed_classes": [2.0]}, id="float-class"),
]


@pytest.mark.parametrize(("code", "params"), BAD_RULES)
def test_a_rule_param_that_cannot_be_stored_as_sent_is_refused(code, params):
    raw = body(drivers=[driver_with(code, params, driver_id="driver_9", rule_id="rule-x")])
    with pytest.raises(InvalidManifest) as info:
        parse_manifest(raw)
    (problem,) = info.value.problems
    assert problem["driver_id"] == "driver_9" and problem["rule_id"] == "rule-x"
    assert next(iter(params)) in problem["message"]


def test_the_api_refuses_an_unstorable_number_with_422_naming_package_and_field(emulator):
    provision(emulator.endpoint)
    with start_api(emulator.endpoint) as api:
        day = "2031-05-06"
        bad = {
            "day": day,
            "drivers": [{"driver_id": "driver_1", "rules": []}],
            "packages": [package(package_id="p-tiny", volume_m3=2.4e-267)],
        }
        answer = httpx.post(
            f"{api.url}/manifests",
            content=json.dumps(bad),
            timeout=30,
            headers={"content-type": "application/json"},
        )
        assert answer.status_code == 422, answer.text
        assert "p-tiny" in answer.text and "volume_m3" in answer.text
        # Nothing of it was stored: the same day still imports and assigns.
        good = {**bad, "packages": [package(package_id="p-fine")]}
        assert httpx.post(f"{api.url}/manifests", json=good, timeout=30).status_code == 201
        run = httpx.post(
            f"{api.url}/assign",
            json={"day": day, "driver_ids": ["driver_1"], "max_per_driver": 5},
            timeout=30,
        )
        assert run.status_code == 200, run.text
