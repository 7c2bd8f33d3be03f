"""Outages (issue 4, item 2), each produced by the fault harness in ``faults.py``.

Targets: with DynamoDB unreachable an API call answers 503 with ``Retry-After`` within 10 s and
never 500; once it is back, calls succeed again within 2 s; with 30% of DynamoDB requests
throttled at least 99% of API calls succeed; with half of every batch returned unprocessed, 0 of
10,000 items are lost. Timings are printed (run with ``-s``) and asserted against the targets.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import httpx
import pytest

from depot.core.models import Status
from support.faults import (
    FaultProxy,
    HalfUnprocessed,
    ManagedApi,
    ManagedEmulator,
    Throttle,
    call,
    committed_state,
    import_day,
    make_service,
    serve_in_thread,
    table_assignments,
)
from support.figures import figure

DEADLINE_S = 10.0  # an API call answers within this while DynamoDB is unreachable
RECOVERY_S = 2.0  # calls succeed again within this once it is back


@pytest.fixture(scope="module")
def emulated():
    """An emulator of this module's own and a fault proxy in front of it."""
    with ManagedEmulator() as emulator, FaultProxy(emulator.port) as proxy:
        yield SimpleNamespace(
            emulator=emulator,
            proxy=proxy,
            direct=make_service(emulator.endpoint),
            ddb=emulator.client("dynamodb"),
            s3=emulator.client("s3"),
        )


@pytest.fixture
def stack(emulated):
    """A fresh API process behind the proxy (a process of its own per test: botocore's retry quota,
    the circuit breaker that an outage drains, is per process)."""
    api = ManagedApi(emulated.proxy.endpoint).wait_ready()
    try:
        yield SimpleNamespace(**vars(emulated), api=api)
    finally:
        emulated.proxy.passthrough()
        emulated.emulator.resume()
        api.kill()


def _during_outage(
    api_url: str, day: str, driver_ids: list[str], held: tuple[str, str]
) -> dict[str, object]:
    """Fire one call of each kind at once; return their answers."""
    calls = {
        "assign": ("POST", "/assign", {"day": day, "driver_ids": driver_ids, "max_per_driver": 3}),
        "update": (
            "POST",
            "/update",
            {"driver_id": held[0], "package_id": held[1], "status": "accepted"},
        ),
        "driver_assignments": ("GET", f"/drivers/{held[0]}/assignments?day={day}", None),
        "manifest": ("GET", f"/manifests/{day}", None),
        "package": ("GET", f"/packages/{held[1]}?day={day}", None),
        "ready": ("GET", "/ready", None),
    }

    def one(spec):
        method, path, body = spec
        with httpx.Client() as http:
            return call(http, method, api_url + path, body, timeout=60)

    with ThreadPoolExecutor(len(calls)) as pool:
        futures = {name: pool.submit(one, spec) for name, spec in calls.items()}
        return {name: f.result() for name, f in futures.items()}


def _assert_unavailable(answers, what: str) -> None:
    figure(
        f"{what}: seconds to answer per call", {k: round(a.elapsed, 2) for k, a in answers.items()}
    )
    for name, answer in answers.items():
        assert answer.status == 503, f"{name} answered {answer.status} during {what}: {answer.body}"
        assert answer.elapsed < DEADLINE_S, f"{name} took {answer.elapsed:.1f}s during {what}"
        if name != "ready":
            assert int(answer.headers["retry-after"]) > 0, name
            assert answer.body["error"]["code"] == "storage_unavailable", answer.body


def _prepare(stack, day: str, seed: int) -> tuple[list[str], tuple[str, str]]:
    import_day(stack.direct, day, drivers=10, packages_per_driver=10, seed=seed, max_rules=0)
    drivers = [f"driver_{i}" for i in range(1, 11)]
    with httpx.Client() as http:
        warm = call(
            http,
            "POST",
            f"{stack.api.url}/assign",
            {"day": day, "driver_ids": drivers[:2], "max_per_driver": 3},
        )
    assert warm.status == 200, warm.body
    return drivers, ("driver_1", warm.body["assignments"]["driver_1"][0])


