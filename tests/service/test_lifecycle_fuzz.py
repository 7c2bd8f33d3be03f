"""A fuzz of a whole day's lifecycle through the real API process (issue 10): hypothesis draws a
sequence of imports (with values at and beyond the accepted ranges, and mistyped ones),
re-imports with stricter rules (with or without ``release``), runs, status updates, unassigns
and cancels; after every sequence the day must still be usable (an /assign answers 200), no
answer was a 5xx, every assignment in the table satisfies its driver's current rules, and the
API's reads agree with the table read straight from the emulator."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.api import table_items
from support.oracle import driver_accepts

_days = itertools.count()
DRIVERS = ["fz_a", "fz_b", "fz_c"]

numbers = st.one_of(
    st.floats(min_value=0.5, max_value=20, allow_nan=False).map(lambda x: round(x, 2)),
    st.sampled_from(
        [2.4e-267, 1e-131, 1e-130, 1e126, 1e300, 0.1 + 0.2, 123456789.123456789, True, "5", None]
    ),
)


@st.composite
def packages(draw, prefix: str):
    n = draw(st.integers(1, 6))
    out = []
    for i in range(n):
        out.append(
            {
                "package_id": f"{prefix}-{i}",
                "weight_kg": draw(numbers),
                "is_perishable": draw(st.booleans()),
                "region": draw(st.sampled_from(["north", "east", "south", "west"])),
                "distance_km": 10.0,
                "is_express": draw(st.booleans()),
                "is_fragile": False,
                "hazmat_class": draw(st.sampled_from([None, 1, 3, 3.0, True])),
                "temperature_c": 5.0,
                "delivery_hour": draw(st.integers(0, 23)),
                "volume_m3": draw(numbers),
            }
        )
    return out


def drivers(limit):
    return [
        {
            "driver_id": d,
            "rules": []
            if limit is None or d == "fz_a"
            else [{"rule_id": f"{d}-w", "code": "MAX_WEIGHT", "params": {"limit_kg": limit}}],
        }
        for d in DRIVERS
    ]


operations = st.lists(
    st.one_of(
        st.tuples(st.just("reimport"), st.sampled_from([None, 5, 12, 1e-200]), st.booleans()),
        st.tuples(st.just("assign"), st.integers(0, 4)),
        st.tuples(
            st.just("update"),
            st.sampled_from(["accepted", "in_progress", "delivered", "failed_to_deliver"]),
        ),
        st.tuples(st.just("unassign")),
        st.tuples(st.just("cancel")),
        st.tuples(st.just("more")),
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), ops=operations)
def test_no_sequence_of_accepted_requests_breaks_the_day(client, dynamodb, data, ops):
    day = (date(2091, 1, 1) + timedelta(days=next(_days))).isoformat()
    seen: list[int] = []

    def post(path, body, **params):
        r = client.post(path, json=body, params=params or None)
        seen.append(r.status_code)
        return r

    assert (
        post("/manifests", {"day": day, "drivers": drivers(None), "packages": []}).status_code
        == 201
    )
    post("/manifests", {"day": day, "drivers": [], "packages": data.draw(packages(f"fz-{day}"))})
    current_limit = None
    for n, op in enumerate(ops):
        if op[0] == "reimport":
            r = post(
                "/manifests",
                {"day": day, "drivers": drivers(op[1]), "packages": [], "release": op[2]},
            )
            if r.status_code == 201:
                current_limit = op[1]
        elif op[0] == "assign":
            post("/assign", {"day": day, "driver_ids": DRIVERS, "max_per_driver": op[1]})
        elif op[0] == "more":
            post(
                "/manifests",
                {"day": day, "drivers": [], "packages": data.draw(packages(f"fz-{day}-{n}"))},
            )
        else:
            items = table_items(dynamodb, day)
            if not items:
                continue
            item = data.draw(st.sampled_from(items))
            if op[0] == "update":
                post(
                    "/update",
                    {
                        "driver_id": item["driver_id"],
                        "package_id": item["package_id"],
                        "status": op[1],
                    },
                )
            elif op[0] == "unassign":
                post("/unassign", {"day": day, "package_ids": [item["package_id"]]})
            else:
                post("/cancel", {"day": day, "package_ids": [item["package_id"]], "reason": "fuzz"})
    assert all(code < 500 for code in seen), seen
    assert (
        client.post(
            "/assign", json={"day": day, "driver_ids": DRIVERS, "max_per_driver": 4}
        ).status_code
        == 200
    )
    manifest = client.get(f"/manifests/{day}").json()
    by_id = {p["package_id"]: p for p in manifest["packages"]}
    rules = {d["driver_id"]: d for d in manifest["drivers"]}
    table = table_items(dynamodb, day)
    for item in table:
        assert driver_accepts(rules[item["driver_id"]], by_id[item["package_id"]]), (
            item,
            current_limit,
        )
    for d in DRIVERS:
        read = client.get(f"/drivers/{d}/assignments", params={"day": day}).json()
        assert {(a["package_id"], a["status"]) for a in read["assignments"]} == {
            (i["package_id"], i["status"]) for i in table if i["driver_id"] == d
        }
