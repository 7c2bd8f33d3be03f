"""Operational logs in S3 (issue 4, item 4): complete under failures, never in the API's way."""

from __future__ import annotations

import random
import socket
import threading

import pytest
from botocore.exceptions import ConnectionClosedError
from fastapi.testclient import TestClient

from depot.config import Settings
from depot.http.app import create_app
from depot.ops.generator import generate_day
from depot.storage.oplog import EventLog, event_key, read_events
from depot.storage.store import make_clients, make_log_client
from depot.storage.tables import bootstrap


@pytest.fixture(scope="module")
def settings(emulator) -> Settings:
    settings = Settings(aws_endpoint_url=emulator.endpoint, log_bucket="depot-logs-oplog-test")
    bootstrap(*make_clients(settings), settings)
    return settings


def fail_puts(client, rate: float, seed: int = 7) -> dict[str, int]:
    """Make a share of the client's PutObject attempts fail as a dropped connection would."""
    rng = random.Random(seed)
    counts = {"failed": 0, "sent": 0}

    def maybe_fail(request, **_):
        counts["sent"] += 1
        if rng.random() < rate:
            counts["failed"] += 1
            raise ConnectionClosedError(endpoint_url=request.url)

    client.meta.events.register("before-send.s3.PutObject", maybe_fail)
    return counts


def test_key_is_date_partitioned_in_utc():
    from datetime import UTC, datetime

    when = datetime(2026, 11, 25, 7, 5, 3, 120000, tzinfo=UTC)
    assert event_key("prod", when, "abc", 3) == (
        "logs/prod/dt=2026-11-25/hour=07/20261125T070503120000Z-abc-000003.jsonl.gz"
    )


def test_ten_thousand_events_arrive_complete_with_a_fifth_of_puts_failing(settings):
    client = make_log_client(settings)
    counts = fail_puts(client, rate=0.2)
    log = EventLog(
        client, settings.log_bucket, "failing", flush_interval_s=0.05, flush_max_events=500
    )
    log.start()
    ids = {log.emit("test_event", n=n) for n in range(10_000)}
    log.close(timeout_s=120)

    stored = read_events(make_clients(settings)[1], settings.log_bucket, "logs/failing/")
    stored_ids = [e["event_id"] for e in stored]
    assert counts["failed"] > 0, "the fault injection did not fire"
    assert set(stored_ids) == ids
    assert len(stored_ids) == len(ids), "an event was stored twice"
    assert log.dropped == 0
    print(
        f"\n10,000 events, {counts['failed']} of {counts['sent']} PUT attempts failed, "
        "0 lost, 0 duplicated"
    )


def test_a_full_buffer_drops_the_oldest_and_counts_it(settings):
    client = make_log_client(settings)
    log = EventLog(
        client, settings.log_bucket, "bounded", buffer_max_events=10, flush_max_events=1000
    )
    first = [log.emit("e", n=n) for n in range(15)]
    assert log.dropped == 5
    log.close()
    stored = {
        e["event_id"]
        for e in read_events(make_clients(settings)[1], settings.log_bucket, "logs/bounded/")
    }
    assert stored == set(first[5:])


def test_objects_are_never_overwritten(settings):
    client = make_log_client(settings)
    log = EventLog(client, settings.log_bucket, "nooverwrite")
    for _ in range(3):
        log.emit("e")
        assert log.flush()
    s3 = make_clients(settings)[1]
    keys = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=settings.log_bucket, Prefix="logs/nooverwrite/")[
            "Contents"
        ]
    ]
    assert len(keys) == len(set(keys)) == 3
    versions = s3.list_object_versions(Bucket=settings.log_bucket, Prefix="logs/nooverwrite/")[
        "Versions"
    ]
    assert len(versions) == 3


