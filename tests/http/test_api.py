"""The HTTP API (SPEC section 2) as a real process (`python -m depot.ops.cli serve`) against the
real emulator process, checked through its HTTP interface and against DeliveryAssignments read
straight from the emulator. Tests isolate themselves by using a day of their own."""

from __future__ import annotations

from collections import Counter

import httpx
import pytest
from boto3.dynamodb.types import TypeDeserializer

from support.api import (
    ASSIGNMENTS_TABLE,
    assign,
    driver,
    generated,
    import_day,
    new_day,
    package,
    pairs_of,
    plain,
    same_package,
    table_items,
)
from support.oracle import driver_accepts, max_assignable

STATUSES = ["assigned", "accepted", "in_progress", "delivered", "failed_to_deliver"]
NEXT = {
    "assigned": {"accepted", "in_progress", "failed_to_deliver"},
    "accepted": {"in_progress", "failed_to_deliver"},
    "in_progress": {"delivered", "failed_to_deliver"},
    "delivered": set(),
    "failed_to_deliver": set(),
}
# --- the app as a process -----------------------------------------------------------------------


# --- operations ---------------------------------------------------------------------------------


def test_health_and_ready(client):
    r = client.get("/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    r = client.get("/ready")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ready"
    assert body["checks"] == {"dynamodb": "ok", "s3": "ok"}


def test_unknown_route_and_method_answer_in_the_error_shape(client):
    assert client.get("/no/such/route").status_code == 404
    assert client.get("/assign").status_code == 405


@pytest.mark.parametrize(
    "path",
    [
        "/drivers/bad%20id/assignments",
        "/packages/%00",
        "/manifests/yesterday",
        "/manifests/2071-02-30",
        "/drivers/a/assignments?day=soon",
        "/packages/x?day=2071-1-1",
    ],
)
def test_malformed_read_paths_are_client_errors(client, path):
    r = client.get(path)
    assert 400 <= r.status_code < 500


def test_openapi_docs_are_served(client):
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/assign", "/update", "/manifests", "/manifests/{day}", "/health", "/ready"} <= set(
        paths
    )


# --- manifests ----------------------------------------------------------------------------------


def test_import_stores_the_day_and_answers_with_counts(client):
    day = new_day()
    payload = generated(day, seed=1, drivers=5, per_driver=4)
    r = client.post("/manifests", json=payload)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["day"] == day and body["version"] >= 1
    assert {
        k: body[k]
        for k in (
            "drivers_added",
            "drivers_updated",
            "packages_added",
            "packages_updated",
            "packages_unchanged",
            "drivers_total",
            "packages_total",
        )
    } == {
        "drivers_added": 5,
        "drivers_updated": 0,
        "packages_added": 20,
        "packages_updated": 0,
        "packages_unchanged": 0,
        "drivers_total": 5,
        "packages_total": 20,
    }

    stored = client.get(f"/manifests/{day}")
    assert stored.status_code == 200
    manifest = stored.json()
    assert manifest["day"] == day
    assert [d["driver_id"] for d in manifest["drivers"]] == [
        d["driver_id"] for d in payload["drivers"]
    ]
    for got, sent in zip(manifest["drivers"], payload["drivers"]):
        assert [(r["rule_id"], r["code"], r["params"]) for r in got["rules"]] == [
            (r["rule_id"], r["code"], r["params"]) for r in sent["rules"]
        ]
    assert len(manifest["packages"]) == 20
    for got, sent in zip(manifest["packages"], payload["packages"]):
        assert same_package(got, sent), (got, sent)


def test_id_alias_is_accepted_on_import(client):
    day = new_day()
    body = import_day(client, day, [{"id": "driver_1", "rules": []}], [package("alias-p1")])
    assert body["drivers_added"] == 1
    assert client.get(f"/manifests/{day}").json()["drivers"][0]["driver_id"] == "driver_1"