def _recovered(stack, day: str, drivers: list[str], back_at: float, what: str) -> None:
    with httpx.Client() as http:
        first = call(
            http,
            "POST",
            f"{stack.api.url}/assign",
            {"day": day, "driver_ids": drivers, "max_per_driver": 3},
        )
    figure(
        f"{what}: first /assign after recovery",
        f"{first.status} in {time.monotonic() - back_at:.2f}s",
    )
    assert first.status == 200, (
        f"the first call after recovery answered {first.status}: {first.body}"
    )
    assert time.monotonic() - back_at < RECOVERY_S
    assert all(len(p) == 3 for p in first.body["assignments"].values())


def test_blackholed_dynamodb_answers_503_within_deadline_then_recovers(stack):
    day = "2031-01-01"
    drivers, held = _prepare(stack, day, seed=101)
    stack.proxy.blackhole()
    try:
        answers = _during_outage(stack.api.url, day, drivers[2:], held)
    finally:
        stack.proxy.passthrough()
        back_at = time.monotonic()
    _assert_unavailable(answers, "blackhole")
    assert stack.proxy.count("blackhole") > 0
    _recovered(stack, day, drivers, back_at, "blackhole")


def test_paused_emulator_answers_503_within_deadline_then_recovers(stack):
    day = "2031-01-02"
    drivers, held = _prepare(stack, day, seed=102)
    stack.emulator.pause()
    try:
        answers = _during_outage(stack.api.url, day, drivers[2:], held)
    finally:
        stack.emulator.resume()
        back_at = time.monotonic()
    _assert_unavailable(answers, "SIGSTOP")
    _recovered(stack, day, drivers, back_at, "SIGSTOP")


def _assert_table_is_committed_state(stack, day: str, cap: int) -> list[tuple[str, str, str]]:
    committed = committed_state(stack.ddb, stack.s3, day)
    table = table_assignments(stack.ddb, day)
    pairs = [(d, p) for d, p, _ in table]
    assert not committed.pending, f"runs still pending: {committed.pending}"
    assert Counter(p for _, p in committed.pairs).most_common(1)[0][1] == 1, (
        "a package is in two runs"
    )
    assert set(pairs) == set(committed.pairs), (
        f"lost {len(set(committed.pairs) - set(pairs))}, "
        f"extra {len(set(pairs) - set(committed.pairs))}"
    )
    held = Counter(p for _, p in pairs)
    assert not [p for p, n in held.items() if n > 1], "a package is held by two drivers"
    assert max(Counter(d for d, _ in pairs).values()) <= cap
    return table


def test_emulator_paused_in_the_middle_of_a_large_assign(stack):
    """The held-out check: pause during a 4,000-package run; 503 in time; a retry completes it."""
    day, cap = "2031-01-03", 100
    import_day(stack.direct, day, drivers=40, packages_per_driver=100, seed=103, max_rules=0)
    body = {"day": day, "driver_ids": [f"driver_{i}" for i in range(1, 41)], "max_per_driver": cap}
    writes_before = stack.proxy.count("BatchWriteItem")
    result = {}

    def first_call():
        with httpx.Client() as http:
            result["answer"] = call(http, "POST", f"{stack.api.url}/assign", body, timeout=120)

    thread = threading.Thread(target=first_call)
    thread.start()
    stack.proxy.wait_for("BatchWriteItem", writes_before + 20, timeout=60)
    stack.emulator.pause()
    paused_at = time.monotonic()
    try:
        thread.join(60)
        answered_after = time.monotonic() - paused_at
    finally:
        stack.emulator.resume()
        back_at = time.monotonic()
    first = result["answer"]
    figure("pause mid-assign: seconds from pause to answer", round(answered_after, 2))
    assert first.status == 503, first.body
    assert int(first.headers["retry-after"]) > 0
    assert answered_after < DEADLINE_S

    attempts = []
    with httpx.Client() as http:
        while len(attempts) < 10:
            attempts.append(call(http, "POST", f"{stack.api.url}/assign", body, timeout=120))
            if attempts[-1].status != 503:
                break
            time.sleep(
                int(attempts[-1].headers.get("retry-after", "1"))
            )  # what a client is told to do
    final = attempts[-1]
    figure(
        "pause mid-assign: retry after resume",
        f"{[a.status for a in attempts]} in {time.monotonic() - back_at:.2f}s",
    )
    assert final.status == 200, final.body
    table = _assert_table_is_committed_state(stack, day, cap)
    assert len(table) == 4000
    answered = {(d, p) for d, ps in final.body["assignments"].items() for p in ps}
    assert answered == {(d, p) for d, p, _ in table}


