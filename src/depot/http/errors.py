"""The one error envelope of the API: ``{"error": {"code", "message", "details"}}``, as a
FastAPI response (routes, exception handlers) and as raw ASGI messages (middleware)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse

UNAVAILABLE_MESSAGE = "storage is unavailable, retry later"


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        status_code=status, content=error_body(code, message, details), headers=headers
    )


async def send_json_error(
    send,
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> None:
    """The envelope from a middleware that answers before the app (auth, limits, idempotency)."""
    body = orjson.dumps(error_body(code, message, details))
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