def test_reimport_adds_drivers_and_packages_and_updates_rules(client):
    day = new_day()
    first = import_day(
        client,
        day,
        [driver("a"), driver("b", ("MAX_WEIGHT", {"limit_kg": 10}))],
        [package("ri-1"), package("ri-2")],
    )

    same = import_day(
        client,
        day,
        [driver("a"), driver("b", ("MAX_WEIGHT", {"limit_kg": 10}))],
        [package("ri-1"), package("ri-2")],
    )
    assert same["version"] == first["version"] + 1
    assert (
        same["drivers_added"],
        same["drivers_updated"],
        same["packages_added"],
        same["packages_updated"],
        same["packages_unchanged"],
    ) == (0, 2, 0, 0, 2)

    more = import_day(
        client,
        day,
        [driver("b", ("EXPRESS_ONLY", {})), driver("c")],
        [package("ri-2", weight_kg=7.5), package("ri-3")],
    )
    assert (
        more["drivers_added"],
        more["drivers_updated"],
        more["packages_added"],
        more["packages_updated"],
        more["packages_unchanged"],
    ) == (1, 1, 1, 1, 0)
    assert (more["drivers_total"], more["packages_total"]) == (3, 3)

    manifest = client.get(f"/manifests/{day}").json()
    rules = {d["driver_id"]: [r["code"] for r in d["rules"]] for d in manifest["drivers"]}
    assert rules == {"a": [], "b": ["EXPRESS_ONLY"], "c": []}
    weights = {p["package_id"]: p["weight_kg"] for p in manifest["packages"]}
    assert weights == {"ri-1": 2.5, "ri-2": 7.5, "ri-3": 2.5}


def test_reimport_refuses_to_change_an_assigned_package(client, dynamodb):
    day = new_day()
    import_day(client, day, [driver("a")], [package("as-1"), package("as-2")])
    r = assign(client, day, ["a"], 1)
    assert r.status_code == 200
    (held,) = r.json()["assignments"]["a"]
    free = "as-2" if held == "as-1" else "as-1"
    before = client.get(f"/manifests/{day}").json()

    r = client.post(
        "/manifests",
        json={
            "day": day,
            "drivers": [],
            "packages": [package(held, weight_kg=9.0), package(free, weight_kg=9.0)],
        },
    )
    assert r.status_code == 409
    assert held in r.json()["error"]["details"]["package_ids"]
    assert client.get(f"/manifests/{day}").json() == before, "a refused import must store nothing"

    # the same assigned package, unchanged, may be sent again; the free one may change
    again = import_day(client, day, [], [package(held), package(free, weight_kg=9.0)])
    assert (again["packages_unchanged"], again["packages_updated"]) == (1, 1)
    assert {(i["driver_id"], i["package_id"]) for i in table_items(dynamodb, day)} == {("a", held)}


INVALID_DRIVERS = [
    pytest.param(
        driver("driver_3", ("WARP_DRIVE", {})), "driver_3", "driver_3-r0", id="unknown-code"
    ),
    pytest.param(
        driver("driver_4", ("MAX_WEIGHT", {})), "driver_4", "driver_4-r0", id="missing-param"
    ),
    pytest.param(
        driver("driver_5", ("MAX_WEIGHT", {"limit_kg": "ten"})),
        "driver_5",
        "driver_5-r0",
        id="mistyped-param",
    ),
    pytest.param(
        driver("driver_6", ("TEMP_CONTROL", {"min_c": 8, "max_c": 2})),
        "driver_6",
        "driver_6-r0",
        id="out-of-range",
    ),
]


@pytest.mark.parametrize(("bad", "driver_id", "rule_id"), INVALID_DRIVERS)
def test_an_invalid_manifest_is_422_naming_driver_and_rule_and_stores_nothing(
    client, bad, driver_id, rule_id
):
    day = new_day()
    r = client.post(
        "/manifests",
        json={"day": day, "drivers": [driver("ok"), bad], "packages": [package("iv-1")]},
    )
    assert r.status_code == 422
    error = r.json()["error"]
    assert driver_id in error["message"] and rule_id in error["message"]
    assert any(
        p.get("driver_id") == driver_id and p.get("rule_id") == rule_id for p in error["details"]
    )
    missing = client.get(f"/manifests/{day}")
    assert missing.status_code == 404


