"""Issue 10, points 4 and 8, in-process against the real emulator:

* a process that takes over a large pending run renews its lease from the moment it takes it
  over, so a slow read of the run (delayed BatchGetItem) does not let a second process take over
  the same run; the writer stops itself once its lease may have run out;
* a run committed by a call that then meets an outage is in the operational log, with its actor.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from depot.errors import Busy
from depot.storage.store import StorageUnavailable
from support.faults import (
    Crash,
    Hook,
    ManagedEmulator,
    ProcessCrashed,
    Throttle,
    committed_state,
    import_day,
    make_service,
)

DRIVERS = [f"driver_{n}" for n in range(1, 21)]


@pytest.fixture(scope="module")
def emulator():
    with ManagedEmulator() as emu:
        yield emu


class SlowBatchGets(Hook):
    """Every BatchGetItem waits ``delay_s`` before it is sent (a slow network, not a sync)."""

    def __init__(self, client, delay_s: float):
        self.delay_s = delay_s
        super().__init__(client, "before-send.dynamodb", self._before_send)

    def _before_send(self, request, **kwargs):
        target = request.headers.get("X-Amz-Target", b"")
        target = target.decode() if isinstance(target, bytes) else target
        if target.endswith("BatchGetItem"):
            time.sleep(self.delay_s)


class DieAtTheFirstWrite(Crash):
    """The process dies before its first BatchWriteItem of assignments is sent (and nothing of
    it, its lease renewer included, runs after that)."""

    def __init__(self, clients):
        super().__init__(clients, at=0, applied=False)

    def _before_call(self, model, context, **kwargs):
        with self.lock:
            if self.dead:
                raise ProcessCrashed("the process is dead")
            body = kwargs.get("params", {}).get("body", b"")  # the serialised request
            body = body if isinstance(body, bytes) else str(body).encode()
            if model.name == "BatchWriteItem" and b'"DeliveryAssignments"' in body:
                self.dead = True
                raise ProcessCrashed("crashed before its first batch of assignments")


def count_takeovers(service) -> list[int]:
    """Wrap the store's lease writes: count the take-overs that succeeded."""
    taken = [0]
    original = service.store.days.set_lease

    def set_lease(day, key, lease, *, if_owner=None, if_expired_before=None):
        ok = original(day, key, lease, if_owner=if_owner, if_expired_before=if_expired_before)
        if ok and if_expired_before is not None:
            taken[0] += 1
        return ok

    service.store.days.set_lease = set_lease
    return taken


def test_a_slow_take_over_keeps_its_lease_and_nobody_else_takes_the_run(emulator):
    day = "2037-04-04"
    # The take-over's reads (3 s) outlast its lease (2 s) several renewals over. A renewal may
    # come up to 1.6 s late before the writer stops itself: a 0.5 s lease renewed every 0.1 s
    # once lapsed when the whole suite loaded the machine, and a second process took over.
    lease = {"lease_s": 2.0, "lease_renew_s": 0.2}
    writer = make_service(emulator.endpoint, **lease)
    import_day(writer, day, drivers=20, packages_per_driver=50, seed=77, max_rules=0)
    crash = DieAtTheFirstWrite([writer.store.dynamodb, writer.store.s3])
    try:
        with pytest.raises(ProcessCrashed):
            writer.assign(day, DRIVERS, 50)
    finally:
        crash.remove()
    assert committed_state(emulator.client("dynamodb"), emulator.client("s3"), day).pending

    first, second = (
        make_service(emulator.endpoint, **lease),
        make_service(emulator.endpoint, **lease),
    )
    slow = SlowBatchGets(first.store.dynamodb, delay_s=0.3)  # 10 reads of 100 keys: 3 s
    taken = [count_takeovers(first), count_takeovers(second)]
    answers: dict[str, Any] = {}

    def call(name, service):
        try:
            answers[name] = service.assign(day, DRIVERS, 50).response()
        except Busy as exc:
            answers[name] = exc

    try:
        a = threading.Thread(target=call, args=("first", first))
        a.start()
        while not taken[0][0] and a.is_alive():  # wait for the first take-over, not for time
            time.sleep(0.01)
        b = threading.Thread(target=call, args=("second", second))
        b.start()
        a.join(60)
        b.join(60)
    finally:
        slow.remove()
    assert taken[0][0] + taken[1][0] == 1, f"the run was taken over {taken}"
    assert not committed_state(emulator.client("dynamodb"), emulator.client("s3"), day).pending
    done = [v for v in answers.values() if isinstance(v, dict)]
    assert done and all(sum(len(p) for p in v["assignments"].values()) == 1000 for v in done)


class Captured:
    def __init__(self):
        self.events: list[tuple[str, dict[str, Any]]] = []

    def emit(self, event_type: str, **fields: Any) -> str:
        self.events.append((event_type, fields))
        return ""


def test_a_run_committed_before_an_outage_is_in_the_operational_log(emulator):
    day = "2037-05-05"
    service = make_service(emulator.endpoint, aws_max_attempts=2)
    log = Captured()
    service.events = log
    import_day(service, day, drivers=5, packages_per_driver=10, seed=78, max_rules=0)
    throttle = Throttle(service.store.dynamodb, rate=1.0, operations={"BatchWriteItem"})
    try:
        with pytest.raises(StorageUnavailable):
            service.assign(day, DRIVERS[:5], 10, actor="dispatcher:night-shift")
    finally:
        throttle.remove()
    runs = [fields for kind, fields in log.events if kind == "assignment_run"]
    assert (
        runs and runs[0]["actor"] == "dispatcher:night-shift" and runs[0]["packages_assigned"] == 50
    )
