"""A process killed in the middle of an /assign leaves a state that the next call completes,
with 0 lost and 0 duplicated assignments (issue 4, item 2).

* 100 in-process trials: the writer "dies" at a random DynamoDB call of its /assign (before the
  call is sent, or after it was applied and before its answer is read: the day read, the commit,
  any batch of items, the lease renewals, the finish); sometimes the process that rolls the run
  forward dies too. Then a fresh Service (a new process id) calls assign once the lease ran out.
* Real SIGKILL trials: an API process writing a 4,000-package run is killed with SIGKILL while the
  proxy holds its k-th batch (so exactly k batches reached DynamoDB); another API process's
  /assign completes the run.

After each trial the table (scanned straight from the emulator) equals the committed runs (read
from S3), nothing is pending, no package is held twice, no driver is over the cap, and the
completing call's answer is exactly the table.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import httpx
import pytest

import depot.service.rollforward as service_module
from depot.service import Busy, Service
from depot.storage.store import Store, make_clients
from depot.storage.tables import table_definitions
from support.faults import (
    Crash,
    FaultProxy,
    ManagedApi,
    ManagedEmulator,
    ProcessCrashed,
    call,
    committed_state,
    count_day_items,
    every,
    import_day,
    make_service,
    make_settings,
    table_assignments,
)
from support.figures import figure

TRIALS = int(os.environ.get("DEPOT_CRASH_TRIALS", "100"))
WORKERS = int(os.environ.get("DEPOT_CRASH_WORKERS", "4"))
DRIVERS, PER_DRIVER = 6, 20  # a run of up to 120 items: 5 batches of 25


@pytest.fixture(scope="module")
def emulator():
    with ManagedEmulator() as emu:
        yield emu


def check_completed(ddb, s3, day: str, table: str, cap: int, answer: dict) -> int:
    """The table equals the committed runs, nothing pending, nothing twice; returns the item
    count."""
    committed = committed_state(ddb, s3, day)
    items = table_assignments(ddb, day, table=table)
    pairs = [(d, p) for d, p, _ in items]
    assert not committed.pending, f"{day}: runs still pending: {committed.pending}"
    assert len(committed.pairs) == len(set(committed.pairs)), (
        f"{day}: a package is in two committed runs"
    )
    assert (
        Counter(p for _, p in committed.pairs).most_common(1)[0][1] == 1
        if committed.pairs
        else True
    )
    lost = set(committed.pairs) - set(pairs)
    extra = set(pairs) - set(committed.pairs)
    assert not lost and not extra, f"{day}: {len(lost)} lost, {len(extra)} not committed"
    held = Counter(p for _, p in pairs)
    assert not [p for p, n in held.items() if n > 1], f"{day}: a package is held by two drivers"
    assert not pairs or max(Counter(d for d, _ in pairs).values()) <= cap
    assert all(s == "assigned" for _, _, s in items)
    answered = {(d, p) for d, ps in answer["assignments"].items() for p in ps}
    assert answered == set(pairs), f"{day}: the completing call answered other than the table"
    return len(pairs)


def test_hundred_in_process_crashes_mid_assign(emulator, monkeypatch):
    monkeypatch.setattr(service_module, "POLL_S", 0.05)
    ignore_crashes = threading.excepthook

    def excepthook(args):  # a dead process's renewer thread dies with it: not an error
        if not issubclass(args.exc_type, ProcessCrashed):
            ignore_crashes(args)

    monkeypatch.setattr(threading, "excepthook", excepthook)
    ddb, s3 = emulator.client("dynamodb"), emulator.client("s3")
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    local = threading.local()

    def clients():
        if not hasattr(
            local, "clients"
        ):  # per worker thread: one "crashing" and one "recovering" pair
            base = make_settings(emulator.endpoint)
            local.clients = [make_clients(base) for _ in range(3)]
        return local.clients

    def trial(i: int) -> None:
        rng = random.Random(i)
        day = (date(2033, 1, 1) + timedelta(days=i)).isoformat()
        table = f"CrashTrial{i}"
        definition = dict(table_definitions(make_settings(emulator.endpoint))[0], TableName=table)
        ddb.create_table(**definition)
        settings = make_settings(
            emulator.endpoint, assignments_table=table, lease_s=0.3, lease_renew_s=0.1
        )
        (d1, s1), (d2, s2), (d3, s3_) = clients()
        writer = Service(settings, Store(settings, d1, s1))
        import_day(
            writer,
            day,
            DRIVERS,
            PER_DRIVER,
            seed=3000 + i,
            max_rules=rng.choice([0, 1]),
            with_destination=False,
        )
        drivers = [f"driver_{n}" for n in range(1, DRIVERS + 1)]
        crash = Crash([d1, s1], at=rng.randint(1, 8), applied=rng.random() < 0.5)
        try:
            writer.assign(day, drivers, PER_DRIVER)
            what = ["completed"]
        except (
            Busy
        ) as exc:  # it stopped itself: its lease may have run out (like a crash, for the next call)
            what = [f"stopped itself: {exc}"]
        except ProcessCrashed as exc:
            what = [
                (
                    f"crashed {'after' if crash.applied else 'before'} call {crash.at}: "
                    f"{str(exc).split('(')[-1]}"
                )
            ]
        finally:
            crash.remove()
        # the next processes: the first of them sometimes dies as well, while rolling the run
        # forward
        answer = None
        for attempt, (d, s) in enumerate([(d2, s2), (d3, s3_)] + [(d3, s3_)] * 8):
            service = Service(settings, Store(settings, d, s))
            second = (
                Crash([d, s], at=rng.randint(1, 8), applied=rng.random() < 0.5)
                if attempt == 0 and rng.random() < 0.3
                else None
            )
            try:
                answer = service.assign(day, drivers, PER_DRIVER).response()
                break
            except ProcessCrashed as exc:
                what.append(f"the next process crashed too ({attempt}: {exc})")
            except Busy:  # a writer still holds the run, or stopped itself: call again
                continue
            finally:
                if second:
                    second.remove()
        assert answer is not None, what
        items = check_completed(ddb, s3, day, table, PER_DRIVER, answer)
        with lock:
            outcomes[what[0].split(" call")[0]] += 1
            outcomes["crashed at " + what[0].split(": ")[-1]] += 1 if what[0] != "completed" else 0
            outcomes["recovery crashed too"] += len(what) - 1
            outcomes["items"] += items

    started = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(trial, range(TRIALS)))
    figure(
        "in-process crash trials",
        f"{TRIALS} trials in {time.monotonic() - started:.1f}s: "
        f"{dict(sorted((k, v) for k, v in outcomes.items() if v))}",
    )
    crashed = outcomes["crashed after"] + outcomes["crashed before"]
    assert crashed >= 80, "most trials really crashed"
    assert outcomes["crashed at BatchWriteItem)"] >= 20, "many crashes hit the middle of the write"


SIGKILL_CASES = [0, 37, 120]  # batches (of 160) that reached DynamoDB before the kill


@pytest.fixture(scope="module")
def real(emulator):
    proxy = FaultProxy(emulator.port)
    env = {"DEPOT_LEASE_S": "2", "DEPOT_LEASE_RENEW_S": "0.5"}
    survivor = ManagedApi(emulator.endpoint, env).wait_ready()
    try:
        yield proxy, env, survivor
    finally:
        survivor.kill()
        proxy.close()


@pytest.mark.parametrize("batches", SIGKILL_CASES)
def test_sigkill_mid_assign_next_call_completes(emulator, real, batches):
    proxy, env, survivor = real
    victim = ManagedApi(proxy.endpoint, env)
    day, cap = f"2033-12-{10 + SIGKILL_CASES.index(batches):02d}", 100
    ddb, s3 = emulator.client("dynamodb"), emulator.client("s3")
    import_day(
        make_service(emulator.endpoint),
        day,
        drivers=40,
        packages_per_driver=100,
        seed=4000 + batches,
        max_rules=0,
    )
    body = {"day": day, "driver_ids": [f"driver_{n}" for n in range(1, 41)], "max_per_driver": cap}
    victim.wait_ready()
    held_before = proxy.count("BatchWriteItem:blackhole")
    proxy.blackhole(
        when=every("BatchWriteItem", after=batches)
    )  # hold the (k+1)-th batch and all after
    result = {}

    def doomed():
        with httpx.Client() as http:
            result["answer"] = call(http, "POST", f"{victim.url}/assign", body, timeout=60)

    thread = threading.Thread(target=doomed)
    thread.start()
    try:
        proxy.wait_for("BatchWriteItem:blackhole", held_before + 1, timeout=60)
        victim.kill()  # SIGKILL, while its writers wait on the held batches
    finally:
        thread.join(60)
        proxy.passthrough()
    assert result["answer"].status == 0, f"the killed process answered: {result['answer']}"
    assert committed_state(ddb, s3, day).pending, "the run is committed and pending"
    assert count_day_items(ddb, day) == 25 * batches, "exactly the forwarded batches were written"

    started = time.monotonic()
    with httpx.Client() as http:
        answer = call(http, "POST", f"{survivor.url}/assign", body, timeout=60)
    figure(
        f"SIGKILL after {batches} batches",
        f"next /assign on another process: {answer.status} in "
        f"{time.monotonic() - started:.2f}s (lease 2 s)",
    )
    assert answer.status == 200, answer.body
    assert check_completed(ddb, s3, day, "DeliveryAssignments", cap, answer.body) == 4000