def test_invalid_packages_are_422_naming_the_package_and_store_nothing(client):
    day = new_day()
    r = client.post(
        "/manifests",
        json={
            "day": day,
            "drivers": [driver("a")],
            "packages": [package("pk-ok"), package("pk-bad", hazmat_class=7)],
        },
    )
    assert r.status_code == 422
    assert "pk-bad" in r.json()["error"]["message"]
    r = client.post(
        "/manifests",
        json={
            "day": day,
            "drivers": [driver("a")],
            "packages": [package("pk-dup"), package("pk-dup", weight_kg=3.0)],
        },
    )
    assert r.status_code == 422
    assert [p["package_id"] for p in r.json()["error"]["details"]] == ["pk-dup"]
    assert client.get(f"/manifests/{day}").status_code == 404


def test_an_invalid_reimport_leaves_the_stored_day_as_it_was(client):
    day = new_day()
    import_day(client, day, [driver("a")], [package("keep-1")])
    before = client.get(f"/manifests/{day}").json()
    r = client.post(
        "/manifests",
        json={"day": day, "drivers": [driver("z", ("NOPE", {}))], "packages": [package("keep-2")]},
    )
    assert r.status_code == 422
    assert client.get(f"/manifests/{day}").json() == before


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'{"day": "2071-02-30", "drivers": [], "packages": []}',
        b'{"drivers": [], "packages": [], "colour": "red"}',
        b'{"drivers": {"a": 1}}',
    ],
    ids=["malformed", "array", "bad-day", "unknown-field", "drivers-not-a-list"],
)
def test_malformed_manifest_bodies_are_client_errors(client, body):
    r = client.post("/manifests", content=body, headers={"Content-Type": "application/json"})
    assert 400 <= r.status_code < 500


def test_no_manifest_is_404(client):
    r = client.get(f"/manifests/{new_day()}")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


# --- assign -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def assigned_day(client, dynamodb):
    """A generated day, assigned once for four of its six drivers with a cap of 3."""
    day = new_day()
    payload = generated(day, seed=42, drivers=6, per_driver=5, min_rules=0, max_rules=2)
    import_day(client, day, payload["drivers"], payload["packages"])
    requested = ["driver_2", "driver_5", "driver_1", "driver_4"]
    r = assign(client, day, requested, 3)
    assert r.status_code == 200, r.text
    return {
        "day": day,
        "payload": payload,
        "requested": requested,
        "response": r.json(),
        "items": table_items(dynamodb, day),
        "manifest": client.get(f"/manifests/{day}").json(),
    }


def test_assign_answers_in_the_exact_shape(assigned_day):
    body, requested = assigned_day["response"], assigned_day["requested"]
    assert set(body) == {"assignments", "unassigned_packages", "unassigned_drivers"}
    assert list(body["assignments"]) == requested
    assert all(
        isinstance(v, list) and all(isinstance(p, str) for p in v)
        for v in body["assignments"].values()
    )
    assert isinstance(body["unassigned_packages"], list) and isinstance(
        body["unassigned_drivers"], list
    )


def test_assign_obeys_every_rule_and_the_cap_and_reaches_the_optimum(assigned_day):
    body, payload = assigned_day["response"], assigned_day["payload"]
    drivers = {d["driver_id"]: d for d in payload["drivers"]}
    packages = {p["package_id"]: p for p in payload["packages"]}
    held = [p for pids in body["assignments"].values() for p in pids]
    assert len(held) == len(set(held)), "a package is held twice"
    for d, pids in body["assignments"].items():
        assert len(pids) <= 3
        for pid in pids:
            assert driver_accepts(drivers[d], packages[pid]), (d, pid)
    optimum = max_assignable(
        [drivers[d] for d in assigned_day["requested"]], payload["packages"], 3
    )
    assert len(held) == optimum
    assert optimum > 0


def test_unassigned_lists_are_complete(assigned_day):
    body, payload = assigned_day["response"], assigned_day["payload"]
    held = {p for pids in body["assignments"].values() for p in pids}
    every = [p["package_id"] for p in payload["packages"]]
    assert len(body["unassigned_packages"]) == len(set(body["unassigned_packages"]))
    assert set(body["unassigned_packages"]) == set(every) - held
    assert body["unassigned_drivers"] == [
        d for d in assigned_day["requested"] if not body["assignments"][d]
    ]


