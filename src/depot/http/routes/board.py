"""The board's reads of a day: summary, drivers, the unassigned pool, the map, eligible drivers."""

from __future__ import annotations

from datetime import date as Date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from depot.core.models import Identifier
from depot.http import auth
from depot.http.deps import Limit, Offset, ServiceDep, day_of
from depot.http.schemas import ERRORS

router = APIRouter(tags=["board"])


@router.get("/days/{day}/summary", responses=ERRORS)
def summary(day: Date, service: ServiceDep, _: auth.DispatcherDep) -> dict[str, Any]:
    """The day's counts (the board's tiles)."""
    return service.reads.summary(day.isoformat())


@router.get("/days/{day}/drivers", responses=ERRORS)
def drivers_page(
    day: Date,
    service: ServiceDep,
    _: auth.DispatcherDep,
    offset: Offset = 0,
    limit: Limit = 50,
    q: Annotated[str | None, Query(max_length=128)] = None,
) -> dict[str, Any]:
    """A page of the day's drivers: rules, load against the cap, statuses, availability."""
    return service.reads.drivers(day.isoformat(), offset, limit, q)


@router.get("/days/{day}/unassigned", responses=ERRORS)
def unassigned_page(
    day: Date,
    service: ServiceDep,
    _: auth.DispatcherDep,
    offset: Offset = 0,
    limit: Limit = 50,
    reason: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    """A page of the day's pool with the reason each package is unassigned."""
    return service.reads.unassigned(day.isoformat(), offset, limit, reason)


@router.get("/days/{day}/map", responses=ERRORS)
def day_map(
    day: Date,
    service: ServiceDep,
    _: auth.DispatcherDep,
    color: Literal["driver", "status"] = "status",
) -> dict[str, Any]:
    """Destinations aggregated on a grid."""
    return service.reads.map(day.isoformat(), color)


@router.get("/packages/{package_id}/eligible-drivers", responses=ERRORS)
def eligible_drivers(
    package_id: Identifier, service: ServiceDep, _: auth.DispatcherDep, day: Date | None = None
) -> dict[str, Any]:
    """On-duty drivers below the cap whose rules accept the package."""
    return service.reads.eligible_drivers(package_id, day_of(day, service))