def _on(target: str, table: str | None = None, expression: str | None = None, nth: int = 2):
    """A proxy ``when``: every ``nth`` first attempt of a request to ``target`` (optionally on
    ``table``, with ``expression`` in its body), counting from the first; botocore's retries of it
    (``amz-sdk-request: attempt=2``...) pass."""
    seen = [0]
    lock = threading.Lock()

    def when(request) -> bool:
        if request.target != target:
            return False
        if table and f'"TableName": "{table}"'.encode() not in request.raw:
            return False
        if expression and expression.encode() not in request.raw:
            return False
        if "attempt=1;" not in request.headers.get("amz-sdk-request", "attempt=1;"):
            return False
        with lock:
            seen[0] += 1
            return seen[0] % nth == 1

    return when


def test_connection_reset_after_the_write_loses_and_duplicates_nothing(stack):
    """The ambiguous failure: the write happened, the caller saw a reset and sent it again."""
    day, cap = "2031-01-04", 20
    import_day(stack.direct, day, drivers=20, packages_per_driver=20, seed=104, max_rules=0)
    drivers = [f"driver_{i}" for i in range(1, 21)]
    with httpx.Client() as http:
        stack.proxy.reset(when=_on("BatchWriteItem"))
        resets_before = stack.proxy.count("reset")
        assigned = call(
            http,
            "POST",
            f"{stack.api.url}/assign",
            {"day": day, "driver_ids": drivers, "max_per_driver": cap},
        )
        batch_resets = stack.proxy.count("reset") - resets_before
        assert assigned.status == 200, assigned.body
        stack.proxy.reset(when=_on("UpdateItem", table="DeliveryAssignments"))
        pid = assigned.body["assignments"]["driver_1"][0]
        updated = call(
            http,
            "POST",
            f"{stack.api.url}/update",
            {"driver_id": "driver_1", "package_id": pid, "status": "in_progress"},
        )
        stack.proxy.passthrough()
    figure(
        "reset after forwarding",
        f"{batch_resets} BatchWriteItem answers reset; /assign in "
        f"{assigned.elapsed:.2f}s, /update in {updated.elapsed:.2f}s",
    )
    assert batch_resets >= 5
    assert assigned.status == 200, assigned.body
    table = _assert_table_is_committed_state(stack, day, cap)
    assert len(table) == 400
    # the reset UpdateItem was applied, its retry found the item moved already: a no-op 200
    assert updated.status == 200, updated.body
    assert updated.body["status"] == "in_progress"


def test_commit_answer_lost_is_rolled_forward(stack):
    """The run's commit reaches DynamoDB but its answer is lost (reset): the retry's condition
    fails, the run is nevertheless committed and pending, and the call rolls it forward."""
    day, cap = "2031-01-05", 10
    import_day(stack.direct, day, drivers=10, packages_per_driver=10, seed=105, max_rules=0)
    stack.proxy.reset(when=_on("UpdateItem", table="DepotDays", expression="list_append", nth=1000))
    with httpx.Client() as http:
        answer = call(
            http,
            "POST",
            f"{stack.api.url}/assign",
            {
                "day": day,
                "driver_ids": [f"driver_{i}" for i in range(1, 11)],
                "max_per_driver": cap,
            },
        )
    stack.proxy.passthrough()
    figure("lost commit answer: /assign", f"{answer.status} in {answer.elapsed:.2f}s")
    assert answer.status in (200, 503), answer.body
    if (
        answer.status == 503
    ):  # the caller gave up waiting for its own lease: the next call completes
        with httpx.Client() as http:
            answer = call(
                http,
                "POST",
                f"{stack.api.url}/assign",
                {
                    "day": day,
                    "driver_ids": [f"driver_{i}" for i in range(1, 11)],
                    "max_per_driver": cap,
                },
            )
    assert answer.status == 200, answer.body
    table = _assert_table_is_committed_state(stack, day, cap)
    assert len(committed_state(stack.ddb, stack.s3, day).runs) == 1
    assert {(d, p) for d, ps in answer.body["assignments"].items() for p in ps} == {
        (d, p) for d, p, _ in table
    }


