"""The ``DepotIdempotency`` records behind the ``Idempotency-Key`` middleware
(``depot.http.idempotency``): a key's fingerprint and state, its stored response (in the item,
or gzipped in the state bucket when too large), its 24-hour retention and its in-progress lock.
"""

from __future__ import annotations

import gzip
import hashlib
import time
from dataclasses import dataclass
from typing import Any

from depot.storage.aws import conditional, outage_guard

RETENTION_S = 24 * 3600
LOCK_S = 300
MAX_INLINE_BODY = 300_000


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
        recorded = conditional(
            "recording the idempotency key",
            self.dynamodb.put_item,
            TableName=self.table,
            Item={
                "idempotency_key": {"S": key},
                "fingerprint": {"S": fingerprint},
                "state": {"S": "in_progress"},
                "created_at": {"N": repr(now)},
                "lock_until": {"N": repr(now + LOCK_S)},
                "expires_at": {"N": str(int(now + RETENTION_S))},
            },
            ConditionExpression="attribute_not_exists(idempotency_key) OR expires_at < :now",
            ExpressionAttributeValues={":now": {"N": str(int(now))}},
        )
        if recorded is not None:
            return Begin("new")
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
        taken = conditional(
            "taking over the idempotency key",
            self.dynamodb.update_item,
            TableName=self.table,
            Key={"idempotency_key": {"S": key}},
            UpdateExpression="SET lock_until = :lock",
            ConditionExpression="lock_until = :seen",
            ExpressionAttributeValues={
                ":lock": {"N": repr(now + LOCK_S)},
                ":seen": {"N": seen_lock},
            },
        )
        return taken is not None

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