@pytest.fixture
def blackhole():
    """A TCP port that accepts connections and never answers: S3 hanging."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_api_keeps_answering_while_the_log_bucket_hangs_then_catches_up(settings, blackhole):
    app = create_app(settings)
    day = "2026-03-03"
    payload = generate_day(seed=11, drivers=20, packages_per_driver=5)
    with TestClient(app) as client:
        hanging = EventLog(
            make_log_client(settings.model_copy(update={"aws_endpoint_url": blackhole})),
            settings.log_bucket,
            "hanging",
            flush_interval_s=0.05,
        )
        hanging.start()
        app.state.service.events = hanging
        assert client.post("/manifests", json={"day": day, **payload}).status_code == 201
        for i in range(1, 21):
            response = client.post(
                "/assign", json={"day": day, "driver_ids": [f"driver_{i}"], "max_per_driver": 3}
            )
            assert response.status_code == 200
        assert hanging.shipped == 0 and hanging.unshipped() == 21, (
            "events should wait while S3 hangs"
        )
        hanging.s3 = make_log_client(settings)  # S3 is back
        hanging.close(timeout_s=30)
        assert hanging.unshipped() == 0 and hanging.dropped == 0
    stored = read_events(make_clients(settings)[1], settings.log_bucket, "logs/hanging/")
    assert sorted(e["type"] for e in stored) == ["assignment_run"] * 20 + ["manifest_imported"]
    assert all(e.get("request_id") for e in stored)


class RefillingS3:
    """S3 whose PutObject fails after the producer has filled the buffer again meanwhile."""

    def __init__(self, log_ref: list, refill: int):
        self.log_ref, self.refill = log_ref, refill

    def put_object(self, **_):
        log = self.log_ref[0]
        for n in range(self.refill):
            log.emit("while_failing", n=n)
        raise ConnectionError("S3 is down")


def test_a_failed_batch_does_not_overfill_a_buffer_that_filled_up_meanwhile():
    holder: list = []
    log = EventLog(
        RefillingS3(holder, refill=5), "bucket", "unit", flush_max_events=5, buffer_max_events=10
    )
    holder.append(log)
    for n in range(10):
        log.emit("before", n=n)
    assert not log.flush()  # took 5, 5 more arrived (buffer full), the 5 failed go back
    assert log.depth() == 10, "the buffer must stay within buffer_max_events"
    assert log.dropped == 5


def test_a_failed_batch_keeps_what_fits():
    holder: list = []
    log = EventLog(
        RefillingS3(holder, refill=3), "bucket", "unit", flush_max_events=5, buffer_max_events=10
    )
    holder.append(log)
    for n in range(10):
        log.emit("before", n=n)
    assert not log.flush()
    kept = [e["n"] for e in log.buffer if e["type"] == "before"]
    assert log.depth() == 10 and log.dropped == 3
    assert kept == [3, 4, 5, 6, 7, 8, 9]  # the oldest dropped


def test_every_event_names_its_actor():
    import structlog

    log = EventLog(None, "bucket", "unit")
    structlog.contextvars.clear_contextvars()
    log.emit("background")
    assert log.buffer[-1]["actor"] == "system"
    log.emit("explicit", actor="dispatcher:ops")
    assert log.buffer[-1]["actor"] == "dispatcher:ops"
    structlog.contextvars.bind_contextvars(actor="driver:driver_7", request_id="r-1")
    try:
        log.emit("from_request")
        assert (
            log.buffer[-1]["actor"] == "driver:driver_7" and log.buffer[-1]["request_id"] == "r-1"
        )
    finally:
        structlog.contextvars.clear_contextvars()


def test_events_of_requests_carry_the_principal_as_actor(settings):
    app = create_app(settings)
    day = "2026-03-04"
    payload = generate_day(seed=12, drivers=2, packages_per_driver=2)
    with TestClient(app) as client:
        app.state.service.events = unshipped = EventLog(
            None, settings.log_bucket, "actor"
        )  # not started
        assert client.post("/manifests", json={"day": day, **payload}).status_code == 201
        events = list(unshipped.buffer)
    imported = [e for e in events if e["type"] == "manifest_imported" and e.get("day") == day]
    assert imported and all(e["actor"] == "open" for e in imported)
