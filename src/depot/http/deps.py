"""The dependencies the routes share: the service, who acts, which day."""

from __future__ import annotations

from datetime import date as Date
from typing import Annotated

from fastapi import Depends, Request

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
