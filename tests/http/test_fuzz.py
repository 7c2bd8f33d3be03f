"""Fuzzing the real API process (open dev mode, as `make run` serves it) against a real emulator.

* schemathesis, per operation of the app's own OpenAPI schema, a bounded number of examples
  (positive and negative): no 5xx, and every response conforms to the declared schema.
* schemathesis stateful: links from POST /assign's answer to POST /update (added to a copy of
  the schema, whose /assign is narrowed to drivers of the day so that the links lead somewhere).
* hypothesis: a RuleBasedStateMachine drives POST /update's lifecycle on a day of its own; after
  every step the DeliveryAssignments table equals the model, and final states never change.

Budget: FUZZ_EXAMPLES (default 25) per operation; the module runs in well under two minutes.
"""

from __future__ import annotations

import copy
import os
import uuid

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from depot.core.models import NEXT_STATUSES, Status
from depot.ops.generator import generate_day
from support.apiproc import provision, start_api
from support.processes import start_emulator

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
FUZZ_DRIVERS = [f"driver_{i}" for i in range(1, 6)]
LIFECYCLE_DAY = "2042-03-04"
LIFECYCLE_DRIVERS = [f"lc_{i}" for i in range(1, 4)]
QUIET = [
    HealthCheck.too_slow,
    HealthCheck.filter_too_much,
    HealthCheck.data_too_large,
    HealthCheck.function_scoped_fixture,
]


@pytest.fixture(scope="module")
def fuzz_env():
    """An emulator and an open API of the module's own, with today's day and a lifecycle day."""
    with start_emulator() as emu:
        provision(emu.endpoint)
        with (
            start_api(emu.endpoint, DEPOT_ENV="dev") as api,
            httpx.Client(base_url=api.url, timeout=60) as c,
        ):
            today = generate_day(
                seed=11, drivers=len(FUZZ_DRIVERS), packages_per_driver=6, max_rules=1
            )
            assert c.post("/manifests", json=today).status_code == 201
            lifecycle = generate_day(
                seed=12, drivers=len(LIFECYCLE_DRIVERS), packages_per_driver=8, max_rules=0
            )
            for driver, new_id in zip(lifecycle["drivers"], LIFECYCLE_DRIVERS, strict=True):
                driver["driver_id"] = new_id
            assert c.post("/manifests", json={"day": LIFECYCLE_DAY, **lifecycle}).status_code == 201
            assigned = c.post(
                "/assign",
                json={"day": LIFECYCLE_DAY, "driver_ids": LIFECYCLE_DRIVERS, "max_per_driver": 8},
            )
            assert assigned.status_code == 200, assigned.text
            yield emu, api, assigned.json()["assignments"]


OPERATIONS = [
    "POST /assign",
    "POST /update",
    "POST /manifests",
    "GET /manifests/{day}",
    "GET /drivers/{driver_id}/assignments",
    "GET /packages/{package_id}",
    "GET /metrics",
    "GET /health",
    "GET /ready",
    "POST /unassign",
    "POST /reassign",
    "POST /cancel",
    "POST /drivers/{driver_id}/availability",
    "POST /days/{day}/carry-over",
    "GET /days/{day}/summary",
    "GET /days/{day}/drivers",
    "GET /days/{day}/unassigned",
    "GET /days/{day}/map",
    "GET /packages/{package_id}/eligible-drivers",
    "GET /whoami",
]
# an endless stream: tests/service/test_day_goes_on.py reads and resumes it
STREAMS = {"GET /events"}


@pytest.fixture(scope="module")
def api_schema(fuzz_env):
    _, api, _ = fuzz_env
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    schema.config.update(base_url=api.url)
    return schema


# schemathesis.pytest.from_fixture fails on pytest 9 (it reads the removed Function._nodeid), so
# each operation is driven by hypothesis directly from schemathesis's strategies: same cases,
# same checks, one pytest item per operation and generation mode.
NO_INPUT = {"GET /metrics", "GET /health", "GET /ready", "GET /whoami"}  # nothing to make negative


@pytest.mark.parametrize(
    "label,mode",
    [
        (label, mode)
        for label in OPERATIONS
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
        if not (label in NO_INPUT and mode is GenerationMode.NEGATIVE)
    ],
)
def test_every_operation_survives_fuzzing(api_schema, label, mode):
    operations = {op.label: op for op in (r.ok() for r in api_schema.get_all_operations())}
    assert set(operations) == set(OPERATIONS) | STREAMS, "a new operation: add it to OPERATIONS"
    operation = operations[label]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=QUIET,
        phases=[Phase.explicit, Phase.generate],
    )
    def fuzz(case):
        case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])

    fuzz()


def _linked_schema(raw: dict, base_url: str):
    """The app's schema with /assign narrowed to the day's drivers and links /assign -> /update."""
    raw = copy.deepcopy(raw)
    assign = raw["components"]["schemas"]["AssignRequest"]
    assign["properties"]["driver_ids"] = {
        "type": "array",
        "items": {"type": "string", "enum": FUZZ_DRIVERS},
        "minItems": 1,
        "maxItems": len(FUZZ_DRIVERS),
        "uniqueItems": True,
    }
    assign["properties"].pop("day")  # today, the day the fixture imported
    update_id = raw["paths"]["/update"]["post"]["operationId"]
    raw["paths"]["/assign"]["post"]["responses"]["200"]["links"] = {
        f"Update{i}_{driver}": {
            "operationId": update_id,
            "requestBody": {
                "driver_id": driver,
                "package_id": f"$response.body#/assignments/{driver}/{i}",
            },
        }
        for driver in FUZZ_DRIVERS
        for i in range(2)
    }
    linked = schemathesis.openapi.from_dict(raw)
    linked.config.update(base_url=base_url)
    return linked