def test_killed_and_restarted_emulator():
    """Kill the emulator (its state is lost: moto keeps it in memory): 503 in time, never 500;
    restarted and provisioned again, the API answers within 2 s, with the empty state."""
    day = "2031-01-06"
    with ManagedEmulator() as emulator:
        api = ManagedApi(emulator.endpoint).wait_ready()
        try:
            service = make_service(emulator.endpoint)
            drivers, held = _prepare(SimpleNamespace(direct=service, api=api), day, seed=106)
            emulator.kill()
            answers = _during_outage(api.url, day, drivers[2:], held)
            _assert_unavailable(answers, "emulator killed")
            emulator.start(provision=True)
            back_at = time.monotonic()
            with httpx.Client() as http:
                manifest = call(http, "GET", f"{api.url}/manifests/{day}")
                figure(
                    "emulator restarted: first call",
                    f"{manifest.status} in {time.monotonic() - back_at:.2f}s",
                )
                assert manifest.status == 404, manifest.body  # the emulator's state is gone
                assert time.monotonic() - back_at < RECOVERY_S
                from depot.ops.generator import generate_day

                payload = generate_day(seed=106, drivers=4, packages_per_driver=5, max_rules=0)
                imported = call(http, "POST", f"{api.url}/manifests", {"day": day, **payload})
                assert imported.status == 201, imported.body
                assigned = call(
                    http,
                    "POST",
                    f"{api.url}/assign",
                    {"day": day, "driver_ids": ["driver_1", "driver_2"], "max_per_driver": 2},
                )
                assert assigned.status == 200, assigned.body
                assert all(len(v) == 2 for v in assigned.body["assignments"].values())
        finally:
            api.kill()


def test_thirty_percent_throttled_still_99_percent_of_api_calls_succeed(emulated):
    """ThrottlingException on 30% of DynamoDB requests (injected before sending, so botocore's
    retry logic handles them as real ones): at least 99% of API calls still answer as they
    should."""
    from depot.http.app import create_app

    day = "2031-01-07"
    service = make_service(emulated.emulator.endpoint)
    import_day(service, day, drivers=40, packages_per_driver=10, seed=107, max_rules=1)
    throttle = Throttle(service.store.dynamodb, rate=0.3, seed=7)
    SESSIONS, ROUNDS = 24, 4  # 24 clients at once, each 4 x (assign, update, read): 288 API calls
    outcomes: Counter[str] = Counter()
    failures: list = []
    lock = threading.Lock()

    def client_session(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=url) as http:
            for _ in range(ROUNDS):
                drivers = rng.sample([f"driver_{i}" for i in range(1, 41)], 3)
                a = call(
                    http,
                    "POST",
                    "/assign",
                    {"day": day, "driver_ids": drivers, "max_per_driver": 4},
                )
                results = [("assign", a.status)]
                mine = (
                    [(d, p) for d, ps in a.body.get("assignments", {}).items() for p in ps]
                    if a.status == 200
                    else []
                )
                if mine:
                    d, p = rng.choice(mine)
                    u = call(
                        http,
                        "POST",
                        "/update",
                        {"driver_id": d, "package_id": p, "status": "accepted"},
                    )
                    results.append(("update", u.status))
                r = call(http, "GET", f"/drivers/{drivers[0]}/assignments?day={day}")
                results.append(("read", r.status))
                with lock:
                    failures.extend(x.body for x in (a, r) if x.status != 200)
                    for kind, status in results:
                        outcomes[f"{kind}:{status}"] += 1
                        outcomes["ok" if status == 200 else "failed"] += 1

    app = create_app(service.settings, service=service)
    started = time.monotonic()
    with serve_in_thread(app) as url, ThreadPoolExecutor(SESSIONS) as pool:
        list(pool.map(client_session, range(SESSIONS)))
    throttle.remove()
    total = outcomes["ok"] + outcomes["failed"]
    rate = outcomes["ok"] / total
    figure(
        "30% throttled",
        f"{outcomes['ok']}/{total} API calls succeeded ({rate:.2%}); "
        f"{throttle.throttled}/{throttle.sent} DynamoDB requests throttled; "
        f"{throttle.gave_up} calls gave up ({throttle.quota_reached} on botocore's retry quota); "
        f"{time.monotonic() - started:.1f}s; {dict(outcomes)}; failures: {failures[:5]}",
    )
    assert throttle.throttled / throttle.sent > 0.25
    assert not [k for k in outcomes if k.endswith(":500")]
    assert rate >= 0.99


