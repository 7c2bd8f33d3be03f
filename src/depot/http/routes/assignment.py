"""``POST /assign`` and ``POST /update`` (SPEC section 2)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from depot.http import auth
from depot.http.deps import ServiceDep, actor_of
from depot.http.schemas import ERRORS, AssignmentItem, AssignRequest, AssignResponse, UpdateRequest

router = APIRouter(tags=["assignment"])


@router.post(
    "/assign",
    response_model=AssignResponse,
    response_model_exclude_none=True,
    responses=ERRORS,
)
def assign(
    body: AssignRequest,
    service: ServiceDep,
    principal: auth.DispatcherDep,
    explain: Annotated[bool, Query(description="say why each package is left unassigned")] = False,
    dry_run: Annotated[bool, Query(description="answer what it would do; write nothing")] = False,
):
    """Assign the day's free packages to the requested drivers, optimally (SPEC 2, 4)."""
    day = body.day.isoformat() if body.day else service.today()
    return service.assign(
        day, body.driver_ids, body.max_per_driver, explain, dry_run, actor_of(principal)
    ).response()


@router.post("/update", response_model=AssignmentItem, responses=ERRORS)
def update(body: UpdateRequest, service: ServiceDep, principal: auth.PrincipalDep):
    """Move a delivery through its lifecycle; 409 names the allowed next statuses."""
    auth.check_update(principal, body.driver_id, body.package_id)
    proof = body.proof.model_dump() if body.proof else None
    return service.update_status(
        body.driver_id,
        body.package_id,
        body.status,
        body.reason,
        body.note,
        proof,
        actor_of(principal),
    )
