"""Reading a manifest body: the fast decoder may only ever accept what the pydantic models accept,
and must give the same records when it does (``depot.core.manifest``)."""

from __future__ import annotations

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from depot.core.manifest import _decode_checked, _decode_fast, parse_manifest
from depot.core.models import InvalidManifest
from depot.ops.generator import generate_day
from support.factories import package

VALID = package(
    package_id="p-1",
    destination={
        "street": "1 High St",
        "city": "Leeds",
        "postcode": "LS1 1AA",
        "lat": 53.8,
        "lon": -1.5,
    },
)

# Values at and around every bound the models set, and values of every other JSON type.
BOUNDS = [0, 23, 24, 20, 90, 100, 128, 180, 200, 1_000, 20_000]
EDGE_NUMBERS = st.sampled_from(
    [n * s + d for n in BOUNDS for s in (1, -1) for d in (0, 1, -1)]
    + [float(n * s) + d for n in BOUNDS for s in (1, -1) for d in (0.0, 1e-9, -1e-9)]
    + [5e-324, -0.0, 1e308, 10**25, -(10**25), 2**63, 1, 2, 3, 4, 5, 1.0, 4.0, True, "12.5"]
    + [1e-130, -1e-130, 9.9e-131, 2.4e-267, -1e-200, 1000, 1000.01, 20_000, 20_000.5]
)


def near_length(limit: int):
    return st.sampled_from([limit - 1, limit, limit + 1]).map(lambda n: "é" * n) | st.text(
        max_size=8
    )


IDENTIFIERS = st.builds(
    lambda body, odd, tail: body + odd + tail,
    st.from_regex(r"\A[A-Za-z0-9_.:\-]{0,130}\Z")
    | st.sampled_from(["a" * 127, "a" * 128, "a" * 129]),
    st.sampled_from(["", "\n", "\n", " ", "é", "/", "\x00"]),
    st.sampled_from(["", "x"]),
) | st.text(max_size=20)
ANY_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=5,
)
FIELD_VALUES = {
    "package_id": IDENTIFIERS,
    "region": st.sampled_from(["north", "east", "south", "west", "North", "", "up"]),
    "hazmat_class": st.sampled_from([None, 0, 1, 2, 3, 4, 5, 1.0, True, "1"]),
    "street": near_length(200),
    "city": near_length(100),
    "postcode": near_length(20),
}


def value_for(field: str):
    """Mostly values aimed at this field's own bounds, sometimes anything at all."""
    aimed = FIELD_VALUES.get(field, EDGE_NUMBERS)
    return st.one_of(aimed, aimed, aimed, EDGE_NUMBERS | st.booleans() | st.none() | ANY_JSON)


FIELDS = sorted(VALID) + [f"destination.{k}" for k in sorted(VALID["destination"])]


@st.composite
def one_change(draw) -> dict:
    """A valid package with one field (or one destination field) replaced or dropped."""
    package = copy.deepcopy(VALID)
    field = draw(st.sampled_from(FIELDS))
    target, name = (
        (package["destination"], field.split(".")[1]) if "." in field else (package, field)
    )
    if draw(st.integers(0, 5)) == 0:
        del target[name]
    else:
        target[name] = draw(value_for(name))
    return package


@st.composite
def near_miss_packages(draw) -> dict:
    """A valid package with some fields replaced, dropped or added."""
    package = json.loads(json.dumps(VALID))
    changes = draw(st.sampled_from([1, 1, 1, 2, 3]))  # one change at a time finds the edges
    for field in draw(
        st.lists(st.sampled_from(sorted(VALID)), min_size=changes, max_size=changes, unique=True)
    ):
        action = draw(st.sampled_from(["replace", "replace", "drop"]))
        if action == "drop":
            del package[field]
        else:
            package[field] = draw(value_for(field))
    if isinstance(package.get("destination"), dict):
        for field in draw(
            st.lists(st.sampled_from(sorted(VALID["destination"])), max_size=2, unique=True)
        ):
            package["destination"][field] = draw(value_for(field))
        if draw(st.booleans()) and draw(st.booleans()):
            package["destination"]["country"] = "UK"
    if draw(st.booleans()) and draw(st.booleans()):
        package[draw(st.text(min_size=1, max_size=12))] = draw(ANY_JSON)
    return package


def authoritative(raw: bytes):
    try:
        return _decode_checked(raw)
    except InvalidManifest:
        return None


def check_the_fast_decoder_against_the_models(packages: list[dict]) -> None:
    for i, p in enumerate(packages):  # distinct ids, so that duplicates do not hide the rest
        if isinstance(p.get("package_id"), str):
            p["package_id"] = f"{i}-{p['package_id']}"
    raw = json.dumps({"day": "2030-01-15", "drivers": [], "packages": packages}).encode()
    fast = _decode_fast(raw)
    slow = authoritative(raw)
    if fast is not None:
        assert slow is not None, f"the fast decoder accepted what the models refuse: {packages}"
        assert fast.records() == slow.records()
        assert fast.day == slow.day


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(package=one_change())
def test_one_change_the_fast_decoder_accepts_only_what_the_models_accept(package):
    check_the_fast_decoder_against_the_models([package])


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(packages=st.lists(near_miss_packages(), min_size=1, max_size=3))
def test_several_changes_the_fast_decoder_accepts_only_what_the_models_accept(packages):
    check_the_fast_decoder_against_the_models(packages)


