"""The API's request and response models (SPEC section 2), the error responses every route
documents, and the answers documented only (the board's big reads)."""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any, Literal

from fastapi.responses import Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import to_json

from depot.core.models import (
    LATITUDE,
    LONGITUDE,
    Day,
    Driver,
    Identifier,
    Package,
    Status,
    StrictFloat,
)

MAX_DRIVER_IDS = 10_000
MAX_PER_DRIVER = 1_000


class Forbid(BaseModel):
    model_config = ConfigDict(extra="forbid")


def unique(name: str) -> AfterValidator:
    """A list of ids given once each: a 422 naming the repeated ones (a batch read of the
    store refuses a repeated key)."""

    def check(value: list[str]) -> list[str]:
        repeated = sorted(i for i, n in Counter(value).items() if n > 1)
        if repeated:
            raise ValueError(f"{name} must be unique; repeated: {', '.join(repeated[:10])}")
        return value

    return AfterValidator(check)


class AssignRequest(Forbid):
    driver_ids: Annotated[list[Identifier], Field(max_length=MAX_DRIVER_IDS), unique("driver_ids")]
    max_per_driver: Annotated[int, Field(strict=True, ge=0, le=MAX_PER_DRIVER)]
    day: Day | None = None


class AssignResponse(BaseModel):
    assignments: dict[str, list[str]]
    unassigned_packages: list[str]
    unassigned_drivers: list[str]
    explanations: dict[str, dict[str, Any]] | None = None


class UpdateRequest(Forbid):
    driver_id: Identifier
    package_id: Identifier
    status: Status
    reason: FailureReason | None = None
    note: Annotated[str, Field(max_length=500)] | None = None
    proof: Proof | None = None


class Proof(Forbid):
    recipient_name: Annotated[str, Field(max_length=200)] | None = None
    note: Annotated[str, Field(max_length=500)] | None = None
    # strict and storable, as a package's destination: a number, never a string, and no
    # nonzero magnitude under DynamoDB's 1E-130 (stored, it could not be read back)
    lat: Annotated[StrictFloat, Field(**LATITUDE)] | None = None
    lon: Annotated[StrictFloat, Field(**LONGITUDE)] | None = None


FailureReason = Literal[
    "recipient_absent",
    "address_not_found",
    "refused",
    "damaged",
    "access_denied",
    "other",
    "unspecified",
]


PackageIds = Annotated[
    list[Identifier], Field(min_length=1, max_length=10_000), unique("package_ids")
]
Reason = Annotated[str, Field(min_length=1, max_length=200)]


class UnassignRequest(Forbid):
    day: Day | None = None
    package_ids: PackageIds
    reason: Reason | None = None


class ReassignRequest(Forbid):
    day: Day | None = None
    package_id: Identifier
    driver_id: Identifier
    max_per_driver: Annotated[int, Field(strict=True, ge=0, le=MAX_PER_DRIVER)] | None = None


class AvailabilityRequest(Forbid):
    day: Day | None = None
    status: Literal["off_duty", "on_duty"]
    reassign: Annotated[bool, Field(strict=True)] = True


class CancelRequest(Forbid):
    day: Day | None = None
    package_ids: PackageIds
    reason: Reason


class CarryOverRequest(Forbid):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_day: Day = Field(alias="from")


class AssignmentItem(BaseModel):
    model_config = ConfigDict(extra="allow")
    driver_id: str
    package_id: str
    status: Status
    day: str | None = None
    version: int | None = None


class ManifestRequest(Forbid):
    """The day's lists; see SPEC section 1 for drivers, rules and packages.

    For the documentation only: the route parses the body itself (faster for 100,000 packages,
    and its errors name the driver, rule or package at fault).
    """

    day: Day | None = None
    drivers: list[Driver] = Field(default_factory=list)
    packages: list[Package] = Field(default_factory=list)


MANIFEST_SCHEMA = ManifestRequest.model_json_schema(ref_template="#/components/schemas/{model}")
MANIFEST_DEFS = MANIFEST_SCHEMA.pop("$defs", {})


class ManifestImported(BaseModel):
    day: str
    version: int
    drivers_added: int
    drivers_updated: int
    packages_added: int
    packages_updated: int
    packages_unchanged: int
    drivers_total: int
    packages_total: int
    released: list[str] | None = Field(
        None, description='what ``"release": true`` unassigned (drivers\' new rules reject them)'
    )


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    error: ErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 413, 422, 429, 503)
}


# --- answers --------------------------------------------------------------------------------------
#
# The fields are those the service returns, declared in the order it returns them (a response
# model serialises its fields in declaration order, so the bytes on the wire stay the same), all
# required where the service always sends the key (a default would add a null it never sent).
# Open-ended records (a package as imported, an assignment item, a history event) stay dicts.

