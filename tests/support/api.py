"""The API as a process for the tests of the HTTP interface: the ``api``, ``client`` and
``dynamodb`` fixtures, the error-shape check every answer passes, the table read straight from
the emulator, and factories of packages, drivers and days."""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from boto3.dynamodb.types import TypeDeserializer

from depot.ops.generator import generate_day
from support.apiproc import provision, start_api

ASSIGNMENTS_TABLE = "DeliveryAssignments"

_days = itertools.count()


def new_day() -> str:
    """A day no other test of this module uses (far in the future, away from other suites)."""
    return (date(2071, 1, 1) + timedelta(days=next(_days))).isoformat()


@pytest.fixture(scope="module")
def api(emulator):
    """The API as a process (``depot serve``, open dev mode) on the session's emulator."""
    provision(emulator.endpoint)
    with start_api(emulator.endpoint) as server:
        yield server


def check_response(response: httpx.Response) -> None:
    """Every answer of the API: never a 500, and every error in SPEC's shape."""
    response.read()
    assert response.status_code != 500, (
        f"{response.request.method} {response.request.url}: {response.text}"
    )
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"}, body
        assert set(body["error"]) == {"code", "message", "details"}, body
        assert isinstance(body["error"]["code"], str) and body["error"]["code"]
        assert isinstance(body["error"]["message"], str) and body["error"]["message"]


@pytest.fixture(scope="module")
def client(api):
    with httpx.Client(
        base_url=api.url, timeout=60, event_hooks={"response": [check_response]}
    ) as c:
        yield c


@pytest.fixture(scope="module")
def dynamodb(emulator):
    return emulator.client("dynamodb")


def plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return (
            int(value)
            if value == value.to_integral_value() and "." not in str(value)
            else float(value)
        )
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def table_items(dynamodb, day: str) -> list[dict[str, Any]]:
    """Every DeliveryAssignments item of ``day``, read straight from the emulator (Scan)."""
    deserialize = TypeDeserializer().deserialize
    items, kwargs = (
        [],
        {
            "TableName": ASSIGNMENTS_TABLE,
            "ConsistentRead": True,
            "FilterExpression": "#d = :d",
            "ExpressionAttributeNames": {"#d": "day"},
            "ExpressionAttributeValues": {":d": {"S": day}},
        },
    )
    while True:
        page = dynamodb.scan(**kwargs)
        items.extend(
            {k: plain(deserialize(v)) for k, v in i.items()} for i in page.get("Items", [])
        )
        if "LastEvaluatedKey" not in page:
            return sorted(items, key=lambda i: (i["driver_id"], i["package_id"]))
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


# --- helpers ------------------------------------------------------------------------------------


def package(pid: str, **kw) -> dict:
    p = {
        "package_id": pid,
        "weight_kg": 2.5,
        "is_perishable": False,
        "region": "north",
        "distance_km": 10.0,
        "is_express": False,
        "is_fragile": False,
        "hazmat_class": None,
        "temperature_c": 5.0,
        "delivery_hour": 10,
        "volume_m3": 1.0,
        "destination": {
            "street": "1 High St",
            "city": "Leeds",
            "postcode": "LS1 1AA",
            "lat": 53.8,
            "lon": -1.5,
        },
    }
    p.update(kw)
    return p


def driver(driver_id: str, *rules) -> dict:
    return {
        "driver_id": driver_id,
        "rules": [
            {"rule_id": f"{driver_id}-r{k}", "code": code, "params": params}
            for k, (code, params) in enumerate(rules)
        ],
    }


def import_day(client, day: str, drivers, packages) -> dict:
    r = client.post("/manifests", json={"day": day, "drivers": drivers, "packages": packages})
    assert r.status_code == 201, r.text
    return r.json()


def generated(day: str, seed: int, drivers: int, per_driver: int, min_rules=0, max_rules=2) -> dict:
    payload = generate_day(
        seed=seed,
        drivers=drivers,
        packages_per_driver=per_driver,
        min_rules=min_rules,
        max_rules=max_rules,
    )
    return {"day": day, **payload}


def assign(client, day: str, driver_ids, cap: int, **params) -> httpx.Response:
    return client.post(
        "/assign",
        params=params or None,
        json={"driver_ids": list(driver_ids), "max_per_driver": cap, "day": day},
    )


def pairs_of(body: dict) -> set[tuple[str, str]]:
    return {(d, p) for d, pids in body["assignments"].items() for p in pids}


def same_package(stored: dict, sent: dict) -> bool:
    """A stored package equals the imported one (a null hazmat class may be left out)."""
    return {k: v for k, v in stored.items() if v is not None} == {
        k: v for k, v in sent.items() if v is not None
    }