def test_a_generated_day_takes_the_fast_path_and_reads_as_the_models_read_it():
    day = generate_day(seed=11, drivers=30, packages_per_driver=20, min_rules=2, max_rules=4)
    raw = json.dumps({"day": "2030-02-01", **day}).encode()
    fast = _decode_fast(raw)
    assert fast is not None, "a valid generated day must not need the slow path"
    slow = _decode_checked(raw)
    assert fast.records() == slow.records()
    assert fast.drivers == slow.drivers
    assert parse_manifest(raw).day == "2030-02-01"


@pytest.mark.parametrize(
    ("first", "last"), [(4.0, -1.0), (-1.0, 4.0)], ids=["valid-then-invalid", "invalid-then-valid"]
)
def test_a_repeated_key_counts_as_its_last_value(first, last):
    """orjson keeps a repeated key's last value; msgspec checks each, so it may refuse what the
    models accept (the body then takes the slow path), never the other way round."""
    body = json.dumps({"packages": [VALID]})
    raw = body.replace('"weight_kg": 4.25', f'"weight_kg": {first}, "weight_kg": {last}').encode()
    fast = _decode_fast(raw)
    assert fast is None or fast.records()[0]["weight_kg"] == last
    if last < 0:
        with pytest.raises(InvalidManifest, match="weight_kg"):
            parse_manifest(raw)
    else:
        assert parse_manifest(raw).records()[0]["weight_kg"] == last


@pytest.mark.parametrize(
    "bad_id", ["p-1\n", "p\nq", "p 1", "", "a" * 129, "é", "p/1", "p\x00", "p-1 "]
)
def test_an_id_outside_the_pattern_is_refused_by_both(bad_id):
    raw = json.dumps(
        {"packages": [{**VALID, "package_id": "ok-1"}, {**VALID, "package_id": bad_id}]}
    ).encode()
    assert _decode_fast(raw) is None
    with pytest.raises(InvalidManifest, match="package_id"):
        parse_manifest(raw)


@pytest.mark.parametrize("good_id", ["a" * 128, "A-z_0.9:x", "0"])
def test_an_id_inside_the_pattern_takes_the_fast_path(good_id):
    raw = json.dumps({"packages": [{**VALID, "package_id": good_id}]}).encode()
    assert _decode_fast(raw).records()[0]["package_id"] == good_id


@pytest.mark.parametrize(
    ("raw", "field", "words"),
    [
        (b"{not json", "body", "not valid JSON"),
        (b"[]", "body", "JSON object"),
        (b'{"day": "2071-02-30", "packages": []}', "day", "YYYY-MM-DD"),
        (b'{"packages": [], "colour": "red"}', "colour", "unknown field"),
        (b'{"packages": {"a": 1}}', "packages", "must be a list"),
    ],
)
def test_a_refused_body_names_what_is_wrong(raw, field, words):
    with pytest.raises(InvalidManifest) as info:
        parse_manifest(raw)
    (problem,) = info.value.problems
    assert problem["field"] == field and words in problem["message"]


def test_records_keep_a_null_hazmat_class_and_drop_a_missing_destination():
    no_destination = {k: v for k, v in VALID.items() if k not in ("destination", "hazmat_class")}
    raw = json.dumps(
        {
            "packages": [
                no_destination,
                {**VALID, "package_id": "p-2", "destination": {"city": "York", "lat": None}},
            ]
        }
    ).encode()
    first, second = parse_manifest(raw).records()
    assert first["hazmat_class"] is None and "destination" not in first
    assert second["destination"] == {"city": "York"}


def test_a_first_import_is_stored_as_received_and_every_process_reads_it_the_same(emulator):
    import zstandard

    from depot.storage.store import make_clients
    from depot.storage.tables import bootstrap
    from support.faults import make_service, make_settings

    settings = make_settings(emulator.endpoint)
    dynamodb, s3 = make_clients(settings)
    bootstrap(dynamodb, s3, settings)
    day = "2033-03-03"
    raw = json.dumps(
        {"day": day, **generate_day(seed=5, drivers=20, packages_per_driver=30)}
    ).encode()

    importer = make_service(emulator.endpoint)
    result = importer.import_body(raw)
    assert (result["version"], result["drivers_added"], result["packages_added"]) == (1, 20, 600)

    kept = importer.day_state(day).manifest  # built from the body the importer kept
    fetched = make_service(emulator.endpoint).day_state(day).manifest  # another process: from S3
    assert kept.key == fetched.key
    assert kept.packages == fetched.packages and kept.drivers == fetched.drivers
    assert len(kept.packages) == 600

    stored = s3.get_object(Bucket=settings.state_bucket, Key=fetched.key)
    assert stored["ContentEncoding"] == "zstd"
    assert zstandard.decompress(stored["Body"].read()) == raw
