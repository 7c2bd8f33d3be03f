"""Resource limits as pure ASGI middleware: request body caps and a per-token rate limit.

``BodyLimitMiddleware`` counts body bytes as they arrive (``Content-Length`` or chunked alike):
a declared length over the cap is refused before a byte is read; an undeclared (chunked) body is
refused as soon as the running count passes the cap, so at most cap + one chunk is ever held.
The refusal is a 413 in the API's JSON error shape, sent at once (clients that read while they
send, curl and httpx, see it early); then the rest of the body is read and thrown away, up to
``DRAIN_MAX_BYTES`` in ``DRAIN_MAX_S``, before the connection is closed. Closing with body bytes
still unread makes the kernel answer them with a reset, and clients that send the whole body
before reading (Python's urllib, which also asks for "Connection: close", and requests) then see
"connection reset" instead of the 413.

``RateLimitMiddleware`` is a token bucket per verified token (per client address otherwise):
``rate_limit_per_minute`` requests a minute with bursts of the same size; over it, 429 with
``Retry-After``. 0 (the default) turns it off. Buckets live in the process: with N workers a
token gets up to N times the limit (docs/security.md).
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time

from starlette.exceptions import HTTPException

from depot.http.auth import OPEN_PATHS
from depot.http.errors import send_json_error

MiB = 1024 * 1024
DRAIN_MAX_BYTES = 256 * MiB
"""Read and discarded after a 413 at most (from the first body byte); a longer body is cut off."""
DRAIN_MAX_S = 15.0


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when the count passes the cap; FastAPI re-raises HTTPException, so
    the app's handler answers 413 in the JSON error shape (and the middleware does if it
    escapes)."""

    def __init__(self, limit: int):
        super().__init__(413, f"the request body exceeds the limit of {limit:,} bytes")
        self.limit = limit


class BodyLimitMiddleware:
    def __init__(
        self, app, default_limit: int = MiB, limits: dict[tuple[str, str], int] | None = None
    ):
        self.app, self.default_limit, self.limits = app, default_limit, dict(limits or {})

    def limit_for(self, scope) -> int:
        path = scope.get("path", "").rstrip("/") or "/"
        return self.limits.get((scope.get("method", ""), path), self.default_limit)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit_for(scope)
        declared = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    return await send_json_error(
                        send, 400, "bad_request", "invalid Content-Length header"
                    )
        if declared is not None and declared > limit:
            drain = receive if declared <= DRAIN_MAX_BYTES else None
            return await _too_large(send, limit, drain)

        received, finished, tripped = 0, False, False

        async def limited_receive():
            nonlocal received, finished, tripped
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                finished = not message.get("more_body", False)
                if received > limit:
                    tripped = True
                    raise BodyTooLarge(limit)
            return message

        started = False

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            if (
                tripped
                and not finished
                and message["type"] == "http.response.body"
                and not message.get("more_body", False)
            ):
                # The app answered the 413 itself: drain before the response completes, as
                # _too_large does (a client that sent "Connection: close" is closed on at once).
                await send({**message, "more_body": True})
                await _drain(receive, DRAIN_MAX_BYTES - received)
                await send({"type": "http.response.body", "body": b""})
                return
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await _too_large(send, limit, None if finished else receive, received)


async def _too_large(send, limit: int, drain=None, received: int = 0) -> None:
    """413, then (``drain``: the request's receive) read and discard the rest of the body before
    the response completes and uvicorn closes the connection (``Connection: close``)."""
    body = json.dumps(
        {
            "error": {
                "code": "payload_too_large",
                "message": f"the request body exceeds the limit of {limit:,} bytes",
                "details": {"limit_bytes": limit},
            }
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    if drain is None:
        await send({"type": "http.response.body", "body": body})
        return
    # The whole answer goes out now; the response completes (and the socket closes) only after
    # the drain, since the server stops reading the request once its response is complete.
    await send({"type": "http.response.body", "body": body, "more_body": True})
    await _drain(drain, DRAIN_MAX_BYTES - received)
    await send({"type": "http.response.body", "body": b""})


async def _drain(receive, budget: int) -> None:
    try:
        async with asyncio.timeout(DRAIN_MAX_S):
            while budget > 0:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away
                budget -= len(message.get("body", b""))
                if not message.get("more_body", False):
                    return
    except TimeoutError:
        pass


class TokenBuckets:
    """Token buckets keyed by caller; thread-safe; bounded in memory (idle full buckets are
    dropped)."""

    def __init__(self, per_minute: int, max_keys: int = 100_000, clock=time.monotonic):
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.max_keys, self.clock = max_keys, clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 if the request may go; else the seconds until it may."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                if len(self._buckets) > self.max_keys:
                    self._evict(now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate

    def _evict(self, now: float) -> None:
        full = [
            k
            for k, (t, last) in self._buckets.items()
            if t + (now - last) * self.rate >= self.capacity
        ]
        for k in full:
            del self._buckets[k]
        while len(self._buckets) > self.max_keys:  # still too many: drop the oldest
            del self._buckets[next(iter(self._buckets))]


class RateLimitMiddleware:
    def __init__(self, app, per_minute: int = 0):
        self.app = app
        self.buckets = TokenBuckets(per_minute) if per_minute > 0 else None

    async def __call__(self, scope, receive, send):
        if self.buckets is None or scope["type"] != "http" or scope.get("path") in OPEN_PATHS:
            return await self.app(scope, receive, send)
        wait = self.buckets.take(_caller(scope))
        if wait > 0:
            retry_after = max(1, math.ceil(wait))
            return await send_json_error(
                send,
                429,
                "rate_limited",
                f"too many requests for this token; retry after {retry_after} s",
                {"retry_after_s": retry_after},
                headers={"Retry-After": str(retry_after)},
            )
        await self.app(scope, receive, send)


def _caller(scope) -> str:
    """The verified token (its subject and id, set by the auth middleware), else the client's
    address: an unverified token (open mode) is no identity, and keying on it would give every
    made-up token a fresh bucket."""
    key = scope.get("state", {}).get("rate_key")
    if key:
        return key
    client = scope.get("client") or ("?", 0)
    return f"ip:{client[0]}"
