"""The dependencies the routes share: the service, who acts, which day, a page of the board."""

from __future__ import annotations

from datetime import date as Date
from typing import Annotated

from fastapi import Depends, Query, Request

from depot.http import auth
from depot.service import Service


def actor_of(principal: auth.Principal) -> str:
    """Who a change is recorded as done by: ``open``, a driver's id, or the token's subject."""
    if principal.open_mode:
        return "open"
    if principal.role == "driver" and principal.driver_id:
        return principal.driver_id
    return principal.subject or principal.role


def day_of(day: Date | None, service: Service) -> str:
    return day.isoformat() if day else service.today()


def get_service(request: Request) -> Service:
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]

# The board's paging, one definition for every paged read (``/days/{day}/drivers``,
# ``/days/{day}/unassigned``). Aliases rather than one ``Depends`` object: FastAPI solves a
# sub-dependency's parameters before the route's own, which would reorder the validation errors
# (and so change which one a 422's message names).
Offset = Annotated[int, Query(ge=0, description="how many items to skip")]
Limit = Annotated[int, Query(ge=1, le=200, description="how many items at most")]
