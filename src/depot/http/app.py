"""The HTTP API (SPEC section 2). Thin: validate, call the service, shape the answer.

Every error is JSON ``{"error": {"code", "message", "details"}}``; an outage of DynamoDB or S3
is a 503 with ``Retry-After``; anything unexpected is a 500 without a traceback.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import date as Date
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware

from depot.config import Settings, get_settings
from depot.core.models import (
    Driver,
    Identifier,
    InvalidManifest,
    Package,
    Status,
)
from depot.http import auth, pages
from depot.http.errors import UNAVAILABLE_MESSAGE, error_response
from depot.http.idempotency import IdempotencyMiddleware, IdempotencyRecords
from depot.http.observability import RequestContextMiddleware
from depot.observability import REGISTRY, configure_logging, oplog_metrics, record_aws_calls
from depot.service import DepotError, Service
from depot.service.events import encode
from depot.storage.oplog import EventLog
from depot.storage.store import StorageUnavailable, Store, make_clients, make_log_client

log = logging.getLogger("depot.http.app")

MAX_DRIVER_IDS = 10_000
MAX_PER_DRIVER = 1_000


# --- request and response models ------------------------------------------------------------------


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


# --- wiring ---------------------------------------------------------------------------------------


def actor_of(principal: auth.Principal) -> str:
    """Who a change is recorded as done by: ``open``, a driver's id, or the token's subject."""
    if principal.open_mode:
        return "open"
    if principal.role == "driver" and principal.driver_id:
        return principal.driver_id
    return principal.subject or principal.role


def day_of(day: Date | None, service: Service) -> str:
    return day.isoformat() if day else service.today()


HEARTBEAT_S = 15.0


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


def get_service(request: Request) -> Service:
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]


def create_app(settings: Settings | None = None, service: Service | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        dynamodb, s3 = make_clients(settings)
        for client in (dynamodb, s3):
            record_aws_calls(client)
        events = EventLog(
            make_log_client(settings),
            settings.log_bucket,
            settings.env,
            settings.log_flush_interval_s,
            settings.log_flush_max_events,
            settings.log_buffer_max_events,
            on_metrics=oplog_metrics,
        )
        events.start()
        app.state.events = events
        app.state.service = service or Service(settings, Store(settings, dynamodb, s3), events)
        app.state.idempotency = IdempotencyRecords(
            dynamodb, s3, settings.idempotency_table, settings.state_bucket
        )
        try:
            yield
        finally:
            app.state.service.feed.close()
            await run_in_threadpool(events.close)

    # The whole middleware stack, outermost first: request ids, metrics and the access log see
    # every answer, refusals included; then security refuses what it must before any body is
    # read (auth, rate limit, body limit: docs/security.md); idempotency, which reads bodies
    # and replays answers, comes last, right before the routes.
    middleware = [
        Middleware(RequestContextMiddleware),
        *auth.middleware(settings),
        Middleware(IdempotencyMiddleware),
    ]
    app = FastAPI(
        title="Depot",
        version="0.1.0",
        description="Rule-aware, optimal delivery assignment for a logistics centre.",
        lifespan=lifespan,
        middleware=middleware,
    )
    app.state.settings = settings
    configure_logging()
    _install_error_handlers(app)
    auth.install_handler(app)
    _install_routes(app)
    pages.install(app)  # the screens: /, /board, /driver, /static (SPEC 5)
    _document_manifest_models(app)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DepotError)
    async def depot_error(_: Request, exc: DepotError):
        headers = {"Retry-After": "2"} if exc.status_code == 503 else None
        return error_response(exc.status_code, exc.code, exc.message, exc.details, headers)

    @app.exception_handler(InvalidManifest)
    async def invalid_manifest(_: Request, exc: InvalidManifest):
        return error_response(422, "invalid_manifest", str(exc), exc.problems)

    @app.exception_handler(StorageUnavailable)
    async def unavailable(_: Request, exc: StorageUnavailable):
        log.warning("storage unavailable: %s", exc)
        return error_response(
            503,
            "storage_unavailable",
            f"{UNAVAILABLE_MESSAGE} ({exc})",
            headers={"Retry-After": str(exc.retry_after_s)},
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError):
        problems = [
            {
                "field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"),
                "message": e.get("msg"),
            }
            for e in exc.errors()
        ]
        first = problems[0] if problems else {"field": "", "message": "invalid request"}
        message = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
        return error_response(422, "invalid_request", message, problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException):
        codes = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
        return error_response(
            exc.status_code,
            codes.get(exc.status_code, "http_error"),
            str(exc.detail),
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception):
        log.exception("unexpected error")
        return error_response(
            500, "internal_error", "an unexpected error occurred; it has been logged"
        )


def _document_manifest_models(app: FastAPI) -> None:
    """Put the Driver, Rule and Package schemas where the manifest's request body refers to them."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schema.setdefault("components", {}).setdefault("schemas", {}).update(MANIFEST_DEFS)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way