def test_the_table_holds_exactly_the_assignments(assigned_day):
    body, items = assigned_day["response"], assigned_day["items"]
    packages = {p["package_id"]: p for p in assigned_day["payload"]["packages"]}
    assert {(i["driver_id"], i["package_id"]) for i in items} == pairs_of(body)
    assert len(items) == len(pairs_of(body))
    for item in items:
        p = packages[item["package_id"]]
        assert item["status"] == "assigned"
        assert item["day"] == assigned_day["day"]
        assert item["version"] == 1
        assert item["weight_kg"] == p["weight_kg"]
        assert item["volume_m3"] == p["volume_m3"]
        assert item["region"] == p["region"]
        assert item["destination"] == p["destination"]
        assert (
            isinstance(item["assigned_at"], (int, float))
            and item["updated_at"] >= item["assigned_at"]
        )


def test_a_repeated_call_answers_the_same_and_writes_nothing(client, dynamodb, assigned_day):
    day = assigned_day["day"]
    again = assign(client, day, assigned_day["requested"], 3)
    assert again.status_code == 200
    assert again.json() == assigned_day["response"]
    assert table_items(dynamodb, day) == assigned_day["items"]
    assert client.get(f"/manifests/{day}").json()["version"] == assigned_day["manifest"]["version"]


def test_other_drivers_later_never_take_held_packages(client, dynamodb, assigned_day):
    day = assigned_day["day"]
    first = assigned_day["response"]
    r = assign(client, day, ["driver_3", "driver_6"], 3)
    assert r.status_code == 200
    body = r.json()
    new = pairs_of(body)
    assert not {p for _, p in new} & {p for _, p in pairs_of(first)}
    held_now = pairs_of(first) | new
    assert set(body["unassigned_packages"]) == {
        p["package_id"] for p in assigned_day["payload"]["packages"]
    } - {p for _, p in held_now}
    assert {(i["driver_id"], i["package_id"]) for i in table_items(dynamodb, day)} == held_now


def test_max_per_driver_is_a_total_for_the_day(client, dynamodb):
    day = new_day()
    import_day(client, day, [driver("a"), driver("b")], [package(f"cap-{i}") for i in range(10)])
    one = assign(client, day, ["a"], 1).json()
    assert len(one["assignments"]["a"]) == 1
    three = assign(client, day, ["a"], 3).json()
    assert len(three["assignments"]["a"]) == 3
    assert set(one["assignments"]["a"]) <= set(three["assignments"]["a"])
    lower = assign(client, day, ["a"], 2).json()
    assert lower == three, "a lower cap later neither takes packages away nor adds any"
    zero = assign(client, day, ["a", "b"], 0).json()
    assert zero["assignments"] == {"a": three["assignments"]["a"], "b": []}
    assert zero["unassigned_drivers"] == ["b"]
    assert Counter(i["driver_id"] for i in table_items(dynamodb, day)) == {"a": 3}


def test_assign_takes_express_first(client):
    day = new_day()
    packages = [
        package("pr-plain"),
        package("pr-perishable", is_perishable=True),
        package("pr-express", is_express=True),
    ]
    import_day(client, day, [driver("a")], packages)
    body = assign(client, day, ["a"], 1).json()
    assert body["assignments"] == {"a": ["pr-express"]}
    body = assign(client, day, ["a"], 2).json()
    assert sorted(body["assignments"]["a"]) == ["pr-express", "pr-perishable"]
    assert body["unassigned_packages"] == ["pr-plain"]


def test_edge_days_empty_request_and_empty_day(client, dynamodb):
    day = new_day()
    import_day(client, day, [driver("a"), driver("b")], [package("edge-1"), package("edge-2")])
    r = assign(client, day, [], 3)
    assert r.status_code == 200
    assert r.json() == {
        "assignments": {},
        "unassigned_packages": ["edge-1", "edge-2"],
        "unassigned_drivers": [],
    }
    empty = new_day()
    import_day(client, empty, [driver("a")], [])
    r = assign(client, empty, ["a"], 3)
    assert r.status_code == 200
    assert r.json() == {
        "assignments": {"a": []},
        "unassigned_packages": [],
        "unassigned_drivers": ["a"],
    }
    assert table_items(dynamodb, day) == [] and table_items(dynamodb, empty) == []


