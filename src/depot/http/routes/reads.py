"""The reads: who the caller is, the day's change feed, a driver's packages, a package.

A driver's packages (up to the cap, each with its whole record) are documented only and answered
with ``json_answer``; ``/whoami`` and a package are validated against their models.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse

from depot.core.models import Day, Identifier
from depot.http import auth
from depot.http.deps import ServiceDep, actor_of, day_of
from depot.http.schemas import ERRORS, DriverAssignments, PackageAnswer, WhoAmI, json_answer
from depot.service import Service
from depot.service.events import encode

HEARTBEAT_S = 15.0

router = APIRouter(tags=["reads"])


async def event_stream(request: Request, service: Service, day: str, after: int | None):
    """SSE frames: first what happened since ``after`` (Last-Event-ID), then live events, each
    poll's batch in one write."""
    loop = asyncio.get_running_loop()
    queue = service.feed.subscribe(day, loop)
    try:
        last = await run_in_threadpool(service.feed.last, day)
        sent = last if after is None else after
        if after is not None and last > after:
            missed = await run_in_threadpool(service.feed.since, day, after, last)
            if missed:
                yield b"".join(encode(event) for event in missed)
                sent = missed[-1]["seq"]
        yield b": connected\n\n"
        while not await request.is_disconnected():
            try:
                batch = await asyncio.wait_for(queue.get(), HEARTBEAT_S)
            except TimeoutError:
                yield b": heartbeat\n\n"
                continue
            fresh = [frame for seq, frame in batch if seq > sent]
            if fresh:
                sent = max(seq for seq, _ in batch)
                yield b"".join(fresh)
    finally:
        service.feed.unsubscribe(day, queue)


@router.get("/whoami", response_model=WhoAmI)
def whoami(principal: auth.PrincipalDep) -> dict[str, Any]:
    """Who the token says the caller is."""
    return {
        "subject": actor_of(principal),
        "role": principal.role,
        "driver_id": principal.driver_id,
        "open_mode": principal.open_mode,
    }


@router.get("/events", responses=ERRORS)
async def events(
    request: Request,
    service: ServiceDep,
    _: auth.DispatcherDep,
    day: Day | None = None,
    last_event_id: Annotated[str | None, Header()] = None,
):
    """The day's changes as server-sent events; resume with ``Last-Event-ID``."""
    day_ = day_of(day, service)
    after = int(last_event_id) if last_event_id and last_event_id.isdigit() else None
    return StreamingResponse(
        event_stream(request, service, day_, after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get(
    "/drivers/{driver_id}/assignments",
    response_model=None,
    responses={200: {"model": DriverAssignments}, **ERRORS},
)
def driver_assignments(
    driver_id: Identifier,
    service: ServiceDep,
    principal: auth.PrincipalDep,
    day: Day | None = None,
) -> Response:
    """The driver's packages for the day, with their statuses."""
    day_ = day_of(day, service)
    auth.check_driver_read(principal, service, driver_id, day_)
    return json_answer(service.driver_assignments(driver_id, day_))


@router.get("/packages/{package_id}", response_model=PackageAnswer, responses=ERRORS)
def get_package(
    package_id: Identifier,
    service: ServiceDep,
    principal: auth.PrincipalDep,
    day: Day | None = None,
) -> dict[str, Any]:
    """The package, and its driver and status if it is assigned."""
    day_ = day.isoformat() if day else None
    visible_to = None if principal.is_dispatcher else (principal.driver_id or "")
    return service.package(package_id, day_, visible_to)
