"""The request context middleware: a request id on every answer and log line, the principal in
the log context, and each request's latency and status in the metrics."""

from __future__ import annotations

import time
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from depot.observability import (
    ACCESS_LOG,
    CLIENT_CLOSED_REQUEST,
    KNOWN_METHODS,
    REQUEST_ID_HEADER,
    REQUEST_LATENCY,
)


class RequestContextMiddleware:
    """Give every request an id (the caller's ``X-Request-ID`` if sane), bind it to the logs,
    echo it in the response, and time the request by route template and status."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = {"code": 500}
        logged = [False]

        def log_request() -> None:
            """Once per request, before its last byte leaves: a client that has its answer can
            already find the line (metrics and access log agree with what it saw)."""
            if logged[0]:
                return
            logged[0] = True
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            elapsed = time.perf_counter() - started
            if scope.get("state", {}).get("client_disconnected"):
                status["code"] = CLIENT_CLOSED_REQUEST
            method = scope["method"] if scope["method"] in KNOWN_METHODS else "other"
            REQUEST_LATENCY.labels(method, template, str(status["code"])).observe(elapsed)
            ACCESS_LOG.info(
                "request",
                method=method,
                route=template,
                path=scope["path"],
                status=status["code"],
                duration_ms=round(elapsed * 1000, 2),
            )

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (REQUEST_ID_HEADER.encode(), request_id.encode()),
                ]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                log_request()
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log_request()


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == REQUEST_ID_HEADER.encode():
            candidate = value.decode("latin-1")
            if 0 < len(candidate) <= 128 and all(c.isalnum() or c in "-_." for c in candidate):
                return candidate
    return uuid.uuid4().hex
