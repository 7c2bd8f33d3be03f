"""Idempotency-Key on POST /assign and POST /manifests (issue 4, item 3)."""

from __future__ import annotations

import threading
import time

import pytest
from fastapi.testclient import TestClient

from depot.config import Settings
from depot.http.app import create_app
from depot.ops.generator import generate_day
from depot.storage.store import StorageUnavailable, make_clients
from depot.storage.tables import bootstrap


@pytest.fixture(scope="module")
def settings(emulator) -> Settings:
    settings = Settings(aws_endpoint_url=emulator.endpoint)
    bootstrap(*make_clients(settings), settings)
    return settings


@pytest.fixture
def two_processes(settings):
    """Two app instances (separate services and caches) sharing the same storage."""
    with TestClient(create_app(settings)) as a, TestClient(create_app(settings)) as b:
        yield a, b


def day_version(settings: Settings, day: str) -> int:
    dynamodb, _ = make_clients(settings)
    item = dynamodb.get_item(
        TableName=settings.days_table, Key={"day": {"S": day}}, ConsistentRead=True
    )
    return int(item["Item"]["version"]["N"])


def import_day(client, day: str, seed: int, key: str | None = None):
    headers = {"Idempotency-Key": key} if key else {}
    payload = {"day": day, **generate_day(seed=seed, drivers=10, packages_per_driver=5)}
    return client.post("/manifests", json=payload, headers=headers), payload


def test_replayed_assign_returns_the_first_response_and_writes_nothing(two_processes, settings):
    a, b = two_processes
    day = "2026-04-01"
    import_day(a, day, seed=1)
    body = {"day": day, "driver_ids": ["driver_1", "driver_2"], "max_per_driver": 2}
    first = a.post("/assign", json=body, headers={"Idempotency-Key": "assign-1"})
    assert first.status_code == 200
    version = day_version(settings, day)

    # Another process, and the day changing in between, do not change the replayed answer.
    assert a.post("/assign", json={**body, "driver_ids": ["driver_3"]}).status_code == 200
    replay = b.post("/assign", json=body, headers={"Idempotency-Key": "assign-1"})
    assert replay.status_code == 200
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.content == first.content
    assert day_version(settings, day) == version + 1  # only the un-keyed call wrote


def test_same_key_with_another_body_is_422_and_writes_nothing(two_processes, settings):
    a, _ = two_processes
    day = "2026-04-02"
    import_day(a, day, seed=2)
    body = {"day": day, "driver_ids": ["driver_1"], "max_per_driver": 2}
    assert a.post("/assign", json=body, headers={"Idempotency-Key": "k-2"}).status_code == 200
    version = day_version(settings, day)
    other = a.post(
        "/assign", json={**body, "max_per_driver": 3}, headers={"Idempotency-Key": "k-2"}
    )
    assert other.status_code == 422
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert day_version(settings, day) == version


def test_replayed_manifest_import_is_not_applied_twice(two_processes, settings):
    a, b = two_processes
    day = "2026-04-03"
    first, _ = import_day(a, day, seed=3, key="manifest-3")
    replay, _ = import_day(b, day, seed=3, key="manifest-3")
    assert first.status_code == replay.status_code == 201
    assert replay.json() == first.json()
    assert replay.headers["idempotent-replayed"] == "true"
    assert day_version(settings, day) == 1


def test_replay_while_the_first_is_running_is_409(settings):
    app = create_app(settings)
    day = "2026-04-04"
    entered, release = threading.Event(), threading.Event()
    with TestClient(app) as client:
        import_day(client, day, seed=4)
        service = app.state.service
        real_assign = service.assign

        def slow_assign(*args, **kwargs):
            entered.set()
            assert release.wait(30)
            return real_assign(*args, **kwargs)

        service.assign = slow_assign
        body = {"day": day, "driver_ids": ["driver_1"], "max_per_driver": 1}
        results: dict[str, object] = {}
        first = threading.Thread(
            target=lambda: results.setdefault(
                "first", client.post("/assign", json=body, headers={"Idempotency-Key": "slow"})
            )
        )
        first.start()
        assert entered.wait(30)
        during = client.post("/assign", json=body, headers={"Idempotency-Key": "slow"})
        release.set()
        first.join(30)
        after = client.post("/assign", json=body, headers={"Idempotency-Key": "slow"})
    assert during.status_code == 409
    assert during.json()["error"]["code"] == "idempotency_in_progress"
    assert results["first"].status_code == 200
    assert after.status_code == 200 and after.content == results["first"].content


def test_a_503_releases_the_key_so_the_retry_runs(settings):
    app = create_app(settings)
    day = "2026-04-05"
    with TestClient(app) as client:
        import_day(client, day, seed=5)
        service = app.state.service
        real_assign = service.assign
        calls = {"n": 0}

        def flaky_assign(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 1:
                raise StorageUnavailable("injected outage")
            return real_assign(*args, **kwargs)

        service.assign = flaky_assign
        body = {"day": day, "driver_ids": ["driver_1"], "max_per_driver": 1}
        outage = client.post("/assign", json=body, headers={"Idempotency-Key": "retry-me"})
        retry = client.post("/assign", json=body, headers={"Idempotency-Key": "retry-me"})
    assert outage.status_code == 503 and outage.headers["retry-after"]
    assert retry.status_code == 200 and "idempotent-replayed" not in retry.headers
    assert len(retry.json()["assignments"]["driver_1"]) == 1


def test_records_expire_after_a_day(settings, two_processes):
    a, _ = two_processes
    day = "2026-04-06"
    import_day(a, day, seed=6, key="ttl-check")
    dynamodb, _ = make_clients(settings)
    items = dynamodb.scan(TableName=settings.idempotency_table)["Items"]
    record = next(i for i in items if i["idempotency_key"]["S"].endswith("|ttl-check"))
    expires = int(record["expires_at"]["N"])
    assert 24 * 3600 - 120 <= expires - time.time() <= 24 * 3600
    ttl = dynamodb.describe_time_to_live(TableName=settings.idempotency_table)[
        "TimeToLiveDescription"
    ]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