def test_unknown_driver_is_422_and_writes_nothing(client, dynamodb):
    day = new_day()
    import_day(client, day, [driver("a")], [package("ud-1")])
    version = client.get(f"/manifests/{day}").json()["version"]
    r = assign(client, day, ["a", "ghost"], 2)
    assert r.status_code == 422
    assert "ghost" in str(r.json()["error"]["details"])
    assert table_items(dynamodb, day) == []
    assert client.get(f"/manifests/{day}").json()["version"] == version


def test_assign_without_a_manifest_is_404(client):
    r = assign(client, new_day(), ["driver_1"], 2)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "body",
    [
        {"driver_ids": ["a"]},
        {"max_per_driver": 2},
        {"driver_ids": ["a"], "max_per_driver": -1},
        {"driver_ids": ["a"], "max_per_driver": "2"},
        {"driver_ids": ["a"], "max_per_driver": 2.5},
        {"driver_ids": "a", "max_per_driver": 2},
        {"driver_ids": ["a", "a"], "max_per_driver": 2},
        {"driver_ids": ["a"], "max_per_driver": 2, "day": "2071-13-01"},
        {"driver_ids": ["a"], "max_per_driver": 2, "priority": "high"},
    ],
    ids=[
        "no-cap",
        "no-drivers",
        "negative-cap",
        "string-cap",
        "float-cap",
        "string-drivers",
        "repeated-driver",
        "bad-day",
        "unknown-field",
    ],
)
def test_malformed_assign_requests_are_422(client, body):
    r = client.post("/assign", json=body)
    assert r.status_code == 422, r.text


def test_malformed_assign_json_is_a_client_error(client):
    r = client.post(
        "/assign", content=b'{"driver_ids": [', headers={"Content-Type": "application/json"}
    )
    assert 400 <= r.status_code < 500


def test_explain_says_why_each_package_is_unassigned(client):
    day = new_day()
    packages = [
        package("ex-express-1", is_express=True),
        package("ex-express-2", is_express=True),
        package("ex-slow", is_express=False),
    ]
    import_day(client, day, [driver("picky", ("EXPRESS_ONLY", {}))], packages)
    r = assign(client, day, ["picky"], 1, explain="true")
    assert r.status_code == 200
    body = r.json()
    (taken,) = body["assignments"]["picky"]
    left = {p["package_id"] for p in packages} - {taken}
    assert set(body["unassigned_packages"]) == left
    reasons = body["explanations"]
    assert set(reasons) == left
    full = ({"ex-express-1", "ex-express-2"} - {taken}).pop()
    assert reasons[full]["reason"] == "eligible_drivers_full"
    assert reasons["ex-slow"]["reason"] == "no_eligible_driver"
    assert any(
        "EXPRESS_ONLY" in rejection["rule"] for rejection in reasons["ex-slow"]["rejected_by"]
    )
    # without explain, the answer has exactly the three keys
    plain_body = assign(client, day, ["picky"], 1).json()
    assert set(plain_body) == {"assignments", "unassigned_packages", "unassigned_drivers"}


# --- update -------------------------------------------------------------------------------------


@pytest.fixture
def lifecycle_day(client):
    """One driver holding six packages of its own day."""
    day = new_day()
    pids = [f"lc-{day}-{i}" for i in range(6)]
    import_day(client, day, [driver("lc_driver"), driver("lc_other")], [package(p) for p in pids])
    body = assign(client, day, ["lc_driver"], 6).json()
    assert sorted(body["assignments"]["lc_driver"]) == sorted(pids)
    return day, sorted(pids)


def update(client, package_id: str, status: str, driver_id: str = "lc_driver") -> httpx.Response:
    return client.post(
        "/update", json={"driver_id": driver_id, "package_id": package_id, "status": status}
    )


def stored_item(dynamodb, driver_id: str, package_id: str) -> dict | None:
    out = dynamodb.get_item(
        TableName=ASSIGNMENTS_TABLE,
        ConsistentRead=True,
        Key={"driver_id": {"S": driver_id}, "package_id": {"S": package_id}},
    )
    if "Item" not in out:
        return None
    deserialize = TypeDeserializer().deserialize
    return {k: plain(deserialize(v)) for k, v in out["Item"].items()}


