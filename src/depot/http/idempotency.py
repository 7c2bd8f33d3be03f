"""``Idempotency-Key`` for every writing ``POST`` (``/assign``, ``/manifests``, ``/update`` and the
plan changes of SPEC section 4), as payment APIs do it.

The first request with a key records its fingerprint (method, path, query, body), runs, and
stores its response for 24 hours in the ``DepotIdempotency`` table (TTL ``expires_at``; bodies
too large for an item go to the state bucket). A replay with the same body gets that response
unchanged (``Idempotent-Replayed: true``) and writes nothing; the same key with another body is
422; a replay while the first is still running is 409. A first request that ends in a 5xx of any
kind (an answer or an unexpected exception) releases the key, so the client's retry runs for
real. Only a complete request claims a key: one whose client went away mid-body runs nothing.
Keys are scoped by route and principal (``Principal.actor``: ``open``, ``dispatcher:<sub>``,
``driver:<id>``), not by the token's bytes, so a refreshed token replays as the old one would.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from depot.http.errors import UNAVAILABLE_MESSAGE, send_json_error
from depot.storage.idempotency import IdempotencyRecords
from depot.storage.store import StorageUnavailable

HEADER = b"idempotency-key"
ROUTES = {
    ("POST", p) for p in ("/assign", "/manifests", "/update", "/unassign", "/reassign", "/cancel")
}
ROUTE_PATTERNS = (
    re.compile(r"^/drivers/[^/]+/availability$"),
    re.compile(r"^/days/[^/]+/carry-over$"),
)


def honours_key(method: str, path: str) -> bool:
    return (method, path) in ROUTES or (
        method == "POST" and any(p.match(path) for p in ROUTE_PATTERNS)
    )


MAX_KEY_LENGTH = 255


class IdempotencyMiddleware:
    """Pure ASGI: replays stored responses; records new ones. Needs ``app.state.idempotency``."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not honours_key(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        raw_key = dict(scope.get("headers", [])).get(HEADER)
        if raw_key is None:
            await self.app(scope, receive, send)
            return
        key = raw_key.decode("latin-1")
        if not 0 < len(key) <= MAX_KEY_LENGTH or not key.isprintable():
            await send_json_error(
                send,
                422,
                "invalid_idempotency_key",
                f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters",
            )
            return
        body, complete = await _read_body(receive)
        if not complete:  # the client went away mid-body: nobody to answer, nothing to claim
            scope.setdefault("state", {})["client_disconnected"] = True
            return
        records: IdempotencyRecords = scope["app"].state.idempotency
        scoped = _scoped_key(scope, key)
        fingerprint = hashlib.sha256(
            b"\n".join(
                [
                    scope["method"].encode(),
                    scope["path"].encode(),
                    scope.get("query_string", b""),
                    body,
                ]
            )
        ).hexdigest()
        from starlette.concurrency import run_in_threadpool

        try:
            begun = await run_in_threadpool(records.begin, scoped, fingerprint)
        except StorageUnavailable as exc:
            await send_json_error(
                send,
                503,
                "storage_unavailable",
                f"{UNAVAILABLE_MESSAGE} ({exc})",
                headers={"Retry-After": str(exc.retry_after_s)},
            )
            return
        if begun.outcome == "mismatch":
            await send_json_error(
                send,
                422,
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different request body",
            )
            return
        if begun.outcome == "in_progress":
            await send_json_error(
                send,
                409,
                "idempotency_in_progress",
                "a request with this Idempotency-Key is still being processed",
            )
            return
        if begun.outcome == "replay":
            headers = [
                (b"content-type", begun.content_type.encode()),
                (b"content-length", str(len(begun.body)).encode()),
                (b"idempotent-replayed", b"true"),
            ]
            await _send(send, begun.status, headers, begun.body)
            return
        try:
            status, headers, chunks = await _capture(self.app, scope, body, receive)
        except BaseException:
            await _release_quietly(records, scoped)  # a 500 of the server's own: the retry runs
            raise
        payload = b"".join(chunks)
        content_type = dict(headers).get(b"content-type", b"application/json").decode("latin-1")
        try:
            if status >= 500:
                await run_in_threadpool(records.release, scoped)
            else:
                await run_in_threadpool(records.complete, scoped, status, content_type, payload)
        except StorageUnavailable:
            pass  # the key stays in progress until its lock expires; the response itself stands
        await _send(send, status, headers, payload)


async def _release_quietly(records: IdempotencyRecords, scoped: str) -> None:
    from starlette.concurrency import run_in_threadpool

    try:
        await run_in_threadpool(records.release, scoped)
    except StorageUnavailable:
        pass  # the key stays in progress until its lock expires (LOCK_S)


def _scoped_key(scope: Scope, key: str) -> str:
    """Route, principal, key. The principal is the verified one the auth middleware put in the
    scope (its ``actor``: never the token's bytes); without one, ``anonymous``."""
    principal = scope.get("state", {}).get("principal")
    who = getattr(principal, "actor", None) or "anonymous"
    return f"{scope['path']}|{who}|{key}"


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    """The body, and whether it arrived whole (False: the client disconnected first)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks), False
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks), True


async def _capture(app: ASGIApp, scope: Scope, body: bytes, receive: Receive):
    sent = {"done": False}

    async def replay() -> Message:
        if not sent["done"]:
            sent["done"] = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    result: dict[str, Any] = {"status": 500, "headers": [], "chunks": []}

    async def capture(message: Message) -> None:
        if message["type"] == "http.response.start":
            result["status"] = message["status"]
            result["headers"] = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            result["chunks"].append(message.get("body", b""))

    await app(scope, replay, capture)
    return result["status"], result["headers"], result["chunks"]


async def _send(send: Send, status: int, headers: list, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
