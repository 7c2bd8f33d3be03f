"""A write the store refuses for a reason no retry cures (a ValidationException, as DynamoDB
gives for a number it cannot hold) never leaves a day unusable: the caller gets a clear 422
naming the cause, what was written stays, the rest goes back to the pool, nothing stays
pending, and the next /assign of the day answers (issue 10, point 1c)."""

from __future__ import annotations

import json

import pytest
from botocore.awsrequest import AWSResponse

from depot.errors import WriteRefused
from support.faults import (
    Hook,
    ManagedEmulator,
    _Raw,
    committed_state,
    import_day,
    make_service,
    table_assignments,
)


def refusal(request) -> AWSResponse:
    body = json.dumps(
        {
            "__type": "com.amazon.coral.validate#ValidationException",
            "message": "Number underflow. Attempting to store a number with magnitude smaller "
            "than supported range (injected)",
        }
    ).encode()
    headers = {
        "x-amzn-RequestId": "injected",
        "Content-Type": "application/x-amz-json-1.0",
        "Content-Length": str(len(body)),
    }
    return AWSResponse(request.url, 400, headers, _Raw(body))


class RefuseBatches(Hook):
    """Refuse every BatchWriteItem of assignments after the first ``allowed``."""

    def __init__(self, client, allowed: int):
        self.allowed = allowed
        super().__init__(client, "before-send.dynamodb", self._before_send)

    def _before_send(self, request, **kwargs):
        target = request.headers.get("X-Amz-Target", b"")
        target = target.decode() if isinstance(target, bytes) else target
        body = request.body if isinstance(request.body, bytes) else str(request.body).encode()
        if not target.endswith("BatchWriteItem") or b"DeliveryAssignments" not in body:
            return None
        with self.lock:
            self.allowed -= 1
            return refusal(request) if self.allowed < 0 else None


@pytest.fixture(scope="module")
def emulator():
    with ManagedEmulator() as emu:
        yield emu


def test_a_refused_write_leaves_the_day_assignable_and_loses_nothing(emulator):
    day = "2035-03-03"
    service = make_service(emulator.endpoint, batch_write_workers=1)
    import_day(service, day, drivers=4, packages_per_driver=30, seed=11, max_rules=0)
    drivers = [f"driver_{i}" for i in range(1, 5)]
    hook = RefuseBatches(service.store.dynamodb, allowed=2)  # 50 items land, the rest is refused
    try:
        with pytest.raises(WriteRefused) as refused:
            service.assign(day, drivers, 30)
    finally:
        hook.remove()
    assert "Number underflow" in refused.value.message
    ddb = emulator.client("dynamodb")
    items = table_assignments(ddb, day)
    assert len(items) == 50
    assert not committed_state(ddb, emulator.client("s3"), day).pending
    state = service.require_day(day)
    assert set(state.plan.holder.items()) == {(p, d) for d, p, _ in items}  # the plan is the table
    again = service.assign(day, drivers, 30).response()  # the day goes on
    assert sum(len(v) for v in again["assignments"].values()) == 120
    assert len(table_assignments(ddb, day)) == 120