def test_stateful_assign_then_update(fuzz_env):
    _, api, _ = fuzz_env
    raw = httpx.get(f"{api.url}/openapi.json").json()
    machine = _linked_schema(raw, api.url).as_state_machine()

    class Checked(machine):
        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(
                response,
                checks=[not_a_server_error, response_schema_conformance],
                transport_kwargs=kwargs or None,
            )

    Checked.run(
        settings=settings(
            max_examples=max(5, EXAMPLES // 2),
            stateful_step_count=6,
            deadline=None,
            suppress_health_check=QUIET,
            phases=[Phase.generate],
        )
    )


# --- the /update lifecycle as a state machine -----------------------------------------------------

ALL_STATUSES = [s.value for s in Status]
FINAL = {s.value for s, nexts in NEXT_STATUSES.items() if not nexts}


def table_statuses(dynamodb, drivers) -> dict[tuple[str, str], str]:
    out = {}
    for driver in drivers:
        kwargs = {
            "TableName": "DeliveryAssignments",
            "KeyConditionExpression": "driver_id = :d",
            "ExpressionAttributeValues": {":d": {"S": driver}},
            "ConsistentRead": True,
        }
        while True:
            page = dynamodb.query(**kwargs)
            for item in page["Items"]:
                out[(item["driver_id"]["S"], item["package_id"]["S"])] = item["status"]["S"]
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return out


def test_update_lifecycle_state_machine(fuzz_env):
    emu, api, assignments = fuzz_env
    dynamodb = emu.client("dynamodb")
    keys = [(d, p) for d, packages in sorted(assignments.items()) for p in packages]
    assert len(keys) >= 12
    client = httpx.Client(base_url=api.url, timeout=30)
    ever_final: dict[tuple[str, str], str] = {}

    class Lifecycle(RuleBasedStateMachine):
        @initialize()
        def load(self):
            # The table persists across examples: the model starts from what it holds now.
            self.model = table_statuses(dynamodb, LIFECYCLE_DRIVERS)
            assert set(self.model) == set(keys)

        @rule(key=st.sampled_from(keys), status=st.sampled_from(ALL_STATUSES))
        def update(self, key, status):
            driver_id, package_id = key
            current = self.model[key]
            response = client.post(
                "/update", json={"driver_id": driver_id, "package_id": package_id, "status": status}
            )
            if status == current or status in [s.value for s in NEXT_STATUSES[Status(current)]]:
                assert response.status_code == 200, response.text
                assert response.json()["status"] == status
                self.model[key] = status
            else:
                assert response.status_code == 409, response.text
                details = response.json()["error"]["details"]
                assert details["current_status"] == current
                assert details["allowed_next"] == [s.value for s in NEXT_STATUSES[Status(current)]]
                assert current in response.json()["error"]["message"]

        @rule(key=st.sampled_from(keys), status=st.sampled_from(ALL_STATUSES))
        def update_someone_elses_or_missing(self, key, status):
            driver_id, package_id = key
            other = next(d for d in LIFECYCLE_DRIVERS if d != driver_id)
            for body in (
                {"driver_id": other, "package_id": package_id, "status": status},
                {"driver_id": driver_id, "package_id": str(uuid.uuid4()), "status": status},
            ):
                response = client.post("/update", json=body)
                assert response.status_code == 404, response.text

        @rule(key=st.sampled_from(keys))
        def read_back(self, key):
            response = client.get(f"/drivers/{key[0]}/assignments", params={"day": LIFECYCLE_DAY})
            assert response.status_code == 200
            statuses = {a["package_id"]: a["status"] for a in response.json()["assignments"]}
            assert statuses[key[1]] == self.model[key]

        @invariant()
        def table_equals_model(self):
            if hasattr(self, "model"):
                assert table_statuses(dynamodb, LIFECYCLE_DRIVERS) == self.model

        @invariant()
        def final_states_never_change(self):
            # Across steps and examples: once final in the table, always the same final status.
            if hasattr(self, "model"):
                for k, v in ever_final.items():
                    assert self.model[k] == v, f"{k} left its final state {v}"
                ever_final.update({k: v for k, v in self.model.items() if v in FINAL})

    try:
        run_state_machine_as_test(
            Lifecycle,
            settings=settings(
                max_examples=EXAMPLES,
                stateful_step_count=20,
                deadline=None,
                suppress_health_check=QUIET,
            ),
        )
    finally:
        client.close()
    final = table_statuses(dynamodb, LIFECYCLE_DRIVERS)
    assert any(v in FINAL for v in final.values())


def test_after_the_fuzz_the_briefs_request_and_todays_assign_still_answer(fuzz_env):
    """Whatever the fuzz did to today's day (imports, plan changes, drivers off duty), the brief's
    request and an /assign of every driver of the day still answer 200 (issue 10)."""
    _, api, _ = fuzz_env
    with httpx.Client(base_url=api.url, timeout=60) as c:
        brief = c.post(
            "/assign", json={"driver_ids": ["driver_1", "driver_2"], "max_per_driver": 2}
        )
        assert brief.status_code == 200, brief.text
        assert set(brief.json()) == {"assignments", "unassigned_packages", "unassigned_drivers"}
        everyone = c.post("/assign", json={"driver_ids": FUZZ_DRIVERS, "max_per_driver": 6})
        assert everyone.status_code == 200, everyone.text
