"""Plan changes, runs and status updates at once on two API processes (SPEC section 4), then the
table read straight from the emulator: no package held twice, no driver above the day's cap or
holding a package its rules reject, an off-duty driver holding only what it had started, every
status one the lifecycle allows, every answer a status SPEC names, and the API's reads equal to
the table."""

from __future__ import annotations

import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from depot.ops.generator import generate_day
from support.faults import ManagedEmulator, api_processes, call, table_assignments
from support.figures import figure
from support.oracle import driver_accepts as accepts

DAY = "2034-05-05"
DRIVERS, PER_DRIVER, CAP = 20, 8, 6
EXPECTED = {
    "assign": {200, 503},
    "unassign": {200, 409},
    "reassign": {200, 409, 422},
    "cancel": {200, 409},
    "update": {200, 404, 409},
    "off_duty": {200},
    "on_duty": {200},  # off duty recomputes, never 409
}


@pytest.fixture(scope="module")
def two():
    with ManagedEmulator() as emulator, api_processes(emulator.endpoint, 2) as apis:
        yield emulator, [a.url for a in apis]


def test_a_storm_of_plan_changes_and_updates_on_two_processes(two):
    emulator, urls = two
    payload = generate_day(
        seed=44, drivers=DRIVERS, packages_per_driver=PER_DRIVER, min_rules=0, max_rules=2
    )
    driver_ids = [d["driver_id"] for d in payload["drivers"]]
    package_ids = [p["package_id"] for p in payload["packages"]]
    with httpx.Client() as http:
        assert call(http, "POST", f"{urls[0]}/manifests", {"day": DAY, **payload}).status == 201
        assert (
            call(
                http,
                "POST",
                f"{urls[1]}/assign",
                {"day": DAY, "driver_ids": driver_ids, "max_per_driver": CAP},
            ).status
            == 200
        )
    answers: Counter[str] = Counter()
    wrong: list[str] = []
    lock = threading.Lock()

    def session(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client() as http:
            for _ in range(25):
                url = rng.choice(urls)
                kind = rng.choice(
                    [
                        "assign",
                        "unassign",
                        "reassign",
                        "update",
                        "update",
                        "update",
                        "cancel",
                        "off_duty",
                        "on_duty",
                    ]
                )
                p, d = rng.choice(package_ids), rng.choice(driver_ids)
                if kind == "assign":
                    a = call(
                        http,
                        "POST",
                        f"{url}/assign",
                        {"day": DAY, "driver_ids": driver_ids, "max_per_driver": CAP},
                    )
                elif kind == "unassign":
                    a = call(http, "POST", f"{url}/unassign", {"day": DAY, "package_ids": [p]})
                elif kind == "reassign":
                    a = call(
                        http,
                        "POST",
                        f"{url}/reassign",
                        {"day": DAY, "package_id": p, "driver_id": d},
                    )
                elif kind == "cancel":
                    a = call(
                        http,
                        "POST",
                        f"{url}/cancel",
                        {"day": DAY, "package_ids": [p], "reason": "storm"},
                    )
                elif kind in ("off_duty", "on_duty"):
                    a = call(
                        http,
                        "POST",
                        f"{url}/drivers/{d}/availability",
                        {"day": DAY, "status": kind},
                    )
                else:
                    held = call(http, "GET", f"{url}/drivers/{d}/assignments?day={DAY}").body.get(
                        "assignments", []
                    )
                    if not held:
                        continue
                    p = rng.choice(held)["package_id"]
                    status = rng.choice(
                        ["accepted", "in_progress", "delivered", "failed_to_deliver"]
                    )
                    a = call(
                        http,
                        "POST",
                        f"{url}/update",
                        {"driver_id": d, "package_id": p, "status": status},
                    )
                with lock:
                    answers[f"{kind}:{a.status}"] += 1
                    if a.status not in EXPECTED[kind]:
                        wrong.append(f"{kind} {a.status}: {a.body}")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(session, range(8)))
    figure("plan storm on two processes", dict(sorted(answers.items())))
    assert not wrong, wrong[:5]

    items = table_assignments(emulator.client("dynamodb"), DAY)
    holders = Counter(p for _, p, _ in items)
    assert not [p for p, n in holders.items() if n > 1], "a package is held twice"
    loads = Counter(d for d, _, _ in items)
    rules = {d["driver_id"]: d for d in payload["drivers"]}
    packages = {p["package_id"]: p for p in payload["packages"]}
    with httpx.Client() as http:
        summary = call(http, "GET", f"{urls[0]}/days/{DAY}/summary").body
        for d in driver_ids:
            read = call(http, "GET", f"{urls[1]}/drivers/{d}/assignments?day={DAY}").body
            mine = {(p, s) for dd, p, s in items if dd == d}
            assert {(a["package_id"], a["status"]) for a in read["assignments"]} == mine, d
            if read["availability"] == "off_duty":
                assert all(s not in ("assigned", "accepted") for _, s in mine), d
    assert max(loads.values()) <= CAP
    for d, p, _ in items:
        assert accepts(rules[d], packages[p]), (d, p)
    assert summary["counts"]["assigned"] == len(items)