def test_every_allowed_transition_is_200(client, dynamodb, lifecycle_day):
    _, pids = lifecycle_day
    paths = [
        ["accepted", "in_progress", "delivered"],
        ["in_progress", "failed_to_deliver"],
        ["failed_to_deliver"],
        ["accepted", "failed_to_deliver"],
        ["in_progress", "delivered"],
    ]
    moves = set()
    for pid, path in zip(pids, paths):
        current, version = "assigned", 1
        for status in path:
            assert status in NEXT[current]
            r = update(client, pid, status)
            assert r.status_code == 200, r.text
            item = r.json()
            assert (item["driver_id"], item["package_id"], item["status"]) == (
                "lc_driver",
                pid,
                status,
            )
            assert item["version"] == version + 1
            stored = stored_item(dynamodb, "lc_driver", pid)
            assert stored["status"] == status and stored["version"] == version + 1
            moves.add((current, status))
            current, version = status, version + 1
    assert moves == {(a, b) for a, nexts in NEXT.items() for b in nexts}


def test_setting_the_same_status_is_a_no_op(client, dynamodb, lifecycle_day):
    _, pids = lifecycle_day
    pid = pids[0]
    before = stored_item(dynamodb, "lc_driver", pid)
    r = update(client, pid, "assigned")
    assert r.status_code == 200 and r.json()["status"] == "assigned"
    assert stored_item(dynamodb, "lc_driver", pid) == before
    for status in ("accepted", "in_progress", "delivered"):
        assert update(client, pid, status).status_code == 200
    before = stored_item(dynamodb, "lc_driver", pid)
    r = update(client, pid, "delivered")
    assert r.status_code == 200 and r.json()["status"] == "delivered"
    assert stored_item(dynamodb, "lc_driver", pid) == before


def walk(client, pid: str, path) -> None:
    for status in path:
        assert update(client, pid, status).status_code == 200


@pytest.mark.parametrize(
    "start", ["assigned", "accepted", "in_progress", "delivered", "failed_to_deliver"]
)
def test_disallowed_moves_are_409_naming_current_and_allowed_next(
    client, dynamodb, lifecycle_day, start
):
    _, pids = lifecycle_day
    pid = pids[0]
    walk(
        client,
        pid,
        {
            "assigned": [],
            "accepted": ["accepted"],
            "in_progress": ["in_progress"],
            "delivered": ["in_progress", "delivered"],
            "failed_to_deliver": ["failed_to_deliver"],
        }[start],
    )
    before = stored_item(dynamodb, "lc_driver", pid)
    same = update(client, pid, start)
    assert same.status_code == 200 and same.json()["status"] == start, (
        "the same status is a no-op 200"
    )
    assert stored_item(dynamodb, "lc_driver", pid) == before
    for target in STATUSES:
        if target == start or target in NEXT[start]:
            continue
        r = update(client, pid, target)
        assert r.status_code == 409, (start, target, r.text)
        error = r.json()["error"]
        assert error["details"]["current_status"] == start
        assert set(error["details"]["allowed_next"]) == NEXT[start]
        assert start in error["message"]
        assert stored_item(dynamodb, "lc_driver", pid) == before, (
            "a refused move must change nothing"
        )


def test_final_states_stay_final(client, lifecycle_day):
    _, pids = lifecycle_day
    walk(client, pids[0], ["in_progress", "delivered"])
    walk(client, pids[1], ["failed_to_deliver"])
    for pid, final in ((pids[0], "delivered"), (pids[1], "failed_to_deliver")):
        for target in STATUSES:
            r = update(client, pid, target)
            if target == final:
                assert r.status_code == 200
            else:
                assert r.status_code == 409
                assert r.json()["error"]["details"]["allowed_next"] == []


def test_unknown_status_is_422(client, dynamodb, lifecycle_day):
    _, pids = lifecycle_day
    before = stored_item(dynamodb, "lc_driver", pids[0])
    for status in ("lost", "DELIVERED", "", None, 3):
        assert update(client, pids[0], status).status_code == 422
    assert stored_item(dynamodb, "lc_driver", pids[0]) == before


def test_update_of_a_missing_item_is_404(client, dynamodb, lifecycle_day):
    _, pids = lifecycle_day
    assert update(client, "no-such-package", "accepted").status_code == 404
    r = update(client, pids[0], "accepted", driver_id="lc_other")  # the package is lc_driver's
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    assert stored_item(dynamodb, "lc_other", pids[0]) is None
    assert update(client, pids[0], "assigned", driver_id="lc_other").status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"driver_id": "a", "package_id": "p"},
        {"driver_id": "a", "status": "accepted"},
        {"driver_id": "a", "package_id": "p", "status": "accepted", "comment": "x"},
    ],
    ids=["no-status", "no-package", "unknown-field"],
)
def test_malformed_update_requests_are_422(client, body):
    assert client.post("/update", json=body).status_code == 422