Availability = Literal["on_duty", "off_duty"]


class DayCounts(BaseModel):
    drivers: int
    packages: int
    assigned: int
    unassigned: int
    accepted: int
    in_progress: int
    delivered: int
    failed: int
    cancelled: int
    off_duty: int


class DaySummary(BaseModel):
    day: str
    version: int
    cap: int | None = Field(description="the day's max_per_driver (none before the first run)")
    counts: DayCounts


class EligibleDriver(BaseModel):
    driver_id: str
    load: int
    cap: int | None
    availability: Availability


class EligibleDrivers(BaseModel):
    package_id: str
    day: str
    drivers: list[EligibleDriver]


class WhoAmI(BaseModel):
    subject: str
    role: Literal["dispatcher", "driver"]
    driver_id: str | None
    open_mode: bool


class UnassignAnswer(BaseModel):
    day: str
    version: int
    unassigned: list[str]
    already_unassigned: list[str]


class ReassignAnswer(BaseModel):
    day: str
    version: int
    package_id: str
    driver_id: str
    from_driver_id: str | None
    # ``assigned``; a package already with that driver keeps its status (``accepted``, say)
    status: Literal["assigned", "accepted", "pending_write"]


class AvailabilityAnswer(BaseModel):
    """The day's plan for its named drivers (as ``POST /assign`` answers) and what changed."""

    assignments: dict[str, list[str]]
    unassigned_packages: list[str]
    unassigned_drivers: list[str]
    day: str
    version: int
    driver_id: str
    availability: Availability
    released: list[str]
    kept_in_progress: list[str]


class CancelAnswer(BaseModel):
    day: str
    version: int
    cancelled: list[str]
    already_cancelled: list[str]


class CarryOverAnswer(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    day: str
    from_day: str = Field(alias="from")
    carried_over: list[str]
    exhausted: list[str] = Field(description="packages that had their last attempt")
    version: int | None


class PackageAnswer(BaseModel):
    day: str
    package: dict[str, Any] = Field(description="the package as imported (SPEC section 1)")
    driver_id: str | None
    status: str | None = Field(description="the item's status, cancelled, carried_over or none")
    assignment: dict[str, Any] | None = Field(description="the assignment item, if it is held")
    history: list[dict[str, Any]] = Field(description="the package's events across days")


class Health(BaseModel):
    status: Literal["ok"]


class ReadyChecks(BaseModel):
    dynamodb: Literal["ok", "unavailable"]
    s3: Literal["ok", "unavailable"]


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: ReadyChecks


# --- answers documented only ----------------------------------------------------------------------
#
# The board's big reads are not validated per request (a page of 200 drivers with their rules, a
# map of 2,000 points, a driver's 1,000 packages): the route answers with ``json_answer`` and
# these models only describe the answer in the OpenAPI document.


class RuleOut(BaseModel):
    rule_id: str
    code: str
    params: dict[str, Any]


class DriverStatuses(BaseModel):
    assigned: int
    accepted: int
    in_progress: int
    delivered: int
    failed_to_deliver: int


class DriverRow(BaseModel):
    driver_id: str
    rules: list[RuleOut]
    load: int
    cap: int | None
    availability: Availability
    named: bool = Field(description="named by the day's runs")
    statuses: DriverStatuses = Field(description="held packages by status")


class DriversPage(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[DriverRow]


class UnassignedRow(BaseModel):
    model_config = ConfigDict(extra="allow")  # rejected_by, with no_eligible_driver
    package_id: str
    reason: str
    message: str
    region: str
    weight_kg: float
    delivery_hour: int


class UnassignedPage(BaseModel):
    total: int
    offset: int
    limit: int
    reasons: dict[str, int] = Field(description="how many packages of the pool have each reason")
    items: list[UnassignedRow]


class MapPoint(BaseModel):
    lat: float
    lon: float
    count: int
    key: str = Field(description="the driver, or where the package stands in the plan")


class DayMap(BaseModel):
    total: int
    points: list[MapPoint]


class DriverAssignment(BaseModel):
    model_config = ConfigDict(extra="allow")  # the package's fields, reason, note, proof
    package_id: str
    status: str = Field(description="the item's status (pending_write until it is written)")
    updated_at: float | None


class DriverAssignments(BaseModel):
    driver_id: str
    day: str
    availability: Availability
    assignments: list[DriverAssignment]


def json_answer(content: Any) -> Response:
    """``content`` as JSON, encoded as FastAPI encodes a ``dict[str, Any]`` answer (pydantic's
    Rust encoder: the same bytes) but without validating it against a model first."""
    return Response(to_json(content), media_type="application/json")