def _install_routes(app: FastAPI) -> None:
    @app.post(
        "/assign",
        response_model=AssignResponse,
        response_model_exclude_none=True,
        responses=ERRORS,
        tags=["assignment"],
    )
    def assign(
        body: AssignRequest,
        service: ServiceDep,
        principal: auth.DispatcherDep,
        explain: Annotated[bool, Query(description="say why each unassigned package is")] = False,
        dry_run: Annotated[
            bool, Query(description="answer what it would do; write nothing")
        ] = False,
    ):
        """Assign the day's free packages to the requested drivers, optimally (SPEC 2, 4)."""
        day = body.day.isoformat() if body.day else service.today()
        return service.assign(
            day, body.driver_ids, body.max_per_driver, explain, dry_run, actor_of(principal)
        ).response()

    @app.post("/update", response_model=AssignmentItem, responses=ERRORS, tags=["assignment"])
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

    @app.post("/unassign", tags=["plan"], responses=ERRORS)
    def unassign(
        body: UnassignRequest, service: ServiceDep, principal: auth.DispatcherDep
    ) -> dict[str, Any]:
        """Put assigned or accepted packages back in the day's pool (SPEC 4); all or nothing."""
        return service.unassign(
            day_of(body.day, service), body.package_ids, body.reason, actor_of(principal)
        )

    @app.post("/reassign", tags=["plan"], responses=ERRORS)
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

    @app.post("/drivers/{driver_id}/availability", tags=["plan"], responses=ERRORS)
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

    @app.post("/cancel", tags=["plan"], responses=ERRORS)
    def cancel(
        body: CancelRequest, service: ServiceDep, principal: auth.DispatcherDep
    ) -> dict[str, Any]:
        """Take packages out of the day for good (SPEC 4)."""
        return service.cancel(
            day_of(body.day, service), body.package_ids, body.reason, actor_of(principal)
        )

    @app.post("/days/{day}/carry-over", tags=["plan"], responses=ERRORS)
    def carry_over(
        day: Date, body: CarryOverRequest, service: ServiceDep, principal: auth.DispatcherDep
    ) -> dict[str, Any]:
        """Bring a day's failed and unassigned packages into ``day`` as their next attempt \
(SPEC 4)."""
        return service.carry_over(day.isoformat(), body.from_day.isoformat(), actor_of(principal))

    @app.get("/days/{day}/summary", tags=["board"], responses=ERRORS)
    def summary(day: Date, service: ServiceDep, _: auth.DispatcherDep) -> dict[str, Any]:
        """The day's counts (the board's tiles)."""
        return service.reads.summary(day.isoformat())

    @app.get("/days/{day}/drivers", tags=["board"], responses=ERRORS)
    def drivers_page(
        day: Date,
        service: ServiceDep,
        _: auth.DispatcherDep,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        q: Annotated[str | None, Query(max_length=128)] = None,
    ) -> dict[str, Any]:
        """A page of the day's drivers: rules, load against the cap, statuses, availability."""
        return service.reads.drivers(day.isoformat(), offset, limit, q)

    @app.get("/days/{day}/unassigned", tags=["board"], responses=ERRORS)
    def unassigned_page(
        day: Date,
        service: ServiceDep,
        _: auth.DispatcherDep,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        reason: Annotated[str | None, Query(max_length=64)] = None,
    ) -> dict[str, Any]:
        """A page of the day's pool with the reason each package is unassigned."""
        return service.reads.unassigned(day.isoformat(), offset, limit, reason)

    @app.get("/days/{day}/map", tags=["board"], responses=ERRORS)
    def day_map(
        day: Date,
        service: ServiceDep,
        _: auth.DispatcherDep,
        color: Literal["driver", "status"] = "status",
    ) -> dict[str, Any]:
        """Destinations aggregated on a grid."""
        return service.reads.map(day.isoformat(), color)

    @app.get("/packages/{package_id}/eligible-drivers", tags=["board"], responses=ERRORS)
    def eligible_drivers(
        package_id: Identifier, service: ServiceDep, _: auth.DispatcherDep, day: Date | None = None
    ) -> dict[str, Any]:
        """On-duty drivers below the cap whose rules accept the package."""
        return service.reads.eligible_drivers(package_id, day_of(day, service))

    @app.get("/whoami", tags=["reads"])
    def whoami(principal: auth.PrincipalDep) -> dict[str, Any]:
        """Who the token says the caller is."""
        return {
            "subject": actor_of(principal),
            "role": principal.role,
            "driver_id": principal.driver_id,
            "open_mode": principal.open_mode,
        }

    @app.get("/events", tags=["reads"], responses=ERRORS)
    async def events(
        request: Request,
        service: ServiceDep,
        _: auth.DispatcherDep,
        day: Date | None = None,
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

    @app.post(
        "/manifests",
        status_code=201,
        response_model=ManifestImported,
        tags=["manifests"],
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

    @app.get("/manifests/{day}", tags=["manifests"], responses=ERRORS)
    def get_manifest(day: Date, service: ServiceDep, _: auth.DispatcherDep) -> Response:
        """The day's drivers and packages (encoded once per version of the day, with orjson:
        FastAPI's encoder held the GIL for seconds on a 100,000-package day)."""
        return Response(
            service.reads.manifest_bytes(day.isoformat()), media_type="application/json"
        )

    @app.get("/drivers/{driver_id}/assignments", tags=["reads"], responses=ERRORS)
    def driver_assignments(
        driver_id: Identifier,
        service: ServiceDep,
        principal: auth.PrincipalDep,
        day: Date | None = None,
    ) -> dict[str, Any]:
        """The driver's packages for the day, with their statuses."""
        auth.check_driver_read(
            principal, service, driver_id, day.isoformat() if day else service.today()
        )
        return service.driver_assignments(driver_id, day.isoformat() if day else service.today())

    @app.get("/packages/{package_id}", tags=["reads"], responses=ERRORS)
    def get_package(
        package_id: Identifier,
        service: ServiceDep,
        principal: auth.PrincipalDep,
        day: Date | None = None,
    ) -> dict[str, Any]:
        """The package, and its driver and status if it is assigned."""
        day_ = day.isoformat() if day else None
        visible_to = None if principal.is_dispatcher else (principal.driver_id or "")
        return service.package(package_id, day_, visible_to)

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        """Prometheus metrics of this process."""
        return PlainTextResponse(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @app.get("/health", tags=["operations"])
    def health() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/ready", tags=["operations"], responses={503: {"model": dict}})
    def ready(service: ServiceDep):
        """DynamoDB and S3 answer, each reported on its own (checked at once: each may take the
        whole retry budget when unreachable, and /ready must answer within the 10 s deadline \
too)."""

        import logging

        def probe(name: str, check) -> str:
            try:
                check()
                return "ok"
            except Exception:
                # The detail (endpoints, bucket names, AWS messages) is for the operator's log,
                # not for whoever may call /ready without a token.
                logging.getLogger("depot.http.app").warning(
                    "/ready: %s is unavailable", name, exc_info=True
                )
                return "unavailable"

        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = {
                "dynamodb": pool.submit(probe, "dynamodb", service.store.check_dynamodb),
                "s3": pool.submit(probe, "s3", service.store.check_s3),
            }
            checks = {name: future.result() for name, future in futures.items()}
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse(
            status_code=200 if ok else 503,
            content={"status": "ready" if ok else "not_ready", "checks": checks},
        )
