"""``POST /manifests`` and ``GET /manifests/{day}`` (SPEC section 2)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from depot.core.models import Day
from depot.http import auth
from depot.http.deps import ServiceDep, actor_of
from depot.http.schemas import ERRORS, MANIFEST_SCHEMA, ManifestImported

router = APIRouter(tags=["manifests"])


@router.post(
    "/manifests",
    status_code=201,
    response_model=ManifestImported,
    response_model_exclude_none=True,  # ``released`` only when something was
    responses=ERRORS,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": MANIFEST_SCHEMA}},
        }
    },
)
async def import_manifest(request: Request, service: ServiceDep, principal: auth.DispatcherDep):
    """Store a day's lists durably; importing again adds and updates (SPEC 2)."""
    raw = await request.body()
    return await run_in_threadpool(service.import_body, raw, actor_of(principal))


@router.get("/manifests/{day}", responses=ERRORS)
def get_manifest(day: Day, service: ServiceDep, _: auth.DispatcherDep) -> Response:
    """The day's drivers and packages (encoded once per version of the day, with orjson:
    FastAPI's encoder held the GIL for seconds on a 100,000-package day)."""
    return Response(service.reads.manifest_bytes(day.isoformat()), media_type="application/json")