# --- reads --------------------------------------------------------------------------------------


def test_driver_assignments_list_packages_with_statuses(client, lifecycle_day):
    day, pids = lifecycle_day
    walk(client, pids[0], ["accepted"])
    walk(client, pids[1], ["in_progress", "delivered"])
    r = client.get("/drivers/lc_driver/assignments", params={"day": day})
    assert r.status_code == 200
    body = r.json()
    assert body["driver_id"] == "lc_driver" and body["day"] == day
    statuses = {a["package_id"]: a["status"] for a in body["assignments"]}
    assert statuses == {
        pids[0]: "accepted",
        pids[1]: "delivered",
        **{p: "assigned" for p in pids[2:]},
    }
    sample = next(a for a in body["assignments"] if a["package_id"] == pids[2])
    assert sample["weight_kg"] == 2.5 and sample["region"] == "north"

    other = client.get("/drivers/lc_other/assignments", params={"day": day})
    assert other.status_code == 200 and other.json()["assignments"] == []
    assert client.get("/drivers/ghost/assignments", params={"day": day}).status_code == 404
    assert (
        client.get("/drivers/lc_driver/assignments", params={"day": new_day()}).status_code == 404
    )


def test_get_package_names_its_driver_and_status(client):
    day = new_day()
    import_day(
        client,
        day,
        [driver("gp", ("EXPRESS_ONLY", {}))],
        [package(f"gp-{day}-held", is_express=True), package(f"gp-{day}-free")],
    )
    assign(client, day, ["gp"], 5)
    update(client, f"gp-{day}-held", "accepted", driver_id="gp")
    for params in ({"day": day}, {}):
        r = client.get(f"/packages/gp-{day}-held", params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["day"], body["driver_id"], body["status"]) == (day, "gp", "accepted")
        assert body["package"]["package_id"] == f"gp-{day}-held"
        free = client.get(f"/packages/gp-{day}-free", params=params).json()
        assert (free["driver_id"], free["status"]) == (None, None)
        assert free["package"]["is_express"] is False
    assert client.get("/packages/never-imported").status_code == 404
    assert client.get(f"/packages/gp-{day}-held", params={"day": new_day()}).status_code == 404


# --- the acceptance run's shape: unseen brief-sized days, the whole day requested -----------------


@pytest.mark.parametrize(
    ("seed", "min_rules", "max_rules", "cap"), [(101, 0, 2, 10), (202, 2, 4, 10), (303, 2, 4, 7)]
)
def test_brief_sized_days_are_assigned_optimally_and_recorded(
    client, dynamodb, seed, min_rules, max_rules, cap
):
    day = new_day()
    payload = generated(
        day, seed=seed, drivers=99, per_driver=10, min_rules=min_rules, max_rules=max_rules
    )
    r = client.post("/manifests", json=payload)
    assert r.status_code == 201 and r.json()["packages_total"] == 990
    requested = [d["driver_id"] for d in payload["drivers"]]
    r = assign(client, day, requested, cap)
    assert r.status_code == 200, r.text
    body = r.json()
    drivers = {d["driver_id"]: d for d in payload["drivers"]}
    packages = {p["package_id"]: p for p in payload["packages"]}
    for d, pids in body["assignments"].items():
        assert len(pids) <= cap
        assert all(driver_accepts(drivers[d], packages[p]) for p in pids), d
    held = [p for pids in body["assignments"].values() for p in pids]
    assert len(held) == len(set(held))
    assert len(held) == max_assignable(payload["drivers"], payload["packages"], cap)
    assert set(body["unassigned_packages"]) == set(packages) - set(held)
    items = table_items(dynamodb, day)
    assert {(i["driver_id"], i["package_id"]) for i in items} == pairs_of(body)
    assert all(i["status"] == "assigned" for i in items)
    again = assign(client, day, requested, cap)
    assert again.json() == body
    assert table_items(dynamodb, day) == items