def test_half_of_every_batch_unprocessed_loses_none_of_10000_items(emulated):
    """Every BatchWriteItem writes only half its items and returns the rest as UnprocessedItems."""
    service = make_service(emulated.emulator.endpoint, batch_write_workers=32)
    hook = HalfUnprocessed(service.store.dynamodb)
    day = "2031-01-08"
    records = [
        {
            "driver_id": f"unprocessed_{i % 97}",
            "package_id": str(uuid.uuid4()),
            "status": "assigned",
            "day": day,
            "version": 1,
            "weight_kg": round(random.uniform(0.5, 20), 2),
            "seq": i,
        }
        for i in range(10_000)
    ]
    started = time.monotonic()
    service.store.assignments.write_items(records)
    elapsed = time.monotonic() - started
    hook.remove()
    figure(
        "half unprocessed",
        f"10,000 items in {elapsed:.1f}s, {hook.calls} BatchWriteItem calls, "
        f"{hook.withheld} items returned unprocessed",
    )
    checker = make_service(emulated.emulator.endpoint)
    found = checker.store.assignments.get_items(
        [(r["driver_id"], r["package_id"]) for r in records]
    )
    by_key = {(i["driver_id"], i["package_id"]): i for i in found}
    assert len(by_key) == 10_000, f"{10_000 - len(by_key)} items lost"
    assert all(by_key[(r["driver_id"], r["package_id"])] == r for r in records)
    assert hook.withheld == 400 * (12 + 6 + 3 + 1), (
        "every batch came back half unprocessed, round after round"
    )


def test_stale_batch_write_landing_after_a_takeover_does_not_undo_a_status_update(stack):
    """A slow network: the writer's BatchWriteItem attempts each reach DynamoDB 3 s late, after the
    writer gave up (read timeout 2 s x 3 attempts: 503). Its lease released, another process rolls
    the run forward at once and a driver accepts a package; then the writer's last attempt lands.
    BatchWriteItem puts unconditionally, so it must not be able to turn the package back to
    ``assigned``."""
    day = "2031-01-09"
    import_day(stack.direct, day, drivers=1, packages_per_driver=10, seed=109, max_rules=0)
    stack.proxy.delay(3000, when=lambda r: r.target == "BatchWriteItem")
    forwarded_before = stack.proxy.count("BatchWriteItem:forwarded")
    with httpx.Client() as http:
        first = call(
            http,
            "POST",
            f"{stack.api.url}/assign",
            {"day": day, "driver_ids": ["driver_1"], "max_per_driver": 10},
        )
    assert first.status == 503, first.body
    taker = make_service(stack.emulator.endpoint)
    taken = taker.assign(day, ["driver_1"], 10).response()
    package = taken["assignments"]["driver_1"][0]
    accepted = taker.update_status("driver_1", package, Status.ACCEPTED)
    assert accepted["status"] == "accepted"
    stack.proxy.wait_for(
        "BatchWriteItem:forwarded", forwarded_before + 3, timeout=15
    )  # the 3 late attempts
    item = stack.ddb.get_item(
        TableName="DeliveryAssignments",
        ConsistentRead=True,
        Key={"driver_id": {"S": "driver_1"}, "package_id": {"S": package}},
    )["Item"]
    figure("stale batch after takeover", f"status after the late write: {item['status']['S']}")
    assert item["status"]["S"] == "accepted", (
        "a late BatchWriteItem undid the driver's status update"
    )


def test_readiness_checks_probe_each_dependency(emulated):
    """``Service.readiness_checks`` (what ``/ready`` calls): one probe per dependency, quiet when
    it answers; a table that is not there is reported as storage that is not provisioned."""
    from depot.storage.store import StorageUnavailable

    checks = emulated.direct.readiness_checks()
    assert set(checks) == {"dynamodb", "s3"}
    for check in checks.values():
        assert check() is None
    missing = make_service(emulated.emulator.endpoint, assignments_table="NoSuchTable")
    with pytest.raises(StorageUnavailable, match="not provisioned"):
        missing.readiness_checks()["dynamodb"]()
