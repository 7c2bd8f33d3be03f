"""Issue 10 over HTTP, against the real API process and a real emulator: a 413 that urllib can
read, keys that a dropped upload does not burn, the open-mode rate limit keyed on the address,
bounded metric labels, and a /ready that tells anonymous callers no more than "unavailable"."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
import uuid

import httpx
import pytest

from depot.ops.generator import generate_day
from support.apiproc import provision, start_api
from support.processes import start_emulator

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def api(emulator):
    provision(emulator.endpoint)
    with start_api(emulator.endpoint, DEPOT_RATE_LIMIT_PER_MINUTE="1000") as api:
        yield api


def urllib_post(url: str, data, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url,
        data=data,
        method="POST",
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_urllib_reads_the_413_of_a_57_mib_manifest(api):
    status, body = urllib_post(f"{api.url}/manifests", b" " * (57 * MiB))
    assert status == 413
    assert json.loads(body)["error"]["code"] == "payload_too_large"


def test_urllib_reads_the_413_of_a_57_mib_chunked_manifest(api):
    def chunks():
        for _ in range(57 * 4):
            yield b" " * (MiB // 4)

    status, body = urllib_post(f"{api.url}/manifests", chunks(), {"Transfer-Encoding": "chunked"})
    assert status == 413
    assert json.loads(body)["error"]["code"] == "payload_too_large"


def test_urllib_reads_the_413_of_an_oversized_update(api):
    status, body = urllib_post(f"{api.url}/update", b" " * (3 * MiB))
    assert status == 413 and json.loads(body)["error"]["code"] == "payload_too_large"


def access_records(api, request_id: str) -> list[dict]:
    return [
        r
        for r in map(_json, api.output().splitlines())
        if r and r.get("event") == "request" and r.get("request_id") == request_id
    ]


def _json(line: str):
    try:
        return json.loads(line) if line.startswith("{") else None
    except ValueError:
        return None


def wait_for(condition, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_an_upload_cut_off_mid_body_does_not_claim_its_idempotency_key(api):
    day = "2032-01-02"
    payload = json.dumps(
        {"day": day, **generate_day(seed=3, drivers=3, packages_per_driver=2)}
    ).encode()
    key, request_id = f"cut-{uuid.uuid4().hex}", f"cut{uuid.uuid4().hex}"
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as sock:
        sock.sendall(
            (
                f"POST /manifests HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nIdempotency-Key: {key}\r\n"
                f"X-Request-ID: {request_id}\r\n\r\n"
            ).encode()
            + payload[: len(payload) // 2]
        )
    (record,) = wait_for(lambda: access_records(api, request_id))  # the server saw the client go
    assert record["status"] == 499
    retry = httpx.post(
        f"{api.url}/manifests",
        content=payload,
        timeout=30,
        headers={"Idempotency-Key": key, "Content-Type": "application/json"},
    )
    assert retry.status_code == 201, retry.text
    assert "idempotent-replayed" not in retry.headers


def test_open_mode_rate_limit_keys_on_the_address_not_on_made_up_tokens(emulator):
    provision(emulator.endpoint)
    with start_api(emulator.endpoint, DEPOT_RATE_LIMIT_PER_MINUTE="3") as api:
        answers = [
            httpx.get(
                f"{api.url}/manifests/2032-02-02", headers={"Authorization": f"Bearer made-up-{n}"}
            ).status_code
            for n in range(5)
        ]
    assert 429 in answers, answers
    assert answers.index(429) == 3


def test_the_method_label_is_bounded(api):
    for method in ("PROPFIND", "MKCOL", "PURGE", "LINK"):  # methods the HTTP parser lets through
        httpx.request(method, f"{api.url}/health")
    text = httpx.get(f"{api.url}/metrics").text
    methods = {
        line.split('method="', 1)[1].split('"', 1)[0]
        for line in text.splitlines()
        if line.startswith("depot_request_duration_seconds_count")
    }
    assert "other" in methods
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}, methods


def test_ready_tells_anonymous_callers_only_unavailable_and_logs_the_detail():
    with start_emulator() as emu:
        provision(emu.endpoint)
        with start_api(emu.endpoint) as api:
            from depot.config import Settings

            s3, bucket = emu.client("s3"), Settings().state_bucket
            for v in s3.list_object_versions(Bucket=bucket).get("Versions", []):
                s3.delete_object(Bucket=bucket, Key=v["Key"], VersionId=v["VersionId"])
            s3.delete_bucket(Bucket=bucket)
            not_ready = httpx.get(f"{api.url}/ready")
            assert not_ready.status_code == 503
            assert not_ready.json()["checks"] == {"dynamodb": "ok", "s3": "unavailable"}
            assert bucket not in not_ready.text and emu.endpoint not in not_ready.text
            wait_for(lambda: "s3 is unavailable" in api.output())
