"""Structured logs with request ids, Prometheus metrics, /ready per dependency (issue 4, item 5)."""

from __future__ import annotations

import json

import httpx
import pytest

from depot.ops.generator import generate_day
from support.apiproc import provision, start_api
from support.processes import start_emulator


@pytest.fixture(scope="module")
def api(emulator):
    provision(emulator.endpoint)
    with start_api(emulator.endpoint) as api:
        yield api


def json_lines(text: str) -> list[dict]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def test_every_request_log_line_is_json_with_the_request_id(api):
    day = "2026-05-01"
    payload = {"day": day, **generate_day(seed=21, drivers=5, packages_per_driver=4)}
    created = httpx.post(
        f"{api.url}/manifests", json=payload, headers={"X-Request-ID": "trace-abc-123"}
    )
    assigned = httpx.post(
        f"{api.url}/assign", json={"day": day, "driver_ids": ["driver_1"], "max_per_driver": 2}
    )
    assert created.status_code == 201 and assigned.status_code == 200
    assert created.headers["x-request-id"] == "trace-abc-123"
    generated_id = assigned.headers["x-request-id"]
    assert len(generated_id) == 32

    records = json_lines(api.output())
    access = [r for r in records if r.get("event") == "request"]
    by_id = {r["request_id"]: r for r in access}
    assert (
        by_id["trace-abc-123"]["route"] == "/manifests" and by_id["trace-abc-123"]["status"] == 201
    )
    assert by_id[generated_id]["route"] == "/assign" and by_id[generated_id]["status"] == 200
    assert all(r.get("request_id") for r in access)
    assert all({"timestamp", "level"} <= set(r) for r in records)


def test_metrics_expose_latency_runs_storage_and_log_buffer(api):
    day = "2026-05-02"
    payload = {"day": day, **generate_day(seed=22, drivers=5, packages_per_driver=4)}
    assert httpx.post(f"{api.url}/manifests", json=payload).status_code == 201
    assert (
        httpx.post(
            f"{api.url}/assign", json={"day": day, "driver_ids": ["driver_2"], "max_per_driver": 3}
        ).status_code
        == 200
    )
    assert (
        httpx.post(
            f"{api.url}/update",
            json={"driver_id": "driver_2", "package_id": "missing", "status": "accepted"},
        ).status_code
        == 404
    )
    text = httpx.get(f"{api.url}/metrics").text
    assert (
        'depot_request_duration_seconds_count{method="POST",route="/assign",status="200"}' in text
    )
    assert (
        'depot_request_duration_seconds_count{method="POST",route="/update",status="404"}' in text
    )
    assert "depot_assignment_run_packages_count" in text
    assert 'depot_assignment_run_seconds_count{phase="match"}' in text
    assert 'depot_aws_calls_total{operation="UpdateItem",outcome="ok",service="dynamodb"}' in text
    assert "depot_oplog_buffer_events" in text and "depot_oplog_dropped_events" in text


def test_ready_reports_dynamodb_and_s3_separately():
    with start_emulator() as emu:
        provision(emu.endpoint)
        with start_api(emu.endpoint) as api:
            ready = httpx.get(f"{api.url}/ready")
            assert ready.status_code == 200
            assert ready.json()["checks"] == {"dynamodb": "ok", "s3": "ok"}
            s3 = emu.client("s3")
            from depot.config import Settings

            bucket = Settings().state_bucket
            versions = s3.list_object_versions(Bucket=bucket).get("Versions", [])
            for v in versions:
                s3.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
            s3.delete_bucket(Bucket=bucket)
            not_ready = httpx.get(f"{api.url}/ready")
            assert not_ready.status_code == 503
            checks = not_ready.json()["checks"]
            assert checks["dynamodb"] == "ok" and checks["s3"] != "ok"
