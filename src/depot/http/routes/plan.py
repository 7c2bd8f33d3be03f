"""The day's plan changes (SPEC section 4): unassign, reassign, availability, cancel, carry-over."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from depot.core.models import Day, Identifier
from depot.http import auth
from depot.http.deps import ServiceDep, actor_of, day_of
from depot.http.schemas import (
    ERRORS,
    AvailabilityAnswer,
    AvailabilityRequest,
    CancelAnswer,
    CancelRequest,
    CarryOverAnswer,
    CarryOverRequest,
    ReassignAnswer,
    ReassignRequest,
    UnassignAnswer,
    UnassignRequest,
)

router = APIRouter(tags=["plan"])


@router.post("/unassign", response_model=UnassignAnswer, responses=ERRORS)
def unassign(
    body: UnassignRequest, service: ServiceDep, principal: auth.DispatcherDep
) -> dict[str, Any]:
    """Put assigned or accepted packages back in the day's pool (SPEC 4); all or nothing."""
    return service.unassign(
        day_of(body.day, service), body.package_ids, body.reason, actor_of(principal)
    )


@router.post("/reassign", response_model=ReassignAnswer, responses=ERRORS)
def reassign(
    body: ReassignRequest, service: ServiceDep, principal: auth.DispatcherDep
) -> dict[str, Any]:
    """Move a package to a driver whose rules accept it, within the cap (SPEC 4)."""
    return service.reassign(
        day_of(body.day, service),
        body.package_id,
        body.driver_id,
        body.max_per_driver,
        actor_of(principal),
    )


@router.post(
    "/drivers/{driver_id}/availability", response_model=AvailabilityAnswer, responses=ERRORS
)
def availability(
    driver_id: Identifier,
    body: AvailabilityRequest,
    service: ServiceDep,
    principal: auth.DispatcherDep,
) -> dict[str, Any]:
    """Off duty releases what the driver has not started and re-assigns it exactly (SPEC 4)."""
    return service.set_availability(
        day_of(body.day, service), driver_id, body.status, body.reassign, actor_of(principal)
    )


@router.post("/cancel", response_model=CancelAnswer, responses=ERRORS)
def cancel(
    body: CancelRequest, service: ServiceDep, principal: auth.DispatcherDep
) -> dict[str, Any]:
    """Take packages out of the day for good (SPEC 4)."""
    return service.cancel(
        day_of(body.day, service), body.package_ids, body.reason, actor_of(principal)
    )


@router.post("/days/{day}/carry-over", response_model=CarryOverAnswer, responses=ERRORS)
def carry_over(
    day: Day, body: CarryOverRequest, service: ServiceDep, principal: auth.DispatcherDep
) -> dict[str, Any]:
    """Bring a day's failed and unassigned packages into ``day`` as their next attempt \
(SPEC 4)."""
    return service.carry_over(day.isoformat(), body.from_day.isoformat(), actor_of(principal))
