"""A process that dies in the middle of a plan change (SPEC section 4) leaves a state the next
call completes or repairs (issue 12): trials in-process, the writer "dying" at a random
DynamoDB call of an unassign, a reassign, an off duty or a cancel (before the call is sent, or
after it was applied and before its answer is read). Then a fresh Service, once the lease ran
out, runs the day's /assign again, and:

* the table (scanned straight from the emulator) is exactly the day's plan: no package held
  twice, no removed item back, nothing pending;
* a claim left by a change that never committed blocks nothing: every held item still moves
  to ``accepted`` (or already moved on).
"""

from __future__ import annotations

import os
import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import pytest

from depot.core.models import Status
from depot.errors import Busy, DepotError
from depot.service import Service
from depot.storage.store import Store, make_clients
from depot.storage.tables import table_definitions
from support.faults import (
    Crash,
    ManagedEmulator,
    ProcessCrashed,
    committed_state,
    import_day,
    make_settings,
    table_assignments,
)
from support.figures import figure

TRIALS = int(os.environ.get("DEPOT_PLAN_CRASH_TRIALS", "48"))
DRIVERS, PER_DRIVER = 4, 10
OPERATIONS = ("unassign", "reassign", "off_duty", "cancel")


@pytest.fixture(scope="module")
def emulator():
    with ManagedEmulator() as emu:
        yield emu


def plan_change(service: Service, day: str, op: str, rng: random.Random) -> None:
    state = service.require_day(day)
    held = sorted(state.plan.holder)
    if op == "unassign":
        service.unassign(day, rng.sample(held, 3), "trial")
    elif op == "reassign":
        p = rng.choice(held)
        to = rng.choice([d for d in state.manifest.drivers if d != state.plan.holder[p]])
        service.reassign(day, p, to, max_per_driver=PER_DRIVER + 5)
    elif op == "off_duty":
        service.set_availability(day, rng.choice(sorted(state.plan.held_by)), "off_duty")
    else:
        service.cancel(day, rng.sample(held, 2), "trial")


def settled_assign(service: Service, day: str, drivers: list[str], after: str) -> dict:
    """``/assign`` until it answers: Busy (its lease ran out while writing, say, when four trials
    share the machine) means the next call finishes the run, which is what is asked again."""
    for _ in range(20):
        try:
            return service.assign(day, drivers, PER_DRIVER).response()
        except Busy:
            continue
    raise AssertionError(f"{day}: the day never settled after {after}")


def test_crashes_in_the_middle_of_plan_changes(emulator):
    ddb, s3 = emulator.client("dynamodb"), emulator.client("s3")
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    drivers = [f"driver_{n}" for n in range(1, DRIVERS + 1)]

    def trial(i: int) -> None:
        rng = random.Random(i)
        day = (date(2036, 1, 1) + timedelta(days=i)).isoformat()
        table = f"PlanCrash{i}"
        ddb.create_table(
            **dict(table_definitions(make_settings(emulator.endpoint))[0], TableName=table)
        )
        settings = make_settings(
            emulator.endpoint,
            assignments_table=table,
            lease_s=0.3,
            lease_renew_s=0.1,
            claim_ttl_s=0.6,
        )
        d1, s1 = make_clients(settings)
        writer = Service(settings, Store(settings, d1, s1))
        import_day(
            writer, day, DRIVERS, PER_DRIVER, seed=5000 + i, max_rules=0, with_destination=False
        )
        settled_assign(writer, day, drivers, "the first run")
        op = OPERATIONS[i % len(OPERATIONS)]
        crash = Crash([d1, s1], at=rng.randint(1, 12), applied=rng.random() < 0.5)
        try:
            plan_change(writer, day, op, rng)
            what = "completed"
        except ProcessCrashed:
            what = "crashed"
        except DepotError as exc:  # it stopped itself (Busy) or found the day moved: a real answer
            what = type(exc).__name__
        finally:
            crash.remove()

        # the next process: for it every claim is old (claim_ttl_s=0: as if the TTL had passed,
        # without waiting for it), which is what it would be once the dead writer's TTL ran out.
        # Its own lease has room (a 0.3 s lease ran out while it wrote, 20 times in a row, when
        # the whole suite loaded the machine): the dead writer's short lease is what is tested.
        later = make_settings(
            emulator.endpoint,
            assignments_table=table,
            lease_s=2.0,
            lease_renew_s=0.5,
            claim_ttl_s=0.0,
        )
        d2, s2 = make_clients(later)
        fresh = Service(later, Store(later, d2, s2))
        answer = settled_assign(fresh, day, drivers, f"{op} {what}")
        state = fresh.require_day(day)
        items = table_assignments(ddb, day, table=table)
        pairs = {(p, d) for d, p, _ in items}
        assert len(pairs) == len({p for p, _ in pairs}), f"{day}: a package is held twice"
        assert pairs == set(state.plan.holder.items()), f"{day} after {op} {what}: table != plan"
        assert not committed_state(ddb, s3, day).pending, f"{day}: a change is still pending"
        assert {(p, d) for d, ps in answer["assignments"].items() for p in ps} == pairs
        for d, p, status in items:  # no claim of a change that never committed blocks an update
            if status == "assigned":
                moved = fresh.update_status(d, p, Status.ACCEPTED)
                assert moved["status"] == "accepted", (day, d, p)
        with lock:
            outcomes[f"{op} {what}"] += 1

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(trial, range(TRIALS)))
    figure("plan-change crash trials", dict(sorted(outcomes.items())))
    assert sum(outcomes.values()) == TRIALS
