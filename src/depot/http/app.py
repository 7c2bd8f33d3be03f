"""The HTTP API (SPEC section 2). Thin: validate, call the service, shape the answer.

Every error is JSON ``{"error": {"code", "message", "details"}}``; an outage of DynamoDB or S3
is a 503 with ``Retry-After``; anything unexpected is a 500 without a traceback.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware

from depot.config import Settings, get_settings
from depot.core.models import InvalidManifest
from depot.http import auth, pages
from depot.http.errors import UNAVAILABLE_MESSAGE, error_response
from depot.http.idempotency import IdempotencyMiddleware, IdempotencyRecords
from depot.http.observability import RequestContextMiddleware
from depot.http.routes import assignment, board, manifests, operations, plan, reads
from depot.http.schemas import MANIFEST_DEFS
from depot.observability import configure_logging, oplog_metrics, record_aws_calls
from depot.service import DepotError, Service
from depot.storage.oplog import EventLog
from depot.storage.store import StorageUnavailable, Store, make_clients, make_log_client

log = logging.getLogger("depot.http.app")

ROUTERS = (
    assignment.router,
    plan.router,
    board.router,
    reads.router,
    manifests.router,
    operations.router,
)


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
    for router in ROUTERS:
        app.include_router(router)
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
