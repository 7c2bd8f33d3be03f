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

import gzip
import hashlib
import re
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from depot.http.errors import UNAVAILABLE_MESSAGE, send_json_error
from depot.storage.store import StorageUnavailable, outage_guard

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


RETENTION_S = 24 * 3600
LOCK_S = 300
MAX_INLINE_BODY = 300_000
MAX_KEY_LENGTH = 255


@dataclass
class Begin:
    outcome: str  # "new" | "replay" | "in_progress" | "mismatch"
    status: int = 0
    content_type: str = "application/json"
    body: bytes = b""


class IdempotencyRecords:
    def __init__(self, dynamodb: Any, s3: Any, table: str, bucket: str, clock=time.time):
        self.dynamodb, self.s3, self.table, self.bucket = dynamodb, s3, table, bucket
        self.clock = clock

    def begin(self, key: str, fingerprint: str) -> Begin:
        now = self.clock()
        try:
            with outage_guard("recording the idempotency key"):
                self.dynamodb.put_item(
                    TableName=self.table,
                    Item={
                        "idempotency_key": {"S": key},
                        "fingerprint": {"S": fingerprint},
                        "state": {"S": "in_progress"},
                        "created_at": {"N": repr(now)},
                        "lock_until": {"N": repr(now + LOCK_S)},
                        "expires_at": {"N": str(int(now + RETENTION_S))},
                    },
                    ConditionExpression=(
                        "attribute_not_exists(idempotency_key) OR expires_at < :now"
                    ),
                    ExpressionAttributeValues={":now": {"N": str(int(now))}},
                )
            return Begin("new")
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        return self._existing(key, fingerprint, now)

    def _existing(self, key: str, fingerprint: str, now: float) -> Begin:
        with outage_guard("reading the idempotency key"):
            item = self.dynamodb.get_item(
                TableName=self.table, Key={"idempotency_key": {"S": key}}, ConsistentRead=True
            ).get("Item")
        if item is None:
            return self.begin(key, fingerprint)
        if item["fingerprint"]["S"] != fingerprint:
            return Begin("mismatch")
        if item["state"]["S"] == "in_progress":
            if float(item["lock_until"]["N"]) < now and self._take_over(
                key, item["lock_until"]["N"], now
            ):
                return Begin("new")
            return Begin("in_progress")
        return Begin(
            "replay", int(item["status"]["N"]), item["content_type"]["S"], self._body(item)
        )

    def _take_over(self, key: str, seen_lock: str, now: float) -> bool:
        try:
            with outage_guard("taking over the idempotency key"):
                self.dynamodb.update_item(
                    TableName=self.table,
                    Key={"idempotency_key": {"S": key}},
                    UpdateExpression="SET lock_until = :lock",
                    ConditionExpression="lock_until = :seen",
                    ExpressionAttributeValues={
                        ":lock": {"N": repr(now + LOCK_S)},
                        ":seen": {"N": seen_lock},
                    },
                )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def _body(self, item: dict[str, Any]) -> bytes:
        if "body" in item:
            return item["body"]["B"]
        with outage_guard("reading the stored response"):
            raw = self.s3.get_object(Bucket=self.bucket, Key=item["body_key"]["S"])["Body"].read()
        return gzip.decompress(raw)

    def complete(self, key: str, status: int, content_type: str, body: bytes) -> None:
        values: dict[str, Any] = {
            ":done": {"S": "done"},
            ":status": {"N": str(status)},
            ":ct": {"S": content_type},
        }
        if len(body) <= MAX_INLINE_BODY:
            values[":body"] = {"B": body}
            update = "SET #state = :done, #status = :status, content_type = :ct, body = :body"
        else:
            body_key = f"idempotency/{hashlib.sha256(key.encode()).hexdigest()}.json.gz"
            with outage_guard("storing the response"):
                self.s3.put_object(
                    Bucket=self.bucket, Key=body_key, Body=gzip.compress(body, compresslevel=1)
                )
            values[":bk"] = {"S": body_key}
            update = "SET #state = :done, #status = :status, content_type = :ct, body_key = :bk"
        with outage_guard("storing the response"):
            self.dynamodb.update_item(
                TableName=self.table,
                Key={"idempotency_key": {"S": key}},
                UpdateExpression=update,
                ExpressionAttributeNames={"#state": "state", "#status": "status"},
                ExpressionAttributeValues=values,
            )

    def release(self, key: str) -> None:
        with outage_guard("releasing the idempotency key"):
            self.dynamodb.delete_item(TableName=self.table, Key={"idempotency_key": {"S": key}})


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
