"""The API's request and response models (SPEC section 2) and the error responses every route
documents."""

from __future__ import annotations

from collections import Counter
from datetime import date as Date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from depot.core.models import Driver, Identifier, Package, Status

MAX_DRIVER_IDS = 10_000
MAX_PER_DRIVER = 1_000


class Forbid(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AssignRequest(Forbid):
    driver_ids: Annotated[list[Identifier], Field(max_length=MAX_DRIVER_IDS)]
    max_per_driver: Annotated[int, Field(strict=True, ge=0, le=MAX_PER_DRIVER)]
    day: Date | None = None

    @field_validator("driver_ids")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        repeated = sorted(d for d, n in Counter(value).items() if n > 1)
        if repeated:
            raise ValueError(f"driver_ids must be unique; repeated: {', '.join(repeated[:10])}")
        return value


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
    lat: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)] | None = None
    lon: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)] | None = None


FailureReason = Literal[
    "recipient_absent",
    "address_not_found",
    "refused",
    "damaged",
    "access_denied",
    "other",
    "unspecified",
]
PackageIds = Annotated[list[Identifier], Field(min_length=1, max_length=10_000)]
Reason = Annotated[str, Field(min_length=1, max_length=200)]


class UnassignRequest(Forbid):
    day: Date | None = None
    package_ids: PackageIds
    reason: Reason | None = None


class ReassignRequest(Forbid):
    day: Date | None = None
    package_id: Identifier
    driver_id: Identifier
    max_per_driver: Annotated[int, Field(strict=True, ge=0, le=MAX_PER_DRIVER)] | None = None


class AvailabilityRequest(Forbid):
    day: Date | None = None
    status: Literal["off_duty", "on_duty"]
    reassign: bool = True


class CancelRequest(Forbid):
    day: Date | None = None
    package_ids: PackageIds
    reason: Reason


class CarryOverRequest(Forbid):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_day: Date = Field(alias="from")


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

    day: Date | None = None
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


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorBody(BaseModel):
    error: ErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 413, 422, 429, 503)
}
